package argowatch

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/watch/cronrules"
	"github.com/batchlatch/batchlatch/watch/schedule"
)

var t0 = time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)

func minutes(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }

func everyMinute(t *testing.T) cron {
	t.Helper()
	s, err := schedule.Parse([]string{"* * * * *"}, "")
	if err != nil {
		t.Fatal(err)
	}
	return cron{Namespace: "ml", Name: "nightly", Created: t0, Schedule: s, Grace: 2 * time.Minute}
}

func names(results []api.Result) string {
	var out []string
	for _, r := range results {
		out = append(out, string(r.Phase)+":"+r.WorkflowName)
	}
	return strings.Join(out, " ")
}

func tickName(n int) string { return runName("nightly", minutes(n)) }

func TestDueMissedTicks(t *testing.T) {
	base := everyMinute(t)
	now := minutes(5) // ticks 1..5; 1..3 are past the 2m grace
	failedJob := func(workflow string, phase api.Phase, at time.Time) *state.Job {
		return &state.Job{Namespace: "ml", Name: "nightly", LastWorkflow: workflow, LastPhase: phase, LastResultAt: at}
	}
	tests := []struct {
		name   string
		change func(c *cron)
		runs   []run
		job    *state.Job
		want   string
	}{
		{name: "no run at all", want: "Missed:" + tickName(1) + " Missed:" + tickName(2) + " Missed:" + tickName(3)},
		{name: "a run for a tick covers it (by name)", runs: []run{{Name: tickName(2), Phase: wfv1.WorkflowSucceeded, Created: minutes(2)}},
			want: "Missed:" + tickName(1) + " Missed:" + tickName(3)},
		{name: "a run for a later tick covers the earlier ones (by annotation)", runs: []run{{Name: "nightly-x", Created: minutes(3), ScheduledAt: minutes(3)}}},
		{name: "suspended", change: func(c *cron) { c.Suspended = true }},
		{name: "stopped by its stopStrategy", change: func(c *cron) { c.Stopped = true }},
		{name: "when is false", change: func(c *cron) { c.When = " false " }},
		{name: "when cannot be evaluated", change: func(c *cron) { c.When = "{{= cronworkflow.failed < 3 }}" }},
		{name: "when is true", change: func(c *cron) { c.When = "true" }, want: "Missed:" + tickName(1) + " Missed:" + tickName(2) + " Missed:" + tickName(3)},
		{name: "created after the ticks", change: func(c *cron) { c.Created = minutes(3) }},
		{name: "schedule changed: ticks before it are the old schedule's", change: func(c *cron) { c.SpecChangedAt = minutes(2) }, want: "Missed:" + tickName(3)},
		{name: "a longer grace", change: func(c *cron) { c.Grace = 4 * time.Minute }, want: "Missed:" + tickName(1)},
		{name: "a stored result of a later tick covers", job: failedJob(tickName(2), api.PhaseFailed, minutes(2).Add(30*time.Second)), want: "Missed:" + tickName(3)},
		{name: "the watcher's own result covers its tick and those before, whether the job remembers them or not",
			job: failedJob(tickName(2), api.PhaseMissed, minutes(4)), want: "Missed:" + tickName(3)},
		{name: "a stuck run of a tick covers the ticks up to it", job: failedJob(tickName(2), api.PhaseStuck, minutes(4)), want: "Missed:" + tickName(3)},
		{name: "a grace longer than the ticks looked at: the latest ticks past it are missed", change: func(c *cron) { c.Grace = 15 * time.Minute; c.Created = minutes(-30) },
			want: "Missed:" + tickName(-19) + " Missed:" + tickName(-18) + " Missed:" + tickName(-17) + " Missed:" + tickName(-16) + " Missed:" + tickName(-15) +
				" Missed:" + tickName(-14) + " Missed:" + tickName(-13) + " Missed:" + tickName(-12) + " Missed:" + tickName(-11) + " Missed:" + tickName(-10)},
		{name: "Forbid: a run active at the tick", change: func(c *cron) { c.Forbid = true },
			runs: []run{{Name: tickName(0), Created: t0, Phase: wfv1.WorkflowRunning}}},
		{name: "Forbid: a run that ended after the tick", change: func(c *cron) { c.Forbid = true },
			job: failedJob(runName("nightly", t0), api.PhaseSucceeded, minutes(2).Add(10*time.Second)), want: "Missed:" + tickName(3)},
		{name: "Allow: a run of an earlier tick does not cover", runs: []run{{Name: tickName(0), Created: t0, Phase: wfv1.WorkflowRunning}},
			want: "Missed:" + tickName(1) + " Missed:" + tickName(2) + " Missed:" + tickName(3)},
		{name: "SubmissionError written at the latest tick: that tick at once; the uncovered ticks before it, which no write stands for, Missed at once",
			change: func(c *cron) {
				c.Condition = &condition{Phase: api.PhaseSubmissionError, Message: "quota exceeded", WrittenAt: now}
			},
			want: "Missed:" + tickName(1) + " Missed:" + tickName(2) + " Missed:" + tickName(3) + " Missed:" + tickName(4) + " SubmissionError:" + tickName(5)},
		{name: "SubmissionError written just after a tick (the catch-up run of startingDeadlineSeconds) explains that tick",
			change: func(c *cron) {
				c.Condition = &condition{Phase: api.PhaseSubmissionError, Message: "quota exceeded", WrittenAt: minutes(4).Add(20 * time.Second)}
			},
			want: "Missed:" + tickName(1) + " Missed:" + tickName(2) + " Missed:" + tickName(3) + " SubmissionError:" + tickName(4)},
		{name: "a condition explains only the ticks the controller attempted: the rest are missed after the grace (the controller was down)",
			change: func(c *cron) {
				c.Condition = &condition{Phase: api.PhaseSubmissionError, Message: "quota exceeded", WrittenAt: minutes(1).Add(time.Second)}
			},
			want: "SubmissionError:" + tickName(1) + " Missed:" + tickName(2) + " Missed:" + tickName(3)},
		{name: "a SpecError written once (the controller writes no more: nothing changes) that the spec still gives: every tick since fails at once with it",
			change: func(c *cron) {
				c.Condition = &condition{Phase: api.PhaseSpecError, Message: "no template", WrittenAt: minutes(1).Add(time.Second), StillRefused: true}
			},
			want: "SpecError:" + tickName(1) + " SpecError:" + tickName(2) + " SpecError:" + tickName(3) + " SpecError:" + tickName(4) + " SpecError:" + tickName(5)},
		{name: "a SpecError the spec no longer gives (fixed since): the ticks after its write wait for a run",
			change: func(c *cron) {
				c.Condition = &condition{Phase: api.PhaseSpecError, Message: "no template", WrittenAt: minutes(1).Add(time.Second)}
			},
			want: "SpecError:" + tickName(1) + " Missed:" + tickName(2) + " Missed:" + tickName(3)},
		{name: "a SpecError still given, suspended since: the refused tick only",
			change: func(c *cron) {
				c.Suspended, c.SpecChangedAt, c.ScheduleUsed = true, minutes(2).Add(2*time.Second), true
				c.Condition = &condition{Phase: api.PhaseSpecError, Message: "no template", WrittenAt: minutes(1).Add(time.Second), StillRefused: true}
			},
			want: "SpecError:" + tickName(1)},
		{name: "suspended just after a refused tick, before any pass: the refused tick counts all the same",
			change: func(c *cron) {
				c.Suspended, c.SpecChangedAt, c.ScheduleUsed = true, minutes(4).Add(2*time.Second), true
				c.Condition = &condition{Phase: api.PhaseSubmissionError, Message: "quota exceeded", WrittenAt: minutes(4).Add(100 * time.Millisecond)}
			},
			job:  failedJob(tickName(3), api.PhaseSubmissionError, minutes(3)),
			want: "SubmissionError:" + tickName(4)},
		{name: "spec fixed just after a refused tick: the refused tick counts, the tick after the fix waits for its grace",
			change: func(c *cron) {
				c.SpecChangedAt, c.ScheduleUsed = minutes(4).Add(2*time.Second), true
				c.Condition = &condition{Phase: api.PhaseSubmissionError, Message: "quota exceeded", WrittenAt: minutes(4).Add(100 * time.Millisecond)}
			},
			job:  failedJob(tickName(3), api.PhaseSubmissionError, minutes(3)),
			want: "SubmissionError:" + tickName(4)},
		{name: "schedule changed since the refusal: which tick it stood for cannot be told, and the new schedule's ticks start at the change",
			change: func(c *cron) {
				c.Suspended, c.SpecChangedAt, c.ScheduleUsed = true, minutes(4).Add(2*time.Second), false
				c.Condition = &condition{Phase: api.PhaseSubmissionError, Message: "quota exceeded", WrittenAt: minutes(4).Add(100 * time.Millisecond)}
			},
			job: failedJob(tickName(3), api.PhaseSubmissionError, minutes(3))},
		{name: "suspended long after the refused tick, which was counted: nothing",
			change: func(c *cron) {
				c.Suspended, c.SpecChangedAt, c.ScheduleUsed = true, minutes(4).Add(2*time.Second), true
				c.Condition = &condition{Phase: api.PhaseSubmissionError, Message: "quota exceeded", WrittenAt: minutes(3).Add(100 * time.Millisecond)}
			},
			job: failedJob(tickName(3), api.PhaseSubmissionError, minutes(3))},
		{name: "refused after a resume: the ticks while suspended are not Missed",
			change: func(c *cron) {
				c.SpecChangedAt, c.ScheduleUsed = minutes(3).Add(30*time.Second), true
				c.Condition = &condition{Phase: api.PhaseSubmissionError, Message: "quota exceeded", WrittenAt: now.Add(100 * time.Millisecond)}
			},
			want: "Missed:" + tickName(4) + " SubmissionError:" + tickName(5)},
		{name: "refused under a when expression: the refused tick only (the controller may have skipped the others)",
			change: func(c *cron) {
				c.When = "{{= cronworkflow.failed < 100 }}"
				c.Condition = &condition{Phase: api.PhaseSubmissionError, Message: "quota exceeded", WrittenAt: now.Add(100 * time.Millisecond)}
			},
			want: "SubmissionError:" + tickName(5)},
		{name: "a spec Argo refuses: at once, standing for the first tick, then every tick", change: func(c *cron) { c.SpecErr = "invalid cron workflow: no template" },
			want: "SpecError:" + tickName(1) + " SpecError:" + tickName(1) + " SpecError:" + tickName(2) + " SpecError:" + tickName(3) + " SpecError:" + tickName(4) + " SpecError:" + tickName(5)},
		{name: "a schedule that does not parse: one failure for the spec", change: func(c *cron) {
			c.Schedule = schedule.Schedule{}
			_, c.ScheduleErr = schedule.Parse([]string{"61 * * * *"}, "")
			c.SpecErr = c.ScheduleErr.Error()
		}, want: "SpecError:" + runName("nightly", t0)},
		{name: "a suspended invalid spec fails nothing", change: func(c *cron) { c.SpecErr = "invalid"; c.Suspended = true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			if tt.change != nil {
				tt.change(&c)
			}
			got := due(c, tt.runs, tt.job, now)
			if names(got) != tt.want {
				t.Errorf("due:\n got %s\nwant %s", names(got), tt.want)
			}
			for _, r := range got {
				if err := r.ValidateObserved(now); err != nil {
					t.Errorf("%s: invalid result: %v", r.WorkflowName, err)
				}
			}
		})
	}
}

