package cronjobwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/kubetest"
	"github.com/batchlatch/batchlatch/internal/testwait"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/filestore"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// clock runs with real time, shifted: the tests look at the CronJobs' ticks
// from the future instead of waiting for them, while the Jobs' own times
// (set by the API server) stay in order with it.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
	frozen time.Time // when set, the clock stands still there
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.frozen.IsZero() {
		return c.frozen
	}
	return time.Now().Add(c.offset)
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.offset = time.Until(t)
	c.mu.Unlock()
}

// Freeze stops the clock at t: for a cluster in which nothing moves (its
// controller is stopped), so that what is due at t does not drift.
func (c *clock) Freeze(t time.Time) {
	c.mu.Lock()
	c.frozen = t
	c.mu.Unlock()
}

// fixture is a watched namespace on the real API server.
type fixture struct {
	t     *testing.T
	ns    string
	kube  kubernetes.Interface
	clock *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := kubetest.Get(t)
	return &fixture{t: t, ns: env.NewNamespace(t), kube: env.Clientset, clock: &clock{}}
}

func fileStore(t *testing.T) state.Store {
	t.Helper()
	s, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// watch runs a watcher on store until the test ends or stop is called; it
// returns once the watcher's first pass is done.
func (f *fixture) watch(store state.Store, cfg Config, hooks Hooks) (w *Watcher, stop func()) {
	f.t.Helper()
	cfg.Namespaces = []string{f.ns}
	cfg.Now = f.clock.Now
	if cfg.MissedGrace == 0 {
		cfg.MissedGrace = 10 * time.Second
	}
	if cfg.ForgetAfter == 0 {
		cfg.ForgetAfter = time.Hour
	}
	if cfg.EvaluateEvery == 0 {
		cfg.EvaluateEvery = 50 * time.Millisecond
	}
	w = New(f.kube.BatchV1(), store, cfg, hooks, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	f.t.Cleanup(stop)
	select {
	case <-w.FirstPass():
	case <-time.After(patience):
		f.t.Fatal("no first pass")
	}
	return w, stop
}

var podTemplate = corev1.PodTemplateSpec{Spec: corev1.PodSpec{
	RestartPolicy: corev1.RestartPolicyNever,
	Containers:    []corev1.Container{{Name: "main", Image: "busybox", Command: []string{"true"}}},
}}

func (f *fixture) cronJob(name, schedule string, mutate func(*batchv1.CronJob)) *batchv1.CronJob {
	f.t.Helper()
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.CronJobSpec{
			Schedule:    schedule,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podTemplate}},
		},
	}
	if mutate != nil {
		mutate(cj)
	}
	created, err := f.kube.BatchV1().CronJobs(f.ns).Create(context.Background(), cj, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return created
}

// job creates the Job of cj's tick as the CronJob controller would (cj nil:
// a Job no CronJob owns).
func (f *fixture) job(cj *batchv1.CronJob, name string, tick time.Time) *batchv1.Job {
	f.t.Helper()
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       batchv1.JobSpec{Template: podTemplate},
	}
	if cj != nil {
		job.Annotations = map[string]string{batchv1.CronJobScheduledTimestampAnnotation: tick.UTC().Format(time.RFC3339)}
		job.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))}
	}
	created, err := f.kube.BatchV1().Jobs(f.ns).Create(context.Background(), job, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return created
}

// tickJob creates the Job of cj's tick, named as the controller names it.
func (f *fixture) tickJob(cj *batchv1.CronJob, tick time.Time) *batchv1.Job {
	f.t.Helper()
	return f.job(cj, jobName(cj.Name, tick), tick)
}

