package argowatch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/pkg/client/clientset/versioned"
	"github.com/argoproj/argo-workflows/v3/workflow/common"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/util/retry"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/fakelet"
	"github.com/batchlatch/batchlatch/internal/kubetest"
	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/internal/testwait"
	"github.com/batchlatch/batchlatch/server"
	"github.com/batchlatch/batchlatch/state"
)

// The scenarios of issue 20 against Argo's real workflow-controller, the
// real API server and the fakelet: nothing here writes a Workflow's or a
// CronWorkflow's status by hand. Ticks are short (period) and every wait
// polls with a deadline of minutes (realPatience): the machine may be slow.
// Scenarios that stop the controller cannot share it, so they do not run in
// parallel; the others do, each in its own namespace.

// period is the schedule of most scenarios: short, so the controller ticks
// often.
const (
	period = 5 * time.Second
	every  = "@every 5s"
)

// realPatience bounds every wait for the controller, the fakelet or the
// watcher: a few ticks' work, on a machine that may be very busy.
const realPatience = 4 * time.Minute

// argoConfig is the controller's configuration in every scenario (tests
// that share the controller must agree on it): the CronWorkflow sync that
// enforces history limits and counts finished runs every 2 s instead of
// 10 s (a harsher race for the watcher, and quicker counts), and a 2 s
// requeue so that an HTTP exit handler ends in seconds.
var argoConfig = kubetest.ArgoConfig{Env: []string{"CRON_SYNC_PERIOD=2s", "DEFAULT_REQUEUE_TIME=2s"}}

// realFixture is a namespace watched on a cluster where Argo's controller
// and the fakelet run.
type realFixture struct {
	t          *testing.T
	env        *kubetest.Env
	ns         string
	argo       versioned.Interface
	meta       metadata.Interface
	controller *kubetest.Process
}

func newRealFixture(t *testing.T) *realFixture {
	t.Helper()
	env := kubetest.Get(t)
	controller := kubetest.StartArgoController(t, env, argoConfig)
	kubetest.StartFakelet(t, env)
	argo, err := versioned.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	meta, err := metadata.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	f := &realFixture{t: t, env: env, ns: env.NewNamespace(t), argo: argo, meta: meta, controller: controller}
	// The namespace stays Terminating (no namespace controller): without
	// this the controller would go on ticking its CronWorkflows and
	// running its Workflows for the tests that come after.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		a := argo.ArgoprojV1alpha1()
		_ = a.CronWorkflows(f.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
		_ = a.Workflows(f.ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{})
	})
	return f
}

// watchReal runs a watcher of the fixture's namespace on store, on the real
// clock unless cfg.Now is set, until stop is called or the test ends. Its
// reconcile (the sweep for finished runs whose result is unknown) runs
// once an hour unless cfg says otherwise: a run must be recorded when the
// watcher sees it finish, before Argo's history limits delete it.
func (f *realFixture) watchReal(store state.Store, cfg Config) (w *Watcher, stop func()) {
	f.t.Helper()
	return f.watchRealWith(f.argo, store, cfg, Hooks{})
}