func TestMissedResultNamesTheTick(t *testing.T) {
	got := due(everyMinute(t), nil, nil, minutes(3))
	if len(got) != 1 {
		t.Fatalf("due = %s", names(got))
	}
	r := got[0]
	want := api.Result{Namespace: "ml", WorkflowName: tickName(1), CronWorkflow: "nightly", Phase: api.PhaseMissed}
	if r.Namespace != want.Namespace || r.WorkflowName != want.WorkflowName || r.CronWorkflow != want.CronWorkflow || r.Phase != want.Phase || r.UID != "" {
		t.Fatalf("result %+v", r)
	}
	// Ordered within its tick's interval, so that results are in the
	// order of their ticks however they were decided: at tick + grace, or
	// just before the next tick when the grace spans it.
	if want := minutes(2).Add(-time.Second); !r.FinishedAt(time.Time{}).Equal(want) {
		t.Errorf("finished at %s, want %s", r.FinishedAt(time.Time{}), want)
	}
	c := everyMinute(t)
	c.Grace = 20 * time.Second
	if got := due(c, nil, nil, minutes(3)); len(got) != 2 || !got[0].FinishedAt(time.Time{}).Equal(minutes(1).Add(20*time.Second)) {
		t.Errorf("a grace shorter than the period: %s, the first finished at %s, want %s", names(got), got[0].FinishedAt(time.Time{}), minutes(1).Add(20*time.Second))
	}
	if msg := r.Failures[0].Message; !strings.Contains(msg, "02:01 UTC tick") {
		t.Errorf("message %q does not name the tick", msg)
	}
}

