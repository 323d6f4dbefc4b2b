package state

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/batchlatch/batchlatch/api"
)

var t0 = time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)

// run is a result of CronWorkflow cron in namespace ml that finished at t0+hours.
func run(cron, uid string, phase api.Phase, hours int) api.Result {
	return api.Result{
		Namespace:       "ml",
		WorkflowName:    cron + "-" + uid,
		UID:             uid,
		CronWorkflow:    cron,
		Phase:           phase,
		CreatedAt:       t0.Add(time.Duration(hours) * time.Hour).Format(time.RFC3339),
		DurationSeconds: 0,
	}
}

// missed is a watcher's result for the tick at t0+hours of cron, which made
// no run: it stands for the run named after the tick.
func missed(cron string, hours int) api.Result {
	return api.Result{
		Namespace: "ml", WorkflowName: fmt.Sprintf("%s-tick-%d", cron, hours), CronWorkflow: cron,
		Phase: api.PhaseMissed, CreatedAt: at(hours).Format(time.RFC3339),
	}
}

// stuck is a watcher's result for run r still running past a 30-minute max
// runtime: timed when it became stuck, as the watchers time it.
func stuck(r api.Result) api.Result {
	r.Phase = api.PhaseStuck
	r.DurationSeconds = 30 * 60
	return r
}

func named(r api.Result, workflow string) api.Result {
	r.WorkflowName = workflow
	return r
}

func withDuration(r api.Result, seconds float64) api.Result {
	r.DurationSeconds = seconds
	return r
}

func at(hours int) time.Time { return t0.Add(time.Duration(hours) * time.Hour) }

// applyAll runs results through Apply against a map, as a store would.
func applyAll(results []api.Result) (map[Key]Job, []Outcome) {
	jobs := map[Key]Job{}
	var outcomes []Outcome
	for _, r := range results {
		key := KeyOf(r)
		old, ok := jobs[key]
		next, o := Apply(old, ok, r, at(100))
		jobs[key] = next
		outcomes = append(outcomes, o)
	}
	return jobs, outcomes
}