// setStatus sets the Job's status through the status subresource, as the
// Job controller would.
func (f *fixture) setStatus(job *batchv1.Job, mutate func(*batchv1.JobStatus)) *batchv1.Job {
	f.t.Helper()
	current, err := f.kube.BatchV1().Jobs(f.ns).Get(context.Background(), job.Name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	mutate(&current.Status)
	updated, err := f.kube.BatchV1().Jobs(f.ns).UpdateStatus(context.Background(), current, metav1.UpdateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return updated
}

func running(started time.Time) func(*batchv1.JobStatus) {
	return func(s *batchv1.JobStatus) {
		s.StartTime = &metav1.Time{Time: started}
		s.Active = 1
	}
}

// failed is a Job's status once its backoff limit is exceeded: the
// FailureTarget condition, then Failed.
func failed(reason, message string) func(*batchv1.JobStatus) {
	return func(s *batchv1.JobStatus) {
		now := metav1.Now()
		if s.StartTime == nil {
			s.StartTime = &metav1.Time{Time: now.Add(-time.Minute)}
		}
		s.Active = 0
		s.Failed++
		s.Conditions = append(s.Conditions,
			batchv1.JobCondition{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: reason, Message: message, LastTransitionTime: now},
			batchv1.JobCondition{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: reason, Message: message, LastTransitionTime: now})
	}
}

func complete(s *batchv1.JobStatus) { completeAt(time.Now())(s) }

// completeAt is a Job's status once it completed at t.
func completeAt(t time.Time) func(*batchv1.JobStatus) {
	return func(s *batchv1.JobStatus) { completed(s, metav1.NewTime(t)) }
}

func completed(s *batchv1.JobStatus, now metav1.Time) {
	if s.StartTime == nil {
		s.StartTime = &metav1.Time{Time: now.Add(-time.Minute)}
	}
	s.Active = 0
	s.Succeeded = 1
	s.CompletionTime = &now
	s.Conditions = append(s.Conditions,
		batchv1.JobCondition{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now},
		batchv1.JobCondition{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: "CompletionsReached", LastTransitionTime: now})
}

// patience bounds every wait for the watcher or the API server to do
// something: generous, as it only matters when they fail to.
const patience = time.Minute

// waitJob polls the store until ok holds for the job.
func waitJob(t *testing.T, store state.Store, key state.Key, what string, ok func(state.Job) bool) state.Job {
	t.Helper()
	var j state.Job
	testwait.Until(t, patience, what, func(ctx context.Context) (bool, string, error) {
		var err error
		j, err = store.Get(ctx, key)
		return err == nil && ok(j), fmt.Sprintf("job %+v", j), err
	})
	return j
}

// waitUntil polls cond until it holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.True(t, patience, what, cond)
}

// settle records what each watcher has pending and runs an evaluation of
// it now, beside its own: whatever the watchers would do with what they
// see, they have done once it returns.
func settle(ws ...*Watcher) {
	for _, w := range ws {
		w.drain(context.Background())
		w.Evaluate(context.Background())
	}
}

// seenJob waits until w's informer holds job as it is now (or later).
func seenJob(t *testing.T, w *Watcher, job *batchv1.Job) {
	t.Helper()
	waitUntil(t, "the watcher to see "+job.Name, func() bool {
		for _, runs := range w.runs {
			if obj, ok, _ := runs.GetIndexer().GetByKey(job.Namespace + "/" + job.Name); ok {
				m, err := meta.Accessor(obj)
				if err != nil {
					return false
				}
				seen, _ := strconv.ParseUint(m.GetResourceVersion(), 10, 64)
				now, _ := strconv.ParseUint(job.ResourceVersion, 10, 64)
				return seen >= now
			}
		}
		return false
	})
}

// deletedSeen reports whether w saw the deletion of CronJob key.
func deletedSeen(w *Watcher, key state.Key) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.deleted[key]
	return ok
}

func keyOf(ns, name string) state.Key { return state.KeyFor(api.KindCronJob, ns, name) }

// noTicks never ticks during a test.
const noTicks = "0 0 1 1 *"

