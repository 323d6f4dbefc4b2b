// Package procstat reads what benchmarks and the reliability suite report of
// a process from /proc: its resident set.
package procstat

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// RSS is process pid's resident set size in bytes, from /proc/<pid>/status;
// an error where that cannot be read (a process gone, not Linux).
func RSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			fields := strings.Fields(rest) // "12345 kB"
			if len(fields) == 2 && fields[1] == "kB" {
				kb, err := strconv.ParseInt(fields[0], 10, 64)
				return kb << 10, err
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// SelfRSS is this process's resident set size in bytes, 0 where it cannot
// be read.
func SelfRSS() int64 {
	rss, err := RSS(os.Getpid())
	if err != nil {
		return 0
	}
	return rss
}