func TestApply(t *testing.T) {
	nightly := Key{Namespace: "ml", Name: "nightly"}
	hourly := Key{Namespace: "ml", Name: "hourly"}
	tests := []struct {
		name         string
		results      []api.Result
		wantOutcomes []Outcome
		check        func(t *testing.T, jobs map[Key]Job)
	}{
		{
			name:         "first failure starts a streak at the run's finish time",
			results:      []api.Result{run("nightly", "a", api.PhaseFailed, 0)},
			wantOutcomes: []Outcome{{Transition: StartedFailing}},
			check: func(t *testing.T, jobs map[Key]Job) {
				j := jobs[nightly]
				wantFailing(t, j, at(0), 1)
				if j.LastWorkflow != "nightly-a" || j.LastUID != "a" || j.LastPhase != api.PhaseFailed {
					t.Errorf("last run = %s/%s/%s", j.LastWorkflow, j.LastUID, j.LastPhase)
				}
			},
		},
		{
			name: "repeated failures count up and keep failingSince",
			results: []api.Result{
				run("nightly", "a", api.PhaseFailed, 0),
				run("nightly", "b", api.PhaseFailed, 1),
				run("nightly", "c", api.PhaseFailed, 2),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: StillFailing}, {Transition: StillFailing}},
			check: func(t *testing.T, jobs map[Key]Job) {
				wantFailing(t, jobs[nightly], at(0), 3)
				if jobs[nightly].LastUID != "c" {
					t.Errorf("LastUID = %q, want c", jobs[nightly].LastUID)
				}
			},
		},
		{
			name: "Error counts as a failure",
			results: []api.Result{
				run("nightly", "a", api.PhaseError, 0),
				run("nightly", "b", api.PhaseFailed, 1),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: StillFailing}},
			check:        func(t *testing.T, jobs map[Key]Job) { wantFailing(t, jobs[nightly], at(0), 2) },
		},
		{
			name: "success ends the streak and records it",
			results: []api.Result{
				run("nightly", "a", api.PhaseFailed, 0),
				run("nightly", "b", api.PhaseFailed, 1),
				run("nightly", "c", api.PhaseSucceeded, 3),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: StillFailing}, {Transition: Recovered}},
			check: func(t *testing.T, jobs map[Key]Job) {
				j := jobs[nightly]
				wantHealthy(t, j)
				want := api.Streak{Since: at(0), Until: at(3), Seconds: 3 * 3600, Failures: 2}
				if j.LastStreak == nil || *j.LastStreak != want {
					t.Errorf("LastStreak = %+v, want %+v", j.LastStreak, want)
				}
				if j.RecoveredAt == nil || !j.RecoveredAt.Equal(at(100)) {
					t.Errorf("RecoveredAt = %v, want the time the success was received", j.RecoveredAt)
				}
			},
		},
		{
			name: "success of a healthy job changes nothing but the last run",
			results: []api.Result{
				run("nightly", "a", api.PhaseSucceeded, 0),
				run("nightly", "b", api.PhaseSucceeded, 1),
			},
			wantOutcomes: []Outcome{{Transition: Unchanged}, {Transition: Unchanged}},
			check: func(t *testing.T, jobs map[Key]Job) {
				wantHealthy(t, jobs[nightly])
				if jobs[nightly].LastStreak != nil || jobs[nightly].LastUID != "b" {
					t.Errorf("job = %+v", jobs[nightly])
				}
			},
		},
		{
			name: "a duplicate uid changes nothing",
			results: []api.Result{
				run("nightly", "a", api.PhaseFailed, 0),
				run("nightly", "a", api.PhaseFailed, 0),
				run("nightly", "b", api.PhaseFailed, 1),
				run("nightly", "b", api.PhaseFailed, 1),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: Unchanged, Duplicate: true}, {Transition: StillFailing}, {Transition: Unchanged, Duplicate: true}},
			check:        func(t *testing.T, jobs map[Key]Job) { wantFailing(t, jobs[nightly], at(0), 2) },
		},
		{
			name: "a redelivered failure after the success does not reopen the streak",
			results: []api.Result{
				run("nightly", "a", api.PhaseFailed, 0),
				run("nightly", "b", api.PhaseSucceeded, 1),
				run("nightly", "a", api.PhaseFailed, 0),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: Recovered}, {Transition: Unchanged, Duplicate: true}},
			check:        func(t *testing.T, jobs map[Key]Job) { wantHealthy(t, jobs[nightly]) },
		},
		{
			name: "an older failure arriving after a newer success does not change the state",
			results: []api.Result{
				run("nightly", "b", api.PhaseSucceeded, 2),
				run("nightly", "a", api.PhaseFailed, 1),
			},
			wantOutcomes: []Outcome{{Transition: Unchanged}, {Transition: Unchanged, Stale: true}},
			check: func(t *testing.T, jobs map[Key]Job) {
				j := jobs[nightly]
				wantHealthy(t, j)
				if j.LastUID != "b" || !j.LastResultAt.Equal(at(2)) {
					t.Errorf("last = %s at %s, want b at %s", j.LastUID, j.LastResultAt, at(2))
				}
			},
		},
		{
			name: "an older success arriving after a newer failure does not end the streak",
			results: []api.Result{
				run("nightly", "b", api.PhaseFailed, 2),
				run("nightly", "a", api.PhaseSucceeded, 1),
				run("nightly", "a", api.PhaseSucceeded, 1),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: Unchanged, Stale: true}, {Transition: Unchanged, Duplicate: true}},
			check:        func(t *testing.T, jobs map[Key]Job) { wantFailing(t, jobs[nightly], at(2), 1) },
		},
		{
			name: "two CronWorkflows in one namespace fail and recover independently",
			results: []api.Result{
				run("nightly", "a", api.PhaseFailed, 0),
				run("hourly", "h1", api.PhaseFailed, 1),
				run("hourly", "h2", api.PhaseSucceeded, 2),
				run("nightly", "b", api.PhaseFailed, 24),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: StartedFailing}, {Transition: Recovered}, {Transition: StillFailing}},
			check: func(t *testing.T, jobs map[Key]Job) {
				wantFailing(t, jobs[nightly], at(0), 2)
				wantHealthy(t, jobs[hourly])
				if s := jobs[hourly].LastStreak; s == nil || s.Failures != 1 {
					t.Errorf("hourly streak = %+v", s)
				}
			},
		},
		{
			name: "argo retry: a success of the failed workflow (same uid) ends the streak",
			results: []api.Result{
				run("nightly", "a", api.PhaseFailed, 0),
				run("nightly", "b", api.PhaseFailed, 5),
				// Argo resets startedAt on a retry: createdAt plus the retry's
				// duration ends long before the failure it replaces.
				withDuration(run("nightly", "b", api.PhaseSucceeded, 0), 600),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: StillFailing}, {Transition: Recovered, Retry: true}},
			check: func(t *testing.T, jobs map[Key]Job) {
				j := jobs[nightly]
				wantHealthy(t, j)
				// Ordered as received: the success came after the failures.
				want := api.Streak{Since: at(0), Until: at(100), Seconds: 100 * 3600, Failures: 2}
				if j.LastStreak == nil || *j.LastStreak != want {
					t.Errorf("LastStreak = %+v, want %+v", j.LastStreak, want)
				}
				if j.LastPhase != api.PhaseSucceeded || !j.LastResultAt.Equal(at(100)) {
					t.Errorf("last = %s at %s", j.LastPhase, j.LastResultAt)
				}
			},
		},
		{
			name: "at-least-once: one outcome delivered again, re-rendered, is a duplicate",
			results: []api.Result{
				withDuration(run("nightly", "a", api.PhaseFailed, 0), 12.5),
				withDuration(run("nightly", "a", api.PhaseFailed, 0), 14),
				run("nightly", "b", api.PhaseSucceeded, 1),
				withDuration(run("nightly", "b", api.PhaseSucceeded, 1), 3),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: Unchanged, Duplicate: true}, {Transition: Recovered}, {Transition: Unchanged, Duplicate: true}},
			check:        func(t *testing.T, jobs map[Key]Job) { wantHealthy(t, jobs[nightly]) },
		},
		{
			name: "a retried workflow that fails again, as Failed or Error, is the same failed run",
			results: []api.Result{
				run("nightly", "a", api.PhaseFailed, 0),
				run("nightly", "a", api.PhaseError, 2),
				run("nightly", "a", api.PhaseFailed, 3),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: Unchanged, Duplicate: true}, {Transition: Unchanged, Duplicate: true}},
			check:        func(t *testing.T, jobs map[Key]Job) { wantFailing(t, jobs[nightly], at(0), 1) },
		},
		{
			name: "a redelivered failure after its retry succeeded does not reopen the streak",
			results: []api.Result{
				run("nightly", "a", api.PhaseFailed, 0),
				run("nightly", "a", api.PhaseSucceeded, 1),
				run("nightly", "a", api.PhaseFailed, 0),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: Recovered, Retry: true}, {Transition: Unchanged, Duplicate: true}},
			check:        func(t *testing.T, jobs map[Key]Job) { wantHealthy(t, jobs[nightly]) },
		},
		{
			name: "a missed tick is one failure, never counted twice; a later success ends it",
			results: []api.Result{
				missed("nightly", 0),
				missed("nightly", 0),
				missed("nightly", 24),
				run("nightly", "c", api.PhaseSucceeded, 48),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: Unchanged, Duplicate: true}, {Transition: StillFailing}, {Transition: Recovered}},
			check: func(t *testing.T, jobs map[Key]Job) {
				if s := jobs[nightly].LastStreak; s == nil || s.Failures != 2 {
					t.Errorf("streak = %+v, want 2 missed ticks", s)
				}
			},
		},
		{
			name: "a run that shows up late for a missed tick is the same run",
			results: []api.Result{
				missed("nightly", 0),
				named(run("nightly", "late", api.PhaseFailed, 0), "nightly-tick-0"),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: StillFailing, Supersedes: true}},
			check: func(t *testing.T, jobs map[Key]Job) {
				wantFailing(t, jobs[nightly], at(0), 1)
				if jobs[nightly].LastPhase != api.PhaseFailed || jobs[nightly].LastUID != "late" {
					t.Errorf("last = %s %s, want the run's own result", jobs[nightly].LastPhase, jobs[nightly].LastUID)
				}
			},
		},
		{
			name: "a stuck run that then fails is one failed run; its success would end the streak",
			results: []api.Result{
				stuck(run("nightly", "a", api.PhaseFailed, 0)),
				stuck(run("nightly", "a", api.PhaseFailed, 0)),
				run("nightly", "a", api.PhaseFailed, 0),
				stuck(run("nightly", "a", api.PhaseFailed, 0)),
				// Received after a's failure (at(100)), as every result here.
				stuck(run("nightly", "b", api.PhaseFailed, 100)),
				run("nightly", "b", api.PhaseSucceeded, 101),
			},
			wantOutcomes: []Outcome{
				{Transition: StartedFailing}, {Transition: Unchanged, Duplicate: true}, {Transition: StillFailing, Supersedes: true},
				{Transition: Unchanged, Duplicate: true}, {Transition: StillFailing}, {Transition: Recovered, Supersedes: true},
			},
			check: func(t *testing.T, jobs map[Key]Job) {
				if s := jobs[nightly].LastStreak; s == nil || s.Failures != 2 {
					t.Errorf("streak = %+v, want 2 runs", s)
				}
			},
		},
		{
			name: "a new streak after a recovery starts afresh",
			results: []api.Result{
				run("nightly", "a", api.PhaseFailed, 0),
				run("nightly", "b", api.PhaseSucceeded, 1),
				run("nightly", "c", api.PhaseFailed, 5),
			},
			wantOutcomes: []Outcome{{Transition: StartedFailing}, {Transition: Recovered}, {Transition: StartedFailing}},
			check: func(t *testing.T, jobs map[Key]Job) {
				wantFailing(t, jobs[nightly], at(5), 1)
				if jobs[nightly].LastStreak == nil || !jobs[nightly].LastStreak.Until.Equal(at(1)) {
					t.Errorf("previous streak lost: %+v", jobs[nightly].LastStreak)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobs, outcomes := applyAll(tt.results)
			if len(outcomes) != len(tt.wantOutcomes) {
				t.Fatalf("got %d outcomes, want %d", len(outcomes), len(tt.wantOutcomes))
			}
			for i := range outcomes {
				if outcomes[i] != tt.wantOutcomes[i] {
					t.Errorf("result %d: outcome %+v, want %+v", i, outcomes[i], tt.wantOutcomes[i])
				}
			}
			tt.check(t, jobs)
		})
	}
}