func TestFailedJobsLatchUntilASuccess(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	cj := f.cronJob("nightly", noTicks, nil)
	key := keyOf(f.ns, "nightly")
	var kicks atomic.Int32
	w, _ := f.watch(store, Config{}, Hooks{Kick: func() { kicks.Add(1) }})

	// A failed Job no CronJob controls is none of the watcher's business,
	// even one named like a CronJob's and controlled by another kind.
	f.setStatus(f.job(nil, "by-hand", time.Time{}), failed("BackoffLimitExceeded", "not ours"))
	other := f.job(nil, jobName("nightly", time.Now().Add(-4*time.Hour).Truncate(time.Minute)), time.Time{})
	other.OwnerReferences = []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "CronWorkflow", Name: "nightly", UID: "x", Controller: &[]bool{true}[0]}}
	if _, err := f.kube.BatchV1().Jobs(f.ns).Update(context.Background(), other, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	f.setStatus(other, failed("BackoffLimitExceeded", "not ours either"))

	tick := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	first := f.setStatus(f.tickJob(cj, tick), failed("BackoffLimitExceeded", "Job has reached the specified backoff limit"))
	j := waitJob(t, store, key, "failed Job", func(j state.Job) bool { return j.Failing() })
	if j.ConsecutiveFailures != 1 || j.LastUID != string(first.UID) || j.LastPhase != api.PhaseFailed || len(j.LastFailures) != 1 ||
		j.LastFailures[0].DisplayName != "BackoffLimitExceeded" || j.LastFailures[0].Message != "Job has reached the specified backoff limit" {
		t.Fatalf("job %+v", j)
	}

	f.setStatus(f.tickJob(cj, tick.Add(time.Hour)), failed("DeadlineExceeded", "Job was active longer than specified deadline"))
	j = waitJob(t, store, key, "second failed Job", func(j state.Job) bool { return j.ConsecutiveFailures == 2 })
	if j.LastFailures[0].DisplayName != "DeadlineExceeded" {
		t.Fatalf("job %+v", j)
	}

	// A success ends the streak, though the failed Jobs are still there.
	f.setStatus(f.tickJob(cj, tick.Add(2*time.Hour)), complete)
	j = waitJob(t, store, key, "success", func(j state.Job) bool { return !j.Failing() })
	if j.LastStreak == nil || j.LastStreak.Failures != 2 || j.LastPhase != api.PhaseSucceeded {
		t.Fatalf("job %+v", j)
	}
	// The watcher kicks after it recorded.
	waitUntil(t, "the kicks", func() bool { return kicks.Load() >= 2 })
	settle(w)
	if j, _ := store.Get(context.Background(), key); j.Failing() {
		t.Fatalf("failing again: %+v", j)
	}
	if jobs, _ := store.List(context.Background()); len(jobs) != 1 {
		t.Fatalf("jobs %+v: a Job no CronJob owns made one", jobs)
	}
	if kicks.Load() != 2 {
		t.Errorf("%d kicks, want 2 (started failing, recovered)", kicks.Load())
	}
}

func TestJobDeletedWhenFinishedCountsOnceAcrossRestarts(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	cj := f.cronJob("nightly", noTicks, nil)
	key := keyOf(f.ns, "nightly")
	_, stop := f.watch(store, Config{}, Hooks{})

	// ttlSecondsAfterFinished: 0 deletes the Job the moment it finished.
	tick := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	gone := f.setStatus(f.tickJob(cj, tick), failed("BackoffLimitExceeded", "gone at once"))
	if err := f.kube.BatchV1().Jobs(f.ns).Delete(context.Background(), gone.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, store, key, "deleted failed Job", func(j state.Job) bool { return j.Failing() })
	if j.ConsecutiveFailures != 1 || j.LastUID != string(gone.UID) {
		t.Fatalf("job %+v", j)
	}
	stop()

	// While no watcher runs, another Job fails and stays.
	kept := f.setStatus(f.tickJob(cj, tick.Add(time.Hour)), failed("BackoffLimitExceeded", "kept"))
	second, _ := f.watch(store, Config{}, Hooks{})
	j = waitJob(t, store, key, "Job that failed while no watcher ran", func(j state.Job) bool { return j.ConsecutiveFailures >= 2 })
	if j.LastUID != string(kept.UID) {
		t.Fatalf("job %+v", j)
	}
	// And a third watcher, next to the second, counts nothing twice.
	third, _ := f.watch(store, Config{}, Hooks{})
	settle(second, third)
	if j, _ := store.Get(context.Background(), key); j.ConsecutiveFailures != 2 {
		t.Fatalf("%d failures, want 2: %+v", j.ConsecutiveFailures, j)
	}
}

func TestRetriedPodsAreNoFailure(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	cj := f.cronJob("nightly", noTicks, nil)
	w, _ := f.watch(store, Config{}, Hooks{})
	job := f.tickJob(cj, time.Now().Truncate(time.Minute))
	started := time.Now()
	// The watcher sees the failed pods while the Job runs.
	seenJob(t, w, f.setStatus(job, func(s *batchv1.JobStatus) { running(started)(s); s.Failed = 2 }))
	settle(w)
	f.setStatus(job, complete)
	j := waitJob(t, store, keyOf(f.ns, "nightly"), "completed Job", func(j state.Job) bool { return j.LastUID != "" })
	if j.Failing() || j.LastPhase != api.PhaseSucceeded || j.ConsecutiveFailures != 0 {
		t.Fatalf("job %+v", j)
	}
}

