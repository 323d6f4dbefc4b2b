package state

import (
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
)

const grace = 10 * time.Minute

// expecting is r annotated with batchlatch.io/expected-every: every.
func expecting(r api.Result, every string) api.Result {
	r.Annotations = map[string]string{api.AnnotationExpectedEvery: every}
	return r
}

// hourly is a job that succeeded every hour from t0 for n hours, each run
// annotated with every ("" for none).
func hourly(t *testing.T, n int, every string) Job {
	t.Helper()
	var results []api.Result
	for i := range n {
		r := run("hourly", string(rune('a'+i)), api.PhaseSucceeded, i)
		if every != "" {
			r = expecting(r, every)
		}
		results = append(results, r)
	}
	return record(t, results...)
}

func TestLateResult(t *testing.T) {
	job := hourly(t, 2, "1h") // last result at t0+1h: late at t0+3h10m
	lateAt := at(3).Add(grace)
	if r, ok := LateResult(job, lateAt.Add(-time.Second), grace); ok {
		t.Fatalf("a Late run before twice the interval plus the grace: %+v", r)
	}
	late, ok := LateResult(job, lateAt.Add(time.Hour), grace)
	if !ok {
		t.Fatal("no Late run after twice the interval plus the grace")
	}
	if late.Phase != api.PhaseLate || late.FinishedAt(time.Time{}) != lateAt || KeyOf(late) != job.Key() {
		t.Fatalf("Late run %+v: want phase Late, timed at %s, of the job", late, lateAt)
	}
	if err := late.ValidateObserved(lateAt.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	// Every pass makes the same run: counted once, however many see it.
	next, o := Apply(job, true, late, lateAt.Add(time.Hour))
	wantFailing(t, next, lateAt, 1)
	if o.Transition != StartedFailing || history(next) != "Late/callback/3.1666666666666665/? "+history(job) {
		t.Fatalf("%+v, history %s", o, history(next))
	}
	if next.ExpectedEvery != "1h" {
		t.Fatalf("the Late run lost what the job asks for: %q", next.ExpectedEvery)
	}
	again, _ := LateResult(job, lateAt.Add(2*time.Hour), grace)
	if _, o := Apply(next, true, again, lateAt.Add(2*time.Hour)); !o.Duplicate {
		t.Fatalf("the same silence seen again: %+v, want a duplicate", o)
	}
	// One Late run per silence, however long it lasts.
	if r, ok := LateResult(next, lateAt.Add(100*time.Hour), grace); ok {
		t.Fatalf("a second Late run of one silence: %+v", r)
	}
	if e := next.ExpectedAt(lateAt.Add(100*time.Hour), grace); e == nil || !e.Late || !e.LateAt.Equal(lateAt) || !e.SilentSince.Equal(at(1)) {
		t.Fatalf("expected %+v: want late since %s, silent since %s", e, lateAt, at(1))
	}

	// The real result supersedes it: the streak counts the silence once.
	failed := expecting(run("hourly", "x", api.PhaseFailed, 4), "1h")
	after, o := Apply(next, true, failed, at(4).Add(time.Minute))
	wantFailing(t, after, lateAt, 1)
	if !o.Supersedes || history(after) != "Failed/callback/4/? "+history(job) {
		t.Fatalf("a failure after the Late run: %+v, history %s", o, history(after))
	}
	succeeded := expecting(run("hourly", "y", api.PhaseSucceeded, 3), "1h") // its own time is before the Late run's
	back, o := Apply(next, true, succeeded, lateAt.Add(time.Hour))
	wantHealthy(t, back)
	if !o.Supersedes || o.Transition != Recovered || back.LastStreak.Failures != 1 || history(back) != "Succeeded/callback/3/? "+history(job) {
		t.Fatalf("a success after the Late run: %+v, streak %+v, history %s", o, back.LastStreak, history(back))
	}
	// An old run that ended before the silence is no news of it.
	old := expecting(run("hourly", "z", api.PhaseSucceeded, 0), "1h")
	if _, o := Apply(next, true, old, lateAt.Add(time.Hour)); o.Supersedes || !o.Stale {
		t.Fatalf("a run from before the silence: %+v, want stale", o)
	}
}

func TestLateIsOffByDefault(t *testing.T) {
	job := hourly(t, 10, "")
	now := at(100)
	if r, ok := LateResult(job, now, grace); ok {
		t.Fatalf("a Late run for a job that did not ask: %+v", r)
	}
	// Shown, for the reader: late by its usual interval.
	e := job.ExpectedAt(now, grace)
	if e == nil || e.OptedIn || !e.Late || *e.EverySeconds != 3600 || !e.LateAt.Equal(at(11).Add(grace)) {
		t.Fatalf("expected %+v: want late since %s by the usual hour, not opted in", e, at(11).Add(grace))
	}
	if e := job.ExpectedAt(at(11), grace); e != nil {
		t.Fatalf("a job on time that did not ask shows %+v", e)
	}
	if e := hourly(t, 4, "").ExpectedAt(now, grace); e != nil {
		t.Fatalf("4 runs tell no usual interval, yet %+v", e)
	}
}

func TestLateAuto(t *testing.T) {
	now := at(100)
	few := hourly(t, api.MinRunsForUsual-1, api.ExpectedEveryAuto)
	if r, ok := LateResult(few, now, grace); ok {
		t.Fatalf("auto with %d runs: %+v", api.MinRunsForUsual-1, r)
	}
	e := few.ExpectedAt(now, grace)
	if e == nil || !e.OptedIn || !e.Auto || e.EverySeconds != nil || e.Late || e.Note == "" {
		t.Fatalf("auto with too few runs shows %+v: want opted in, no interval, a note", e)
	}
	enough := hourly(t, api.MinRunsForUsual, api.ExpectedEveryAuto)
	lateAt := at(api.MinRunsForUsual - 1 + 2).Add(grace)
	if _, ok := LateResult(enough, lateAt.Add(-time.Second), grace); ok {
		t.Fatal("auto: late before twice the usual interval plus the grace")
	}
	late, ok := LateResult(enough, now, grace)
	if !ok || late.FinishedAt(time.Time{}) != lateAt {
		t.Fatalf("auto with %d runs: %+v, %v; want a Late run at %s", api.MinRunsForUsual, late, ok, lateAt)
	}
	// The Late run is no run: the usual interval is the runs'.
	next, _ := Apply(enough, true, late, now)
	if e := next.ExpectedAt(now, grace); e == nil || e.EverySeconds == nil || *e.EverySeconds != 3600 {
		t.Fatalf("after the Late run: %+v", e)
	}
}

// BenchmarkExpectedAt is what a list or a page adds per job it shows: the
// lateness of a job with a full history of hourly runs, asking nothing (its
// usual interval is learnt) or asking for an hour.
//
//	go test -run '^$' -bench ExpectedAt -benchmem ./state/
func BenchmarkExpectedAt(b *testing.B) {
	for _, every := range []string{"", "1h"} {
		b.Run("every="+every, func(b *testing.B) {
			job := hourly(&testing.T{}, api.MaxRuns+5, every)
			if len(job.History) != api.MaxRuns {
				b.Fatalf("%d runs", len(job.History))
			}
			now := at(api.MaxRuns + 5)
			for b.Loop() {
				job.ExpectedAt(now, grace)
			}
		})
	}
}
