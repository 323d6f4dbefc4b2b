package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/internal/testwait"
)

// A failing job forgotten by an operator (the CLI's forget, or DELETE on
// the API) gets a recovery's closing: its NOTICE, then failing 0 entries
// through the recovery window, never an ERROR after; its gauges read 0
// meanwhile and go once it is closed. The closing comes from the state: a
// restart in the middle of it writes it again for a whole window. A run of
// the job after that starts a streak of its own.
//
// The restart must come within the window: when a busy machine took
// longer, the test runs again with a window twice as long.
func TestForgettingAFailingJobClosesItsIncident(t *testing.T) {
	for _, how := range []string{"cli", "rest"} {
		t.Run(how, func(t *testing.T) {
			for window := 20 * time.Second; ; window *= 2 {
				if !forgetAndClose(t, how, how == "rest", window) {
					return
				}
				if window > 4*time.Minute {
					t.Fatalf("still too slow with a %s recovery window", window)
				}
				t.Logf("the restart came after the %s recovery window: again with a longer one", window)
			}
		})
	}
}

// timedEntry is a stdout line with its time.
type timedEntry struct {
	stdoutEntry
	Time time.Time `json:"time"`
}

func (in *instance) timedEntries(job string) []timedEntry {
	in.t.Helper()
	var out []timedEntry
	sc := bufio.NewScanner(strings.NewReader(in.stdout.String()))
	for sc.Scan() {
		var e timedEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			in.t.Fatalf("stdout line is not JSON: %q", sc.Text())
		}
		if !e.Heartbeat && e.Job == job {
			out = append(out, e)
		}
	}
	return out
}

// gauge is the value of metric for job ml/<job>, and whether it is exported.
func (in *instance) gauge(metric, job string) (string, bool) {
	in.t.Helper()
	_, data := in.get("/metrics")
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, metric+"{") && strings.Contains(line, `job="`+job+`"`) && strings.Contains(line, `namespace="ml"`) {
			return line[strings.LastIndexByte(line, ' ')+1:], true
		}
	}
	return "", false
}