func TestMissedTicksAndSuspended(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	f.cronJob("suspended", "* * * * *", func(c *batchv1.CronJob) { suspend := true; c.Spec.Suspend = &suspend })
	cj := f.cronJob("nightly", "* * * * *", nil) // the same, but nothing keeps it from missing
	f.clock.Set(cj.CreationTimestamp.Add(3*time.Minute + 30*time.Second))
	c := (&Watcher{logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).cronOf(cj)
	missed, _ := c.Schedule.Ticks(cj.CreationTimestamp.Time, f.clock.Now().Add(-10*time.Second), 100)
	if len(missed) < 3 {
		t.Fatalf("ticks %v", missed)
	}
	w, _ := f.watch(store, Config{}, Hooks{})
	key := keyOf(f.ns, "nightly")
	j := waitJob(t, store, key, "missed ticks", func(j state.Job) bool { return j.ConsecutiveFailures >= len(missed) })
	if j.LastPhase != api.PhaseMissed || j.LastWorkflow != jobName("nightly", missed[len(missed)-1]) {
		t.Fatalf("job %+v", j)
	}
	settle(w)
	if j, _ := store.Get(context.Background(), key); j.ConsecutiveFailures != len(missed) {
		t.Fatalf("%d failures, want %d", j.ConsecutiveFailures, len(missed))
	}
	if _, err := store.Get(context.Background(), keyOf(f.ns, "suspended")); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("the suspended CronJob has a job: %v", err)
	}

	// The next tick's Job runs and succeeds: the streak ends.
	next := missed[len(missed)-1].Add(time.Minute)
	f.setStatus(f.tickJob(cj, next), completeAt(f.clock.Now()))
	j = waitJob(t, store, key, "success", func(j state.Job) bool { return !j.Failing() })
	if j.LastStreak == nil || j.LastStreak.Failures != len(missed) {
		t.Fatalf("job %+v", j)
	}
}

func TestStuckJobThenItsOwnResult(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	cj := f.cronJob("nightly", noTicks, func(c *batchv1.CronJob) {
		c.Annotations = map[string]string{AnnotationMaxRuntime: "1m"}
	})
	started := time.Now()
	job := f.setStatus(f.tickJob(cj, started.Truncate(time.Minute)), running(started))
	f.clock.Set(started.Add(2 * time.Minute))
	f.watch(store, Config{}, Hooks{})
	key := keyOf(f.ns, "nightly")
	j := waitJob(t, store, key, "stuck", func(j state.Job) bool { return j.Failing() })
	if j.LastPhase != api.PhaseStuck || j.LastUID != string(job.UID) {
		t.Fatalf("job %+v", j)
	}

	// The Job fails after all: its own result replaces Stuck, and it is
	// still one failed run.
	f.setStatus(job, failed("DeadlineExceeded", "Job was active longer than specified deadline"))
	j = waitJob(t, store, key, "the Job's own result", func(j state.Job) bool { return j.LastPhase == api.PhaseFailed })
	if j.ConsecutiveFailures != 1 || j.LastFailures[0].DisplayName != "DeadlineExceeded" {
		t.Fatalf("job %+v", j)
	}
}