// watchRealWith is watchReal reading CronWorkflows and Workflows through
// argo, with hooks.
func (f *realFixture) watchRealWith(argo versioned.Interface, store state.Store, cfg Config, hooks Hooks) (w *Watcher, stop func()) {
	f.t.Helper()
	cfg.Namespaces = []string{f.ns}
	if cfg.MissedGrace == 0 {
		cfg.MissedGrace = 3 * period
	}
	if cfg.ReconcileInterval == 0 {
		cfg.ReconcileInterval = time.Hour
	}
	if cfg.ForgetAfter == 0 {
		cfg.ForgetAfter = time.Hour
	}
	if cfg.EvaluateEvery == 0 {
		cfg.EvaluateEvery = 200 * time.Millisecond
	}
	w = New(argo, f.meta, store, cfg, hooks, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	f.t.Cleanup(stop)
	select {
	case <-w.FirstPass():
	case <-time.After(realPatience):
		f.t.Fatal("the watcher made no first pass")
	}
	return w, stop
}

// cron creates a CronWorkflow ticking every period whose runs are one
// container played as plan, changed by mutate.
func (f *realFixture) cron(name string, plan fakelet.Plan, mutate func(*wfv1.CronWorkflow)) *wfv1.CronWorkflow {
	f.t.Helper()
	c := fakelet.Container("main", plan)
	cwf := &wfv1.CronWorkflow{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: wfv1.CronWorkflowSpec{
			Schedules: []string{every},
			WorkflowSpec: wfv1.WorkflowSpec{
				Entrypoint: "main",
				Templates:  []wfv1.Template{{Name: "main", Container: &c}},
			},
		},
	}
	if mutate != nil {
		mutate(cwf)
	}
	return kubetest.Create(f.t, f.env, f.ns, cwf)
}

// setExitCode changes the exit code of the runs of the CronWorkflow (its
// template "main"): a user breaking or fixing the job.
func (f *realFixture) setExitCode(name string, code int) {
	f.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cwf := f.getCron(name) // the controller writes its status meanwhile
		for i := range cwf.Spec.WorkflowSpec.Templates {
			tmpl := &cwf.Spec.WorkflowSpec.Templates[i]
			if tmpl.Name != "main" {
				continue
			}
			for k := range tmpl.Container.Env {
				if tmpl.Container.Env[k].Name == fakelet.EnvExitCode {
					tmpl.Container.Env[k].Value = strconv.Itoa(code)
				}
			}
		}
		_, err := f.argo.ArgoprojV1alpha1().CronWorkflows(f.ns).Update(context.Background(), cwf, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		f.t.Fatalf("set the exit code of %s: %v", name, err)
	}
}

// getCron reads the CronWorkflow as it is now.
func (f *realFixture) getCron(name string) *wfv1.CronWorkflow {
	f.t.Helper()
	cwf, err := f.argo.ArgoprojV1alpha1().CronWorkflows(f.ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return cwf
}

// patchCron applies a JSON merge patch to the CronWorkflow.
func (f *realFixture) patchCron(name, patch string) {
	f.t.Helper()
	if _, err := f.argo.ArgoprojV1alpha1().CronWorkflows(f.ns).Patch(context.Background(), name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		f.t.Fatalf("patch CronWorkflow %s with %s: %v", name, patch, err)
	}
}

// waitCron polls the CronWorkflow until ok holds for it.
func (f *realFixture) waitCron(name, what string, ok func(*wfv1.CronWorkflow) bool) *wfv1.CronWorkflow {
	f.t.Helper()
	var cwf *wfv1.CronWorkflow
	realWait(f.t, what, func() (bool, string) {
		c, err := f.argo.ArgoprojV1alpha1().CronWorkflows(f.ns).Get(context.Background(), name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		cwf = c
		return ok(c), fmt.Sprintf("status %+v", c.Status)
	})
	return cwf
}

// workflows lists the namespace's Workflows of the CronWorkflow.
func (f *realFixture) workflows(cron string) []wfv1.Workflow {
	f.t.Helper()
	list, err := f.argo.ArgoprojV1alpha1().Workflows(f.ns).List(context.Background(), metav1.ListOptions{LabelSelector: common.LabelKeyCronWorkflow + "=" + cron})
	if err != nil {
		f.t.Fatal(err)
	}
	return list.Items
}

// suspendAndSettle suspends the CronWorkflow and waits until the controller
// has counted every run of it that will end (status.active holds only
// runs planned to run forever, keep of them) and its counts are steady:
// the counts the watcher must then agree with.
func (f *realFixture) suspendAndSettle(name string, keep int) *wfv1.CronWorkflow {
	f.t.Helper()
	f.patchCron(name, `{"spec":{"suspend":true}}`)
	var last *wfv1.CronWorkflow
	steadySince := time.Now()
	return f.waitCron(name, "the controller to count every run of "+name, func(c *wfv1.CronWorkflow) bool {
		running := 0
		for _, wf := range f.workflows(name) {
			if !wf.Status.Fulfilled() {
				running++
			}
		}
		if last == nil || last.Status.Failed != c.Status.Failed || last.Status.Succeeded != c.Status.Succeeded || running > keep || len(c.Status.Active) > keep {
			last, steadySince = c, time.Now()
			return false
		}
		// Two syncs of the controller with nothing new.
		return time.Since(steadySince) > 5*time.Second
	})
}

// realWait polls cond every 100 ms until it holds, failing the test after
// realPatience with cond's last description of the state.
func realWait(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	testwait.Until(t, realPatience, what, func(context.Context) (bool, string, error) {
		ok, seen := cond()
		return ok, seen, nil
	})
}

// waitJobReal polls the store until ok holds for the job.
func waitJobReal(t *testing.T, store state.Store, key state.Key, what string, ok func(state.Job) bool) state.Job {
	t.Helper()
	var j state.Job
	realWait(t, what, func() (bool, string) {
		var err error
		j, err = store.Get(context.Background(), key)
		if err != nil {
			return false, err.Error()
		}
		return ok(j), fmt.Sprintf("job %+v", j)
	})
	return j
}

// recorder is a store that keeps every result that changed a job, with its
// outcome: what the watcher (or a callback) counted, in order.
type recorder struct {
	state.Store
	mu      sync.Mutex
	counted []recorded
}

type recorded struct {
	api.Result
	state.Outcome
}

func (r *recorder) Record(ctx context.Context, res api.Result, receivedAt time.Time) (state.Recorded, error) {
	rec, err := r.Store.Record(ctx, res, receivedAt)
	if err == nil && !rec.Outcome.Duplicate && !rec.Outcome.Stale {
		r.mu.Lock()
		r.counted = append(r.counted, recorded{res, rec.Outcome})
		r.mu.Unlock()
	}
	return rec, err
}

// results returns the counted results of job name.
func (r *recorder) results(name string) []recorded {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []recorded
	for _, c := range r.counted {
		if c.JobName() == name {
			out = append(out, c)
		}
	}
	return out
}

// phases counts the counted results of job name by phase.
func (r *recorder) phases(name string) map[api.Phase]int {
	out := map[api.Phase]int{}
	for _, c := range r.results(name) {
		out[c.Phase]++
	}
	return out
}

func newRecorder(t *testing.T) *recorder { return &recorder{Store: fileStore(t)} }

// checkExact waits until the job counts as many failed runs in a row as
// the controller counted for the CronWorkflow (status.failed: failed runs
// and failed submissions), then makes the watcher look again: the count
// must not move.
func checkExact(t *testing.T, w *Watcher, store state.Store, cwf *wfv1.CronWorkflow) state.Job {
	t.Helper()
	key := state.Key{Namespace: cwf.Namespace, Name: cwf.Name}
	want := int(cwf.Status.Failed)
	if want == 0 {
		t.Fatalf("the controller counted no failure of %s: the scenario proves nothing", cwf.Name)
	}
	waitJobReal(t, store, key, fmt.Sprintf("the job to count the controller's %d failures", want), func(j state.Job) bool { return j.ConsecutiveFailures == want })
	settle(w)
	settle(w)
	j, err := store.Get(context.Background(), key)
	if err != nil || j.ConsecutiveFailures != want {
		t.Fatalf("after more passes: %d failures (%v), want %d", j.ConsecutiveFailures, err, want)
	}
	return j
}

// failureMessages are the messages of the failed steps of the counted
// results of job name.
func failureMessages(rs []recorded) []string {
	var out []string
	for _, r := range rs {
		for _, f := range r.Failures {
			out = append(out, f.Message)
		}
	}
	return out
}

// TestRealAllowEveryTick: runs longer than the period overlap
// (concurrencyPolicy Allow), each fails; every one is counted once,
// nothing is Missed.
func TestRealAllowEveryTick(t *testing.T) {
	t.Parallel()
	f := newRealFixture(t)
	store := newRecorder(t)
	w, _ := f.watchReal(store, Config{})
	f.cron("allow", fakelet.Plan{For: period * 3 / 2, ExitCode: 1}, func(c *wfv1.CronWorkflow) {
		c.Spec.ConcurrencyPolicy = wfv1.AllowConcurrent
		c.Spec.FailedJobsHistoryLimit = new(int32(10))
	})
	f.waitCron("allow", "3 failed runs", func(c *wfv1.CronWorkflow) bool { return c.Status.Failed >= 3 })
	cwf := f.suspendAndSettle("allow", 0)
	j := checkExact(t, w, store, cwf)
	if got := store.phases("allow"); got[api.PhaseFailed] != j.ConsecutiveFailures || len(got) != 1 {
		t.Errorf("counted %v, want only Failed runs", got)
	}
	if msgs := failureMessages(store.results("allow")); !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, "exit code 1") }) {
		t.Errorf("failure messages %q: none says the exit code", msgs)
	}
}

// TestRealForbidSkipsAreNotMissed: under concurrencyPolicy Forbid the
// controller skips the ticks that come while a run is active; they are not
// Missed.
func TestRealForbidSkipsAreNotMissed(t *testing.T) {
	t.Parallel()
	f := newRealFixture(t)
	store := newRecorder(t)
	w, _ := f.watchReal(store, Config{})
	f.cron("forbid", fakelet.Plan{For: period * 5 / 2, ExitCode: 1}, func(c *wfv1.CronWorkflow) {
		c.Spec.ConcurrencyPolicy = wfv1.ForbidConcurrent
		c.Spec.FailedJobsHistoryLimit = new(int32(10))
	})
	f.waitCron("forbid", "2 failed runs", func(c *wfv1.CronWorkflow) bool { return c.Status.Failed >= 2 })
	cwf := f.suspendAndSettle("forbid", 0)
	checkExact(t, w, store, cwf)
	if got := store.phases("forbid"); got[api.PhaseMissed] > 0 {
		t.Errorf("counted %v: a tick Forbid skipped was taken for a missed one", got)
	}
}

