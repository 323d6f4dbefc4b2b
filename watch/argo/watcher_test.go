package argowatch

import (
	"context"
	"flag"
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

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/pkg/client/clientset/versioned"
	"github.com/argoproj/argo-workflows/v3/workflow/common"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/metadata"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/kubetest"
	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/internal/testwait"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/configmapstore"
	"github.com/batchlatch/batchlatch/state/filestore"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The scenarios against the real controllers (realcontrollers_test.go)
	// spend their time waiting for ticks, not computing: run them all at
	// once rather than GOMAXPROCS at a time (2 on CI), unless -parallel
	// says otherwise.
	explicit := false
	flag.Visit(func(fl *flag.Flag) { explicit = explicit || fl.Name == "test.parallel" })
	if !explicit {
		_ = flag.Set("test.parallel", "32")
	}
	kubetest.Main(m)
}

// clock is a settable clock: the tests look at the CronWorkflows' ticks from
// the future instead of waiting for them.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// fixture is a watched namespace on the real API server with Argo's CRDs.
type fixture struct {
	t     *testing.T
	ns    string
	argo  versioned.Interface
	meta  metadata.Interface
	clock *clock
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	env := kubetest.Get(t)
	env.InstallArgoCRDs(t)
	argo, err := versioned.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	meta, err := metadata.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, ns: env.NewNamespace(t), argo: argo, meta: meta, clock: &clock{now: time.Now()}}
	// The namespace stays Terminating (no namespace controller): delete
	// what the test made, or Argo's controller, when a later test runs it,
	// would tick these CronWorkflows.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = argo.ArgoprojV1alpha1().CronWorkflows(f.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = argo.ArgoprojV1alpha1().Workflows(f.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	})
	return f
}