// batchlatch.io/max-runtime: auto on a CronJob: the watcher learns each
// job's usual duration from the history the store holds, and a Job still
// running past max(3 × p90, p90 + 10m) of it is Stuck, once 5 successful
// Jobs are known; with fewer the view says no limit applies, and without
// the annotation (nor the flag) no Job is ever stuck.
func TestMaxRuntimeAutoFromTheStoredHistory(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	started := time.Now()
	// succeeded stores cron's i-th successful Job, which took 2m, hours
	// before the Jobs below started.
	succeeded := func(cron string, i int) {
		t.Helper()
		created := started.Add(-time.Duration(10-i) * time.Hour).Truncate(time.Minute)
		r := api.Result{Namespace: f.ns, CronJob: cron, WorkflowName: jobName(cron, created), UID: fmt.Sprintf("%s-%d", cron, i),
			Phase: api.PhaseSucceeded, CreatedAt: created.UTC().Format(time.RFC3339), DurationSeconds: (2 * time.Minute).Seconds()}
		if _, err := store.Record(context.Background(), r, r.FinishedAt(time.Time{})); err != nil {
			t.Fatal(err)
		}
	}
	auto := func(c *batchv1.CronJob) { c.Annotations = map[string]string{AnnotationMaxRuntime: "auto"} }
	jobs := map[string]*batchv1.Job{}
	for _, tc := range []struct {
		name    string
		mutate  func(*batchv1.CronJob)
		history int
	}{{"few", auto, 4}, {"many", auto, 5}, {"plain", nil, 20}} {
		cj := f.cronJob(tc.name, noTicks, tc.mutate)
		for i := range tc.history {
			succeeded(tc.name, i)
		}
		jobs[tc.name] = f.setStatus(f.tickJob(cj, started.Truncate(time.Minute)), running(started))
	}
	f.clock.Set(started.Add(5 * time.Hour)) // far past 12m
	w, _ := f.watch(store, Config{}, Hooks{})
	note := func(cron string) string { return w.Schedule(api.KindCronJob, f.ns, cron, f.clock.Now()).Note }

	j := waitJob(t, store, keyOf(f.ns, "many"), "stuck", func(j state.Job) bool { return j.Failing() })
	want := "still running past 12m, its usual p90 of 2m plus 10m (max-runtime auto; started "
	if j.LastPhase != api.PhaseStuck || j.LastUID != string(jobs["many"].UID) || !strings.HasPrefix(j.LastFailures[0].Message, want) {
		t.Fatalf("many: job %+v, want a Stuck Job: %q", j, want)
	}
	if n := note("many"); n != "max-runtime auto: a run is stuck past 12m, its usual p90 of 2m plus 10m" {
		t.Errorf("many: note %q", n)
	}
	// The first pass evaluated every CronJob: these were not stuck.
	for _, cron := range []string{"few", "plain"} {
		if j, err := store.Get(context.Background(), keyOf(f.ns, cron)); err != nil || j.Failing() {
			t.Fatalf("%s: %+v, %v; want no limit", cron, j, err)
		}
	}
	if n := note("few"); n != "max-runtime auto: no limit applies yet: it needs 5 successful runs of known duration, 4 known" {
		t.Errorf("few: note %q", n)
	}
	if n := note("plain"); n != "" {
		t.Errorf("plain: note %q", n)
	}

	// A fifth successful Job: the next pass learns the limit.
	succeeded("few", 4)
	j = waitJob(t, store, keyOf(f.ns, "few"), "stuck with a fifth Job", func(j state.Job) bool { return j.Failing() })
	if j.LastPhase != api.PhaseStuck || !strings.HasPrefix(j.LastFailures[0].Message, want) {
		t.Fatalf("few: job %+v", j)
	}
	waitUntil(t, "few's note", func() bool { return strings.Contains(note("few"), "stuck past 12m") })
	settle(w)
	if j, err := store.Get(context.Background(), keyOf(f.ns, "plain")); err != nil || j.Failing() {
		t.Fatalf("plain: %+v, %v; want no limit", j, err)
	}
}