func TestApplyWithoutCreatedAtUsesReceiveTime(t *testing.T) {
	r := api.Result{Namespace: "etl", WorkflowName: "w-1", Phase: api.PhaseFailed}
	j, o := Apply(Job{}, false, r, at(7))
	if o.Transition != StartedFailing || !j.FailingSince.Equal(at(7)) {
		t.Fatalf("got %+v, failingSince %v", o, j.FailingSince)
	}
	if j.Key() != (Key{Namespace: "etl"}) {
		t.Errorf("key = %+v, want the namespace as a whole", j.Key())
	}
	// Without a uid, the workflow name deduplicates.
	if _, o := Apply(j, true, r, at(8)); !o.Duplicate {
		t.Errorf("redelivery without uid: %+v, want duplicate", o)
	}
}

// A run whose time could not be trusted (DecodeResult left createdAt out)
// is ordered by when it was received, as a retry is: it counts even when the
// job's latest result finished later by the sender's (skewed) clock.
func TestApplyOrdersUntimedResultsByReceipt(t *testing.T) {
	// The previous run's clock ran 4 minutes fast: within the bound.
	fast := withDuration(run("nightly", "a", api.PhaseSucceeded, 1), 4*60)
	j, _ := Apply(Job{}, false, fast, at(1))
	skewed := run("nightly", "b", api.PhaseFailed, 0)
	skewed.CreatedAt = ""
	skewed.Warnings = []api.Warning{{Field: "createdAt", Message: "in the future; ignored: the run is ordered by when it was received"}}
	j, o := Apply(j, true, skewed, at(1).Add(time.Minute))
	if o.Stale || o.Transition != StartedFailing {
		t.Fatalf("outcome %+v, want the run counted", o)
	}
	if !j.FailingSince.Equal(fast.FinishedAt(at(1))) || j.ConsecutiveFailures != 1 {
		t.Errorf("failing since %v (%d runs), want since the latest known result %v", j.FailingSince, j.ConsecutiveFailures, fast.FinishedAt(at(1)))
	}
}

