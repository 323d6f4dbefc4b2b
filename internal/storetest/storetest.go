// Package storetest holds what the tests of every state.Store share: results
// to record and the contract each store keeps (silences, concurrency).
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/testwait"
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
	testwait.Until(t, within, "the store to be ready", func(ctx context.Context) (bool, string, error) {
		return true, "", s.Ready(ctx)
	})
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

// HistoryRuns are the results History records: a failed run, a failed one
// the Argo watcher saw, then a success, each with its tick and duration.
func HistoryRuns() []api.Result {
	runs := []api.Result{
		Run("nightly", "a", api.PhaseFailed, 0),
		Run("nightly", "b", api.PhaseError, 1),
		Run("nightly", "c", api.PhaseSucceeded, 2),
	}
	runs[1].Source = api.SourceArgo
	for i := range runs {
		runs[i].ScheduledTime = runs[i].CreatedAt
		runs[i].DurationSeconds = float64(60 * (i + 1))
	}
	return runs
}

// WantHistory is what the history of ml/nightly says after HistoryRuns,
// and then more (newest first): phase, source, end and duration of each run.
func WantHistory(more ...string) string {
	return strings.Join(append(more, "Succeeded callback 2026-11-24T04:03:00Z 3m0s", "Error argo 2026-11-24T03:02:00Z 2m0s", "Failed callback 2026-11-24T02:01:00Z 1m0s"), "; ")
}

// HistoryOf is the job's history as WantHistory writes it.
func HistoryOf(j state.Job) string {
	var parts []string
	for _, r := range j.Runs() {
		d := "?"
		if took, ok := r.Duration(); ok {
			d = took.String()
		}
		parts = append(parts, fmt.Sprintf("%s %s %s %s", r.Phase(), r.Source().Name(), r.FinishedAt().Format(time.RFC3339), d))
	}
	return strings.Join(parts, "; ")
}

// History checks that a job's runs outlast what a store goes through: fail
// → fail → success, each delivered twice (once more after a restart) and
// counted once, then the store closed and reopened. With replica non-nil
// (a store several processes may share), a second store opened beside the
// first records the next run and each store's history shows it.
func History(t *testing.T, open func() state.Store, replica func() state.Store) {
	ctx := context.Background()
	key := state.Key{Namespace: "ml", Name: "nightly"}
	s := open()
	for _, r := range HistoryRuns() {
		for range 2 {
			if _, err := s.Record(ctx, r, At(100)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if j, err := s.Get(ctx, key); err != nil || HistoryOf(j) != WantHistory() {
		t.Fatalf("history: %v\n got %s\nwant %s", err, HistoryOf(j), WantHistory())
	}
	s.Close()

	s = open()
	defer s.Close()
	if j, err := s.Get(ctx, key); err != nil || HistoryOf(j) != WantHistory() {
		t.Fatalf("history after a restart: %v\n got %s\nwant %s", err, HistoryOf(j), WantHistory())
	}
	if rec, err := s.Record(ctx, HistoryRuns()[0], At(100)); err != nil || !rec.Outcome.Duplicate || HistoryOf(rec.Job) != WantHistory() {
		t.Fatalf("a late copy after a restart: %+v, %v\n got %s", rec.Outcome, err, HistoryOf(rec.Job))
	}
	if replica == nil {
		return
	}
	other := replica()
	defer other.Close()
	next := Run("nightly", "d", api.PhaseSucceeded, 3)
	next.Source = api.SourceCronJob
	if _, err := other.Record(ctx, next, At(100)); err != nil {
		t.Fatal(err)
	}
	want := WantHistory("Succeeded cronjob 2026-11-24T05:00:00Z ?")
	for _, store := range []state.Store{other, s} {
		WaitList(t, store, 2*time.Minute, "the replica's run in the history", func(jobs []state.Job) bool {
			return len(jobs) == 1 && HistoryOf(jobs[0]) == want
		})
	}
}

// legacyRuns are what ml/nightly went through before its store kept
// histories: a streak of two failures ended by a success, then a failure.
func legacyRuns() []api.Result {
	return []api.Result{
		Run("nightly", "l1", api.PhaseFailed, -10),
		Run("nightly", "l2", api.PhaseError, -9),
		Run("nightly", "l3", api.PhaseSucceeded, -8),
		Run("nightly", "l4", api.PhaseFailed, -7),
	}
}

// LegacyValue is ml/nightly after legacyRuns as a release before histories
// stored it: today's value without its history ("h").
func LegacyValue(t testing.TB) string {
	var job state.Job
	for i, r := range legacyRuns() {
		job, _ = state.Apply(job, i > 0, r, At(-6))
	}
	job.History = nil
	b, err := json.Marshal(job)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"h":`) {
		t.Fatalf("a legacy value with a history: %s", b)
	}
	return string(b)
}

// Migration checks that a job a release before histories stored
// (LegacyValue, written by write before the store opens, under its key)
// reads with the runs its state knows (its latest, its streaks' first
// failures and recoveries), that a redelivery of its latest run is still a
// duplicate, and that its next run adds to them, across a restart.
func Migration(t *testing.T, open func() state.Store, write func(key, value string)) {
	ctx := context.Background()
	key := state.Key{Namespace: "ml", Name: "nightly"}
	write(key.String(), LegacyValue(t))
	seeded := "Failed unknown 2026-11-23T19:00:00Z ?; Succeeded unknown 2026-11-23T18:00:00Z ?; Failed unknown 2026-11-23T16:00:00Z ?"
	s := open()
	if j, err := s.Get(ctx, key); err != nil || HistoryOf(j) != seeded || j.ConsecutiveFailures != 1 || j.LastStreak == nil || j.LastStreak.Failures != 2 {
		t.Fatalf("the legacy job: %+v, %v\n got %s\nwant %s", j, err, HistoryOf(j), seeded)
	}
	if rec, err := s.Record(ctx, legacyRuns()[3], At(0)); err != nil || !rec.Outcome.Duplicate || HistoryOf(rec.Job) != seeded {
		t.Fatalf("its latest run again: %+v, %v\n got %s", rec.Outcome, err, HistoryOf(rec.Job))
	}
	if _, err := s.Record(ctx, Run("nightly", "n1", api.PhaseSucceeded, 0), At(0)); err != nil {
		t.Fatal(err)
	}
	want := "Succeeded callback 2026-11-24T02:00:00Z ?; " + seeded
	s.Close()
	s = open()
	defer s.Close()
	if j, err := s.Get(ctx, key); err != nil || HistoryOf(j) != want || j.ConsecutiveFailures != 0 || len(j.Streaks()) != 2 {
		t.Fatalf("after its next run and a restart: %+v, %v\n got %s\nwant %s", j, err, HistoryOf(j), want)
	}
}
