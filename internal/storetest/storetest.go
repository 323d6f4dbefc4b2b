// Package storetest holds what the tests of every state.Store share: results
// to record and the contract each store keeps (silences, concurrency).
package storetest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// T0 is the time the results' hours count from.
var T0 = time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)

// At is T0 plus hours.
func At(hours int) time.Time { return T0.Add(time.Duration(hours) * time.Hour) }

// Run is a result of CronWorkflow cron in namespace ml that finished at
// T0+hours.
func Run(cron, uid string, phase api.Phase, hours int) api.Result {
	return api.Result{
		Namespace:    "ml",
		WorkflowName: cron + "-" + uid,
		UID:          uid,
		CronWorkflow: cron,
		Phase:        phase,
		CreatedAt:    At(hours).Format(time.RFC3339),
	}
}

// ApplyInputs are two failures of ml/nightly and a success of ml/hourly.
func ApplyInputs() []api.Result {
	return []api.Result{
		Run("nightly", "a", api.PhaseFailed, 0),
		Run("nightly", "b", api.PhaseFailed, 1),
		Run("hourly", "h", api.PhaseSucceeded, 1),
	}
}

// QuietLogger discards.
func QuietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// WaitReady waits until s is ready.
func WaitReady(t testing.TB, s state.Store, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if err = s.Ready(context.Background()); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("store not ready within %s: %v", within, err)
}