// The job keeps the first warning of its latest result that had any, until
// a result comes without one; a duplicate or a stale result does not clear it.
func TestApplyKeepsTheLatestWarning(t *testing.T) {
	warned := run("nightly", "a", api.PhaseFailed, 2)
	warned.Warnings = []api.Warning{
		{Field: "annotations.batchlatch.io/failure-threshold", Message: `"abc" is not a whole number from 1 to 100; ignored` + strings.Repeat("!", 1000)},
		{Field: "scheduledTime", Message: "ignored"},
	}
	j, _ := Apply(Job{}, false, warned, at(3))
	w := j.View(at(3)).LastWarning
	if w == nil || w.Field != "annotations.batchlatch.io/failure-threshold" || w.Workflow != warned.WorkflowName || !w.At.Equal(at(3)) || w.More != 1 {
		t.Fatalf("warning %+v", w)
	}
	if len(w.Message) > maxWarningBytes || !strings.HasPrefix(w.Message, `"abc" is not`) {
		t.Errorf("stored message of %d bytes: %.80s", len(w.Message), w.Message)
	}
	if j2, o := Apply(j, true, run("nightly", "a", api.PhaseFailed, 2), at(4)); !o.Duplicate || j2.Warning == nil {
		t.Errorf("a duplicate cleared the warning: %+v", o)
	}
	if j2, o := Apply(j, true, run("nightly", "old", api.PhaseFailed, 1), at(4)); !o.Stale || j2.Warning == nil {
		t.Errorf("a stale clean result cleared the warning: %+v", o)
	}
	j, _ = Apply(j, true, run("nightly", "b", api.PhaseSucceeded, 3), at(4))
	if j.Warning != nil || j.View(at(4)).LastWarning != nil {
		t.Errorf("a clean result left the warning: %+v", j.Warning)
	}
}