func TestDeletedCronJobIsForgotten(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	f.cronJob("nightly", noTicks, nil)
	key := keyOf(f.ns, "nightly")
	if _, err := store.Record(context.Background(), api.Result{Namespace: f.ns, CronJob: "nightly", WorkflowName: "nightly-1", UID: "u1", Phase: api.PhaseFailed}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var forgot atomic.Int32
	var reason atomic.Value
	w, _ := f.watch(store, Config{ForgetAfter: time.Minute}, Hooks{Forgot: func(_ context.Context, j state.Job, why string) {
		forgot.Add(1)
		reason.Store(why)
	}})
	if err := f.kube.BatchV1().CronJobs(f.ns).Delete(context.Background(), "nightly", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The deletion is timed by the watcher's clock when it sees it: before
	// the clock moves on.
	waitUntil(t, "the watcher to see the deletion", func() bool { return deletedSeen(w, key) })
	settle(w)
	if _, err := store.Get(context.Background(), key); err != nil {
		t.Fatalf("forgotten before ForgetAfter: %v", err)
	}
	f.clock.Set(f.clock.Now().Add(2 * time.Minute))
	// A failing job is kept, forgotten, until the alarm has closed its
	// incident (state.ForgetAt).
	waitUntil(t, "the job to be forgotten", func() bool { return forgotten(t, store, key) })
	// Once the hook was called and the deletion dropped, the watcher has
	// nothing left to forget: the count is final.
	waitUntil(t, "the Forgot hook", func() bool { return forgot.Load() > 0 && !deletedSeen(w, key) })
	if forgot.Load() != 1 {
		t.Fatalf("Forgot called %d times, want once", forgot.Load())
	}
	if why, _ := reason.Load().(string); why == "" {
		t.Fatal("no reason")
	}
}

// On deletion the informer hands over the Job's final state, or a tombstone
// holding the last state it saw: either counts, once, and leaves nothing
// behind in the watcher.
func TestDeletionDeliversTheFinalState(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	w := New(f.kube.BatchV1(), store, Config{Now: f.clock.Now}, Hooks{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: f.ns, UID: "cj"}}
	finished := time.Now().Add(-time.Minute).Truncate(time.Second)
	// As the informer hands it over: transformed (slim).
	job := func(uid, reason string) any {
		obj, _ := slim(&batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: "nightly-" + uid, Namespace: f.ns, UID: types.UID(uid), CreationTimestamp: metav1.NewTime(finished.Add(-time.Minute)),
				OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))}},
			Status: batchv1.JobStatus{Conditions: []batchv1.JobCondition{
				{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: reason, LastTransitionTime: metav1.NewTime(finished)}}},
		})
		return obj
	}
	w.jobSeen(job("a", "BackoffLimitExceeded"), true)
	w.jobSeen(cache.DeletedFinalStateUnknown{Key: f.ns + "/nightly-b", Obj: job("b", "DeadlineExceeded")}, true)
	w.drain(context.Background())
	j, err := store.Get(context.Background(), keyOf(f.ns, "nightly"))
	if err != nil || j.ConsecutiveFailures != 2 {
		t.Fatalf("job %+v (%v)", j, err)
	}
	// Delivered again (a second watcher, a relist): nothing more.
	w.jobSeen(job("a", "BackoffLimitExceeded"), true)
	w.drain(context.Background())
	if j, _ := store.Get(context.Background(), keyOf(f.ns, "nightly")); j.ConsecutiveFailures != 2 {
		t.Fatalf("counted twice: %+v", j)
	}
	if len(w.handled) != 0 || len(w.pending) != 0 {
		t.Fatalf("deleted Jobs left behind: handled %v, pending %v", w.handled, w.pending)
	}
}

// The failure threshold annotated on the CronJob reaches its job: the job
// alerts at the annotated number of failed runs in a row, and the loop is
// kicked then, not at the first failure. A value the callback would refuse
// is ignored and the run still counts.
func TestFailureThresholdFromTheCronJob(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	annotate := func(v string) func(*batchv1.CronJob) {
		return func(cj *batchv1.CronJob) { cj.Annotations = map[string]string{api.AnnotationFailureThreshold: v} }
	}
	cj := f.cronJob("nightly", noTicks, annotate("2"))
	bad := f.cronJob("hourly", noTicks, annotate("many"))
	var kicks atomic.Int32
	w, _ := f.watch(store, Config{}, Hooks{Kick: func() { kicks.Add(1) }})

	tick := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	f.setStatus(f.tickJob(cj, tick), failed("BackoffLimitExceeded", "first"))
	j := waitJob(t, store, keyOf(f.ns, "nightly"), "first failure", func(j state.Job) bool { return j.Failing() })
	if j.Threshold() != 2 || j.Alerting() {
		t.Fatalf("after one failure: threshold %d, alerting %v; want 2, false", j.Threshold(), j.Alerting())
	}
	settle(w)
	if n := kicks.Load(); n != 0 {
		t.Fatalf("%d kicks below the threshold, want 0", n)
	}
	f.setStatus(f.tickJob(cj, tick.Add(time.Hour)), failed("BackoffLimitExceeded", "second"))
	waitJob(t, store, keyOf(f.ns, "nightly"), "second failure", func(j state.Job) bool { return j.Alerting() })
	// The watcher kicks after it recorded.
	waitUntil(t, "a kick", func() bool { return kicks.Load() > 0 })
	settle(w)
	if n := kicks.Load(); n != 1 {
		t.Fatalf("%d kicks, want 1 (the threshold reached)", n)
	}

	f.setStatus(f.tickJob(bad, tick), failed("BackoffLimitExceeded", "counted anyway"))
	j = waitJob(t, store, keyOf(f.ns, "hourly"), "failure with a bad annotation", func(j state.Job) bool { return j.Failing() })
	if j.Threshold() != 1 {
		t.Fatalf("threshold %d from a bad annotation, want 1", j.Threshold())
	}
}