// passes evaluates c every step from from to until, as the watcher's loop
// does, recording what is due into job the way the store does, with the
// CronWorkflow as the controller leaves it at each instant (cronAt). It
// returns the job and what was counted, by tick.
func passes(t *testing.T, cronAt func(now time.Time) cron, job *state.Job, from, until time.Time, step time.Duration) (*state.Job, map[string][]api.Phase) {
	t.Helper()
	counted := map[string][]api.Phase{}
	for now := from; !now.After(until); now = now.Add(step) {
		c := cronAt(now)
		for _, r := range cronrules.Pending(due(c, nil, job, now), job, now) {
			next, o := state.Apply(derefJob(job), job != nil, r, now)
			if o.Duplicate || o.Stale {
				t.Fatalf("%s: Pending let through a result the store does not count: %+v", now.Format("15:04:05"), r)
			}
			job = &next
			counted[r.WorkflowName] = append(counted[r.WorkflowName], r.Phase)
		}
	}
	return job, counted
}

func derefJob(j *state.Job) state.Job {
	if j == nil {
		return state.Job{}
	}
	return *j
}

// TestDueControllerDownUnderACondition: the controller refuses every tick it
// attempts (SubmissionError, or SpecError) and is down from just after tick
// 2 to just after tick 7 (ticks 3 to 7 never attempted; 5 to 7 still within
// their grace when it comes back). Each tick counts once: the refused ones
// with the condition, the ones it slept through Missed, whether decided after
// the grace or at once when it attempts tick 8.
func TestDueControllerDownUnderACondition(t *testing.T) {
	for _, phase := range []api.Phase{api.PhaseSubmissionError, api.PhaseSpecError} {
		t.Run(string(phase), func(t *testing.T) {
			base := everyMinute(t)
			base.Grace = 3 * time.Minute
			base.Forbid = true
			down := func(tick int) bool { return tick >= 3 && tick <= 7 }
			cronAt := func(now time.Time) cron {
				c := base
				// The controller writes the status about 100 ms after each
				// tick it attempts.
				for tick := 1; !minutes(tick).Add(100 * time.Millisecond).After(now); tick++ {
					if !down(tick) {
						c.Condition = &condition{Phase: phase, Message: "refused", WrittenAt: minutes(tick).Add(100 * time.Millisecond)}
					}
				}
				return c
			}
			job, counted := passes(t, cronAt, nil, minutes(1), minutes(12).Add(30*time.Second), 15*time.Second)
			for tick := 1; tick <= 12; tick++ {
				want := phase
				if down(tick) {
					want = api.PhaseMissed
				}
				if got := counted[tickName(tick)]; len(got) != 1 || got[0] != want {
					t.Errorf("tick %d: counted %v, want [%s]", tick, got, want)
				}
			}
			if job.ConsecutiveFailures != 12 {
				t.Errorf("%d failures in a row, want 12 (one a tick)", job.ConsecutiveFailures)
			}
		})
	}
}