// failingSeconds counts whole seconds, as the entries do: no nanosecond
// digits in the REST view.
func TestViewCountsWholeSeconds(t *testing.T) {
	j, _ := Apply(Job{}, false, run("nightly", "a", api.PhaseFailed, 0), at(0))
	if got := j.View(at(0).Add(99*time.Second + 574157663)).FailingSeconds; got != 99 {
		t.Errorf("failingSeconds = %v, want 99", got)
	}
}

func TestApplyBoundsStoredSize(t *testing.T) {
	var job Job
	existing := false
	for i := 0; i < 100; i++ {
		r := run("nightly", strings.Repeat("u", 36)+string(rune('a'+i%26))+strings.Repeat("x", i/26), api.PhaseFailed, i)
		r.Failures = []api.Failure{
			{DisplayName: "step", Message: strings.Repeat("é", 1000)},
			{DisplayName: "b"}, {DisplayName: "c"}, {DisplayName: "d"}, {DisplayName: "e"},
		}
		job, _ = Apply(job, existing, r, at(200))
		existing = true
	}
	if len(job.RecentRuns) != recentRunsKept {
		t.Errorf("RecentRuns holds %d, want %d", len(job.RecentRuns), recentRunsKept)
	}
	if len(job.LastFailures) != failuresKept || job.FailuresOmitted != 3 || job.View(at(200)).LastFailuresOmitted != 3 {
		t.Errorf("LastFailures holds %d, %d omitted; want %d and 3", len(job.LastFailures), job.FailuresOmitted, failuresKept)
	}
	if m := job.LastFailures[0].Message; !strings.HasSuffix(m, "…") || !utf8.ValidString(m) || encodedLen(job.LastFailures) > FailedStepsBudget {
		t.Errorf("message not cut cleanly: %d bytes, failed steps %d bytes", len(m), encodedLen(job.LastFailures))
	}
	if job.ConsecutiveFailures != 100 {
		t.Errorf("ConsecutiveFailures = %d", job.ConsecutiveFailures)
	}
}

