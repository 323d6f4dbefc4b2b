package cronjobwatch

// The scenarios of issue 20 against the real controllers: kube-controller-
// manager's CronJob, Job, TTL-after-finished and garbage-collector
// controllers make and end the Jobs, the fakelet plays their pods, and the
// watcher sees only what they wrote. Schedules tick every minute (the
// CronJob controller's resolution), so each scenario takes a few minutes of
// ticks: they run at the same time (TestRealControllers), each in its own
// namespace. The scenario that stops the controller runs alone, after them.

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/fakelet"
	"github.com/batchlatch/batchlatch/internal/kubetest"
	"github.com/batchlatch/batchlatch/internal/testwait"
	"github.com/batchlatch/batchlatch/state"
)

// realPatience bounds every wait on the real controllers: a tick is up to a
// minute away, a Job's pods are retried with back-off, and the machine may
// be very busy. It only matters when something never happens.
const realPatience = 5 * time.Minute

// eachMinute is the finest schedule the CronJob controller keeps (it
// schedules at most once a minute, even with @every).
const eachMinute = "* * * * *"

// realGrace is the missed grace of the scenarios that are not about missed
// ticks: long enough that a controller slowed down by a busy machine never
// looks like one that missed a tick.
const realGrace = 3 * time.Minute

// realEvery is how often the scenarios' watchers evaluate.
const realEvery = time.Second

// realFixture is a watched namespace of a cluster where the real
// controllers and the fakelet run.
type realFixture struct {
	*fixture
	env         *kubetest.Env
	controllers *kubetest.Process // kube-controller-manager
	store       *countingStore
}

func newRealFixture(t *testing.T) *realFixture {
	t.Helper()
	env := kubetest.Get(t)
	kcm := kubetest.StartKubeControllerManager(t, env)
	kubetest.StartFakelet(t, env)
	return &realFixture{fixture: newFixture(t), env: env, controllers: kcm, store: &countingStore{Store: fileStore(t)}}
}

// watchReal runs a watcher of f's namespace on f's store.
func (f *realFixture) watchReal(cfg Config, hooks Hooks) (*Watcher, func()) {
	f.t.Helper()
	if cfg.MissedGrace == 0 {
		cfg.MissedGrace = realGrace
	}
	cfg.EvaluateEvery = realEvery
	return f.watch(f.store, cfg, hooks)
}

// jobSpec is a Job of one pod played as plan, not retried.
func jobSpec(plan fakelet.Plan) batchv1.JobSpec {
	return batchv1.JobSpec{
		BackoffLimit: ptr[int32](0),
		Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{fakelet.Container("main", plan)},
		}},
	}
}

