package cronrules

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// A bad annotation is reported once per version of its object and key.
func TestWarnedOncePerVersion(t *testing.T) {
	var w Warned
	for _, tc := range []struct {
		uid, version, key string
		want              bool
	}{
		{"u1", "7", "a", true},
		{"u1", "7", "a", false},
		{"u1", "7", "b", true},
		{"u1", "8", "a", true},
		{"u2", "7", "a", true},
	} {
		if got := w.First(tc.uid, tc.version, tc.key); got != tc.want {
			t.Errorf("First(%s, %s, %s) = %v, want %v", tc.uid, tc.version, tc.key, got, tc.want)
		}
	}
}

// successes is a job whose history holds n successful runs, an hour apart,
// that took took each, and a failed one that took far longer.
func successes(t *testing.T, n int, took time.Duration) *state.Job {
	t.Helper()
	var job state.Job
	start := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for i := range n + 1 {
		r := api.Result{Namespace: "ml", CronWorkflow: "nightly", WorkflowName: fmt.Sprintf("nightly-%d", i), UID: fmt.Sprint(i),
			Phase: api.PhaseSucceeded, CreatedAt: start.Add(time.Duration(i) * time.Hour).Format(time.RFC3339), DurationSeconds: took.Seconds()}
		if i == n {
			r.Phase, r.DurationSeconds = api.PhaseFailed, (10 * took).Seconds()
		}
		job, _ = state.Apply(job, i > 0, r, r.FinishedAt(time.Time{}))
	}
	return &job
}

// An auto max runtime is max(3 × p90, p90 + 10m) of the usual duration,
// learnt from 5 successful runs of the job's history; with fewer, no limit
// applies, and a fixed one is what it says.
func TestMaxRuntimeLimit(t *testing.T) {
	auto := MaxRuntime{Auto: true}
	for _, tc := range []struct {
		name      string
		m         MaxRuntime
		usual     Usual
		limit     time.Duration
		why, note string
	}{
		{"off", MaxRuntime{}, UsualOf(successes(t, 9, time.Minute)), 0, "", ""},
		{"fixed", MaxRuntime{Fixed: time.Hour}, UsualOf(successes(t, 9, 5*time.Hour)), time.Hour, "", ""},
		{"auto, no job", auto, UsualOf(nil), 0, "no limit applies yet: it needs 5 successful runs of known duration, 0 known",
			"max-runtime auto: no limit applies yet: it needs 5 successful runs of known duration, 0 known"},
		{"auto, 4 runs", auto, UsualOf(successes(t, 4, 10*time.Minute+20*time.Second)), 0,
			"no limit applies yet: it needs 5 successful runs of known duration, 4 known",
			"max-runtime auto: no limit applies yet: it needs 5 successful runs of known duration, 4 known"},
		{"auto, 4 runs told", auto, Usual{P90: 10 * time.Minute, SuccessfulRuns: 4}, 0,
			"no limit applies yet: it needs 5 successful runs of known duration, 4 known",
			"max-runtime auto: no limit applies yet: it needs 5 successful runs of known duration, 4 known"},
		{"auto, 5 runs", auto, UsualOf(successes(t, 5, 10*time.Minute+20*time.Second)), 31 * time.Minute,
			"3 × its usual p90 of 10m 20s", "max-runtime auto: a run is stuck past 31m, 3 × its usual p90 of 10m 20s"},
		{"auto, a short job", auto, UsualOf(successes(t, 12, 2*time.Minute)), 12 * time.Minute,
			"its usual p90 of 2m plus 10m", "max-runtime auto: a run is stuck past 12m, its usual p90 of 2m plus 10m"},
		{"auto, where both are equal", auto, Usual{P90: 5 * time.Minute, SuccessfulRuns: 5}, 15 * time.Minute,
			"3 × its usual p90 of 5m", "max-runtime auto: a run is stuck past 15m, 3 × its usual p90 of 5m"},
	} {
		limit, why := tc.m.Limit(tc.usual)
		if limit != tc.limit || why != tc.why {
			t.Errorf("%s: limit %s (%q), want %s (%q)", tc.name, limit, why, tc.limit, tc.why)
		}
		if note := tc.m.Note(tc.usual, true); note != tc.note {
			t.Errorf("%s: note %q, want %q", tc.name, note, tc.note)
		}
	}
	if note := auto.Note(Usual{}, false); !strings.Contains(note, "next pass") {
		t.Errorf("not read yet: %q", note)
	}
}