// A failed step's message is kept as far as the budget allows (not cut at
// 200 bytes), the steps past failuresKept are counted, and the stored steps
// never exceed the budget, whatever the messages hold.
func TestTrimFailuresKeepsWhatTheBudgetAllows(t *testing.T) {
	long := "Error (exit code 1): " + strings.Repeat("Traceback line of the failed step. ", 30) // 1,070 bytes
	kept, omitted := trimFailures([]api.Failure{{DisplayName: "train(0)", Message: long, PodName: "nightly-1795485600-train-1234567890", TemplateName: "train"}})
	if omitted != 0 || len(kept) != 1 || kept[0].Message != long || kept[0].TemplateName != "" {
		t.Errorf("one failed step with a %d-byte message: kept %d bytes, %d omitted", len(long), len(kept[0].Message), omitted)
	}
	// Two long messages share the budget; a short one leaves its share.
	kept, omitted = trimFailures([]api.Failure{{Message: long + long}, {Message: "OOMKilled"}, {Message: "x"}, {Message: "y"}, {Message: "z"}})
	if omitted != 3 || kept[1].Message != "OOMKilled" || !strings.HasSuffix(kept[0].Message, "…") || encodedLen(kept) > FailedStepsBudget || encodedLen(kept) < FailedStepsBudget-8 {
		t.Errorf("kept %d bytes (%d omitted): %q", encodedLen(kept), omitted, kept[1].Message)
	}
	// Whatever the content, the stored steps fit the budget and each cut is
	// a valid start of its message.
	for _, hostile := range []string{strings.Repeat("<", 5000), strings.Repeat("\n\"\x01", 3000), strings.Repeat("\u2028é", 3000), strings.Repeat("\xff", 5000), strings.Repeat("😀", 3000)} {
		name := strings.Repeat(hostile, 1)[:min(len(hostile), 400)]
		kept, _ := trimFailures([]api.Failure{{DisplayName: name, PodName: name, Message: hostile}, {DisplayName: name, PodName: name, Message: hostile}, {Message: hostile}})
		if size := encodedLen(kept); size > FailedStepsBudget {
			t.Errorf("%.10q…: %d bytes stored, over %d", hostile, size, FailedStepsBudget)
		}
		for _, f := range kept {
			if m := strings.TrimSuffix(f.Message, "…"); !strings.HasPrefix(hostile, m) || len(m) == 0 {
				t.Errorf("%.10q…: message cut to %.20q", hostile, f.Message)
			}
		}
	}
}

// jsonStringLen is what encoding/json writes, escapes and all.
func TestJSONStringLenIsEncodingJSONs(t *testing.T) {
	var runes []rune
	for r := rune(0); r < 0x300; r++ {
		runes = append(runes, r)
	}
	runes = append(runes, '\u2028', '\u2029', '\ufffd', '\U0001F600', '\U000E0001')
	for _, r := range runes {
		s := string(r) + "a"
		if b, _ := json.Marshal(s); jsonStringLen(s, 1000) != len(b)-2 {
			t.Errorf("%q: %d, encoding/json writes %d", s, jsonStringLen(s, 1000), len(b)-2)
		}
	}
	for _, s := range []string{"\xff", "a\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80"} { // invalid UTF-8
		if b, _ := json.Marshal(s); jsonStringLen(s, 1000) != len(b)-2 {
			t.Errorf("%q: %d, encoding/json writes %d", s, jsonStringLen(s, 1000), len(b)-2)
		}
	}
}

