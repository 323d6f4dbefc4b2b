package cronjobwatch

import (
	"context"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/watch/cronrules"
)

// Recording only what collapse keeps leaves the job as recording every
// result does: its failure count, failing since, latest streak and latest
// result; its earlier streaks are ones recording every result has too.
func TestCollapseKeepsWhatDecides(t *testing.T) {
	base := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	result := func(i int, failed bool) pendingResult {
		r := api.Result{Namespace: "ml", CronJob: "nightly", WorkflowName: fmt.Sprintf("nightly-%d", 29924760+i), UID: fmt.Sprintf("uid-%d", i),
			Phase: api.PhaseSucceeded, CreatedAt: base.Add(time.Duration(i) * time.Hour).Format(time.RFC3339), DurationSeconds: 90}
		if failed {
			r.Phase = api.PhaseFailed
			r.Failures = []api.Failure{{DisplayName: "BackoffLimitExceeded", Message: fmt.Sprintf("run %d", i)}}
		}
		return pendingResult{Result: r}
	}
	apply := func(job state.Job, existing bool, results []pendingResult) state.Job {
		now := base.Add(100 * time.Hour)
		for _, p := range results {
			job, _ = state.Apply(job, existing, p.Result, now)
			existing = true
		}
		return job
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		n := 1 + rng.IntN(14)
		stored := rng.IntN(6) // results recorded before: 0 is a new job
		var all []pendingResult
		for i := range stored + n {
			all = append(all, result(i, rng.IntN(2) == 0))
		}
		before := apply(state.Job{}, false, all[:stored])
		existing := stored > 0
		want := apply(before, existing, all[stored:])
		// Every streak recording each result makes, past the few a job keeps.
		made := before.Streaks()
		for i := range all[stored:] {
			if s := apply(before, existing, all[stored:stored+i+1]).LastStreak; s != nil {
				made = append(made, *s)
			}
		}
		keep, moot := cronrules.Collapse(slices.Clone(all[stored:]), existing && before.Failing())
		got := apply(before, existing, keep)
		if len(keep)+len(moot) != n {
			t.Fatalf("kept %d and dropped %d of %d", len(keep), len(moot), n)
		}
		outcomes := func(rs []pendingResult) string {
			s := ""
			for _, p := range rs {
				s += map[bool]string{true: "F", false: "S"}[p.Failed()]
			}
			return s
		}
		what := fmt.Sprintf("stored %s, fresh %s, kept %s", outcomes(all[:stored]), outcomes(all[stored:]), outcomes(keep))
		if got.ConsecutiveFailures != want.ConsecutiveFailures || !reflect.DeepEqual(got.FailingSince, want.FailingSince) ||
			!reflect.DeepEqual(got.LastStreak, want.LastStreak) || !got.LastResultAt.Equal(want.LastResultAt) || got.LastUID != want.LastUID ||
			got.LastPhase != want.LastPhase || !reflect.DeepEqual(got.LastFailures, want.LastFailures) {
			t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
		}
		for _, s := range got.EarlierStreaks {
			if !slices.Contains(made, s) {
				t.Fatalf("%s: streak %+v: recording every result made none such: %+v", what, s, made)
			}
		}
	}
	// The figures: a healthy job's ten runs are one write; one that failed
	// twice and recovered three runs ago, four.
	fresh := func(outcomes string) []pendingResult {
		var rs []pendingResult
		for i, o := range outcomes {
			rs = append(rs, result(i, o == 'F'))
		}
		return rs
	}
	if keep, _ := cronrules.Collapse(fresh("SSSSSSSSSS"), false); len(keep) != 1 {
		t.Errorf("kept %d of ten successes", len(keep))
	}
	if keep, _ := cronrules.Collapse(fresh("SSFSSFFSSS"), false); len(keep) != 5 {
		t.Errorf("kept %d", len(keep)) // S before the streak, F, F, the S ending it, the latest S
	}
	if keep, _ := cronrules.Collapse(fresh("FFFFF"), false); len(keep) != 5 {
		t.Errorf("kept %d of five failures", len(keep))
	}
}

// A first start with many finished Jobs writes only what decides the job,
// and restarts write nothing and count nothing again, however many Jobs
// are kept (more than the job remembers runs of).
func TestFirstStartAndRestartsWriteWhatDecides(t *testing.T) {
	f := newFixture(t)
	store := &storetest.CountingStore{Store: fileStore(t)}
	f.clock.Set(time.Now().Add(time.Minute)) // every finish below is in the past
	key := keyOf(f.ns, "nightly")
	cj := f.cronJob("nightly", noTicks, nil)
	other := f.cronJob("hourly", noTicks, nil)
	outcomes := "FSFSFFSSSSF" // 11 Jobs: failing once, after a streak of 2
	tick := time.Now().Add(-24 * time.Hour).Truncate(time.Hour)
	finish := time.Now().Truncate(time.Second).Add(time.Second)
	var last *batchv1.Job
	for i, o := range outcomes {
		at := metav1.NewTime(finish.Add(time.Duration(i) * time.Second))
		last = f.setStatus(f.tickJob(cj, tick.Add(time.Duration(i)*time.Hour)), func(s *batchv1.JobStatus) {
			if o == 'S' {
				completed(s, at)
				return
			}
			failedAt(s, at)
		})
		// Another CronJob's Jobs all fail: each counts.
		f.setStatus(f.tickJob(other, tick.Add(time.Duration(i)*time.Hour)), func(s *batchv1.JobStatus) { failedAt(s, at) })
	}
	check := func(what string) {
		t.Helper()
		j, err := store.Get(context.Background(), key)
		if err != nil || j.ConsecutiveFailures != 1 || j.LastUID != string(last.UID) || j.LastStreak == nil || j.LastStreak.Failures != 2 {
			t.Fatalf("%s: job %+v (%v)", what, j, err)
		}
		if j, err := store.Get(context.Background(), keyOf(f.ns, "hourly")); err != nil || j.ConsecutiveFailures != len(outcomes) {
			t.Fatalf("%s: hourly %+v (%v)", what, j, err)
		}
	}
	var kicks atomic.Int64
	_, stop := f.watch(store, Config{}, Hooks{Kick: func() { kicks.Add(1) }})
	check("first start")
	if n := kicks.Load(); n != 0 {
		t.Errorf("%d kicks on the first start: history was announced as news", n)
	}
	// nightly: S, F, F, S (the streak and the successes around it), the
	// latest S and the F after it; hourly: every failure.
	if got, want := store.Writes.Load(), int64(6+len(outcomes)); got != want {
		t.Fatalf("%d writes on the first start, want %d", got, want)
	}
	stop()
	for restart := range 6 {
		before := store.Writes.Load()
		w, stop := f.watch(store, Config{}, Hooks{})
		settle(w)
		stop()
		if n := store.Writes.Load() - before; n != 0 {
			t.Fatalf("restart %d: %d writes", restart+1, n)
		}
		check(fmt.Sprintf("restart %d", restart+1))
	}
}

// failedAt is a Job's status once it failed at t. (Jobs of one CronJob that
// finish in the same second are not told apart by when: a restart may count
// one again once the job no longer remembers its run. Here each finishes in
// a second of its own.)
func failedAt(s *batchv1.JobStatus, at metav1.Time) {
	s.StartTime = &metav1.Time{Time: at.Add(-time.Minute)}
	s.Failed = 1
	s.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", LastTransitionTime: at},
		{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", LastTransitionTime: at}}
}