func TestDueStuckRuns(t *testing.T) {
	c := everyMinute(t)
	c.Suspended = true // stuck runs are reported all the same
	c.MaxRuntime = cronrules.MaxRuntime{Fixed: time.Hour}
	now := minutes(120)
	runs := []run{
		{Name: "nightly-a", UID: "a", Created: minutes(0), Phase: wfv1.WorkflowRunning},
		{Name: "nightly-b", UID: "b", Created: minutes(30), Phase: ""},
		{Name: "nightly-c", UID: "c", Created: minutes(0), Phase: wfv1.WorkflowFailed, Completed: false}, // terminated by Replace
		{Name: "nightly-d", UID: "d", Created: minutes(90), Phase: wfv1.WorkflowRunning},
	}
	got := due(c, runs, nil, now)
	if names(got) != "Stuck:nightly-a Stuck:nightly-b" {
		t.Fatalf("due = %s", names(got))
	}
	if got[0].UID != "a" || !strings.Contains(got[0].Failures[0].Message, "past its max runtime of 1h0m0s") {
		t.Errorf("stuck result %+v", got[0])
	}
	c.MaxRuntime = cronrules.MaxRuntime{}
	if got := due(c, runs, nil, now); len(got) != 0 {
		t.Errorf("max runtime off: %s", names(got))
	}
}

func TestScheduledTick(t *testing.T) {
	for _, tt := range []struct {
		workflow string
		ok       bool
	}{
		{"nightly-1795485600", true},
		{"nightly-x-1795485600", false},
		{"nightly-abcde", false},
		{"nightly", false},
		{"other-1795485600", false},
	} {
		tick, ok := scheduledTick("nightly", tt.workflow)
		if ok != tt.ok || ok && tick.Unix() != 1795485600 {
			t.Errorf("scheduledTick(%q) = %s, %v", tt.workflow, tick, ok)
		}
	}
}