// Apply must not write into its input's slices: two results applied to the
// same job (as a conflict retry re-applies a batch) must not see each other.
func TestApplyDoesNotAliasInput(t *testing.T) {
	base, _ := Apply(Job{}, false, run("nightly", "a", api.PhaseFailed, 0), at(9))
	// Spare capacity: an in-place append would land in shared memory.
	base.RecentRuns = append(make([]string, 0, 32), base.RecentRuns...)
	withB, _ := Apply(base, true, run("nightly", "b", api.PhaseFailed, 1), at(9))
	withC, _ := Apply(base, true, run("nightly", "c", api.PhaseFailed, 1), at(9))
	if last := withB.RecentRuns[len(withB.RecentRuns)-1]; last != runHash("b", outcomeFailed) {
		t.Errorf("applying c to the same base changed b's job: last run %s, want %s", last, runHash("b", outcomeFailed))
	}
	if last := withC.RecentRuns[len(withC.RecentRuns)-1]; last != runHash("c", outcomeFailed) {
		t.Errorf("last run %s, want %s", last, runHash("c", outcomeFailed))
	}
	if len(base.RecentRuns) != 1 {
		t.Errorf("base changed: %v", base.RecentRuns)
	}
}

func TestKeyRoundTrip(t *testing.T) {
	for _, k := range []Key{{Namespace: "ml"}, {Namespace: "ml", Name: "nightly"}, {Namespace: "ml", Name: "a.b.c"},
		{Namespace: "ml", Name: "nightly", Kind: api.KindCronJob}, {Namespace: "ml", Name: "a.b", Kind: api.KindCronJob}} {
		if got := ParseKey(k.String()); got != k {
			t.Errorf("ParseKey(%q) = %+v, want %+v", k.String(), got, k)
		}
		if err := k.Validate(); err != nil {
			t.Errorf("%+v: %v", k, err)
		}
	}
	// Keys stored before kinds existed name CronWorkflows, as they did.
	if got := ParseKey("ml.nightly"); got != (Key{Namespace: "ml", Name: "nightly"}) || got.KindName() != api.KindWorkflow {
		t.Errorf("ParseKey(ml.nightly) = %+v (%s)", got, got.KindName())
	}
	// A CronJob and a CronWorkflow of one name are two jobs, in every store.
	workflow := KeyOf(api.Result{Namespace: "ml", WorkflowName: "nightly-1", CronWorkflow: "nightly"})
	cronJob := KeyOf(api.Result{Namespace: "ml", WorkflowName: "nightly-29000000", CronJob: "nightly"})
	if workflow == cronJob || workflow.String() == cronJob.String() || cronJob.KindName() != api.KindCronJob || workflow.KindName() != api.KindWorkflow {
		t.Errorf("KeyOf: %+v %q and %+v %q", workflow, workflow, cronJob, cronJob)
	}
	if got := KeyFor(api.KindWorkflow, "ml", "x"); got != (Key{Namespace: "ml", Name: "x"}) {
		t.Errorf("KeyFor(Workflow) = %+v: the zero kind is Workflow", got)
	}
	if err := (Key{Namespace: "ml", Kind: api.KindCronJob}).Validate(); err == nil {
		t.Error("a CronJob key without a name validates")
	}
}

func TestApplyKeepsTheKind(t *testing.T) {
	at := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	r := api.Result{Namespace: "ml", WorkflowName: "nightly-29000000", UID: "u1", CronJob: "nightly", Phase: "Failed"}
	j, o := Apply(Job{}, false, r, at)
	if o.Transition != StartedFailing || j.Key() != KeyOf(r) || j.View(at).Kind != api.KindCronJob {
		t.Errorf("Apply: %+v, key %+v, view kind %q", o, j.Key(), j.View(at).Kind)
	}
}

func wantFailing(t *testing.T, j Job, since time.Time, count int) {
	t.Helper()
	if !j.Failing() || !j.FailingSince.Equal(since) || j.ConsecutiveFailures != count {
		t.Errorf("job %s: failingSince %v, failures %d; want failing since %v, %d failures", j.Key(), j.FailingSince, j.ConsecutiveFailures, since, count)
	}
}

func wantHealthy(t *testing.T, j Job) {
	t.Helper()
	if j.Failing() || j.ConsecutiveFailures != 0 {
		t.Errorf("job %s: failingSince %v, failures %d; want healthy", j.Key(), j.FailingSince, j.ConsecutiveFailures)
	}
}

