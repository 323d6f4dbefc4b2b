package reliability

import (
	"bufio"
	"cmp"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// CPU is a reading of the machine's busy CPU time and the suite's own share
// of it, in clock ticks: the figures of a phase are only as good as the
// machine was quiet, and other processes may share it.
type CPU struct {
	Total, Suite int64
	idleAndBusy  int64
	// Of each of the suite's processes, by name.
	Procs map[string]int64
}

// Share is the fraction of the machine's CPU capacity (all cores) used
// between a and b by the suite and by everything else.
func (b CPU) Share(a CPU) (suite, others float64) {
	capacity := float64(b.idleAndBusy - a.idleAndBusy)
	if capacity <= 0 {
		return 0, 0
	}
	return float64(b.Suite-a.Suite) / capacity, float64((b.Total-a.Total)-(b.Suite-a.Suite)) / capacity
}

// ProcShares is each process's share of the machine's CPU capacity between
// a and b, as "name N%", largest first.
func (b CPU) ProcShares(a CPU) string {
	capacity := float64(b.idleAndBusy - a.idleAndBusy)
	type share struct {
		name string
		v    float64
	}
	var shares []share
	for name, t := range b.Procs {
		if t0, ok := a.Procs[name]; ok && capacity > 0 {
			shares = append(shares, share{name, float64(t-t0) / capacity})
		}
	}
	slices.SortFunc(shares, func(x, y share) int { return cmp.Compare(y.v, x.v) })
	var parts []string
	for _, s := range shares {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", s.name, 100*s.v))
	}
	return strings.Join(parts, ", ")
}

// readCPU reads /proc/stat and the CPU time of the named processes.
func readCPU(procs map[string]int) CPU {
	c := CPU{Procs: map[string]int64{}}
	if data, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(data), "\n")
		f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
		for i := 1; i < len(f) && i <= 8; i++ {
			n, _ := strconv.ParseInt(f[i], 10, 64)
			c.idleAndBusy += n
			if i != 4 && i != 5 {
				c.Total += n
			}
		}
	}
	for name, pid := range procs {
		t := procTicks(pid)
		c.Procs[name] = t
		c.Suite += t
	}
	return c
}

// procTicks is utime+stime of pid (/proc/<pid>/stat fields 14 and 15).
func procTicks(pid int) int64 {
	if pid <= 0 {
		return 0
	}
	data, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+1:]
	}
	f := strings.Fields(s) // from field 3 (state) on
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st
}

// clusterPIDs adds kube-apiserver's and etcd's PIDs, from
// hack/kube-env.sh's env file in dir, to procs.
func clusterPIDs(dir string, procs map[string]int) {
	f, err := os.Open(filepath.Join(dir, "env"))
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		name := map[string]string{"APISERVER_PID": "kube-apiserver", "ETCD_PID": "etcd"}[k]
		if n, err := strconv.Atoi(strings.Trim(v, "'")); err == nil && name != "" {
			procs[name] = n
		}
	}
}