// A CronJob deleted while the watcher was stopped (or while another
// replica led) sends no deletion event: its job is forgotten all the same;
// a CronJob's job in a namespace not watched is not.
func TestACronJobDeletedWhileTheWatcherWasStoppedIsForgotten(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	gone, elsewhere := keyOf(f.ns, "nightly"), keyOf("elsewhere", "nightly")
	for _, key := range []state.Key{gone, elsewhere} {
		if _, err := store.Record(context.Background(), api.Result{Namespace: key.Namespace, CronJob: "nightly", WorkflowName: "nightly-29924760", UID: "u-" + key.Namespace, Phase: api.PhaseFailed}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	f.watch(store, Config{ForgetAfter: time.Minute}, Hooks{}) // after its first pass
	if _, err := store.Get(context.Background(), gone); err != nil {
		t.Fatalf("forgotten before ForgetAfter: %v", err)
	}
	f.clock.Set(f.clock.Now().Add(2 * time.Minute))
	deadline := time.Now().Add(patience)
	for {
		if forgotten(t, store, gone) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job of a CronJob deleted while the watcher was stopped was never forgotten")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := store.Get(context.Background(), elsewhere); err != nil {
		t.Errorf("a job of a namespace not watched was forgotten: %v", err)
	}
}

// forgotten reports whether the failing job key was forgotten: kept for the
// alarm to close its incident, its streak ended.
func forgotten(t *testing.T, store state.Store, key state.Key) bool {
	t.Helper()
	j, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("the forgotten job %v is gone from the store: %v", key, err)
	}
	return j.Forgotten() && !j.Failing()
}

// A Job deleted before it finished is a failed run only when its CronJob,
// still there, replaces running Jobs (concurrencyPolicy Replace deletes
// them at the next tick): deleted by hand under another policy, or with
// its CronJob, it is no run that ended.
func TestUnfinishedJobDeletedCountsOnlyWhenReplaced(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	replaceJobs := func(c *batchv1.CronJob) { c.Spec.ConcurrencyPolicy = batchv1.ReplaceConcurrent }
	replace := f.cronJob("replace", noTicks, replaceJobs)
	allow := f.cronJob("allow", noTicks, nil)
	goingAway := f.cronJob("going-away", noTicks, func(c *batchv1.CronJob) {
		replaceJobs(c)
		c.Finalizers = []string{"batchlatch.test/hold"} // deleted, but still there
	})
	if err := f.kube.BatchV1().CronJobs(f.ns).Delete(context.Background(), goingAway.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	w, _ := f.watch(store, Config{}, Hooks{})
	waitUntil(t, "the watcher to see the CronJob being deleted", func() bool {
		cj := w.cronJob(f.ns, goingAway.Name)
		return cj != nil && cj.DeletionTimestamp != nil
	})
	tick := time.Now().Truncate(time.Minute)
	deleteRunning := func(cj *batchv1.CronJob) *batchv1.Job {
		job := f.setStatus(f.tickJob(cj, tick), running(time.Now()))
		seenJob(t, w, job)
		// As the CronJob controller and kubectl delete it (the API's
		// default for Jobs orphans their pods, and waits for the garbage
		// collector, which does not run here).
		background := metav1.DeletePropagationBackground
		if err := f.kube.BatchV1().Jobs(f.ns).Delete(context.Background(), job.Name, metav1.DeleteOptions{PropagationPolicy: &background}); err != nil {
			t.Fatal(err)
		}
		return job
	}
	deleteRunning(allow)
	deleteRunning(goingAway)
	replaced := deleteRunning(replace)
	j := waitJob(t, store, keyOf(f.ns, replace.Name), "the replaced Job", func(j state.Job) bool { return j.Failing() })
	if j.LastUID != string(replaced.UID) || j.ConsecutiveFailures != 1 || j.LastFailures[0].DisplayName != ReasonReplaced {
		t.Fatalf("job %+v", j)
	}
	settle(w) // the other deletions came first
	for _, cj := range []*batchv1.CronJob{allow, goingAway} {
		if j, err := store.Get(context.Background(), keyOf(f.ns, cj.Name)); !errors.Is(err, state.ErrNotFound) {
			t.Errorf("CronJob %s: job %+v (%v), want none", cj.Name, j, err)
		}
	}
}