// realCronJob creates a CronJob whose Jobs are jobSpec(plan), keeping 10 of
// each kind (the tests read them); mutate changes it first. It is deleted
// when the test ends: its ticks would go on.
func (f *realFixture) realCronJob(name, sched string, plan fakelet.Plan, mutate func(*batchv1.CronJob)) *batchv1.CronJob {
	f.t.Helper()
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: batchv1.CronJobSpec{
			Schedule:                   sched,
			SuccessfulJobsHistoryLimit: ptr[int32](10),
			FailedJobsHistoryLimit:     ptr[int32](10),
			JobTemplate:                batchv1.JobTemplateSpec{Spec: jobSpec(plan)},
		},
	}
	if mutate != nil {
		mutate(cj)
	}
	created := kubetest.Create(f.t, f.env, f.ns, cj)
	f.t.Cleanup(func() {
		_ = f.env.Clientset.BatchV1().CronJobs(f.ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return created
}

// suspend stops cj's ticks, so that the Jobs the test reads are all there
// will be.
func (f *realFixture) suspend(cj *batchv1.CronJob) {
	f.t.Helper()
	f.patchCronJob(cj, `{"spec":{"suspend":true}}`)
}

func (f *realFixture) patchCronJob(cj *batchv1.CronJob, patch string) *batchv1.CronJob {
	f.t.Helper()
	patched, err := f.env.Clientset.BatchV1().CronJobs(f.ns).Patch(context.Background(), cj.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		f.t.Fatal(err)
	}
	return patched
}

// withPlan changes cj's Jobs to be played as plan from its next tick on
// (a user fixing the CronJob).
// The CronJob controller writes its status meanwhile (a new resourceVersion
// each time): read and update again on a conflict, as kubectl edit does.
func (f *realFixture) withPlan(cj *batchv1.CronJob, plan fakelet.Plan) *batchv1.CronJob {
	f.t.Helper()
	cronJobs := f.env.Clientset.BatchV1().CronJobs(f.ns)
	var updated *batchv1.CronJob
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		current, err := cronJobs.Get(context.Background(), cj.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		current.Spec.JobTemplate.Spec.Template.Spec.Containers = []corev1.Container{fakelet.Container("main", plan)}
		updated, err = cronJobs.Update(context.Background(), current, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		f.t.Fatalf("change the plan of %s: %v", cj.Name, err)
	}
	return updated
}

// eventually polls cond until it holds, failing the test after
// realPatience with cond's last description of what it saw.
func eventually(t *testing.T, what string, cond func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	testwait.Until(t, realPatience, what, cond)
}

// jobsOf lists cj's Jobs, oldest first.
func (f *realFixture) jobsOf(ctx context.Context, cj *batchv1.CronJob) ([]batchv1.Job, error) {
	list, err := f.env.Clientset.BatchV1().Jobs(f.ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []batchv1.Job
	for _, j := range list.Items {
		if ref := metav1.GetControllerOf(&j); ref != nil && ref.UID == cj.UID {
			out = append(out, j)
		}
	}
	slices.SortFunc(out, func(a, b batchv1.Job) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// waitJobs polls cj's Jobs until ok holds for them.
func (f *realFixture) waitJobs(cj *batchv1.CronJob, what string, ok func([]batchv1.Job) bool) []batchv1.Job {
	f.t.Helper()
	var jobs []batchv1.Job
	eventually(f.t, what, func(ctx context.Context) (bool, string, error) {
		var err error
		if jobs, err = f.jobsOf(ctx, cj); err != nil {
			return false, "", err
		}
		return ok(jobs), describeJobs(jobs), nil
	})
	return jobs
}

// waitGone polls until Job name is gone from the cluster.
func (f *realFixture) waitGone(name, what string) {
	f.t.Helper()
	eventually(f.t, what, func(ctx context.Context) (bool, string, error) {
		j, err := f.env.Clientset.BatchV1().Jobs(f.ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, "", err
		}
		return false, describeJobs([]batchv1.Job{*j}), nil
	})
}

// waitStored polls the store until ok holds for job key.
func (f *realFixture) waitStored(key state.Key, what string, ok func(state.Job) bool) state.Job {
	f.t.Helper()
	var job state.Job
	eventually(f.t, what, func(ctx context.Context) (bool, string, error) {
		var err error
		if job, err = f.store.Get(ctx, key); err != nil {
			return false, "", err
		}
		return ok(job), fmt.Sprintf("job %+v", job), nil
	})
	return job
}

// terminal is a Job's terminal condition (Complete or Failed), nil while it
// runs.
func terminal(j *batchv1.Job) *batchv1.JobCondition {
	for i, c := range j.Status.Conditions {
		if (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) && c.Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

func allEnded(jobs []batchv1.Job) bool {
	for i := range jobs {
		if terminal(&jobs[i]) == nil {
			return false
		}
	}
	return true
}

func describeJobs(jobs []batchv1.Job) string {
	var s []string
	for i := range jobs {
		state := "running"
		if c := terminal(&jobs[i]); c != nil {
			state = string(c.Type) + "/" + c.Reason
		}
		s = append(s, fmt.Sprintf("%s:%s(pods failed %d)", jobs[i].Name, state, jobs[i].Status.Failed))
	}
	return "jobs [" + strings.Join(s, " ") + "]"
}

// tickOf is the tick the CronJob controller made j for.
func tickOf(t *testing.T, j *batchv1.Job) time.Time {
	t.Helper()
	tick, err := time.Parse(time.RFC3339, j.Annotations[batchv1.CronJobScheduledTimestampAnnotation])
	if err != nil {
		t.Fatalf("Job %s: scheduled time: %v", j.Name, err)
	}
	return tick
}

// countingStore is a store that remembers every result recording counted
// (neither a duplicate nor stale), in order, and how many were recorded.
type countingStore struct {
	state.Store
	mu      sync.Mutex
	records int
	counted []api.Result
}

func (s *countingStore) Record(ctx context.Context, r api.Result, receivedAt time.Time) (state.Recorded, error) {
	rec, err := s.Store.Record(ctx, r, receivedAt)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.records++
	if err == nil && !rec.Outcome.Duplicate && !rec.Outcome.Stale {
		s.counted = append(s.counted, r)
	}
	return rec, err
}

// Counted returns the results that counted, in order.
func (s *countingStore) Counted() []api.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.counted)
}

// Records is how many results were recorded (counted or not).
func (s *countingStore) Records() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.records
}

func describeResults(rs []api.Result) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.WorkflowName+":"+string(r.Phase))
	}
	return "[" + strings.Join(s, " ") + "]"
}

// failedOnce checks that each of jobs counted exactly once, as a failed run
// of its name and uid, and nothing else counted.
func failedOnce(t *testing.T, counted []api.Result, jobs ...batchv1.Job) {
	t.Helper()
	if len(counted) != len(jobs) {
		t.Fatalf("counted %s, want each of %s once", describeResults(counted), describeJobs(jobs))
	}
	for i, j := range jobs {
		r := counted[i]
		if r.WorkflowName != j.Name || r.UID != string(j.UID) || r.Phase != api.PhaseFailed {
			t.Fatalf("counted %s, want each of %s once, failed", describeResults(counted), describeJobs(jobs))
		}
	}
}

// TestRealControllers runs the scenarios that share the controllers at the
// same time, each in its own namespace. They spend their time waiting for
// ticks, so they run in goroutines rather than with t.Parallel, which
// would run only -test.parallel (GOMAXPROCS: 2 here) of them at a time.
func TestRealControllers(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(*testing.T)
	}{
		{"ConcurrencyAllow", realConcurrencyAllow},
		{"ConcurrencyForbid", realConcurrencyForbid},
		{"ConcurrencyReplace", realConcurrencyReplace},
		{"BackoffLimitRetries", realBackoffLimitRetries},
		{"PodFailurePolicyFailsFast", realPodFailurePolicyFailsFast},
		{"TTLDeletesFinishedJobs", realTTLDeletesFinishedJobs},
		{"SuccessfulJobsHistoryLimitZero", realSuccessfulJobsHistoryLimitZero},
		{"ManualJobFromCronJob", realManualJobFromCronJob},
		{"CronJobDeletedWhileTheWatcherIsDown", realCronJobDeletedWhileTheWatcherIsDown},
		{"NewInstallOnALongHistory", realNewInstallOnALongHistory},
	}
	var wg sync.WaitGroup
	for _, s := range scenarios {
		wg.Go(func() { t.Run(s.name, s.run) }) // t.Run may be called from many goroutines
	}
	wg.Wait()
}

// Allow: a Job still running at the next tick runs beside the next tick's;
// each fails on its own and counts once.
func realConcurrencyAllow(t *testing.T) {
	f := newRealFixture(t)
	cj := f.realCronJob("allow", eachMinute, fakelet.Plan{For: 70 * time.Second, ExitCode: 1}, nil)
	w, _ := f.watchReal(Config{}, Hooks{})
	f.waitJobs(cj, "two Jobs", func(jobs []batchv1.Job) bool { return len(jobs) >= 2 })
	f.suspend(cj)
	jobs := f.waitJobs(cj, "the Jobs to fail", allEnded)
	if second, firstEnded := jobs[1].Status.StartTime, terminal(&jobs[0]).LastTransitionTime; second == nil || !second.Before(&firstEnded) {
		t.Fatalf("the Jobs did not overlap: %s started %v, %s ended %v", jobs[1].Name, second, jobs[0].Name, firstEnded)
	}
	key := keyOf(f.ns, cj.Name)
	f.waitStored(key, "every Job counted", func(j state.Job) bool { return j.ConsecutiveFailures >= len(jobs) })
	settle(w)
	if j, _ := f.store.Get(context.Background(), key); j.ConsecutiveFailures != len(jobs) || j.LastUID != string(jobs[len(jobs)-1].UID) {
		t.Fatalf("job %+v, want %d failed runs, the last %s", j, len(jobs), jobs[len(jobs)-1].Name)
	}
	failedOnce(t, f.store.Counted(), jobs...)
}

// Forbid: while a Job runs, the controller starts no other. A tick that
// passes meanwhile is skipped, but not the latest one: the controller
// starts that tick's Job (named after it) late, as soon as the running Job
// has ended. The first Job runs over two ticks; the first of them is past
// the grace while the Job still runs, and before the controller schedules a
// later tick (status.lastScheduleTime covers it from then on): the watcher
// evaluates it in that window and never counts it as missed, nor the
// delayed tick.
func realConcurrencyForbid(t *testing.T) {
	f := newRealFixture(t)
	const grace = 30 * time.Second
	cj := f.realCronJob("forbid", eachMinute, fakelet.Plan{For: 130 * time.Second, ExitCode: 1}, func(c *batchv1.CronJob) {
		c.Spec.ConcurrencyPolicy = batchv1.ForbidConcurrent
	})
	w, _ := f.watchReal(Config{MissedGrace: grace}, Hooks{})
	first := f.waitJobs(cj, "the first Job", func(jobs []batchv1.Job) bool { return len(jobs) >= 1 })[0]
	skipped := tickOf(t, &first).Add(time.Minute)
	eventually(t, "a tick to pass its grace while the first Job runs", func(context.Context) (bool, string, error) {
		return time.Now().After(skipped.Add(grace + 2*time.Second)), "", nil
	})
	settle(w) // now, in the window (the watcher's own passes ran in it too)
	jobs := f.waitJobs(cj, "the Job of a later tick", func(jobs []batchv1.Job) bool { return len(jobs) >= 2 })
	f.suspend(cj)
	second := jobs[1]
	delayed := tickOf(t, &second)
	if ended := terminal(&jobs[0]); delayed.Before(skipped.Add(time.Minute)) || ended == nil || second.CreationTimestamp.Before(&ended.LastTransitionTime) {
		t.Fatalf("want the controller to skip the tick %s and start a later tick's Job once the first ended: %s", skipped, describeJobs(jobs))
	}
	key := keyOf(f.ns, cj.Name)
	f.waitStored(key, "the first Job's failure", func(j state.Job) bool { return j.LastUID == string(first.UID) || j.ConsecutiveFailures > 1 })
	settle(w)
	counted := f.store.Counted()
	for _, r := range counted {
		if r.Phase == api.PhaseMissed {
			t.Fatalf("a tick Forbid skipped or delayed counted as missed: %s (%s)", describeResults(counted), describeJobs(jobs))
		}
	}
	if len(counted) == 0 || counted[0].UID != string(first.UID) {
		t.Fatalf("counted %s, want %s first", describeResults(counted), first.Name)
	}
}

// Replace: at the next tick the CronJob controller deletes the Job still
// running and starts the tick's own. The replaced run never succeeded: it
// counts as one failed run, when the watcher sees it deleted.
func realConcurrencyReplace(t *testing.T) {
	f := newRealFixture(t)
	cj := f.realCronJob("replace", eachMinute, fakelet.Plan{For: fakelet.Forever}, func(c *batchv1.CronJob) {
		c.Spec.ConcurrencyPolicy = batchv1.ReplaceConcurrent
	})
	w, _ := f.watchReal(Config{}, Hooks{})
	var replaced []batchv1.Job // in the order they ran
	f.waitJobs(cj, "two replacements", func(jobs []batchv1.Job) bool {
		for _, j := range jobs {
			if !slices.ContainsFunc(replaced, func(r batchv1.Job) bool { return r.UID == j.UID }) {
				replaced = append(replaced, j)
			}
		}
		return len(replaced) >= 3 && len(jobs) == 1
	})
	f.suspend(cj)
	running := replaced[len(replaced)-1]
	replaced = replaced[:len(replaced)-1]
	for _, j := range replaced {
		f.waitGone(j.Name, "the replaced Job "+j.Name+" to be gone")
	}
	key := keyOf(f.ns, cj.Name)
	f.waitStored(key, "the replaced Jobs counted", func(j state.Job) bool { return j.ConsecutiveFailures >= len(replaced) })
	settle(w)
	failedOnce(t, f.store.Counted(), replaced...)
	j, _ := f.store.Get(context.Background(), key)
	if j.ConsecutiveFailures != len(replaced) || len(j.LastFailures) != 1 || j.LastFailures[0].DisplayName != ReasonReplaced {
		t.Fatalf("job %+v, want %d failed runs, the last %s", j, len(replaced), ReasonReplaced)
	}
	if j.LastUID == string(running.UID) {
		t.Fatalf("the running Job %s counted: %+v", running.Name, j)
	}
}

// backoffLimit: the Job controller retries the failed pod twice; the run
// is the Job, so it fails once, with the Job's reason.
func realBackoffLimitRetries(t *testing.T) {
	f := newRealFixture(t)
	cj := f.realCronJob("retries", eachMinute, fakelet.Plan{For: time.Second, ExitCode: 1}, func(c *batchv1.CronJob) {
		c.Spec.JobTemplate.Spec.BackoffLimit = ptr[int32](2)
	})
	w, _ := f.watchReal(Config{}, Hooks{})
	f.waitJobs(cj, "a Job", func(jobs []batchv1.Job) bool { return len(jobs) >= 1 })
	f.suspend(cj)
	jobs := f.waitJobs(cj, "the Job to fail", allEnded)
	if c := terminal(&jobs[0]); c.Reason != batchv1.JobReasonBackoffLimitExceeded || jobs[0].Status.Failed != 3 {
		t.Fatalf("want a Job failed after 3 pods: %s", describeJobs(jobs))
	}
	key := keyOf(f.ns, cj.Name)
	f.waitStored(key, "the failure", state.Job.Failing)
	settle(w)
	failedOnce(t, f.store.Counted(), jobs...)
	if j, _ := f.store.Get(context.Background(), key); j.ConsecutiveFailures != 1 || j.LastFailures[0].DisplayName != batchv1.JobReasonBackoffLimitExceeded {
		t.Fatalf("job %+v", j)
	}
}

// A podFailurePolicy that fails the Job on exit code 42 ends it at the
// first pod, whatever its backoffLimit: one failed run, with the policy's
// reason.
func realPodFailurePolicyFailsFast(t *testing.T) {
	f := newRealFixture(t)
	cj := f.realCronJob("fails-fast", eachMinute, fakelet.Plan{For: time.Second, ExitCode: 42}, func(c *batchv1.CronJob) {
		c.Spec.JobTemplate.Spec.BackoffLimit = ptr[int32](6)
		c.Spec.JobTemplate.Spec.PodFailurePolicy = &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{{
			Action:      batchv1.PodFailurePolicyActionFailJob,
			OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{42}},
		}}}
	})
	w, _ := f.watchReal(Config{}, Hooks{})
	f.waitJobs(cj, "a Job", func(jobs []batchv1.Job) bool { return len(jobs) >= 1 })
	f.suspend(cj)
	jobs := f.waitJobs(cj, "the Job to fail", allEnded)
	if c := terminal(&jobs[0]); c.Reason != batchv1.JobReasonPodFailurePolicy || jobs[0].Status.Failed != 1 {
		t.Fatalf("want a Job failed by its policy at its first pod: %s", describeJobs(jobs))
	}
	key := keyOf(f.ns, cj.Name)
	f.waitStored(key, "the failure", state.Job.Failing)
	settle(w)
	failedOnce(t, f.store.Counted(), jobs...)
	if j, _ := f.store.Get(context.Background(), key); j.LastFailures[0].DisplayName != batchv1.JobReasonPodFailurePolicy {
		t.Fatalf("job %+v", j)
	}
}

