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
	r, err := Memory(pid)
	return r.Total, err
}

// Resident is a process's resident set, in bytes, split as the kernel counts
// it: anonymous memory (the Go heap, stacks, the runtime's own) and pages of
// mapped files (mostly the binary's code and read-only data, which a
// large binary pays for whether or not it runs that code).
type Resident struct {
	Total, Anon, File int64
}

// Memory reads process pid's resident set from /proc/<pid>/status.
func Memory(pid int) (Resident, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Resident{}, err
	}
	defer f.Close()
	var r Resident
	fields := map[string]*int64{"VmRSS:": &r.Total, "RssAnon:": &r.Anon, "RssFile:": &r.File}
	found := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, rest, _ := strings.Cut(sc.Text(), "\t")
		dst, ok := fields[name]
		if !ok {
			continue
		}
		v := strings.Fields(rest) // "12345 kB"
		if len(v) != 2 || v[1] != "kB" {
			continue
		}
		kb, err := strconv.ParseInt(v[0], 10, 64)
		if err != nil {
			return Resident{}, err
		}
		*dst, found = kb<<10, found || name == "VmRSS:"
	}
	if !found {
		return Resident{}, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
	}
	return r, nil
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