func TestScheduleView(t *testing.T) {
	now := minutes(0).Add(30 * time.Second)
	base := everyMinute(t)
	base.Exprs = []string{"* * * * *"}
	next := minutes(1)
	tests := []struct {
		name   string
		change func(c *cron)
		want   api.Schedule
	}{
		{"the next tick", nil, api.Schedule{Kind: "CronWorkflow", Schedules: []string{"* * * * *"}, Timezone: "UTC", NextTick: &next}},
		{"suspended", func(c *cron) { c.Suspended = true }, api.Schedule{Kind: "CronWorkflow", Schedules: []string{"* * * * *"}, Timezone: "UTC", Suspended: true}},
		{"stopped", func(c *cron) { c.Stopped = true }, api.Schedule{Kind: "CronWorkflow", Schedules: []string{"* * * * *"}, Timezone: "UTC", Stopped: true}},
		{"when is an expression", func(c *cron) { c.When = "{{= x }}" }, api.Schedule{Kind: "CronWorkflow", Schedules: []string{"* * * * *"}, Timezone: "UTC",
			Note: "spec.when is an expression batchlatch does not evaluate, so missed ticks are not reported"}},
		{"timezone", func(c *cron) { c.Timezone = "Europe/Berlin" }, api.Schedule{Kind: "CronWorkflow", Schedules: []string{"* * * * *"}, Timezone: "Europe/Berlin", NextTick: &next}},
	}
	for _, tt := range tests {
		c := base
		if tt.change != nil {
			tt.change(&c)
		}
		got := scheduleView(c, now)
		if got.Kind != tt.want.Kind || strings.Join(got.Schedules, ",") != strings.Join(tt.want.Schedules, ",") || got.Timezone != tt.want.Timezone ||
			got.Suspended != tt.want.Suspended || got.Stopped != tt.want.Stopped || got.Note != tt.want.Note ||
			(got.NextTick == nil) != (tt.want.NextTick == nil) || got.NextTick != nil && !got.NextTick.Equal(*tt.want.NextTick) {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
	bad := base
	_, bad.ScheduleErr = schedule.Parse([]string{"61 * * * *"}, "")
	bad.SpecErr = bad.ScheduleErr.Error()
	if got := scheduleView(bad, now); got.NextTick != nil || !strings.Contains(got.Note, "never runs it") {
		t.Errorf("bad schedule: %+v", got)
	}
}

// The annotations override the flags per CronWorkflow; a bad value keeps the
// flag's (a watched object is input like a callback's body).
func TestAnnotationsOverrideTheFlags(t *testing.T) {
	w := &Watcher{cfg: Config{MissedGrace: 10 * time.Minute, MaxRuntime: 0}, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), specs: newSpecChecker()}
	for _, tt := range []struct {
		annotations       map[string]string
		grace, maxRuntime time.Duration
	}{
		{nil, 10 * time.Minute, 0},
		{map[string]string{AnnotationMissedGrace: "30m", AnnotationMaxRuntime: "2h"}, 30 * time.Minute, 2 * time.Hour},
		{map[string]string{AnnotationMissedGrace: "soon", AnnotationMaxRuntime: "-1h"}, 10 * time.Minute, 0},
		{map[string]string{AnnotationMissedGrace: "100000h"}, 10 * time.Minute, 0},
		// The flag's bounds: a grace shorter than a controller takes to
		// create a run reports runs on their way as missed.
		{map[string]string{AnnotationMissedGrace: "0s"}, 10 * time.Minute, 0},
		{map[string]string{AnnotationMissedGrace: "1ns"}, 10 * time.Minute, 0},
		{map[string]string{AnnotationMissedGrace: "9s", AnnotationMaxRuntime: "721h"}, 10 * time.Minute, 0},
		{map[string]string{AnnotationMissedGrace: "10s", AnnotationMaxRuntime: "0s"}, 10 * time.Second, 0},
	} {
		cwf := &wfv1.CronWorkflow{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "ml", Annotations: tt.annotations},
			Spec: wfv1.CronWorkflowSpec{Schedule: "0 2 * * *", Timezone: "Europe/Berlin"}}
		c := w.cronOf(cwf)
		if c.Grace != tt.grace || c.MaxRuntime != (cronrules.MaxRuntime{Fixed: tt.maxRuntime}) {
			t.Errorf("%v: grace %s, max runtime %+v; want %s, %s", tt.annotations, c.Grace, c.MaxRuntime, tt.grace, tt.maxRuntime)
		}
		if c.ScheduleErr != nil || strings.Join(c.Exprs, ",") != "0 2 * * *" || c.Timezone != "Europe/Berlin" {
			t.Errorf("the deprecated schedule: %+v", c)
		}
	}
	// auto: learnt from the job's history, with the flag set or not.
	w.cfg.MaxRuntime = time.Hour
	for _, v := range []string{"auto", " AUTO"} {
		cwf := &wfv1.CronWorkflow{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "ml", Annotations: map[string]string{AnnotationMaxRuntime: v}},
			Spec: wfv1.CronWorkflowSpec{Schedule: "0 2 * * *"}}
		if c := w.cronOf(cwf); c.MaxRuntime != (cronrules.MaxRuntime{Auto: true}) {
			t.Errorf("%q: max runtime %+v, want auto", v, c.MaxRuntime)
		}
	}
}