// TestRealReplaceRecordsTerminatedRuns: under concurrencyPolicy Replace
// each tick terminates the running run (no exit handler runs) and, with
// the default failedJobsHistoryLimit of 1, the controller deletes it
// seconds after the next one fails. Each terminated run is recorded, with
// Argo's message, from the watch (the periodic reconcile is off here).
func TestRealReplaceRecordsTerminatedRuns(t *testing.T) {
	t.Parallel()
	f := newRealFixture(t)
	store := newRecorder(t)
	w, _ := f.watchReal(store, Config{})
	f.cron("replace", fakelet.Plan{For: fakelet.Forever}, func(c *wfv1.CronWorkflow) {
		c.Spec.ConcurrencyPolicy = wfv1.ReplaceConcurrent
	})
	f.waitCron("replace", "3 terminated runs", func(c *wfv1.CronWorkflow) bool { return c.Status.Failed >= 3 })
	cwf := f.suspendAndSettle("replace", 1)
	if n := len(f.workflows("replace")); n > 2 {
		t.Fatalf("%d Workflows left: the history limit deleted none, so the race the scenario is about never ran", n)
	}
	j := checkExact(t, w, store, cwf)
	if got := store.phases("replace"); got[api.PhaseFailed] != j.ConsecutiveFailures || len(got) != 1 {
		t.Errorf("counted %v, want only Failed runs", got)
	}
	for _, r := range store.results("replace") {
		if msgs := failureMessages([]recorded{r}); !slices.ContainsFunc(msgs, func(m string) bool { return strings.Contains(m, "Terminate") }) {
			t.Errorf("run %s recorded with failures %q: not Argo's message of a terminated run", r.WorkflowName, msgs)
		}
	}
}