// ttlSecondsAfterFinished: 0: the TTL controller deletes the Job as soon
// as it failed; the run counts all the same, once.
func realTTLDeletesFinishedJobs(t *testing.T) {
	f := newRealFixture(t)
	// 10 s: long enough for the test to see the Job before it goes.
	cj := f.realCronJob("ttl", eachMinute, fakelet.Plan{For: 10 * time.Second, ExitCode: 1}, func(c *batchv1.CronJob) {
		c.Spec.JobTemplate.Spec.TTLSecondsAfterFinished = ptr[int32](0)
	})
	w, _ := f.watchReal(Config{}, Hooks{})
	job := f.waitJobs(cj, "a Job", func(jobs []batchv1.Job) bool { return len(jobs) >= 1 })[0]
	f.suspend(cj)
	f.waitGone(job.Name, "the TTL controller to delete the Job")
	key := keyOf(f.ns, cj.Name)
	f.waitStored(key, "the failure", state.Job.Failing)
	settle(w)
	failedOnce(t, f.store.Counted(), job)
}

// successfulJobsHistoryLimit: 0: the CronJob controller deletes a Job as
// soon as it succeeded; the success still ends the streak.
func realSuccessfulJobsHistoryLimitZero(t *testing.T) {
	f := newRealFixture(t)
	cj := f.realCronJob("no-history", eachMinute, fakelet.Plan{For: time.Second, ExitCode: 1}, func(c *batchv1.CronJob) {
		c.Spec.SuccessfulJobsHistoryLimit = ptr[int32](0)
	})
	w, _ := f.watchReal(Config{}, Hooks{})
	key := keyOf(f.ns, cj.Name)
	f.waitStored(key, "the first Job's failure", state.Job.Failing)
	f.withPlan(cj, fakelet.Plan{For: time.Second}) // fixed: its next Job succeeds
	j := f.waitStored(key, "a success", func(j state.Job) bool { return !j.Failing() })
	f.suspend(cj)
	f.waitGone(j.LastWorkflow, "the history limit to delete the succeeded Job")
	settle(w)
	counted := f.store.Counted()
	last := counted[len(counted)-1]
	if last.Phase != api.PhaseSucceeded || last.WorkflowName != j.LastWorkflow || j.LastStreak == nil || j.LastStreak.Failures != len(counted)-1 {
		t.Fatalf("counted %s, job %+v: want failed runs, then the success that ended their streak", describeResults(counted), j)
	}
}