// usualJob is nightly's job with n successful runs in its history, an hour
// apart, each of which took took, the last before t0.
func usualJob(n int, took time.Duration) *state.Job {
	var job state.Job
	for i := range n {
		created := t0.Add(-time.Duration(n-i) * time.Hour)
		r := api.Result{Namespace: "ml", CronWorkflow: "nightly", WorkflowName: runName("nightly", created), UID: fmt.Sprint("h", i),
			Phase: api.PhaseSucceeded, CreatedAt: created.Format(time.RFC3339), DurationSeconds: took.Seconds()}
		job, _ = state.Apply(job, i > 0, r, r.FinishedAt(time.Time{}))
	}
	return &job
}

// batchlatch.io/max-runtime: auto makes a run stuck past max(3 × p90,
// p90 + 10m) of its job's usual duration, from 5 successful runs; off
// unless asked for. The job's view says which limit applies, or why none.
func TestDueStuckAuto(t *testing.T) {
	c := everyMinute(t)
	c.Suspended = true // no missed ticks: only the stuck run
	runs := []run{{Name: tickName(0), UID: "a", Created: minutes(0), Phase: wfv1.WorkflowRunning}}
	took := 10*time.Minute + 20*time.Second
	if got := due(c, runs, usualJob(20, took), minutes(24*60)); len(got) != 0 {
		t.Fatalf("off by default: %s", names(got))
	}
	c.MaxRuntime = cronrules.MaxRuntime{Auto: true}
	for _, tc := range []struct {
		history int
		now     time.Time
		want    string
		note    string
	}{
		{0, minutes(24 * 60), "", "max-runtime auto: no limit applies yet: it needs 5 successful runs of known duration, 0 known"},
		{4, minutes(24 * 60), "", "max-runtime auto: no limit applies yet: it needs 5 successful runs of known duration, 4 known"},
		{5, minutes(31), "", "max-runtime auto: a run is stuck past 31m, 3 × its usual p90 of 10m 20s"},
		{5, minutes(32), "Stuck:" + tickName(0), "max-runtime auto: a run is stuck past 31m, 3 × its usual p90 of 10m 20s"},
	} {
		job := usualJob(tc.history, took)
		c.Usual, c.UsualKnown = cronrules.UsualOf(job), true
		got := due(c, runs, job, tc.now)
		if names(got) != tc.want {
			t.Errorf("%d runs, at %s: due %q, want %q", tc.history, tc.now, names(got), tc.want)
		}
		if len(got) == 1 {
			want := "still running past 31m, 3 × its usual p90 of 10m 20s (max-runtime auto; started 2026-11-24T02:00:00Z)"
			if msg := got[0].Failures[0].Message; msg != want || got[0].UID != "a" || !got[0].FinishedAt(time.Time{}).Equal(minutes(31)) {
				t.Errorf("stuck result %q at %s; want %q at %s", msg, got[0].FinishedAt(time.Time{}), want, minutes(31))
			}
		}
		if note := scheduleView(c, tc.now).Note; note != tc.note {
			t.Errorf("%d runs: note %q, want %q", tc.history, note, tc.note)
		}
	}
	// Its notes join the others.
	c.When = "{{= x }}"
	if note := scheduleView(c, t0).Note; !strings.HasPrefix(note, "spec.when is an expression") || !strings.HasSuffix(note, "; max-runtime auto: a run is stuck past 31m, 3 × its usual p90 of 10m 20s") {
		t.Errorf("notes %q", note)
	}
}