// forgetAndClose runs the test once; it returns true when the machine was
// too slow for window.
func forgetAndClose(t *testing.T, how string, restart bool, window time.Duration) (tooSlow bool) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"BATCHLATCH_INTERVAL": "100ms", "BATCHLATCH_TOKEN_FILE": tokenFile}
	// --policy-window 0: one entry per change, so that a short recovery window is allowed.
	args := []string{"--state-file", filepath.Join(dir, "state.json"), "--recovery-window", window.String(), "--policy-window", "0"}
	svc := start(t, env, args...)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	if code, body := svc.post("s3cret", failedRun("ml", "nightly", "n1", t0, "OOMKilled", 0)); code != 200 {
		t.Fatalf("failure: %d %s", code, body)
	}
	svc.waitForEntries("the first ERROR", func(e []stdoutEntry) bool { return count(e, "ERROR") >= 1 })
	pollUntil(t, patience, "the failing gauge at 1", func() bool { v, ok := svc.gauge("batchlatch_job_failing", "nightly"); return ok && v == "1" })

	forgotAt := time.Now()
	switch how {
	case "cli":
		r := cli(t, map[string]string{"BATCHLATCH_SERVER": svc.url, "BATCHLATCH_TOKEN_FILE": tokenFile}, "forget", "ml/nightly")
		if r.code != 0 || r.stdout != "job ml/nightly forgotten\n" {
			t.Fatalf("forget: %+v", r)
		}
	case "rest":
		req, _ := http.NewRequest("DELETE", svc.url+"/api/v1/jobs/ml/nightly", nil)
		req.Header.Set("Authorization", "Bearer s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE: %d", resp.StatusCode)
		}
	}
	closing := func(in *instance, what string) {
		t.Helper()
		pollUntil(t, patience, what, func() bool {
			entries := in.timedEntries("nightly")
			notice := -1
			for i, e := range entries {
				if e.Severity == "NOTICE" {
					notice = i
				}
			}
			return notice >= 0 && count(stdoutOf(entries[notice:]), "INFO") >= 2
		})
	}
	closing(svc, "the NOTICE and failing 0 entries")
	if code, _ := svc.get("/api/v1/jobs/ml/nightly"); code != http.StatusNotFound {
		t.Errorf("GET of the forgotten job: %d, want 404", code)
	}
	// /metrics is built at most every 5 s and shared: the gauge may read 1
	// for that long, then 0 through the closing; it may only be gone once
	// the closing may be over.
	pollUntil(t, patience, "the forgotten job's failing gauge at 0", func() bool {
		v, ok := svc.gauge("batchlatch_job_failing", "nightly")
		if !ok && time.Since(forgotAt) < window-time.Second {
			t.Fatalf("failing gauge of the forgotten job gone %s after the forget, within its %s closing", time.Since(forgotAt).Round(time.Millisecond), window)
		}
		return !ok || v == "0"
	})
	last := svc
	if restart {
		if err := svc.stop(); err != nil {
			t.Fatalf("stop: %v", err)
		}
		if time.Since(forgotAt) > window-time.Second {
			return true // its closing may be over: nothing left to restart in the middle of
		}
		last = start(t, env, args...)
		closing(last, "the NOTICE and failing 0 entries after the restart")
	}
	pollUntil(t, patience+window, "the forgotten job's gauges gone", func() bool { _, ok := last.gauge("batchlatch_job_failing", "nightly"); return !ok })
	last.passesAfter(2)
	settled := len(last.timedEntries("nightly"))
	last.passesAfter(2)

	for i, in := range []*instance{svc, last} {
		entries := in.timedEntries("nightly")
		notice := -1
		for k, e := range entries {
			if e.Severity == "NOTICE" {
				if notice >= 0 {
					t.Errorf("instance %d: two NOTICEs", i)
				}
				notice = k
			}
		}
		closed := entries[notice:]
		if !strings.Contains(closed[0].Message, "ml/nightly forgotten: deleted through the API") || closed[0].Failing != 0 {
			t.Errorf("instance %d: NOTICE %+v", i, closed[0])
		}
		for _, e := range closed[1:] {
			if e.Severity != "INFO" || e.Failing != 0 {
				t.Fatalf("instance %d: after the NOTICE: %+v", i, e)
			}
		}
		if i == 1 || !restart {
			// The last instance wrote failing 0 for the whole window.
			if end := closed[len(closed)-1].Time; end.Sub(closed[1].Time) < window-2*time.Second {
				t.Errorf("instance %d: failing 0 from %s to %s, shorter than the %s window", i, closed[1].Time, end, window)
			}
		}
	}
	if n := len(last.timedEntries("nightly")); n != settled {
		t.Errorf("entries still written after the closing: %d, then %d", settled, n)
	}

	// The job runs again: a streak of its own.
	if code, body := last.post("s3cret", failedRun("ml", "nightly", "n2", time.Now().Truncate(time.Second), "OOMKilled", 0)); code != 200 {
		t.Fatalf("failure after forgetting: %d %s", code, body)
	}
	if f := last.failures(); len(f.Failures) != 1 || f.Failures[0].ConsecutiveFailures != 1 {
		t.Fatalf("failures after the job came back: %+v", f)
	}
	pollUntil(t, patience, "the failing gauge at 1 again", func() bool { v, ok := last.gauge("batchlatch_job_failing", "nightly"); return ok && v == "1" })
	return false
}

func stdoutOf(entries []timedEntry) []stdoutEntry {
	out := make([]stdoutEntry, len(entries))
	for i, e := range entries {
		out[i] = e.stdoutEntry
	}
	return out
}

// pollUntil polls cond until it holds, or fails after within.
func pollUntil(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	testwait.True(t, within, what, cond)
}
