package storetest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// LateGrace is the missed grace Late uses.
const LateGrace = 10 * time.Minute

// LateRuns are two successes of ml/hourly, an hour apart (T0, T0+1h), that
// ask for a Late run after an hour's silence (batchlatch.io/expected-every:
// 1h): late at T0+3h10m.
func LateRuns() []api.Result {
	runs := []api.Result{Run("hourly", "a", api.PhaseSucceeded, 0), Run("hourly", "b", api.PhaseSucceeded, 1)}
	for i := range runs {
		runs[i].Annotations = map[string]string{api.AnnotationExpectedEvery: "1h"}
	}
	return runs
}

// LatesOf counts the Late runs in the job's history.
func LatesOf(j state.Job) int {
	return strings.Count(HistoryOf(j), string(api.PhaseLate)+" ")
}

// Late checks that a job's Late run is counted once however often it is
// recorded, across a restart of the store and (with replica non-nil, a
// store several processes may share) from a second replica, and that the
// job's own result supersedes it there.
func Late(t *testing.T, open func() state.Store, replica func() state.Store) {
	ctx := context.Background()
	key := state.Key{Namespace: "ml", Name: "hourly"}
	s := open()
	for _, r := range LateRuns() {
		if _, err := s.Record(ctx, r, At(1)); err != nil {
			t.Fatal(err)
		}
	}
	job, err := s.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	late, ok := state.LateResult(job, At(5), LateGrace)
	if !ok {
		t.Fatal("no Late run due at T0+5h")
	}
	for i := range 2 {
		rec, err := s.Record(ctx, late, At(5+i))
		if err != nil {
			t.Fatal(err)
		}
		if i == 1 && !rec.Outcome.Duplicate {
			t.Fatalf("the Late run recorded again: %+v, want a duplicate", rec.Outcome)
		}
	}
	s.Close()

	s = open()
	defer s.Close()
	job, err = s.Get(ctx, key)
	if err != nil || job.LastPhase != api.PhaseLate || job.ConsecutiveFailures != 1 || LatesOf(job) != 1 || job.ExpectedEvery != "1h" {
		t.Fatalf("after a restart: %v, last %s, %d failed, history %s, every %q", err, job.LastPhase, job.ConsecutiveFailures, HistoryOf(job), job.ExpectedEvery)
	}
	if r, ok := state.LateResult(job, At(100), LateGrace); ok {
		t.Fatalf("after a restart, a second Late run of one silence: %+v", r)
	}
	if rec, err := s.Record(ctx, late, At(6)); err != nil || !rec.Outcome.Duplicate {
		t.Fatalf("the Late run after a restart: %+v, %v; want a duplicate", rec.Outcome, err)
	}
	if replica == nil {
		return
	}
	other := replica()
	defer other.Close()
	if rec, err := other.Record(ctx, late, At(7)); err != nil || !rec.Outcome.Duplicate {
		t.Fatalf("the Late run from another replica: %+v, %v; want a duplicate", rec.Outcome, err)
	}
	failed := Run("hourly", "c", api.PhaseFailed, 6)
	if rec, err := other.Record(ctx, failed, At(6)); err != nil || !rec.Outcome.Supersedes || rec.Job.ConsecutiveFailures != 1 {
		t.Fatalf("the job's own result after its Late run: %+v, %v, %d failed; want it to take its place", rec.Outcome, err, rec.Job.ConsecutiveFailures)
	}
	for _, store := range []state.Store{other, s} {
		WaitList(t, store, 2*time.Minute, "the result in place of the Late run", func(jobs []state.Job) bool {
			return len(jobs) == 1 && jobs[0].LastPhase == api.PhaseFailed && jobs[0].ConsecutiveFailures == 1 && LatesOf(jobs[0]) == 0
		})
	}
}