// TestRealStuckPastMaxRuntime: a run still running past its max runtime is
// Stuck, once, however many passes and skipped ticks follow; when it ends
// (terminated here) its own result replaces Stuck and it is still one
// failed run.
func TestRealStuckPastMaxRuntime(t *testing.T) {
	t.Parallel()
	f := newRealFixture(t)
	store := newRecorder(t)
	w, _ := f.watchReal(store, Config{})
	f.cron("stuck", fakelet.Plan{For: fakelet.Forever}, func(c *wfv1.CronWorkflow) {
		c.Annotations = map[string]string{AnnotationMaxRuntime: (2 * period).String()}
		c.Spec.ConcurrencyPolicy = wfv1.ForbidConcurrent
	})
	key := state.Key{Namespace: f.ns, Name: "stuck"}
	j := waitJobReal(t, store, key, "the run to be Stuck", func(j state.Job) bool { return j.Failing() })
	if j.LastPhase != api.PhaseStuck || j.ConsecutiveFailures != 1 {
		t.Fatalf("job %+v, want one Stuck run", j)
	}
	// Ticks go by, skipped under Forbid; passes go by.
	stuckAt := time.Now()
	realWait(t, "three more ticks", func() (bool, string) { return time.Since(stuckAt) > 3*period, "" })
	settle(w)
	if j, _ := store.Get(context.Background(), key); j.ConsecutiveFailures != 1 || j.LastPhase != api.PhaseStuck {
		t.Fatalf("later: job %+v, want still one Stuck run", j)
	}
	f.patchCron("stuck", `{"spec":{"suspend":true}}`)
	runs := f.workflows("stuck")
	if len(runs) != 1 {
		t.Fatalf("%d runs, want the one stuck", len(runs))
	}
	if _, err := f.argo.ArgoprojV1alpha1().Workflows(f.ns).Patch(context.Background(), runs[0].Name, types.MergePatchType, []byte(`{"spec":{"shutdown":"Terminate"}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	j = waitJobReal(t, store, key, "the run's own result", func(j state.Job) bool { return j.LastPhase == api.PhaseFailed })
	if j.ConsecutiveFailures != 1 || j.LastUID != string(runs[0].UID) {
		t.Fatalf("job %+v, want the stuck run, failed, counted once", j)
	}
}

// TestRealTemplateDeletedAfterScheduling: a CronWorkflow runs its
// WorkflowTemplate; the template is deleted; at its next tick the controller
// writes a SpecError condition and creates nothing, at that tick and each
// one after (writing the CronWorkflow only the first time). Each tick from
// then on is one SpecError with the controller's message, none Missed.
func TestRealTemplateDeletedAfterScheduling(t *testing.T) {
	t.Parallel()
	f := newRealFixture(t)
	store := newRecorder(t)
	w, _ := f.watchReal(store, Config{})
	c := fakelet.Container("main", fakelet.Plan{})
	kubetest.Create(t, f.env, f.ns, &wfv1.WorkflowTemplate{
		ObjectMeta: metav1.ObjectMeta{Name: "etl"},
		Spec:       wfv1.WorkflowSpec{Entrypoint: "main", Templates: []wfv1.Template{{Name: "main", Container: &c}}},
	})
	kubetest.Create(t, f.env, f.ns, &wfv1.CronWorkflow{
		ObjectMeta: metav1.ObjectMeta{Name: "etl"},
		Spec: wfv1.CronWorkflowSpec{
			Schedules:    []string{every},
			WorkflowSpec: wfv1.WorkflowSpec{WorkflowTemplateRef: &wfv1.WorkflowTemplateRef{Name: "etl"}},
		},
	})
	key := state.Key{Namespace: f.ns, Name: "etl"}
	waitJobReal(t, store, key, "a successful run", func(j state.Job) bool { return j.LastPhase == api.PhaseSucceeded })
	// Once the controller has counted the run too, its status holds still:
	// it writes the SpecError condition at the first refused tick and never
	// again (a refusal that changes nothing is a patch the API server
	// drops), so the later ticks leave no trace on the CronWorkflow.
	f.waitCron("etl", "the controller to count the run", func(c *wfv1.CronWorkflow) bool {
		return c.Status.Succeeded >= 1 && len(c.Status.Active) == 0
	})
	if err := f.argo.ArgoprojV1alpha1().WorkflowTemplates(f.ns).Delete(context.Background(), "etl", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	cwf := f.waitCron("etl", "the controller's SpecError condition", func(c *wfv1.CronWorkflow) bool {
		return slices.ContainsFunc(c.Status.Conditions, func(c wfv1.Condition) bool { return c.Type == wfv1.ConditionTypeSpecError })
	})
	var message string
	for _, c := range cwf.Status.Conditions {
		if c.Type == wfv1.ConditionTypeSpecError {
			message = c.Message
		}
	}
	j := waitJobReal(t, store, key, "the SpecError ticks", func(j state.Job) bool { return j.ConsecutiveFailures >= 4 })
	if j.LastPhase != api.PhaseSpecError || len(j.LastFailures) != 1 || j.LastFailures[0].Message != message {
		t.Fatalf("job %+v, want SpecError with the controller's message %q", j, message)
	}
	f.patchCron("etl", `{"spec":{"suspend":true}}`)
	settle(w)
	j, _ = store.Get(context.Background(), key)
	counted := store.results("etl")
	ticks := map[string]bool{}
	for _, r := range counted {
		if r.Phase != api.PhaseSucceeded {
			ticks[r.WorkflowName] = true
		}
	}
	if got := store.phases("etl"); got[api.PhaseMissed] > 0 || got[api.PhaseSpecError] != j.ConsecutiveFailures || len(ticks) != j.ConsecutiveFailures {
		t.Fatalf("counted %v for %d ticks, job %+v: want one SpecError per tick, none Missed", got, len(ticks), j)
	}
}

// TestRealInvalidFromCreation: the controller refuses a CronWorkflow whose
// WorkflowTemplate does not exist when it is added: it logs it, never
// schedules it and writes no condition. The watcher reports it at once,
// with Argo's own validation message, then one failure per tick.
func TestRealInvalidFromCreation(t *testing.T) {
	t.Parallel()
	f := newRealFixture(t)
	store := newRecorder(t)
	f.watchReal(store, Config{MissedGrace: time.Hour}) // no tick is Missed here
	created := time.Now()
	kubetest.Create(t, f.env, f.ns, &wfv1.CronWorkflow{
		ObjectMeta: metav1.ObjectMeta{Name: "invalid"},
		Spec: wfv1.CronWorkflowSpec{
			Schedules:    []string{every},
			WorkflowSpec: wfv1.WorkflowSpec{WorkflowTemplateRef: &wfv1.WorkflowTemplateRef{Name: "missing"}},
		},
	})
	key := state.Key{Namespace: f.ns, Name: "invalid"}
	j := waitJobReal(t, store, key, "the invalid CronWorkflow to fail", func(j state.Job) bool { return j.Failing() })
	t.Logf("reported %s after its creation", time.Since(created).Round(time.Millisecond))
	if j.LastPhase != api.PhaseSpecError || len(j.LastFailures) != 1 || !strings.Contains(j.LastFailures[0].Message, `workflowtemplates.argoproj.io "missing" not found`) {
		t.Fatalf("job %+v, want SpecError with Argo's message", j)
	}
	// What the controller did meanwhile: ticks passed, nothing ran, no
	// condition was written (so only validating it says why).
	j = waitJobReal(t, store, key, "two more ticks", func(j state.Job) bool { return j.ConsecutiveFailures >= 3 })
	if cwf := f.getCron("invalid"); len(cwf.Status.Conditions) > 0 || cwf.Status.LastScheduledTime != nil {
		t.Errorf("the controller wrote status %+v: the scenario assumes it writes none", cwf.Status)
	}
	if runs := f.workflows("invalid"); len(runs) > 0 {
		t.Errorf("%d runs of an invalid CronWorkflow", len(runs))
	}
	if got := store.phases("invalid"); got[api.PhaseSpecError] != j.ConsecutiveFailures || len(got) != 1 {
		t.Errorf("counted %v, job %+v: want only SpecError, one per tick", got, j)
	}
}

// denyWorkflows makes the API server refuse to create Workflows in
// namespace (only those of CronWorkflow cron, if not ""): a
// ValidatingAdmissionPolicy, which works on a bare API server (no webhook
// to run). It returns once a (dry-run) create is refused, with
// a function that removes the policy and returns once creates pass again.
func (f *realFixture) denyWorkflows(message, cron string) (allow func()) {
	f.t.Helper()
	ctx := context.Background()
	adm := f.env.Clientset.AdmissionregistrationV1()
	name := "deny-workflows-" + f.ns
	_, err := adm.ValidatingAdmissionPolicies().Create(ctx, &admissionv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: new(admissionv1.Fail),
			MatchConstraints: &admissionv1.MatchResources{ResourceRules: []admissionv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionv1.RuleWithOperations{
					Operations: []admissionv1.OperationType{admissionv1.Create},
					Rule:       admissionv1.Rule{APIGroups: []string{"argoproj.io"}, APIVersions: []string{"*"}, Resources: []string{"workflows"}},
				},
			}}},
			Validations: []admissionv1.Validation{{Expression: "false", Message: message}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	match := &admissionv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
		MatchLabels: map[string]string{"kubernetes.io/metadata.name": f.ns},
	}}
	probe := &wfv1.Workflow{ObjectMeta: metav1.ObjectMeta{GenerateName: "probe-"}}
	if cron != "" {
		match.ObjectSelector = &metav1.LabelSelector{MatchLabels: map[string]string{common.LabelKeyCronWorkflow: cron}}
		probe.Labels = map[string]string{common.LabelKeyCronWorkflow: cron}
	}
	_, err = adm.ValidatingAdmissionPolicyBindings().Create(ctx, &admissionv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: admissionv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        name,
			ValidationActions: []admissionv1.ValidationAction{admissionv1.Deny},
			MatchResources:    match,
		},
	}, metav1.CreateOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	remove := func() {
		_ = adm.ValidatingAdmissionPolicyBindings().Delete(context.Background(), name, metav1.DeleteOptions{})
		_ = adm.ValidatingAdmissionPolicies().Delete(context.Background(), name, metav1.DeleteOptions{})
	}
	f.t.Cleanup(remove)
	c := fakelet.Container("main", fakelet.Plan{})
	probe.Spec = wfv1.WorkflowSpec{Entrypoint: "main", Templates: []wfv1.Template{{Name: "main", Container: &c}}}
	refused := func() (bool, string) {
		_, err := f.argo.ArgoprojV1alpha1().Workflows(f.ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err != nil && strings.Contains(err.Error(), message), fmt.Sprint(err)
	}
	realWait(f.t, "the policy to refuse Workflows", refused)
	return func() {
		f.t.Helper()
		remove()
		realWait(f.t, "the policy to go", func() (bool, string) { ok, s := refused(); return !ok, s })
	}
}

// TestRealSubmissionErrorTenTicksInARow: the API server refuses every run
// (an admission policy); at each tick the controller writes its
// SubmissionError condition. Each tick is one failure with the controller's
// message, and after more ticks than the job remembers runs (8) and than a
// pass looks at (10) the count is still exactly the controller's own: when
// the policy goes and a run succeeds, the streak it ends holds as many
// failures as the controller counted.
func TestRealSubmissionErrorTenTicksInARow(t *testing.T) {
	t.Parallel()
	f := newRealFixture(t)
	allow := f.denyWorkflows("workflows are frozen here", "")
	store := newRecorder(t)
	w, _ := f.watchReal(store, Config{})
	f.cron("frozen", fakelet.Plan{}, nil)
	key := state.Key{Namespace: f.ns, Name: "frozen"}
	j := waitJobReal(t, store, key, "a SubmissionError", func(j state.Job) bool { return j.Failing() })
	if j.LastPhase != api.PhaseSubmissionError || len(j.LastFailures) != 1 || !strings.Contains(j.LastFailures[0].Message, "workflows are frozen here") {
		t.Fatalf("job %+v, want SubmissionError with the policy's message", j)
	}
	f.waitCron("frozen", "11 refused ticks", func(c *wfv1.CronWorkflow) bool { return c.Status.Failed >= 11 })
	allow()
	j = waitJobReal(t, store, key, "a run to succeed", func(j state.Job) bool { return !j.Failing() && j.LastStreak != nil })
	settle(w)
	cwf := f.waitCron("frozen", "the controller to count the success", func(c *wfv1.CronWorkflow) bool { return c.Status.Succeeded > 0 })
	if j.LastStreak.Failures != int(cwf.Status.Failed) {
		t.Fatalf("the streak counted %d failures; the controller %d (and %d runs succeeded)", j.LastStreak.Failures, cwf.Status.Failed, cwf.Status.Succeeded)
	}
	if got := store.phases("frozen"); len(got) != 2 || got[api.PhaseSubmissionError] != j.LastStreak.Failures {
		t.Errorf("counted %v, want only SubmissionErrors, then success", got)
	}
}

// TestRealSuspendAndResume: ticks of a suspended CronWorkflow are not
// Missed, during the suspension or after it is resumed.
func TestRealSuspendAndResume(t *testing.T) {
	t.Parallel()
	f := newRealFixture(t)
	store := newRecorder(t)
	w, _ := f.watchReal(store, Config{})
	f.cron("pausing", fakelet.Plan{ExitCode: 1}, func(c *wfv1.CronWorkflow) {
		c.Spec.ConcurrencyPolicy = wfv1.ForbidConcurrent
		c.Spec.FailedJobsHistoryLimit = new(int32(10))
	})
	f.waitCron("pausing", "a failed run", func(c *wfv1.CronWorkflow) bool { return c.Status.Failed >= 1 })
	cwf := f.suspendAndSettle("pausing", 0)
	suspended := time.Now()
	checkExact(t, w, store, cwf)
	// Suspended for longer than the grace of several ticks.
	realWait(t, "ticks past their grace", func() (bool, string) { return time.Since(suspended) > 3*period+3*period, "" })
	checkExact(t, w, store, f.getCron("pausing"))

	f.patchCron("pausing", `{"spec":{"suspend":false}}`)
	before := cwf.Status.Failed
	f.waitCron("pausing", "two more failed runs", func(c *wfv1.CronWorkflow) bool { return c.Status.Failed >= before+2 })
	cwf = f.suspendAndSettle("pausing", 0)
	checkExact(t, w, store, cwf)
	if got := store.phases("pausing"); len(got) != 1 || got[api.PhaseFailed] == 0 {
		t.Errorf("counted %v, want only Failed runs", got)
	}
}

// TestRealSuspendJustAfterARefusal: the controller refuses a tick while no
// watcher looks (stopped, or between passes), and the CronWorkflow is
// suspended before one does. The refused tick counts all the same: the
// suspend (a change of the spec) does not undo what the controller
// attempted.
func TestRealSuspendJustAfterARefusal(t *testing.T) {
	t.Parallel()
	f := newRealFixture(t)
	f.denyWorkflows("runs are refused", "paused")
	store := newRecorder(t)
	key := state.Key{Namespace: f.ns, Name: "paused"}
	_, stop := f.watchReal(store, Config{})
	f.cron("paused", fakelet.Plan{}, func(c *wfv1.CronWorkflow) { c.Spec.ConcurrencyPolicy = wfv1.ForbidConcurrent })
	waitJobReal(t, store, key, "a refused tick", func(j state.Job) bool { return j.LastPhase == api.PhaseSubmissionError })
	stop()
	seen, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	refused := f.getCron("paused").Status.Failed
	f.waitCron("paused", "a refusal no watcher sees", func(c *wfv1.CronWorkflow) bool { return c.Status.Failed > refused })
	f.patchCron("paused", `{"spec":{"suspend":true}}`)
	w, _ := f.watchReal(store, Config{})
	settle(w)
	j, err := store.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	cwf := f.getCron("paused")
	got := store.phases("paused")
	t.Logf("the controller refused %d runs; counted %v; before the suspend the watcher had counted up to %s", cwf.Status.Failed, got, seen.LastWorkflow)
	var first, last time.Time
	counted := map[string]int{}
	for _, r := range store.results("paused") {
		tick, err := time.Parse(time.RFC3339, r.ScheduledTime)
		if err != nil {
			t.Fatalf("%s with no tick: %v", r.WorkflowName, err)
		}
		if first.IsZero() {
			first = tick
		}
		last = tick
		counted[r.WorkflowName]++
	}
	if j.LastPhase != api.PhaseSubmissionError || j.LastWorkflow == seen.LastWorkflow {
		t.Fatalf("job %+v: the refusal made while no watcher looked, just before the suspend, was not counted", j)
	}
	ticks := ticksOf(t, cwf, last)
	ticks = ticks[slices.IndexFunc(ticks, func(tick time.Time) bool { return !tick.Before(first) }):]
	for _, tick := range ticks {
		if name := runName("paused", tick); counted[name] != 1 {
			t.Errorf("tick %s counted %d times, want once", tick.UTC().Format(time.RFC3339), counted[name])
		}
	}
	if j.ConsecutiveFailures != len(ticks) || got[api.PhaseSubmissionError] > int(cwf.Status.Failed) {
		t.Errorf("%d failures in a row, counted %v, for the %d ticks from %s to %s; the controller refused %d",
			j.ConsecutiveFailures, got, len(ticks), first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339), cwf.Status.Failed)
	}
}

// TestRealFailedHistoryLimits: with failedJobsHistoryLimit 0 the controller
// deletes each failed run at its next sync; with 1, each one as the next
// fails. Each failed run is counted once all the same, from the watch.
func TestRealFailedHistoryLimits(t *testing.T) {
	t.Parallel()
	f := newRealFixture(t)
	store := newRecorder(t)
	w, _ := f.watchReal(store, Config{})
	for _, keep := range []int32{0, 1} {
		f.cron(fmt.Sprintf("keep%d", keep), fakelet.Plan{ExitCode: 2}, func(c *wfv1.CronWorkflow) {
			c.Spec.ConcurrencyPolicy = wfv1.ForbidConcurrent
			c.Spec.FailedJobsHistoryLimit = new(keep)
		})
	}
	for _, keep := range []int{0, 1} {
		name := fmt.Sprintf("keep%d", keep)
		f.waitCron(name, "3 failed runs", func(c *wfv1.CronWorkflow) bool { return c.Status.Failed >= 3 })
		cwf := f.suspendAndSettle(name, 0)
		checkExact(t, w, store, cwf)
		if got := store.phases(name); len(got) != 1 || got[api.PhaseFailed] != int(cwf.Status.Failed) {
			t.Errorf("%s: counted %v, want %d Failed runs", name, got, cwf.Status.Failed)
		}
		f.waitCron(name, "the history limit", func(*wfv1.CronWorkflow) bool { return len(f.workflows(name)) == keep })
	}
}

// TestRealDeletedWhileTheWatcherIsDown: a CronWorkflow is deleted while
// batchlatch is stopped; when the watcher starts again its failing job is
// forgotten (after --forget-after): kept for the alarm to close its
// incident, its streak ended.
func TestRealDeletedWhileTheWatcherIsDown(t *testing.T) {
	t.Parallel()
	f := newRealFixture(t)
	store := newRecorder(t)
	_, stop := f.watchReal(store, Config{})
	f.cron("gone", fakelet.Plan{ExitCode: 1}, func(c *wfv1.CronWorkflow) { c.Spec.ConcurrencyPolicy = wfv1.ForbidConcurrent })
	key := state.Key{Namespace: f.ns, Name: "gone"}
	waitJobReal(t, store, key, "a failed run", func(j state.Job) bool { return j.Failing() })
	stop()
	if err := f.argo.ArgoprojV1alpha1().CronWorkflows(f.ns).Delete(context.Background(), "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.watchReal(store, Config{ForgetAfter: time.Second})
	realWait(t, "the job to be forgotten", func() (bool, string) {
		j, err := store.Get(context.Background(), key)
		return err == nil && j.Forgotten() && !j.Failing(), fmt.Sprintf("job %+v (%v)", j, err)
	})
}

// callbackBody is the exit handler's body of examples/cronworkflow.yaml.
const callbackBody = `{
  "namespace": "{{workflow.namespace}}",
  "workflowName": "{{workflow.name}}",
  "uid": "{{workflow.uid}}",
  "cronWorkflow": "{{workflow.labels.workflows.argoproj.io/cron-workflow}}",
  "phase": "{{workflow.status}}",
  "scheduledTime": "{{workflow.scheduledTime}}",
  "createdAt": "{{workflow.creationTimestamp}}",
  "durationSeconds": {{workflow.duration}},
  "failures": {{workflow.failures}},
  "labels": {{workflow.labels.json}},
  "annotations": {{workflow.annotations.json}}
}`

// TestRealFailuresThenASuccessThroughTheExitHandler: the whole path a user
// runs. Each run's exit handler is Argo's HTTP template, run by Argo's own
// agent (through the fakelet), posting the run's result to a batchlatch
// server; the watcher watches too. The runs fail, then the job is fixed and
// a run succeeds: the streak ends, with exactly one recovery, and counts
// each failed run once although both sources reported it.
func TestRealFailuresThenASuccessThroughTheExitHandler(t *testing.T) {
	t.Parallel()
	f := newRealFixture(t)
	kubetest.ArgoServiceAccount(t, f.env, f.ns, "runner")
	store := newRecorder(t)
	const token = "s3cret"
	reg := prometheus.NewRegistry()
	handler := server.NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), store, kickNothing{}, reg, server.NewMetrics(reg), server.Config{Token: token})
	var mu sync.Mutex
	var callbacks []string // "<workflow> <phase> <status code>"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, r)
		var got struct{ WorkflowName, Phase string }
		_ = json.Unmarshal(body, &got)
		mu.Lock()
		callbacks = append(callbacks, fmt.Sprintf("%s %s %d", got.WorkflowName, got.Phase, rec.Code))
		mu.Unlock()
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	callbacksSeen := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(callbacks)
	}
	callbacksWith := func(phase string) int {
		n := 0
		for _, c := range callbacksSeen() {
			if strings.HasSuffix(c, " "+phase+" 200") {
				n++
			}
		}
		return n
	}

	w, _ := f.watchReal(store, Config{})
	f.cron("notifies", fakelet.Plan{ExitCode: 1}, func(c *wfv1.CronWorkflow) {
		c.Spec.ConcurrencyPolicy = wfv1.ForbidConcurrent
		c.Spec.FailedJobsHistoryLimit = new(int32(10))
		spec := &c.Spec.WorkflowSpec
		spec.ServiceAccountName = "runner"
		spec.OnExit = "notify"
		spec.Templates = append(spec.Templates, wfv1.Template{Name: "notify", HTTP: &wfv1.HTTP{
			Method: http.MethodPost,
			URL:    srv.URL + "/api/v1/results",
			Headers: wfv1.HTTPHeaders{
				{Name: "Content-Type", Value: "application/json"},
				{Name: "Authorization", Value: "Bearer " + token},
			},
			Body:           callbackBody,
			TimeoutSeconds: new(int64(20)),
		}})
	})
	realWait(t, "two failed runs' callbacks", func() (bool, string) {
		return callbacksWith("Failed") >= 2, fmt.Sprintf("%d callbacks", len(callbacksSeen()))
	})
	f.setExitCode("notifies", 0)
	realWait(t, "a succeeded run's callback", func() (bool, string) {
		return callbacksWith("Succeeded") >= 1, fmt.Sprintf("%d callbacks", len(callbacksSeen()))
	})
	cwf := f.suspendAndSettle("notifies", 0)
	settle(w)
	key := state.Key{Namespace: f.ns, Name: "notifies"}
	j, err := store.Get(context.Background(), key)
	if err != nil || j.Failing() || j.LastStreak == nil || j.LastStreak.Failures != int(cwf.Status.Failed) {
		t.Fatalf("job %+v (%v): want recovered after the controller's %d failed runs", j, err, cwf.Status.Failed)
	}
	recoveries := 0
	for _, r := range store.results("notifies") {
		if r.Transition == state.Recovered {
			recoveries++
		}
	}
	if recoveries != 1 {
		t.Errorf("%d recoveries, want exactly one", recoveries)
	}
}

type kickNothing struct{}

func (kickNothing) Kick() {}

// TestRealNewInstallOverALongHistory: the real controller made a history of
// runs (successes, failures, successes, failures); batchlatch is installed
// afterwards. Its first pass records the job as that history decides it
// (the latest streak, and the one before), in order, with a bounded number
// of reads and writes, and announces nothing: all of it ended before the
// watcher started.
func TestRealNewInstallOverALongHistory(t *testing.T) {
	t.Parallel()
	f := newRealFixture(t)
	f.cron("history", fakelet.Plan{}, func(c *wfv1.CronWorkflow) {
		c.Spec.ConcurrencyPolicy = wfv1.ForbidConcurrent
		c.Spec.FailedJobsHistoryLimit = new(int32(100))
		c.Spec.SuccessfulJobsHistoryLimit = new(int32(100))
	})
	// S S F F F S S F F: each phase until the controller counted it.
	var succeeded, failed int64
	for _, step := range []struct {
		code int
		runs int64
	}{{0, 2}, {1, 3}, {0, 2}, {1, 2}} {
		f.setExitCode("history", step.code)
		if step.code == 0 {
			succeeded += step.runs
		} else {
			failed += step.runs
		}
		f.waitCron("history", fmt.Sprintf("%d succeeded and %d failed runs", succeeded, failed), func(c *wfv1.CronWorkflow) bool {
			return c.Status.Succeeded >= succeeded && c.Status.Failed >= failed
		})
		cwf := f.getCron("history")
		succeeded, failed = cwf.Status.Succeeded, cwf.Status.Failed // a run in flight ran the earlier plan
	}
	f.suspendAndSettle("history", 0)

	// What the history decides, from the runs themselves.
	runs := f.workflows("history")
	slices.SortFunc(runs, func(a, b wfv1.Workflow) int {
		return strings.Compare(a.Annotations[common.AnnotationKeyCronWfScheduledTime], b.Annotations[common.AnnotationKeyCronWfScheduledTime])
	})
	var streak, before int
	for _, wf := range runs {
		switch {
		case wf.Status.Phase == wfv1.WorkflowSucceeded && streak > 0:
			before, streak = streak, 0
		case wf.Status.Phase != wfv1.WorkflowSucceeded:
			streak++
		}
	}
	if len(runs) <= readsPerJob+2 || streak == 0 || before == 0 {
		t.Fatalf("history of %d runs, ending with %d failures after a streak of %d: not the history this is about", len(runs), streak, before)
	}

	var traffic kubetest.Traffic
	counted, err := versioned.NewForConfig(traffic.Count(f.env.RESTConfig()))
	if err != nil {
		t.Fatal(err)
	}
	store := &storetest.CountingStore{Store: fileStore(t)}
	var kicks atomic.Int64
	f.watchRealWith(counted, store, Config{}, Hooks{Kick: func() { kicks.Add(1) }})
	j, err := store.Get(context.Background(), state.Key{Namespace: f.ns, Name: "history"})
	if err != nil || j.ConsecutiveFailures != streak || j.LastStreak == nil || j.LastStreak.Failures != before {
		t.Fatalf("job %+v (%v), want %d failures in a row after a streak of %d", j, err, streak, before)
	}
	// The informers' lists and watches of CronWorkflows and
	// WorkflowTemplates, and at most readsPerJob Workflows read in full.
	if n := traffic.Requests.Load(); n > 4+readsPerJob {
		t.Errorf("%d requests to the API server for %d runs", n, len(runs))
	}
	if n := store.Writes.Load(); n > 8 {
		t.Errorf("%d writes for %d runs: the history was not collapsed", n, len(runs))
	}
	if n := kicks.Load(); n != 0 {
		t.Errorf("%d kicks: history was announced as news", n)
	}
}

// TestRealControllerDownForSeveralTicks: the controller is stopped for
// several ticks, then started again. Not parallel: the other scenarios
// need the controller up.
//   - "healthy" (no startingDeadlineSeconds): the controller never runs
//     the ticks it slept through: they are Missed, then the next run's
//     success ends the streak.
//   - "catchup" (startingDeadlineSeconds 60): back up, the controller runs
//     the latest tick it missed; ticks decided before that are Missed, and
//     the run's success ends the streak.
//   - "refused" (an admission policy refuses its runs: SubmissionError at
//     each tick the controller attempts): the ticks the controller never
//     attempted are Missed, not blamed on the condition it wrote before it
//     stopped or after it came back.
func TestRealControllerDownForSeveralTicks(t *testing.T) {
	f := newRealFixture(t)
	allow := f.denyWorkflows("runs are refused", "refused")
	store := newRecorder(t)
	grace := 3 * period
	f.watchReal(store, Config{MissedGrace: grace})
	forbid := func(c *wfv1.CronWorkflow) { c.Spec.ConcurrencyPolicy = wfv1.ForbidConcurrent }
	f.cron("healthy", fakelet.Plan{}, forbid)
	f.cron("catchup", fakelet.Plan{}, func(c *wfv1.CronWorkflow) {
		forbid(c)
		c.Spec.StartingDeadlineSeconds = new(int64(60))
	})
	f.cron("refused", fakelet.Plan{}, forbid)
	for _, name := range []string{"healthy", "catchup", "refused"} {
		f.waitCron(name, "two ticks", func(c *wfv1.CronWorkflow) bool { return c.Status.Succeeded+c.Status.Failed >= 2 })
	}

	stopped := time.Now()
	f.controller.Stop(t)
	// Long enough for several ticks to pass their grace while it is down.
	realWait(t, "the outage", func() (bool, string) { return time.Since(stopped) > 4*period+grace, "" })
	restarted := time.Now()
	f.controller.Start(t)
	before := map[string]int64{}
	for _, name := range []string{"healthy", "catchup", "refused"} {
		c := f.getCron(name)
		before[name] = c.Status.Succeeded + c.Status.Failed
	}
	for _, name := range []string{"healthy", "catchup", "refused"} {
		f.waitCron(name, "two more ticks", func(c *wfv1.CronWorkflow) bool { return c.Status.Succeeded+c.Status.Failed >= before[name]+2 })
	}
	t.Logf("controller down from %s to %s", stopped.Format(time.StampMilli), restarted.Format(time.StampMilli))

	// A tick is Missed only if the controller was down at it (or went
	// down before it could write the tick's condition: the tick just
	// before the outage), or had not yet scheduled the CronWorkflow again:
	// back up, it reads it first (on a busy machine, seconds after the
	// process started) and "@every" ticks then count from that read, so a
	// tick of the watcher's grid up to a period after the start is one the
	// controller may never attempt (seen under load: restarted at :38.3,
	// the tick at :40 not attempted, the next at :45 refused).
	down := func(r recorded, upTo time.Time) bool {
		tick, err := time.Parse(time.RFC3339, r.ScheduledTime)
		return err == nil && tick.After(stopped.Add(-period)) && !tick.After(upTo)
	}
	for _, name := range []string{"healthy", "catchup", "refused"} {
		missed := 0
		for _, r := range store.results(name) {
			t.Logf("%s: %s %s at %s", name, r.WorkflowName, r.Phase, r.ScheduledTime)
			switch {
			case r.Phase == api.PhaseMissed && !down(r, restarted.Add(period)):
				t.Errorf("%s: tick %s Missed while the controller was up", name, r.ScheduledTime)
			case r.Phase == api.PhaseMissed:
				missed++
			case r.Phase == api.PhaseSubmissionError && down(r, restarted) && r.ScheduledTime > stopped.UTC().Format(time.RFC3339):
				t.Errorf("%s: tick %s, which the controller never attempted, blamed on its condition", name, r.ScheduledTime)
			}
		}
		if missed == 0 {
			t.Errorf("%s: no tick Missed during the outage", name)
		}
	}
	// The catch-up run: made after the restart for the latest tick the
	// controller finds it missed, on the grid of its last scheduled time,
	// when it first reads the CronWorkflow (the history limit may have
	// deleted the run since; the watcher saw it). On a busy machine that
	// read comes a second or more after the process started, and the tick
	// may fall in between: a tick up to a period after the start is one no
	// scheduling of the restarted controller makes (its first comes a
	// whole period after it read the CronWorkflow).
	var caughtUp bool
	for _, r := range store.results("catchup") {
		tick, err := time.Parse(time.RFC3339, r.ScheduledTime)
		caughtUp = caughtUp || err == nil && r.Phase == api.PhaseSucceeded && tick.After(stopped) && tick.Before(restarted.Add(period))
	}
	if !caughtUp {
		t.Errorf("no catch-up run of catchup: the scenario assumes the controller runs the latest missed tick")
	}
	for _, name := range []string{"healthy", "catchup"} {
		j := waitJobReal(t, store, state.Key{Namespace: f.ns, Name: name}, name+" to recover", func(j state.Job) bool { return !j.Failing() && j.LastStreak != nil })
		if got := store.phases(name); j.LastStreak.Failures != got[api.PhaseMissed] {
			t.Errorf("%s: a streak of %d failures, counted %v", name, j.LastStreak.Failures, got)
		}
	}
	// The refused runs are let through: the streak that ends holds every
	// tick from the first refusal to the last failure, each once: those the
	// controller refused (its own count) as SubmissionError, those it slept
	// through Missed, including the ones still within their grace when it
	// came back. (Up to the last failure, not to the success: "@every"
	// ticks from when the controller last scheduled the CronWorkflow, so
	// its grid can shift from the one the watcher reads off the creation,
	// and a run of a later tick covers the ticks before it.)
	allow()
	j := waitJobReal(t, store, state.Key{Namespace: f.ns, Name: "refused"}, "refused to recover", func(j state.Job) bool { return !j.Failing() && j.LastStreak != nil })
	cwf := f.waitCron("refused", "the controller to count the success", func(c *wfv1.CronWorkflow) bool { return c.Status.Succeeded > 0 })
	got := store.phases("refused")
	t.Logf("refused: the controller refused %d runs, the watcher counted %v", cwf.Status.Failed, got)
	var first, last time.Time
	counted := map[string]int{}
	for _, r := range store.results("refused") {
		tick, err := time.Parse(time.RFC3339, r.ScheduledTime)
		if err != nil {
			t.Fatalf("refused: %s with no tick: %v", r.WorkflowName, err)
		}
		if r.Phase != api.PhaseSucceeded {
			if first.IsZero() {
				first = tick
			}
			last = tick
		}
		counted[r.WorkflowName]++
	}
	if first.IsZero() {
		t.Fatalf("refused: no failure counted: %v", got)
	}
	ticks := ticksOf(t, cwf, last)
	ticks = ticks[slices.IndexFunc(ticks, func(tick time.Time) bool { return !tick.Before(first) }):]
	for _, tick := range ticks {
		if name := runName("refused", tick); counted[name] != 1 {
			t.Errorf("refused: tick %s counted %d times, want once", tick.UTC().Format(time.RFC3339), counted[name])
		}
	}
	if j.LastStreak.Failures != len(ticks) || got[api.PhaseSubmissionError] != int(cwf.Status.Failed) || got[api.PhaseMissed] != len(ticks)-int(cwf.Status.Failed) {
		t.Errorf("refused: a streak of %d failures, counted %v, for the %d ticks from %s to %s, %d of them refused by the controller: want every tick once",
			j.LastStreak.Failures, got, len(ticks), first.UTC().Format(time.RFC3339), last.UTC().Format(time.RFC3339), cwf.Status.Failed)
	}
}

// TestRealDefaultGraceEveryMinuteControllerStopped: an every-minute
// CronWorkflow whose controller stops is reported at the default grace (10
// minutes, the flag's default), although 10 ticks (what a pass looks at)
// span less than the grace. Not parallel: it stops the controller.
//
// Waiting more than 10 real minutes would blow the suite's time budget, so
// while the controller is stopped the watcher runs on a clock ahead of real
// time, moved a minute at a time from 11 to 25 minutes after the
// CronWorkflow's creation: the watcher's decisions take their clock, and with
// the controller stopped nothing but time changes between those minutes.
// Each minute, every tick older than the grace is Missed, once.
func TestRealDefaultGraceEveryMinuteControllerStopped(t *testing.T) {
	f := newRealFixture(t)
	cwf := f.cron("minutely", fakelet.Plan{}, func(c *wfv1.CronWorkflow) { c.Spec.Schedules = []string{"* * * * *"} })
	f.controller.Stop(t)
	const grace = 10 * time.Minute
	clk := &clock{now: cwf.CreationTimestamp.Add(grace + time.Minute)}
	store := newRecorder(t)
	w, _ := f.watchReal(store, Config{MissedGrace: grace, Now: clk.Now})
	key := state.Key{Namespace: f.ns, Name: "minutely"}
	var want int
	for minute := 11; minute <= 25; minute++ {
		clk.Set(cwf.CreationTimestamp.Add(time.Duration(minute)*time.Minute + 30*time.Second))
		want = len(ticksOf(t, cwf, clk.Now().Add(-grace)))
		waitJobReal(t, store, key, fmt.Sprintf("minute %d: %d ticks Missed", minute, want), func(j state.Job) bool { return j.ConsecutiveFailures == want })
	}
	settle(w)
	j, err := store.Get(context.Background(), key)
	if err != nil || j.ConsecutiveFailures != want || want <= 10 || j.LastPhase != api.PhaseMissed {
		t.Fatalf("job %+v (%v), want %d (more than 10) Missed ticks", j, err, want)
	}
	if runs := f.workflows("minutely"); len(runs) > 0 {
		t.Fatalf("%d runs: the controller ran while stopped?", len(runs))
	}
}