// Jobs stored before outcomes were told apart hold hashes of the bare dedup
// key: those runs stay duplicates, and a retry of the latest one still counts.
func TestApplyReadsLegacyRunHashes(t *testing.T) {
	since := at(1)
	legacy := Job{
		Namespace: "ml", Name: "nightly", FailingSince: &since, ConsecutiveFailures: 2,
		LastResultAt: at(1), LastWorkflow: "nightly-b", LastUID: "b", LastPhase: api.PhaseFailed,
		RecentRuns: []string{legacyRunHash("a"), legacyRunHash("b")},
	}
	for _, tt := range []struct {
		name string
		r    api.Result
		want Outcome
	}{
		{"the latest failure again", run("nightly", "b", api.PhaseFailed, 1), Outcome{Transition: Unchanged, Duplicate: true}},
		{"an older run again", run("nightly", "a", api.PhaseSucceeded, 0), Outcome{Transition: Unchanged, Duplicate: true}},
		{"a retry of the latest run", run("nightly", "b", api.PhaseSucceeded, 1), Outcome{Transition: Recovered, Retry: true}},
		{"a new run", run("nightly", "c", api.PhaseFailed, 2), Outcome{Transition: StillFailing}},
	} {
		if _, got := Apply(legacy, true, tt.r, at(100)); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// Merge keeps the copy that has seen the other's latest run, whichever
// order they come in; diverged copies: the later result.
func TestMerge(t *testing.T) {
	jobs, _ := applyAll([]api.Result{run("nightly", "a", api.PhaseFailed, 0)})
	older := jobs[Key{Namespace: "ml", Name: "nightly"}]
	newer, _ := Apply(older, true, run("nightly", "b", api.PhaseFailed, 1), at(1))
	newest, _ := Apply(newer, true, run("nightly", "c", api.PhaseSucceeded, 2), at(2))
	diverged, _ := Apply(older, true, run("nightly", "d", api.PhaseFailed, 3), at(3))
	for _, tc := range []struct {
		name string
		a, b Job
		want Job
	}{
		{"same", newer, newer, newer},
		{"older first", older, newer, newer},
		{"newer first", newer, older, newer},
		{"two runs apart", older, newest, newest},
		{"diverged: the later result", newest, diverged, diverged},
		{"diverged, other order", diverged, newest, diverged},
	} {
		if got := Merge(tc.a, tc.b); got.LastUID != tc.want.LastUID || got.ConsecutiveFailures != tc.want.ConsecutiveFailures {
			t.Errorf("%s: merged to %s (%d failures), want %s (%d)", tc.name, got.LastUID, got.ConsecutiveFailures, tc.want.LastUID, tc.want.ConsecutiveFailures)
		}
	}
}

// A tick or a run is counted once, however many of them the job remembers:
// a watcher re-evaluates every tick and stuck run it can see at every pass,
// more than the job's memory of runs holds.
func TestSyntheticResultsCountOnceBeyondTheJobsMemory(t *testing.T) {
	for _, tt := range []struct {
		name   string
		result func(i int) api.Result
	}{
		{"missed ticks", func(i int) api.Result { return missed("nightly", i) }},
		{"unsubmittable ticks", func(i int) api.Result {
			r := missed("nightly", i)
			r.Phase = api.PhaseSubmissionError
			r.DurationSeconds = 0
			return r
		}},
		{"stuck runs", func(i int) api.Result { return stuck(run("nightly", fmt.Sprint("r", i), api.PhaseFailed, i)) }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			const n = 3 * recentRunsKept
			var job Job
			existing := false
			for pass := 1; pass <= 5; pass++ {
				// Each pass sees the results of every tick or run so far,
				// in order, as a watcher's pass does.
				for i := range pass * n / 5 {
					job, _ = Apply(job, existing, tt.result(i), at(1000))
					existing = true
				}
				if want := pass * n / 5; job.ConsecutiveFailures != want {
					t.Fatalf("pass %d: %d failures counted, want %d", pass, job.ConsecutiveFailures, want)
				}
			}
		})
	}
}