// kubectl create job --from=cronjob/<name> makes a Job named by the user,
// controlled by the CronJob and annotated as manual, without a scheduled
// time: it is a run of the CronJob like any other.
func realManualJobFromCronJob(t *testing.T) {
	f := newRealFixture(t)
	cj := f.realCronJob("nightly", noTicks, fakelet.Plan{For: time.Second, ExitCode: 1}, nil)
	w, _ := f.watchReal(Config{}, Hooks{})
	key := keyOf(f.ns, cj.Name)
	rerun := f.manualJob(cj, "nightly-rerun")
	f.waitStored(key, "the manual run's failure", state.Job.Failing)
	cj = f.withPlan(cj, fakelet.Plan{For: time.Second})
	fixed := f.manualJob(cj, "nightly-fixed")
	j := f.waitStored(key, "the manual run's success", func(j state.Job) bool { return !j.Failing() })
	settle(w)
	counted := f.store.Counted()
	if len(counted) != 2 || counted[0].UID != string(rerun.UID) || counted[0].Phase != api.PhaseFailed ||
		counted[1].UID != string(fixed.UID) || counted[1].Phase != api.PhaseSucceeded || j.LastStreak == nil || j.LastStreak.Failures != 1 {
		t.Fatalf("counted %s, job %+v: want the failed rerun, then the fixed run's success", describeResults(counted), j)
	}
}