// WaitList polls s.List until ok holds for what it lists. A store that
// answers from a cache (the ConfigMap store, for up to RefreshAfter) may list
// what it read before another store's write: a test reading it waits for
// the write to show instead of reading once.
func WaitList(t testing.TB, s state.Store, within time.Duration, what string, ok func([]state.Job) bool) []state.Job {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		all, err := s.List(context.Background())
		if err == nil && ok(all) {
			return all
		}
		if time.Now().After(deadline) {
			t.Fatalf("waiting %s for %s: listed %v (%v)", within, what, all, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RecordConcurrently sends runsPerJob failures of each of jobs CronWorkflows,
// spread over stores, from clients goroutines; every run finishes at the same
// time so that none is stale and each must count exactly once.
func RecordConcurrently(t testing.TB, stores []state.Store, jobs, runsPerJob, clients int) {
	t.Helper()
	type call struct{ job, run int }
	calls := make(chan call)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		store := stores[c%len(stores)]
		wg.Go(func() {
			for cl := range calls {
				r := Run(fmt.Sprintf("job%d", cl.job), fmt.Sprintf("run%d-%d", cl.job, cl.run), api.PhaseFailed, 0)
				if _, err := store.Record(context.Background(), r, At(100)); err != nil {
					t.Errorf("record: %v", err)
				}
			}
		})
	}
	for r := 0; r < runsPerJob; r++ {
		for j := 0; j < jobs; j++ {
			calls <- call{job: j, run: r}
		}
	}
	close(calls)
	wg.Wait()
}

// WantCounts checks that s holds jobs jobs of runsPerJob failures each.
func WantCounts(t testing.TB, s state.Store, jobs, runsPerJob int) {
	t.Helper()
	all, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != jobs {
		t.Fatalf("%d jobs, want %d", len(all), jobs)
	}
	for _, j := range all {
		if j.ConsecutiveFailures != runsPerJob {
			t.Errorf("%s: %d consecutive failures, want %d", j.Key(), j.ConsecutiveFailures, runsPerJob)
		}
	}
}

// SilenceAt is a silence of job from hour start to hour end.
func SilenceAt(id, job string, start, end int) api.Silence {
	return api.Silence{ID: id, Namespace: "ml", Job: job, StartsAt: At(start), EndsAt: At(end), Reason: "test " + id}
}

func silenceIDs(t testing.TB, s state.Store) string {
	t.Helper()
	silences, err := s.Silences(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range silences {
		ids = append(ids, x.ID)
	}
	return fmt.Sprint(ids)
}

// Silences checks the silence contract every store keeps: added silences
// are listed, ended ones are dropped by the next change, deleting an
// unknown one is state.ErrSilenceNotFound, they do not disturb the jobs, and a
// reopened store has them all.
func Silences(t *testing.T, open func() state.Store) {
	ctx := context.Background()
	s := open()
	if _, err := s.Record(ctx, Run("nightly", "a", api.PhaseFailed, 0), At(100)); err != nil {
		t.Fatal(err)
	}
	for _, x := range []api.Silence{SilenceAt("a1", "nightly", 0, 200), SilenceAt("b2", "", 0, 300), SilenceAt("c3", "hourly", 0, 400)} {
		if err := s.AddSilence(ctx, x, At(100)); err != nil {
			t.Fatal(err)
		}
	}
	if got := silenceIDs(t, s); got != "[a1 b2 c3]" {
		t.Fatalf("silences %s, want [a1 b2 c3]", got)
	}
	if err := s.DeleteSilence(ctx, "b2", At(100)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSilence(ctx, "b2", At(100)); !errors.Is(err, state.ErrSilenceNotFound) {
		t.Fatalf("second delete: %v, want state.ErrSilenceNotFound", err)
	}
	// a1 has ended by hour 250: the next change drops it.
	if err := s.AddSilence(ctx, SilenceAt("d4", "nightly", 250, 500), At(250)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSilence(ctx, "a1", At(250)); !errors.Is(err, state.ErrSilenceNotFound) {
		t.Fatalf("delete of an ended silence: %v, want state.ErrSilenceNotFound", err)
	}
	if got := silenceIDs(t, s); got != "[c3 d4]" {
		t.Fatalf("silences %s, want [c3 d4]", got)
	}
	if jobs, err := s.List(ctx); err != nil || len(jobs) != 1 || jobs[0].ConsecutiveFailures != 1 {
		t.Fatalf("jobs beside the silences: %v, %v", jobs, err)
	}
	s.Close()

	again := open()
	defer again.Close()
	if got := silenceIDs(t, again); got != "[c3 d4]" {
		t.Fatalf("after reopening: silences %s, want [c3 d4]", got)
	}
	if jobs, err := again.List(ctx); err != nil || len(jobs) != 1 {
		t.Fatalf("after reopening: jobs %v, %v", jobs, err)
	}
	got, _ := again.Silences(ctx)
	if want := SilenceAt("d4", "nightly", 250, 500); got[1].Reason != want.Reason || !got[1].EndsAt.Equal(want.EndsAt) {
		t.Fatalf("after reopening: %+v, want %+v", got[1], want)
	}
}

// CountingStore counts what a Store is asked to record and what it writes.
type CountingStore struct {
	state.Store
	Records, Writes atomic.Int64
}

// Record implements state.Store.
func (s *CountingStore) Record(ctx context.Context, r api.Result, receivedAt time.Time) (state.Recorded, error) {
	rec, err := s.Store.Record(ctx, r, receivedAt)
	s.Records.Add(1)
	if err == nil && rec.Outcome.Changed() {
		s.Writes.Add(1)
	}
	return rec, err
}

// Forget checks the Edit contract every store keeps, with what forgetting
// a job does: a failing job forgotten is kept, forgotten, with its streak
// ended, and a reopened store has it so; a healthy one is removed; a job a
// store does not hold is state.ErrNotFound, as is forgetting a forgotten
// job; a result brings a forgotten job back, and then the purge of the
// forgetting leaves it alone; a purge of the job as forgotten removes it.
func Forget(t *testing.T, open func() state.Store) {
	ctx := context.Background()
	s := open()
	nightly, hourly := state.Key{Namespace: "ml", Name: "nightly"}, state.Key{Namespace: "ml", Name: "hourly"}
	for _, r := range ApplyInputs() {
		if _, err := s.Record(ctx, r, At(100)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Edit(ctx, nightly, state.ForgetAt(At(101), "gone")); err != nil {
		t.Fatalf("forget nightly: %v", err)
	}
	if err := s.Edit(ctx, hourly, state.ForgetAt(At(101), "gone")); err != nil {
		t.Fatalf("forget hourly: %v", err)
	}
	if err := s.Edit(ctx, state.Key{Namespace: "ml", Name: "weekly"}, state.ForgetAt(At(101), "gone")); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("forget a job never seen: %v, want state.ErrNotFound", err)
	}
	if err := s.Edit(ctx, nightly, state.ForgetAt(At(102), "again")); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("forget a forgotten job: %v, want state.ErrNotFound", err)
	}
	if _, err := s.Get(ctx, hourly); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("the healthy job forgotten: %v, want it removed", err)
	}
	s.Close()

	s = open()
	defer s.Close()
	j, err := s.Get(ctx, nightly)
	if err != nil || !j.Forgotten() || !j.ForgottenAt.Equal(At(101)) || j.Failing() || j.LastStreak == nil || j.LastStreak.Failures != 2 {
		t.Fatalf("the failing job forgotten, reopened: %+v, %v", j, err)
	}
	if jobs, err := s.List(ctx); err != nil || len(jobs) != 1 || !jobs[0].Forgotten() {
		t.Fatalf("listed: %+v, %v; want the forgotten job", jobs, err)
	}
	if _, err := s.Record(ctx, Run("nightly", "c", api.PhaseFailed, 102), At(102)); err != nil {
		t.Fatal(err)
	}
	if err := s.Edit(ctx, nightly, state.PurgeForgotten(At(101))); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("purge of a job brought back: %v, want state.ErrNotFound", err)
	}
	if j, err := s.Get(ctx, nightly); err != nil || j.Forgotten() || j.ConsecutiveFailures != 1 {
		t.Fatalf("the job brought back: %+v, %v; want a streak of its own", j, err)
	}
	if err := s.Edit(ctx, nightly, state.ForgetAt(At(103), "gone")); err != nil {
		t.Fatal(err)
	}
	if err := s.Edit(ctx, nightly, state.PurgeForgotten(At(103))); err != nil {
		t.Fatalf("purge: %v", err)
	}
	if _, err := s.Get(ctx, nightly); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("purged: %v, want state.ErrNotFound", err)
	}
}
