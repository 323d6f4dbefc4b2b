//go:build reliability

package reliability

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/internal/kubetest"
)

var resolve = Settings(flag.CommandLine)

// TestReliability is the whole suite: hack/reliability.sh runs it.
func TestReliability(t *testing.T) {
	cfg, err := resolve(testing.Short())
	if err != nil {
		t.Fatal(err)
	}
	// A cluster of its own, never a shared one: the faults kill its servers.
	t.Setenv(kubetest.KubeconfigEnv, "")
	env, stop, err := kubetest.Start()
	if err != nil {
		t.Fatalf("test Kubernetes API server: %v", err)
	}
	t.Cleanup(stop)

	start := time.Now()
	s := NewSuite(t, cfg, env)
	s.Report.Command = os.Getenv("RELIABILITY_COMMAND")
	if s.Report.Command == "" {
		s.Report.Command = "hack/reliability.sh"
		if cfg.Short {
			s.Report.Command += " -short"
		}
	}
	if cfg.Phases["load"] {
		s.RunLoad()
	}
	if cfg.Phases["faults"] {
		s.RunFaults()
	}
	s.Finish()
	if cfg.Phases["bad-input"] {
		s.RunHostile()
	}
	if cfg.Phases["fuzz"] {
		s.RunFuzz()
	}

	out := s.Report.Markdown()
	fmt.Printf("\n%s\n", out)
	if err := os.WriteFile(cfg.Out, []byte(out), 0o644); err != nil {
		t.Errorf("write the report: %v", err)
	} else {
		t.Logf("report written to %s (run took %s)", cfg.Out, time.Since(start).Round(time.Second))
	}
	if p := s.Report.Problems(s.cfg); len(p) > 0 {
		t.Errorf("%d problems:\n- %s", len(p), strings.Join(p, "\n- "))
	}
}