func fileStore(t *testing.T) state.Store {
	t.Helper()
	s, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// watch runs a watcher on store until the test ends.
func (f *fixture) watch(store state.Store, cfg Config, hooks Hooks) *Watcher {
	f.t.Helper()
	cfg.Namespaces = []string{f.ns}
	cfg.Now = f.clock.Now
	if cfg.MissedGrace == 0 {
		cfg.MissedGrace = 10 * time.Second
	}
	if cfg.ReconcileInterval == 0 {
		cfg.ReconcileInterval = 100 * time.Millisecond
	}
	if cfg.ForgetAfter == 0 {
		cfg.ForgetAfter = time.Hour
	}
	if cfg.EvaluateEvery == 0 {
		cfg.EvaluateEvery = 50 * time.Millisecond
	}
	w := New(f.argo, f.meta, store, cfg, hooks, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	f.t.Cleanup(func() { cancel(); <-done })
	select {
	case <-w.FirstPass():
	case <-time.After(patience):
		f.t.Fatal("no first pass")
	}
	return w
}

func (f *fixture) cron(name, schedule string, mutate func(*wfv1.CronWorkflow)) *wfv1.CronWorkflow {
	f.t.Helper()
	cwf := &wfv1.CronWorkflow{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: wfv1.CronWorkflowSpec{
			Schedules:    []string{schedule},
			WorkflowSpec: wfv1.WorkflowSpec{Entrypoint: "main", Templates: []wfv1.Template{{Name: "main", Suspend: &wfv1.SuspendTemplate{}}}},
		},
	}
	if mutate != nil {
		mutate(cwf)
	}
	created, err := f.argo.ArgoprojV1alpha1().CronWorkflows(f.ns).Create(context.Background(), cwf, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	// Status is no subresource in Argo's CRDs: a plain update sets it.
	if cwf.Status.Phase != "" || len(cwf.Status.Conditions) > 0 {
		created.Status = cwf.Status
		if created, err = f.argo.ArgoprojV1alpha1().CronWorkflows(f.ns).Update(context.Background(), created, metav1.UpdateOptions{}); err != nil {
			f.t.Fatal(err)
		}
	}
	return created
}

// run creates the Workflow of cwf's tick as the controller would, with the
// given status.
func (f *fixture) run(cwf *wfv1.CronWorkflow, tick time.Time, status wfv1.WorkflowStatus) *wfv1.Workflow {
	f.t.Helper()
	completed := "false"
	if status.Fulfilled() {
		completed = "true"
	}
	wf := &wfv1.Workflow{
		ObjectMeta: metav1.ObjectMeta{
			Name: runName(cwf.Name, tick),
			Labels: map[string]string{
				common.LabelKeyCronWorkflow: cwf.Name,
				common.LabelKeyCompleted:    "false",
			},
			Annotations: map[string]string{common.AnnotationKeyCronWfScheduledTime: tick.UTC().Format(time.RFC3339)},
		},
		Spec: cwf.Spec.WorkflowSpec,
	}
	created, err := f.argo.ArgoprojV1alpha1().Workflows(f.ns).Create(context.Background(), wf, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	// The controller writes a run's phase labels with its status, in one
	// update.
	created.Status = status
	created.Labels[common.LabelKeyPhase] = string(status.Phase)
	created.Labels[common.LabelKeyCompleted] = completed
	if created, err = f.argo.ArgoprojV1alpha1().Workflows(f.ns).Update(context.Background(), created, metav1.UpdateOptions{}); err != nil {
		f.t.Fatal(err)
	}
	return created
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

// settle runs a reconcile and an evaluation of each watcher now, beside
// their own: whatever they would do with what they see, they have done
// once it returns.
func settle(ws ...*Watcher) {
	for _, w := range ws {
		w.Reconcile(context.Background())
		w.Evaluate(context.Background())
	}
}

// seenRun waits until each watcher's informer holds wf as it is now (or
// later): until then, an evaluation at a later clock would find its tick
// without a run.
func seenRun(t *testing.T, wf *wfv1.Workflow, ws ...*Watcher) {
	t.Helper()
	for _, w := range ws {
		waitUntil(t, "the watcher to see "+wf.Name, func() bool {
			for _, runs := range w.runs {
				if obj, ok, _ := runs.GetIndexer().GetByKey(wf.Namespace + "/" + wf.Name); ok {
					m, err := meta.Accessor(obj)
					return err == nil && !olderVersion(m.GetResourceVersion(), wf.ResourceVersion)
				}
			}
			return false
		})
	}
}

// olderVersion reports whether resourceVersion a is older than b (an
// etcd-backed API server issues increasing integers).
func olderVersion(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA != nil || errB != nil || x < y
}

func ticksOf(t *testing.T, cwf *wfv1.CronWorkflow, until time.Time) []time.Time {
	t.Helper()
	c := (&Watcher{cfg: Config{MissedGrace: 10 * time.Second}, logger: slog.New(slog.NewTextHandler(io.Discard, nil)), specs: newSpecChecker()}).cronOf(cwf)
	ticks, _ := c.Schedule.Ticks(cwf.CreationTimestamp.Time, until, 100)
	return ticks
}

func TestMissedTicksCountOnceAndASuccessEndsThem(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	cwf := f.cron("nightly", "* * * * *", nil)
	key := state.Key{Namespace: f.ns, Name: "nightly"}
	created := cwf.CreationTimestamp.Time
	f.clock.Set(created.Add(3*time.Minute + 30*time.Second))
	missed := ticksOf(t, cwf, f.clock.Now().Add(-10*time.Second))
	if len(missed) < 3 {
		t.Fatalf("ticks %v", missed)
	}
	first := f.watch(store, Config{}, Hooks{})
	j := waitJob(t, store, key, "missed ticks", func(j state.Job) bool { return j.ConsecutiveFailures == len(missed) })
	if j.LastPhase != api.PhaseMissed || j.LastWorkflow != runName("nightly", missed[len(missed)-1]) || !j.FailingSince.Equal(missed[0].Add(10*time.Second)) {
		t.Fatalf("job %+v", j)
	}

	// Another watcher (a restart, or a second replica) counts nothing twice.
	second := f.watch(store, Config{}, Hooks{})
	settle(first, second)
	if j, _ := store.Get(context.Background(), key); j.ConsecutiveFailures != len(missed) {
		t.Fatalf("after a second watcher: %d failures, want %d", j.ConsecutiveFailures, len(missed))
	}

	// The next tick runs and succeeds; its callback ends the streak.
	next := missed[len(missed)-1].Add(time.Minute)
	wf := f.run(cwf, next, wfv1.WorkflowStatus{Phase: wfv1.WorkflowSucceeded, StartedAt: metav1.NewTime(next), FinishedAt: metav1.NewTime(next.Add(5 * time.Second))})
	seenRun(t, wf, first, second) // as the run exists well before its tick's grace ends
	f.clock.Set(next.Add(30 * time.Second))
	if _, err := store.Record(context.Background(), api.Result{Namespace: f.ns, CronWorkflow: "nightly", WorkflowName: wf.Name, UID: string(wf.UID), Phase: api.PhaseSucceeded,
		CreatedAt: next.UTC().Format(time.RFC3339), DurationSeconds: 5}, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	settle(first, second)
	j, _ = store.Get(context.Background(), key)
	if j.Failing() || j.LastStreak == nil || j.LastStreak.Failures != len(missed) {
		t.Fatalf("after the success: %+v", j)
	}
}

func TestNeverMissed(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	f.cron("suspended", "* * * * *", func(c *wfv1.CronWorkflow) { c.Spec.Suspend = true })
	f.cron("stopped", "* * * * *", func(c *wfv1.CronWorkflow) { c.Status.Phase = wfv1.StoppedPhase })
	f.cron("when-false", "* * * * *", func(c *wfv1.CronWorkflow) { c.Spec.When = "false" })
	f.cron("when-expression", "* * * * *", func(c *wfv1.CronWorkflow) { c.Spec.When = "{{= cronworkflow.failed < 3 }}" })
	f.cron("control", "* * * * *", nil) // the same, but nothing keeps it from missing
	f.clock.Set(time.Now().Add(5 * time.Minute))
	w := f.watch(store, Config{}, Hooks{})
	waitJob(t, store, state.Key{Namespace: f.ns, Name: "control"}, "control job missed", func(j state.Job) bool { return j.Failing() })
	settle(w)
	jobs, _ := store.List(context.Background())
	if len(jobs) != 1 {
		t.Fatalf("jobs %v: only the control job should have missed ticks", jobs)
	}
}

// A schedule change moves the start of the ticks that count: the spec's
// last change is read from managedFields.
func TestScheduleChangeIsReadFromManagedFields(t *testing.T) {
	f := newFixture(t)
	cwf := f.cron("nightly", "0 0 1 1 *", nil)
	// managedFields have whole seconds: change the spec in a later one.
	waitUntil(t, "the next second", func() bool { return time.Now().Truncate(time.Second).After(cwf.CreationTimestamp.Time) })
	cwf.Spec.Schedules = []string{"* * * * *"}
	updated, err := f.argo.ArgoprojV1alpha1().CronWorkflows(f.ns).Update(context.Background(), cwf, metav1.UpdateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := (&Watcher{logger: slog.New(slog.NewTextHandler(io.Discard, nil)), specs: newSpecChecker()}).cronOf(updated)
	if !c.SpecChangedAt.After(updated.CreationTimestamp.Time) {
		t.Fatalf("spec changed at %s, created at %s", c.SpecChangedAt, updated.CreationTimestamp)
	}
}

func TestUnsubmittableRunsFailWithTheConditionsMessage(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	for _, tt := range []struct {
		name  string
		typ   wfv1.ConditionType
		phase api.Phase
	}{
		{"quota", wfv1.ConditionTypeSubmissionError, api.PhaseSubmissionError},
		{"invalid", wfv1.ConditionTypeSpecError, api.PhaseSpecError},
	} {
		// As the controller does: at a tick, it writes the condition.
		cwf := f.cron(tt.name, "@every 1s", nil)
		firstTick := cwf.CreationTimestamp.Add(time.Second)
		for time.Now().Truncate(time.Second).Before(firstTick) {
			time.Sleep(50 * time.Millisecond)
		}
		cwf.Status.Conditions = wfv1.Conditions{{Type: tt.typ, Status: metav1.ConditionTrue, Message: "refused: " + tt.name}}
		if _, err := f.argo.ArgoprojV1alpha1().CronWorkflows(f.ns).Update(context.Background(), cwf, metav1.UpdateOptions{FieldManager: "workflow-controller"}); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Set(time.Now()) // within the grace of every tick
	f.watch(store, Config{MissedGrace: time.Hour}, Hooks{})
	for _, name := range []string{"quota", "invalid"} {
		j := waitJob(t, store, state.Key{Namespace: f.ns, Name: name}, name, func(j state.Job) bool { return j.Failing() })
		if len(j.LastFailures) != 1 || j.LastFailures[0].Message != "refused: "+name {
			t.Errorf("%s: %+v", name, j)
		}
		if name == "quota" && j.LastPhase != api.PhaseSubmissionError || name == "invalid" && j.LastPhase != api.PhaseSpecError {
			t.Errorf("%s: phase %s", name, j.LastPhase)
		}
	}
}

// The controller's condition stands for the tick of its latest write only,
// so a refusal is recorded when the CronWorkflow changes, not at the next
// periodic pass (here an hour away): otherwise a later refusal, a good
// submission or a suspend could come first.
func TestARefusalIsRecordedAsTheCronWorkflowChanges(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	cwf := f.cron("quota", "@every 1s", nil)
	firstTick := cwf.CreationTimestamp.Add(time.Second)
	for time.Now().Truncate(time.Second).Before(firstTick) {
		time.Sleep(50 * time.Millisecond)
	}
	f.clock.Set(time.Now().Add(time.Minute)) // after the write to come
	f.watch(store, Config{MissedGrace: time.Hour, EvaluateEvery: time.Hour}, Hooks{})
	cwf, err := f.argo.ArgoprojV1alpha1().CronWorkflows(f.ns).Get(context.Background(), "quota", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cwf.Status.Conditions = wfv1.Conditions{{Type: wfv1.ConditionTypeSubmissionError, Status: metav1.ConditionTrue, Message: "refused: quota"}}
	if _, err := f.argo.ArgoprojV1alpha1().CronWorkflows(f.ns).Update(context.Background(), cwf, metav1.UpdateOptions{FieldManager: "workflow-controller"}); err != nil {
		t.Fatal(err)
	}
	j := waitJob(t, store, state.Key{Namespace: f.ns, Name: "quota"}, "the refusal", func(j state.Job) bool { return j.LastPhase == api.PhaseSubmissionError })
	if len(j.LastFailures) != 1 || j.LastFailures[0].Message != "refused: quota" {
		t.Errorf("job %+v", j)
	}
}

func TestLostCallbacksArePickedUp(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	cwf := f.cron("nightly", "0 0 1 1 *", nil) // no tick during the test
	ended := time.Now().Add(-2 * time.Minute)
	failed := f.run(cwf, ended.Add(-time.Hour).Truncate(time.Minute), wfv1.WorkflowStatus{
		Phase: wfv1.WorkflowFailed, StartedAt: metav1.NewTime(ended.Add(-time.Minute)), FinishedAt: metav1.NewTime(ended),
		Nodes: wfv1.Nodes{
			"n1": {ID: "n1", Name: "nightly.train", DisplayName: "train", TemplateName: "train", Phase: wfv1.NodeFailed, Message: "OOMKilled", FinishedAt: metav1.NewTime(ended)},
			"n0": {ID: "n0", Name: "nightly", DisplayName: "nightly", Phase: wfv1.NodeSucceeded},
		},
	})
	f.watch(store, Config{}, Hooks{})
	key := state.Key{Namespace: f.ns, Name: "nightly"}
	j := waitJob(t, store, key, "lost failure", func(j state.Job) bool { return j.Failing() })
	if j.LastUID != string(failed.UID) || len(j.LastFailures) != 1 || j.LastFailures[0].Message != "OOMKilled" || j.ConsecutiveFailures != 1 {
		t.Fatalf("job %+v", j)
	}
	// The callback comes after all: a duplicate.
	late := api.Result{Namespace: f.ns, CronWorkflow: "nightly", WorkflowName: failed.Name, UID: string(failed.UID), Phase: api.PhaseFailed}
	if rec, err := store.Record(context.Background(), late, time.Now()); err != nil || !rec.Outcome.Duplicate {
		t.Fatalf("late callback: %+v, %v", rec.Outcome, err)
	}

	// concurrencyPolicy Replace terminates the run without its exit handler
	// and may leave it labelled completed=false.
	tick := ended.Add(-30 * time.Minute).Truncate(time.Minute)
	replaced := f.run(cwf, tick, wfv1.WorkflowStatus{Phase: wfv1.WorkflowFailed, Message: "Stopped with strategy 'Terminate'",
		StartedAt: metav1.NewTime(tick), FinishedAt: metav1.NewTime(ended)})
	replaced.Labels[common.LabelKeyCompleted] = "false"
	if _, err := f.argo.ArgoprojV1alpha1().Workflows(f.ns).Update(context.Background(), replaced, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	j = waitJob(t, store, key, "replaced run", func(j state.Job) bool { return j.ConsecutiveFailures == 2 })
	if j.LastUID != string(replaced.UID) || j.LastFailures[0].Message != "Stopped with strategy 'Terminate'" {
		t.Fatalf("job %+v", j)
	}
}

func TestStuckRunThenItsOwnResult(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	cwf := f.cron("nightly", "0 0 1 1 *", func(c *wfv1.CronWorkflow) {
		c.Annotations = map[string]string{AnnotationMaxRuntime: "1m"}
	})
	started := time.Now()
	wf := f.run(cwf, started.Truncate(time.Minute), wfv1.WorkflowStatus{Phase: wfv1.WorkflowRunning, StartedAt: metav1.NewTime(started)})
	f.clock.Set(started.Add(2 * time.Minute))
	f.watch(store, Config{}, Hooks{})
	key := state.Key{Namespace: f.ns, Name: "nightly"}
	j := waitJob(t, store, key, "stuck", func(j state.Job) bool { return j.Failing() })
	if j.LastPhase != api.PhaseStuck || j.LastUID != string(wf.UID) {
		t.Fatalf("job %+v", j)
	}

	// The run ends, failed; its callback is lost. Its own result replaces
	// Stuck, and it is still one failed run.
	wf.Status.Phase = wfv1.WorkflowFailed
	wf.Status.FinishedAt = metav1.NewTime(started)
	wf.Status.Message = "deadline exceeded"
	wf.Labels[common.LabelKeyPhase] = string(wfv1.WorkflowFailed)
	wf.Labels[common.LabelKeyCompleted] = "true"
	if _, err := f.argo.ArgoprojV1alpha1().Workflows(f.ns).Update(context.Background(), wf, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	j = waitJob(t, store, key, "the run's own result", func(j state.Job) bool { return j.LastPhase == api.PhaseFailed })
	if j.ConsecutiveFailures != 1 || j.LastFailures[0].Message != "deadline exceeded" {
		t.Fatalf("job %+v", j)
	}
}

// batchlatch.io/max-runtime: auto: the watcher learns each job's usual
// duration from the history the store holds, and a run still running past
// max(3 × p90, p90 + 10m) of it is Stuck, once 5 successful runs are known;
// with fewer the view says no limit applies, and without the annotation
// (nor the flag) no run is ever stuck.
func TestMaxRuntimeAutoFromTheStoredHistory(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	started := time.Now()
	// succeeded stores cron's i-th successful run, which took 10m 20s,
	// hours before the runs below started.
	succeeded := func(cron string, i int) {
		t.Helper()
		created := started.Add(-time.Duration(10-i) * time.Hour).Truncate(time.Second)
		r := api.Result{Namespace: f.ns, CronWorkflow: cron, WorkflowName: runName(cron, created), UID: fmt.Sprintf("%s-%d", cron, i),
			Phase: api.PhaseSucceeded, CreatedAt: created.UTC().Format(time.RFC3339), DurationSeconds: (10*time.Minute + 20*time.Second).Seconds()}
		if _, err := store.Record(context.Background(), r, r.FinishedAt(time.Time{})); err != nil {
			t.Fatal(err)
		}
	}
	auto := func(c *wfv1.CronWorkflow) { c.Annotations = map[string]string{AnnotationMaxRuntime: "auto"} }
	runs := map[string]*wfv1.Workflow{}
	for _, tc := range []struct {
		name    string
		mutate  func(*wfv1.CronWorkflow)
		history int
	}{{"few", auto, 4}, {"many", auto, 5}, {"plain", nil, 20}} {
		cwf := f.cron(tc.name, "0 0 1 1 *", tc.mutate)
		for i := range tc.history {
			succeeded(tc.name, i)
		}
		runs[tc.name] = f.run(cwf, started.Truncate(time.Minute), wfv1.WorkflowStatus{Phase: wfv1.WorkflowRunning, StartedAt: metav1.NewTime(started)})
	}
	f.clock.Set(started.Add(5 * time.Hour)) // far past 31m
	w := f.watch(store, Config{}, Hooks{})
	keyOf := func(cron string) state.Key { return state.Key{Namespace: f.ns, Name: cron} }
	note := func(cron string) string { return w.Schedule(api.KindWorkflow, f.ns, cron, f.clock.Now()).Note }

	j := waitJob(t, store, keyOf("many"), "stuck", func(j state.Job) bool { return j.Failing() })
	want := "still running past 31m, 3 × its usual p90 of 10m 20s (max-runtime auto; started "
	if j.LastPhase != api.PhaseStuck || j.LastUID != string(runs["many"].UID) || !strings.HasPrefix(j.LastFailures[0].Message, want) {
		t.Fatalf("many: job %+v, want a Stuck run: %q", j, want)
	}
	if n := note("many"); n != "max-runtime auto: a run is stuck past 31m, 3 × its usual p90 of 10m 20s" {
		t.Errorf("many: note %q", n)
	}
	// The first pass evaluated every CronWorkflow: these were not stuck.
	for _, cron := range []string{"few", "plain"} {
		if j, err := store.Get(context.Background(), keyOf(cron)); err != nil || j.Failing() {
			t.Fatalf("%s: %+v, %v; want no limit", cron, j, err)
		}
	}
	if n := note("few"); n != "max-runtime auto: no limit applies yet: it needs 5 successful runs of known duration, 4 known" {
		t.Errorf("few: note %q", n)
	}
	if n := note("plain"); n != "" {
		t.Errorf("plain: note %q", n)
	}

	// A fifth successful run, reported by its callback: the next pass
	// learns the limit.
	succeeded("few", 4)
	j = waitJob(t, store, keyOf("few"), "stuck with a fifth run", func(j state.Job) bool { return j.Failing() })
	if j.LastPhase != api.PhaseStuck || !strings.HasPrefix(j.LastFailures[0].Message, want) {
		t.Fatalf("few: job %+v", j)
	}
	waitUntil(t, "few's note", func() bool { return strings.Contains(note("few"), "stuck past 31m") })
	settle(w)
	if j, err := store.Get(context.Background(), keyOf("plain")); err != nil || j.Failing() {
		t.Fatalf("plain: %+v, %v; want no limit", j, err)
	}
}

func TestDeletedCronWorkflowIsForgotten(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	f.cron("nightly", "0 0 1 1 *", nil)
	key := state.Key{Namespace: f.ns, Name: "nightly"}
	if _, err := store.Record(context.Background(), api.Result{Namespace: f.ns, CronWorkflow: "nightly", WorkflowName: "nightly-1", UID: "u1", Phase: api.PhaseFailed}, time.Now()); err != nil {
		t.Fatal(err)
	}
	var forgot atomic.Int32
	var reason atomic.Value
	w := f.watch(store, Config{ForgetAfter: time.Minute}, Hooks{Forgot: func(_ context.Context, j state.Job, why string) {
		forgot.Add(1)
		reason.Store(why)
	}})
	if err := f.argo.ArgoprojV1alpha1().CronWorkflows(f.ns).Delete(context.Background(), "nightly", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	// The deletion is timed by the watcher's clock when it sees it: before
	// the clock moves on.
	deletedSeen := func() bool { w.mu.Lock(); defer w.mu.Unlock(); _, ok := w.deleted[key]; return ok }
	waitUntil(t, "the watcher to see the deletion", deletedSeen)
	settle(w)
	if _, err := store.Get(context.Background(), key); err != nil {
		t.Fatalf("forgotten before --forget-after: %v", err)
	}
	f.clock.Set(f.clock.Now().Add(2 * time.Minute))
	// A failing job is kept, forgotten, until the alarm has closed its
	// incident (state.ForgetAt).
	waitUntil(t, "the job to be forgotten", func() bool { return forgotten(t, store, key) })
	// Once the hook was called and the deletion dropped, the watcher has
	// nothing left to forget: the count is final.
	waitUntil(t, "the Forgot hook", func() bool { return forgot.Load() > 0 && !deletedSeen() })
	if forgot.Load() != 1 {
		t.Fatalf("Forgot called %d times, want once", forgot.Load())
	}
	if why, _ := reason.Load().(string); why == "" {
		t.Fatal("no reason")
	}
}

// Two replicas, each with its own store on one ConfigMap and its own
// watcher: every decision is deduplicated, so the counts are exact.
func TestTwoWatchersCountExactly(t *testing.T) {
	f := newFixture(t)
	env := kubetest.Get(t)
	own := env.NewNamespace(t)
	var stores []state.Store
	for range 2 {
		s := configmapstore.New(env.Clientset.CoreV1().ConfigMaps(own), "batchlatch-state", configmapstore.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
		t.Cleanup(func() { s.Close() })
		stores = append(stores, s)
	}
	cwf := f.cron("nightly", "* * * * *", nil)
	f.clock.Set(cwf.CreationTimestamp.Add(5*time.Minute + 30*time.Second))
	missed := ticksOf(t, cwf, f.clock.Now().Add(-10*time.Second))
	var watchers []*Watcher
	for _, s := range stores {
		watchers = append(watchers, f.watch(s, Config{}, Hooks{}))
	}
	key := state.Key{Namespace: f.ns, Name: "nightly"}
	waitJob(t, stores[0], key, "missed ticks", func(j state.Job) bool { return j.ConsecutiveFailures >= len(missed) })
	settle(watchers...)
	// Read through a store of its own: each replica's may answer from a
	// copy up to a second old.
	fresh := configmapstore.New(env.Clientset.CoreV1().ConfigMaps(own), "batchlatch-state", configmapstore.Options{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	t.Cleanup(func() { fresh.Close() })
	if j := waitJob(t, fresh, key, "the job", func(state.Job) bool { return true }); j.ConsecutiveFailures != len(missed) {
		t.Fatalf("%d failures, want exactly %d", j.ConsecutiveFailures, len(missed))
	}
}

// The failure threshold annotated on the CronWorkflow reaches the results
// the watcher makes (a lost callback's, a missed tick's), as
// workflowMetadata.annotations brings it to the callback's.
func TestFailureThresholdFromTheCronWorkflow(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	cwf := f.cron("nightly", "0 0 1 1 *", func(c *wfv1.CronWorkflow) {
		c.Spec.WorkflowMetadata = &metav1.ObjectMeta{Annotations: map[string]string{api.AnnotationFailureThreshold: "3"}}
	})
	ended := time.Now().Add(-2 * time.Minute)
	f.run(cwf, ended.Add(-time.Hour).Truncate(time.Minute), wfv1.WorkflowStatus{
		Phase: wfv1.WorkflowFailed, StartedAt: metav1.NewTime(ended.Add(-time.Minute)), FinishedAt: metav1.NewTime(ended)})
	f.watch(store, Config{}, Hooks{})
	j := waitJob(t, store, state.Key{Namespace: f.ns, Name: "nightly"}, "lost failure", func(j state.Job) bool { return j.Failing() })
	if j.Threshold() != 3 || j.Alerting() {
		t.Fatalf("threshold %d, alerting %v; want 3, false", j.Threshold(), j.Alerting())
	}
}

// A run is recorded when the watcher sees it finish: Argo deletes a failed
// run seconds after the next one fails (failedJobsHistoryLimit 1), and a
// run terminated by concurrencyPolicy Replace sends no callback. A callback
// for the same run afterwards adds its failed steps but counts nothing.
func TestARunIsRecordedWhenItFinishesBeforeItIsDeleted(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	cwf := f.cron("nightly", "0 0 1 1 *", nil) // no tick during the test
	f.watch(store, Config{ReconcileInterval: time.Hour}, Hooks{})
	key := state.Key{Namespace: f.ns, Name: "nightly"}
	for i, tick := range []time.Time{time.Now().Add(-3 * time.Minute).Truncate(time.Minute), time.Now().Add(-2 * time.Minute).Truncate(time.Minute)} {
		ended := time.Now()
		wf := f.run(cwf, tick, wfv1.WorkflowStatus{Phase: wfv1.WorkflowFailed, Message: "Stopped with strategy 'Terminate'",
			StartedAt: metav1.NewTime(tick), FinishedAt: metav1.NewTime(ended)})
		// Deleted at once, as the history limit does.
		if err := f.argo.ArgoprojV1alpha1().Workflows(f.ns).Delete(context.Background(), wf.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		j := waitJob(t, store, key, "terminated run", func(j state.Job) bool { return j.ConsecutiveFailures == i+1 })
		if j.LastUID != string(wf.UID) {
			t.Fatalf("job %+v", j)
		}
		// Its callback after all (a run stopped, not terminated, runs its
		// exit handler): one failed run still, with its failed steps.
		late := api.Result{Namespace: f.ns, CronWorkflow: "nightly", WorkflowName: wf.Name, UID: string(wf.UID), Phase: api.PhaseFailed,
			Failures: []api.Failure{{DisplayName: "train", Message: "OOMKilled"}}}
		rec, err := store.Record(context.Background(), late, time.Now())
		if err != nil || !rec.Outcome.Duplicate || rec.Job.ConsecutiveFailures != i+1 {
			t.Fatalf("late callback: %+v, %+v, %v", rec.Outcome, rec.Job, err)
		}
		if len(j.LastFailures) == 0 && (len(rec.Job.LastFailures) != 1 || rec.Job.LastFailures[0].Message != "OOMKilled") {
			t.Fatalf("the callback's detail was not kept: %+v", rec.Job)
		}
	}
}

// heldList is a store whose List can be held: a watcher's drain lists the
// jobs before it reads its runs, so holding it holds the drain there.
type heldList struct {
	state.Store
	mu      sync.Mutex
	gate    chan struct{} // nil: not held
	waiting chan struct{} // closed once a List waits at the gate
}

// hold makes the next Lists wait until release is called (once or more),
// and returns a channel closed once one waits.
func (s *heldList) hold() (waiting <-chan struct{}, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gate, w := make(chan struct{}), make(chan struct{})
	s.gate, s.waiting = gate, w
	var once sync.Once
	return w, func() {
		once.Do(func() {
			s.mu.Lock()
			s.gate = nil
			s.mu.Unlock()
			close(gate)
		})
	}
}

func (s *heldList) List(ctx context.Context) ([]state.Job, error) {
	s.mu.Lock()
	gate, waiting := s.gate, s.waiting
	if gate != nil && waiting != nil {
		close(waiting)
		s.waiting = nil
	}
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	return s.Store.List(ctx)
}

// Whether a run is read from its metadata (it was deleted before the
// watcher read it) or in full, its end is never later than the watcher's
// clock: with the API server's clock ahead of the watcher's, a run deleted
// at once was recorded as ending by the API server's clock and the next,
// read in full, by the watcher's, earlier: older than the job's latest
// result, so stale, and lost (seen in CI, as this file's
// TestARunIsRecordedWhenItFinishesBeforeItIsDeleted failing once).
func TestRunsReadEitherWayCountWhenTheAPIServersClockIsAhead(t *testing.T) {
	f := newFixture(t)
	f.clock.Set(time.Now().Add(-30 * time.Second)) // the watcher's clock, behind the API server's
	store := &heldList{Store: fileStore(t)}
	cwf := f.cron("nightly", "0 0 1 1 *", nil) // no tick during the test
	f.watch(store, Config{ReconcileInterval: time.Hour}, Hooks{})
	key := state.Key{Namespace: f.ns, Name: "nightly"}
	ticks := []time.Time{time.Now().Add(-3 * time.Minute).Truncate(time.Minute), time.Now().Add(-2 * time.Minute).Truncate(time.Minute)}

	// The first run is deleted before the watcher reads it: its metadata
	// is all there is.
	waiting, release := store.hold()
	defer release() // (once: a no-op after the release below)
	first := f.run(cwf, ticks[0], wfv1.WorkflowStatus{Phase: wfv1.WorkflowFailed, StartedAt: metav1.NewTime(ticks[0]), FinishedAt: metav1.Now()})
	select {
	case <-waiting:
	case <-time.After(patience):
		t.Fatal("the watcher never listed the jobs after the first run finished")
	}
	if err := f.argo.ArgoprojV1alpha1().Workflows(f.ns).Delete(context.Background(), first.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	release()
	waitJob(t, store, key, "the first run", func(j state.Job) bool { return j.ConsecutiveFailures == 1 })

	// The second is read in full.
	second := f.run(cwf, ticks[1], wfv1.WorkflowStatus{Phase: wfv1.WorkflowFailed, StartedAt: metav1.NewTime(ticks[1]), FinishedAt: metav1.Now()})
	j := waitJob(t, store, key, "the second run", func(j state.Job) bool { return j.ConsecutiveFailures == 2 })
	if j.LastUID != string(second.UID) {
		t.Fatalf("job %+v", j)
	}
}

// A new install on a cluster with a long history of runs reads few of them
// in full and records them in order, collapsed to what decides the job: no
// flipping between failing and recovered.
func TestANewInstallRecordsAHistoryInOrderWithBoundedReads(t *testing.T) {
	f := newFixture(t)
	const outcomes = "SFFSSFSSFFFSSSSSFSSSSSSSSSSSSFF" // failing: 2 in a row, after a streak of 1
	cwf := f.cron("nightly", "0 0 1 1 *", nil)
	base := time.Now().Add(-48 * time.Hour).Truncate(time.Hour)
	for i, o := range outcomes {
		phase := wfv1.WorkflowSucceeded
		if o == 'F' {
			phase = wfv1.WorkflowFailed
		}
		tick := base.Add(time.Duration(i) * time.Hour)
		f.run(cwf, tick, wfv1.WorkflowStatus{Phase: phase, StartedAt: metav1.NewTime(tick), FinishedAt: metav1.NewTime(tick.Add(time.Minute))})
	}
	var traffic kubetest.Traffic
	counted, err := versioned.NewForConfig(traffic.Count(kubetest.Get(t).RESTConfig()))
	if err != nil {
		t.Fatal(err)
	}
	f.argo = counted
	store := &storetest.CountingStore{Store: fileStore(t)}
	var kicks atomic.Int64
	w := f.watch(store, Config{ReconcileInterval: time.Hour}, Hooks{Kick: func() { kicks.Add(1) }})
	<-w.FirstPass()
	j, err := store.Get(context.Background(), state.Key{Namespace: f.ns, Name: "nightly"})
	if err != nil || j.ConsecutiveFailures != 2 || j.LastStreak == nil || j.LastStreak.Failures != 1 {
		t.Fatalf("job %+v (%v)", j, err)
	}
	// The informers' list and watch of CronWorkflows and WorkflowTemplates,
	// and at most readsPerJob Workflows read in full.
	if n := traffic.Requests.Load(); n > 4+readsPerJob {
		t.Errorf("%d requests to the API server for %d runs", n, len(outcomes))
	}
	if n := store.Writes.Load(); n > 8 {
		t.Errorf("%d writes for %d runs: the history was not collapsed", n, len(outcomes))
	}
	if n := kicks.Load(); n != 0 {
		t.Errorf("%d kicks: history was announced as news", n)
	}
}

// A CronWorkflow deleted while the watcher was stopped (or while another
// replica led) sends no deletion event: its job is forgotten all the same,
// and no job of a WorkflowTemplate, of a namespace as a whole or of a
// namespace not watched is taken for one.
func TestACronWorkflowDeletedWhileTheWatcherWasStoppedIsForgotten(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	record := func(r api.Result) {
		t.Helper()
		if _, err := store.Record(context.Background(), r, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	gone := state.Key{Namespace: f.ns, Name: "nightly"}
	record(api.Result{Namespace: f.ns, CronWorkflow: "nightly", WorkflowName: runName("nightly", time.Now().Add(-time.Hour).Truncate(time.Minute)), UID: "u1", Phase: api.PhaseFailed})
	kept := []state.Key{{Namespace: f.ns, Name: "tmpl"}, {Namespace: f.ns}, {Namespace: "elsewhere", Name: "hourly"}}
	record(api.Result{Namespace: f.ns, WorkflowName: "tmpl-x7k2p", UID: "u2", Phase: api.PhaseFailed, Labels: map[string]string{api.LabelWorkflowTemplate: "tmpl"}})
	record(api.Result{Namespace: f.ns, WorkflowName: "adhoc-q8w3z", UID: "u3", Phase: api.PhaseFailed})
	record(api.Result{Namespace: "elsewhere", CronWorkflow: "hourly", WorkflowName: runName("hourly", time.Now().Truncate(time.Hour)), UID: "u4", Phase: api.PhaseFailed})
	var forgot atomic.Int32
	w := f.watch(store, Config{ForgetAfter: time.Minute}, Hooks{Forgot: func(_ context.Context, j state.Job, _ string) {
		if j.Key() == gone {
			forgot.Add(1)
		}
	}})
	<-w.FirstPass()
	if _, err := store.Get(context.Background(), gone); err != nil {
		t.Fatalf("forgotten before --forget-after: %v", err)
	}
	f.clock.Set(f.clock.Now().Add(2 * time.Minute))
	deadline := time.Now().Add(patience)
	for {
		if forgotten(t, store, gone) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the job of a CronWorkflow deleted while the watcher was stopped was never forgotten")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for forgot.Load() == 0 && time.Now().Before(deadline) { // the hook runs after the delete
		time.Sleep(20 * time.Millisecond)
	}
	if forgot.Load() != 1 {
		t.Errorf("Forgot called %d times, want once", forgot.Load())
	}
	for _, key := range kept {
		if _, err := store.Get(context.Background(), key); err != nil {
			t.Errorf("%v forgotten: %v", key, err)
		}
	}
}

// A CronWorkflow broken for longer than the job remembers runs (8) and than
// a pass looks at ticks (10): each tick is counted once, and the count stays
// exact pass after pass (it used to rise at every pass once more than 8
// results were due).
func TestBrokenTicksCountExactlyBeyondTheJobsMemory(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	cwf := f.cron("nightly", "* * * * *", nil)
	key := state.Key{Namespace: f.ns, Name: "nightly"}
	created := cwf.CreationTimestamp.Time
	w := f.watch(store, Config{}, Hooks{})
	<-w.FirstPass()
	const ticks = 14
	for minute := 1; minute <= ticks; minute++ {
		f.clock.Set(created.Add(time.Duration(minute)*time.Minute + 30*time.Second))
		want := len(ticksOf(t, cwf, f.clock.Now().Add(-10*time.Second)))
		waitJob(t, store, key, fmt.Sprintf("minute %d", minute), func(j state.Job) bool { return j.ConsecutiveFailures == want })
	}
	// Many more passes at the same time: nothing more is counted.
	want := len(ticksOf(t, cwf, f.clock.Now().Add(-10*time.Second)))
	for range 3 {
		w.Evaluate(context.Background())
	}
	if j, err := store.Get(context.Background(), key); err != nil || j.ConsecutiveFailures != want || want < ticks {
		t.Fatalf("after more passes: %d failures (%v), want %d", j.ConsecutiveFailures, err, want)
	}
}

// A CronWorkflow Argo's controller refuses when it is added (here, its
// WorkflowTemplate does not exist) is never scheduled and gets no
// condition: the watcher reports it at once, with Argo's own validation
// message.
func TestACronWorkflowInvalidFromCreationFailsAtOnce(t *testing.T) {
	f := newFixture(t)
	store := fileStore(t)
	f.cron("nightly", "0 0 1 1 *", func(c *wfv1.CronWorkflow) { // no tick during the test
		c.Spec.WorkflowSpec = wfv1.WorkflowSpec{WorkflowTemplateRef: &wfv1.WorkflowTemplateRef{Name: "etl"}}
	})
	f.watch(store, Config{MissedGrace: time.Hour}, Hooks{})
	key := state.Key{Namespace: f.ns, Name: "nightly"}
	j := waitJob(t, store, key, "invalid CronWorkflow", func(j state.Job) bool { return j.Failing() })
	if j.LastPhase != api.PhaseSpecError || len(j.LastFailures) != 1 || !strings.Contains(j.LastFailures[0].Message, `"etl" not found`) || j.ConsecutiveFailures != 1 {
		t.Fatalf("job %+v", j)
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
