package reliability

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"
)

// FuzzResult is the fuzz target's run.
type FuzzResult struct {
	Command string
	Execs   int
	Summary string
	Err     string
}

var fuzzProgress = regexp.MustCompile(`execs: (\d+) \((\d+)/sec\), new interesting: (\d+) \(total: (\d+)\)`)

// RunFuzz runs FuzzDecodeResult (api: the callback body's decoder) for a
// fixed number of executions.
func (s *Suite) RunFuzz() {
	if s.cfg.FuzzExecs <= 0 {
		return
	}
	args := []string{"test", "-run", "^$", "-fuzz", "^FuzzDecodeResult$", "-fuzztime", fmt.Sprintf("%dx", s.cfg.FuzzExecs), "./api"}
	res := &s.Report.Fuzz
	res.Command = "go " + strings.Join(args, " ")
	res.Execs = s.cfg.FuzzExecs
	s.t.Logf("fuzz: %s", res.Command)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = s.root
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	interesting := "?"
	if m := fuzzProgress.FindAllSubmatch(out, -1); len(m) > 0 {
		last := m[len(m)-1]
		interesting = fmt.Sprintf("%s new interesting inputs (corpus %s)", last[3], last[4])
	}
	if err != nil {
		res.Err = fmt.Sprintf("%v\n%s", err, tail(string(out), 40))
		res.Summary = fmt.Sprintf("**failed** after %s: see the log", took.Round(time.Second))
		return
	}
	res.Summary = fmt.Sprintf("%s executions in %s, no failure, %s", thousands(s.cfg.FuzzExecs), took.Round(time.Second), interesting)
}

func tail(s string, lines int) string {
	l := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(l) > lines {
		l = l[len(l)-lines:]
	}
	return strings.Join(l, "\n")
}