// manualJob creates the Job `kubectl create job <name> --from=cronjob/<cj>`
// creates (createJobFromCronJob in k8s.io/kubectl v0.33 to v0.37): the
// CronJob's job template, the annotation
// cronjob.kubernetes.io/instantiate: manual, and a controller reference to
// the CronJob.
func (f *realFixture) manualJob(cj *batchv1.CronJob, name string) *batchv1.Job {
	f.t.Helper()
	annotations := map[string]string{"cronjob.kubernetes.io/instantiate": "manual"}
	for k, v := range cj.Spec.JobTemplate.Annotations {
		annotations[k] = v
	}
	return kubetest.Create(f.t, f.env, f.ns, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: annotations,
			Labels:      cj.Spec.JobTemplate.Labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: batchv1.SchemeGroupVersion.String(), Kind: "CronJob",
				Name: cj.Name, UID: cj.UID, Controller: ptr(true),
			}},
		},
		Spec: cj.Spec.JobTemplate.Spec,
	})
}

// A CronJob deleted while no watcher ran (its Jobs go with it, by the
// garbage collector) sends the next watcher no event: its job is forgotten
// all the same, once, after ForgetAfter (kept, its streak ended, until the
// alarm has closed its incident).
func realCronJobDeletedWhileTheWatcherIsDown(t *testing.T) {
	f := newRealFixture(t)
	cj := f.realCronJob("gone", eachMinute, fakelet.Plan{For: time.Second, ExitCode: 1}, nil)
	_, stop := f.watchReal(Config{}, Hooks{})
	key := keyOf(f.ns, cj.Name)
	f.waitStored(key, "a failure", state.Job.Failing)
	stop()
	if err := f.env.Clientset.BatchV1().CronJobs(f.ns).Delete(context.Background(), cj.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	f.waitJobs(cj, "the garbage collector to delete the CronJob's Jobs", func(jobs []batchv1.Job) bool { return len(jobs) == 0 })

	var forgot atomic.Int32
	w, _ := f.watchReal(Config{ForgetAfter: time.Minute}, Hooks{Forgot: func(context.Context, state.Job, string) { forgot.Add(1) }})
	if j, err := f.store.Get(context.Background(), key); err != nil || j.Forgotten() {
		t.Fatalf("forgotten before ForgetAfter: %+v %v", j, err)
	}
	f.clock.Set(time.Now().Add(2 * time.Minute))
	// Forgotten: kept for the alarm to close its incident, its streak ended.
	eventually(t, "the job to be forgotten", func(ctx context.Context) (bool, string, error) {
		j, err := f.store.Get(ctx, key)
		return err == nil && j.Forgotten() && !j.Failing(), fmt.Sprintf("%+v %v", j, err), nil
	})
	eventually(t, "the Forgot hook", func(context.Context) (bool, string, error) { return forgot.Load() > 0, "", nil })
	settle(w)
	if n := forgot.Load(); n != 1 {
		t.Fatalf("forgotten %d times, want once", n)
	}
}

// A new install on a cluster with a long history of Jobs (issue 20, item
// 8): 20 successes, then a streak of 5 failures, a success, and 2 failures.
// The CronJob controller makes at most one Job a minute, so such a history
// would take half an hour of ticks: the Jobs are made as it makes them
// (named after past minutes, with the scheduled-time annotation and a
// controller reference to the CronJob), and the real Job controller runs
// them and ends them with its own conditions. The watcher then starts on an
// empty store: it records only what decides the job, in order (the job ends
// as recording every Job in the order they finished would leave it), reads
// no Job one by one, and announces none of it: the history ended before it
// started. A Job that succeeds afterwards is news.
func realNewInstallOnALongHistory(t *testing.T) {
	f := newRealFixture(t)
	cj := f.realCronJob("history", noTicks, fakelet.Plan{}, func(c *batchv1.CronJob) {
		c.Spec.SuccessfulJobsHistoryLimit = ptr[int32](100)
		c.Spec.FailedJobsHistoryLimit = ptr[int32](100)
	})
	tick := time.Now().Add(-2 * time.Hour).Truncate(time.Minute)
	var made []batchv1.Job
	// run makes the Jobs of the next n ticks, played as plan, and waits
	// until they all ended: each group ends after the one before.
	run := func(n int, plan fakelet.Plan) {
		t.Helper()
		for range n {
			tick = tick.Add(time.Minute)
			made = append(made, *kubetest.Create(t, f.env, f.ns, &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{
					Name:            jobName(cj.Name, tick),
					Annotations:     map[string]string{batchv1.CronJobScheduledTimestampAnnotation: tick.UTC().Format(time.RFC3339)},
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))},
				},
				Spec: jobSpec(plan),
			}))
		}
		f.waitJobs(cj, fmt.Sprintf("the %d Jobs to end", len(made)), func(jobs []batchv1.Job) bool { return len(jobs) == len(made) && allEnded(jobs) })
	}
	ok, fail := fakelet.Plan{For: time.Second}, fakelet.Plan{For: time.Second, ExitCode: 1}
	run(20, ok)
	run(5, fail)
	run(1, ok)
	run(1, fail)
	run(1, fail)

	var requests []string
	var requestsMu sync.Mutex
	cfg := f.env.RESTConfig()
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(r *http.Request) (*http.Response, error) {
			requestsMu.Lock()
			requests = append(requests, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
			requestsMu.Unlock()
			return rt.RoundTrip(r)
		})
	})
	counting, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.kube = counting
	var kicks atomic.Int32
	w, _ := f.watchReal(Config{}, Hooks{Kick: func() { kicks.Add(1) }})

	key := keyOf(f.ns, cj.Name)
	last := made[len(made)-1]
	j := f.waitStored(key, "the history recorded", func(j state.Job) bool { return j.LastUID == string(last.UID) })
	settle(w)
	j, _ = f.store.Get(context.Background(), key)
	if j.ConsecutiveFailures != 2 || j.LastStreak == nil || j.LastStreak.Failures != 5 {
		t.Fatalf("job %+v: want failing with 2 failed runs, after a streak of 5", j)
	}
	// Kept: the latest of the 20 successes (it ends any streak before the
	// 5 failures), the 5, the success that ended them and the 2 after it.
	if n := f.store.Records(); n > 9 {
		t.Errorf("%d results recorded for %d Jobs, want at most 9: %s", n, len(made), describeResults(f.store.Counted()))
	}
	requestsMu.Lock()
	for _, r := range requests {
		if strings.Contains(r, "/jobs/") {
			t.Errorf("a Job read one by one: %s", r)
		}
	}
	if len(requests) >= len(made) {
		t.Errorf("%d requests for %d Jobs: %q", len(requests), len(made), requests)
	}
	t.Logf("requests: %q", requests)
	requestsMu.Unlock()
	if n := kicks.Load(); n != 0 {
		t.Fatalf("%d kicks for a history that ended before the watcher started, want none", n)
	}

	run(1, ok) // news: the streak ends, which the loop announces at once
	f.waitStored(key, "the success after the start", func(j state.Job) bool { return !j.Failing() })
	eventually(t, "a kick", func(context.Context) (bool, string, error) { return kicks.Load() > 0, "", nil })
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// The default grace (10 minutes) with an every-minute schedule whose
// controller is stopped for longer than the grace (issue 20, item 6): the
// ticks after the controller's last Job are missed once they are 10
// minutes old, one failed run each, though 10 ticks span less than the
// grace. The old code looked at the latest 10 ticks, all younger than the
// grace, and never reported.
//
// Waiting 10 minutes and more of real time would cost the suite as much.
// Instead, once kube-controller-manager is stopped, the watcher's clock is
// set 13 (then 18) minutes ahead, and frozen there. That shows what the
// watcher decides then, because nothing it reads changes meanwhile: the
// CronJob controller (the only writer of the CronJob's status and of new
// Jobs) and the Job controller are that stopped process, the Job has
// ended, and the watcher reads only the cluster and its clock. Its
// decisions are pure functions of both (Evaluate takes the time from
// Config.Now), so the clock ahead is the outage's end as the watcher would
// see it.
//
// Not in TestRealControllers: it stops the controller the others use.
func TestRealControllerDownLongerThanTheGrace(t *testing.T) {
	f := newRealFixture(t)
	const grace = 10 * time.Minute // the flag's default
	cj := f.realCronJob("every-minute", eachMinute, fakelet.Plan{For: time.Second}, nil)
	w, _ := f.watchReal(Config{MissedGrace: grace}, Hooks{})
	key := keyOf(f.ns, cj.Name)
	f.waitStored(key, "a run", func(j state.Job) bool { return j.LastPhase == api.PhaseSucceeded })
	f.controllers.Stop(t)
	cur, err := f.env.Clientset.BatchV1().CronJobs(f.ns).Get(context.Background(), cj.Name, metav1.GetOptions{})
	if err != nil || cur.Status.LastScheduleTime == nil {
		t.Fatalf("CronJob %+v (%v): want a last schedule time", cur, err)
	}
	lastRun := cur.Status.LastScheduleTime.Time
	for _, outage := range []time.Duration{13*time.Minute + 30*time.Second, 18*time.Minute + 30*time.Second} {
		now := lastRun.Add(outage)
		f.clock.Freeze(now)
		var missed []string // every minute after the last run, up to the grace ago
		for tick := lastRun.Add(time.Minute); !tick.After(now.Add(-grace)); tick = tick.Add(time.Minute) {
			missed = append(missed, jobName(cj.Name, tick))
		}
		j := f.waitStored(key, fmt.Sprintf("%d missed ticks at %s", len(missed), outage), func(j state.Job) bool {
			return j.LastWorkflow == missed[len(missed)-1]
		})
		settle(w)
		j, _ = f.store.Get(context.Background(), key)
		if j.LastPhase != api.PhaseMissed || j.ConsecutiveFailures != len(missed) {
			t.Fatalf("after %s: job %+v, want %d missed ticks %v", outage, j, len(missed), missed)
		}
	}
	var counted []string
	for _, r := range f.store.Counted() {
		if r.Phase == api.PhaseMissed {
			counted = append(counted, r.WorkflowName)
		}
	}
	if want := len(counted); !slices.Equal(counted, missedNames(cj.Name, lastRun, want)) {
		t.Fatalf("counted %v, want each tick after %s once, in order", counted, lastRun)
	}
}

// missedNames names the Jobs of the n ticks of an every-minute schedule
// after last.
func missedNames(cron string, last time.Time, n int) []string {
	var out []string
	for i := 1; i <= n; i++ {
		out = append(out, jobName(cron, last.Add(time.Duration(i)*time.Minute)))
	}
	return out
}
