package kubetest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/pkg/client/clientset/versioned"
	"github.com/argoproj/argo-workflows/v3/workflow/common"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/batchlatch/batchlatch/internal/fakelet"
	"github.com/batchlatch/batchlatch/internal/kubetest"
	"github.com/batchlatch/batchlatch/internal/testwait"
)

// runDeadline bounds each wait of these tests: a tick (10 s) and a run of a
// second, through controllers that may be slow on a busy machine.
const runDeadline = 3 * time.Minute

// TestArgoControllerEndsRuns: Argo's real controller turns a CronWorkflow's
// tick into a Workflow, the fakelet plays its pod, and the controller ends
// the Workflow from the pod's exit code: Failed for exit 3. A Workflow whose
// container exits 0 Succeeds (the controller waits for the task result the
// fakelet writes as Argo's wait container would).
func TestArgoControllerEndsRuns(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	kubetest.StartArgoController(t, env, kubetest.ArgoConfig{})
	kubetest.StartFakelet(t, env)
	ns := env.NewNamespace(t)
	argo, err := versioned.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	a := argo.ArgoprojV1alpha1()

	cwf := kubetest.Create(t, env, ns, &wfv1.CronWorkflow{
		ObjectMeta: metav1.ObjectMeta{Name: "fails"},
		Spec: wfv1.CronWorkflowSpec{
			Schedules:         []string{"@every 10s"},
			ConcurrencyPolicy: wfv1.ForbidConcurrent,
			WorkflowSpec:      oneContainer(fakelet.Plan{For: time.Second, ExitCode: 3}),
		},
	})
	t.Cleanup(func() { // or its ticks go on after the test
		_ = a.CronWorkflows(ns).Delete(context.Background(), cwf.Name, metav1.DeleteOptions{})
	})
	ok := kubetest.Create(t, env, ns, &wfv1.Workflow{
		ObjectMeta: metav1.ObjectMeta{Name: "succeeds"},
		Spec:       oneContainer(fakelet.Plan{For: time.Second, ExitCode: 0}),
	})

	var failed *wfv1.Workflow
	waitFor(t, "a Workflow of the CronWorkflow to end", func(ctx context.Context) (bool, string, error) {
		wfs, err := a.Workflows(ns).List(ctx, metav1.ListOptions{LabelSelector: common.LabelKeyCronWorkflow + "=" + cwf.Name})
		if err != nil {
			return false, "", err
		}
		var seen []string
		for i := range wfs.Items {
			wf := &wfs.Items[i]
			seen = append(seen, wf.Name+":"+string(wf.Status.Phase))
			if wf.Status.Phase.Completed() {
				failed = wf
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("workflows %v", seen), nil
	})
	if failed.Status.Phase != wfv1.WorkflowFailed {
		t.Fatalf("Workflow %s: phase %s, want Failed (message %q)", failed.Name, failed.Status.Phase, failed.Status.Message)
	}
	if got := failed.Labels[common.LabelKeyCompleted]; got != "true" {
		t.Errorf("Workflow %s: label %s=%q, want true", failed.Name, common.LabelKeyCompleted, got)
	}
	if refs := failed.OwnerReferences; len(refs) != 1 || refs[0].UID != cwf.UID {
		t.Errorf("Workflow %s: owner references %v, want the CronWorkflow %s", failed.Name, refs, cwf.UID)
	}
	if node := podNode(failed); node == nil || node.Phase != wfv1.NodeFailed || !strings.Contains(node.Message, "exit code 3") {
		t.Errorf("Workflow %s: pod node %+v, want Failed with exit code 3", failed.Name, node)
	}

	waitFor(t, "the Workflow "+ok.Name+" to end", func(ctx context.Context) (bool, string, error) {
		wf, err := a.Workflows(ns).Get(ctx, ok.Name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		ok = wf
		return wf.Status.Phase.Completed(), "phase " + string(wf.Status.Phase), nil
	})
	if ok.Status.Phase != wfv1.WorkflowSucceeded {
		t.Fatalf("Workflow %s: phase %s, want Succeeded (message %q)", ok.Name, ok.Status.Phase, ok.Status.Message)
	}
}

// TestArgoAgentRunsExitHandler: a Workflow's exit handler is an HTTP
// template; Argo's controller gives it to its agent pod, the fakelet runs
// Argo's own agent (argoexec agent main) as that pod, and the request reaches
// a server on loopback. The run fails (its container exits 1), the exit
// handler succeeds.
func TestArgoAgentRunsExitHandler(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	kubetest.StartArgoController(t, env, kubetest.ArgoConfig{})
	kubetest.StartFakelet(t, env)
	ns := env.NewNamespace(t)
	kubetest.ArgoServiceAccount(t, env, ns, "runner")
	requests := make(chan string, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		requests <- r.Method + " " + r.Header.Get("Content-Type") + " " + string(body)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)

	spec := oneContainer(fakelet.Plan{For: time.Second, ExitCode: 1})
	spec.ServiceAccountName = "runner"
	spec.OnExit = "notify"
	spec.Templates = append(spec.Templates, wfv1.Template{Name: "notify", HTTP: &wfv1.HTTP{
		Method:         http.MethodPost,
		URL:            srv.URL,
		Headers:        wfv1.HTTPHeaders{{Name: "Content-Type", Value: "application/json"}},
		Body:           `{"status":"{{workflow.status}}"}`,
		TimeoutSeconds: new(int64(5)),
	}})
	wf := kubetest.Create(t, env, ns, &wfv1.Workflow{ObjectMeta: metav1.ObjectMeta{Name: "notifies"}, Spec: spec})
	created := time.Now()

	select {
	case got := <-requests:
		t.Logf("the exit handler's request came %s after the Workflow was created", time.Since(created).Round(time.Millisecond))
		if want := `POST application/json {"status":"Failed"}`; got != want {
			t.Errorf("request %q, want %q", got, want)
		}
	case <-time.After(runDeadline):
		t.Fatalf("no request from the exit handler within %s", runDeadline)
	}
	a, err := versioned.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the Workflow to end", func(ctx context.Context) (bool, string, error) {
		cur, err := a.ArgoprojV1alpha1().Workflows(ns).Get(ctx, wf.Name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		wf = cur
		return cur.Status.Phase.Completed(), "phase " + string(cur.Status.Phase), nil
	})
	t.Logf("the Workflow ended %s after it was created", time.Since(created).Round(time.Millisecond))
	if wf.Status.Phase != wfv1.WorkflowFailed {
		t.Errorf("phase %s, want Failed (message %q)", wf.Status.Phase, wf.Status.Message)
	}
	var handler *wfv1.NodeStatus
	for _, n := range wf.Status.Nodes {
		if n.Type == wfv1.NodeTypeHTTP {
			handler = &n
		}
	}
	if handler == nil || handler.Phase != wfv1.NodeSucceeded {
		t.Errorf("exit handler node %+v, want an HTTP node Succeeded", handler)
	}
	if n := len(requests); n > 0 {
		t.Errorf("%d more requests", n)
	}
}

// TestControllerOutage: a controller stopped for an outage is down until
// started again; Argo's comes back as the leader at once (it keeps its
// leader-election identity). Not parallel: outages are for tests that run
// alone.
func TestControllerOutage(t *testing.T) {
	env := kubetest.Get(t)
	for name, start := range map[string]func(testing.TB, *kubetest.Env) *kubetest.Process{
		"argo": func(t testing.TB, env *kubetest.Env) *kubetest.Process {
			return kubetest.StartArgoController(t, env, kubetest.ArgoConfig{})
		},
		"kube-controller-manager": kubetest.StartKubeControllerManager,
	} {
		t.Run(name, func(t *testing.T) {
			p := start(t, env)
			if !p.Running() {
				t.Fatal("not running after start")
			}
			p.Stop(t)
			if p.Running() {
				t.Fatal("running after Stop")
			}
			began := time.Now()
			p.Start(t)
			if !p.Running() {
				t.Fatal("not running after Start")
			}
			t.Logf("ready again %s after Start", time.Since(began).Round(time.Millisecond))
			p.Kill(t)
			if p.Running() {
				t.Fatal("running after Kill")
			}
			// The test's cleanup starts it again (and stops it: its last user).
		})
	}
}

// oneContainer is a Workflow spec of one container played as plan.
func oneContainer(plan fakelet.Plan) wfv1.WorkflowSpec {
	c := fakelet.Container("main", plan)
	return wfv1.WorkflowSpec{
		Entrypoint: "main",
		Templates:  []wfv1.Template{{Name: "main", Container: &c}},
	}
}

// podNode is the Workflow's node of its pod.
func podNode(wf *wfv1.Workflow) *wfv1.NodeStatus {
	for _, n := range wf.Status.Nodes {
		if n.Type == wfv1.NodeTypePod {
			return &n
		}
	}
	return nil
}

// TestKubeControllerManagerEndsJobs: the real CronJob controller creates a
// Job at the tick, the Job controller a pod, the fakelet plays it (exit 2),
// and the Job controller fails the Job with its own conditions.
func TestKubeControllerManagerEndsJobs(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	kubetest.StartKubeControllerManager(t, env)
	kubetest.StartFakelet(t, env)
	ns := env.NewNamespace(t)
	batch := env.Clientset.BatchV1()

	cj := kubetest.Create(t, env, ns, &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "fails"},
		Spec: batchv1.CronJobSpec{
			// Jobs are named after the tick's minute: only the first
			// tick matters here.
			Schedule:          "@every 10s",
			ConcurrencyPolicy: batchv1.ForbidConcurrent,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
				BackoffLimit: new(int32(0)),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					Containers:    []corev1.Container{fakelet.Container("main", fakelet.Plan{For: time.Second, ExitCode: 2})},
				}},
			}},
		},
	})
	t.Cleanup(func() {
		_ = batch.CronJobs(ns).Delete(context.Background(), cj.Name, metav1.DeleteOptions{})
	})

	var job *batchv1.Job
	waitFor(t, "a Job of the CronJob to fail", func(ctx context.Context) (bool, string, error) {
		jobs, err := batch.Jobs(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, "", err
		}
		var seen []string
		for i := range jobs.Items {
			j := &jobs.Items[i]
			seen = append(seen, fmt.Sprintf("%s:%v", j.Name, conditionTypes(j)))
			if condition(j, batchv1.JobFailed) != nil {
				job = j
				return true, "", nil
			}
		}
		return false, fmt.Sprintf("jobs %v", seen), nil
	})
	if refs := job.OwnerReferences; len(refs) != 1 || refs[0].UID != cj.UID {
		t.Errorf("Job %s: owner references %v, want the CronJob %s", job.Name, refs, cj.UID)
	}
	if c := condition(job, batchv1.JobFailed); c.Reason != batchv1.JobReasonBackoffLimitExceeded {
		t.Errorf("Job %s: Failed condition %+v, want reason %s", job.Name, c, batchv1.JobReasonBackoffLimitExceeded)
	}
	if condition(job, batchv1.JobFailureTarget) == nil {
		t.Errorf("Job %s: conditions %v, want FailureTarget too", job.Name, conditionTypes(job))
	}
	pods, err := env.Clientset.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job.Name})
	if err != nil {
		t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		t.Fatalf("Job %s: %d pods, want 1", job.Name, len(pods.Items))
	}
	pod := pods.Items[0]
	if st := pod.Status.ContainerStatuses; pod.Status.Phase != corev1.PodFailed || len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.ExitCode != 2 {
		t.Errorf("pod %s: phase %s, container statuses %+v; want Failed, exit code 2", pod.Name, pod.Status.Phase, st)
	}
}

func condition(j *batchv1.Job, typ batchv1.JobConditionType) *batchv1.JobCondition {
	for i, c := range j.Status.Conditions {
		if c.Type == typ && c.Status == corev1.ConditionTrue {
			return &j.Status.Conditions[i]
		}
	}
	return nil
}

func conditionTypes(j *batchv1.Job) []batchv1.JobConditionType {
	var types []batchv1.JobConditionType
	for _, c := range j.Status.Conditions {
		if c.Status == corev1.ConditionTrue {
			types = append(types, c.Type)
		}
	}
	return types
}

// waitFor polls done until it reports true, failing the test after
// runDeadline with done's last description of the state.
func waitFor(t *testing.T, what string, done func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	testwait.Until(t, runDeadline, what, done)
}