// With max-runtime auto, a run is stuck once it has run past the limit its
// job's usual duration gives, which needs 5 successful runs; the Stuck
// result says what limit applied and why, and is timed when it became
// stuck.
func TestStuckAuto(t *testing.T) {
	started := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	runs := []Run{{Name: "nightly-1", UID: "u1", Started: started}, {Name: "nightly-0", UID: "u0", Started: started.Add(-time.Hour), Finished: true}}
	c := Cron{Name: "nightly", MaxRuntime: MaxRuntime{Auto: true}}
	for _, tc := range []struct {
		history int
		after   time.Duration
		stuck   bool
	}{
		{4, 30 * 24 * time.Hour, false},
		{5, 31 * time.Minute, false},
		{5, 31*time.Minute + time.Second, true},
		{20, 5 * time.Hour, true},
	} {
		c.Usual = UsualOf(successes(t, tc.history, 10*time.Minute+20*time.Second))
		got := Stuck(c, runs, started.Add(tc.after))
		if (len(got) == 1) != tc.stuck || len(got) > 1 || tc.stuck && got[0].UID != "u1" {
			t.Errorf("%d runs, %s after the start: stuck %+v, want %v", tc.history, tc.after, got, tc.stuck)
			continue
		}
		if !tc.stuck {
			continue
		}
		limit, msg := StuckFor(c, got[0])
		if want := "still running past 31m, 3 × its usual p90 of 10m 20s (max-runtime auto; started 2026-12-06T02:00:00Z)"; limit != 31*time.Minute || msg != want {
			t.Errorf("stuck for %s: %q, want 31m: %q", limit, msg, want)
		}
	}
	c.MaxRuntime = MaxRuntime{Fixed: time.Hour}
	c.Usual = UsualOf(successes(t, 5, time.Minute)) // not used
	got := Stuck(c, runs, started.Add(61*time.Minute))
	if len(got) != 1 {
		t.Fatalf("fixed: stuck %+v", got)
	}
	if limit, msg := StuckFor(c, got[0]); limit != time.Hour || msg != "still running past its max runtime of 1h0m0s (started 2026-12-06T02:00:00Z)" {
		t.Errorf("fixed: %s %q", limit, msg)
	}
}

// The annotation takes auto (in any case), or a duration within the flag's
// bounds; anything else keeps the flag's value, with an error that says
// what it takes.
func TestAnnotatedMaxRuntime(t *testing.T) {
	for _, tc := range []struct {
		value string // "-": none
		want  MaxRuntime
		err   string
	}{
		{"-", MaxRuntime{Fixed: time.Hour}, ""},
		{"auto", MaxRuntime{Auto: true}, ""},
		{" Auto ", MaxRuntime{Auto: true}, ""},
		{"2h", MaxRuntime{Fixed: 2 * time.Hour}, ""},
		{"0s", MaxRuntime{}, ""},
		{"automatic", MaxRuntime{Fixed: time.Hour}, `annotation batchlatch.io/max-runtime: "automatic" is not a duration such as 15m or 2h (or auto)`},
		{"721h", MaxRuntime{Fixed: time.Hour}, "must be a duration from 0 (off) to 720h, got 721h0m0s (or auto)"},
	} {
		annotations := map[string]string{"batchlatch.io/max-runtime": tc.value}
		if tc.value == "-" {
			annotations = nil
		}
		got, err := AnnotatedMaxRuntime(annotations, "batchlatch.io/max-runtime", time.Hour)
		if got != tc.want || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %+v, %v; want %+v, %q", tc.value, got, err, tc.want, tc.err)
		}
	}
}
