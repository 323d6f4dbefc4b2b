package fakelet_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/batchlatch/batchlatch/internal/fakelet"
	"github.com/batchlatch/batchlatch/internal/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// startFakelet runs a fakelet of the test's own: it plays the pods bound to
// its node (the tests create them bound to it, so that the parallel tests'
// fakelets leave each other's pods alone).
func startFakelet(t *testing.T, env *kubetest.Env) string {
	t.Helper()
	node := "fakelet-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- fakelet.Run(ctx, fakelet.Config{
			Client: env.Clientset, NodeName: node, RestartDelay: 100 * time.Millisecond, Logf: t.Logf,
		})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("fakelet: %v", err)
		}
	})
	return node
}

func createPod(t *testing.T, env *kubetest.Env, ns, node string, spec corev1.PodSpec) *corev1.Pod {
	t.Helper()
	spec.NodeName = node
	return kubetest.Create(t, env, ns, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}, Spec: spec})
}

// waitPod polls the pod until done says so; it fails the test after a
// minute, showing the pod's last status.
func waitPod(t *testing.T, env *kubetest.Env, ns, name string, done func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	var lastErr error
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		p, err := env.Clientset.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		pod, lastErr = p, err
		if err != nil {
			return apierrors.IsNotFound(err) && done(nil), nil
		}
		return done(p), nil
	})
	if err != nil {
		t.Fatalf("pod %s/%s: %v (last: %v, status %+v)", ns, name, err, lastErr, pod.Status)
	}
	return pod
}

// TestContainersEndAsPlanned: each container ends at its time with its exit
// code; the pod fails once all have ended and one failed.
func TestContainersEndAsPlanned(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	node := startFakelet(t, env)
	start := time.Now()
	pod := createPod(t, env, ns, node, corev1.PodSpec{
		RestartPolicy:  corev1.RestartPolicyNever,
		InitContainers: []corev1.Container{fakelet.Container("init", fakelet.Plan{})},
		Containers: []corev1.Container{
			fakelet.Container("quick", fakelet.Plan{For: 200 * time.Millisecond}),
			fakelet.Container("slow", fakelet.Plan{For: 1500 * time.Millisecond, ExitCode: 4}),
		},
	})
	running := waitPod(t, env, ns, pod.Name, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if running.Spec.NodeName != node || running.Status.StartTime == nil {
		t.Errorf("running pod: node %q, start time %v", running.Spec.NodeName, running.Status.StartTime)
	}
	ended := waitPod(t, env, ns, pod.Name, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("pod ended after %s, before its slow container's 1.5 s", took)
	}
	codes := map[string]int32{}
	for _, cs := range ended.Status.ContainerStatuses {
		if cs.State.Terminated == nil {
			t.Fatalf("container %s not terminated: %+v", cs.Name, cs.State)
		}
		codes[cs.Name] = cs.State.Terminated.ExitCode
	}
	if codes["quick"] != 0 || codes["slow"] != 4 || len(codes) != 2 {
		t.Errorf("exit codes %v, want quick 0, slow 4", codes)
	}
	if st := ended.Status.InitContainerStatuses; len(st) != 1 || st[0].State.Terminated == nil || st[0].State.Terminated.ExitCode != 0 {
		t.Errorf("init container statuses %+v, want one terminated with 0", st)
	}
	for _, c := range ended.Status.Conditions {
		if c.Type == corev1.PodReady && (c.Status != corev1.ConditionFalse || c.Reason != "PodCompleted") {
			t.Errorf("Ready condition %+v, want False, PodCompleted", c)
		}
	}
}

// TestPodSucceeds: all containers exit 0.
func TestPodSucceeds(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	node := startFakelet(t, env)
	pod := createPod(t, env, ns, node, corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{fakelet.Container("main", fakelet.Plan{For: 100 * time.Millisecond})},
	})
	waitPod(t, env, ns, pod.Name, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodSucceeded })
}

// TestDeletedPodIsKilledAndRemoved: a running pod deleted gracefully is
// gone (the kubelet would kill its containers and remove it).
func TestDeletedPodIsKilledAndRemoved(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	node := startFakelet(t, env)
	pod := createPod(t, env, ns, node, corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyNever,
		Containers:    []corev1.Container{fakelet.Container("main", fakelet.Plan{For: fakelet.Forever})},
	})
	waitPod(t, env, ns, pod.Name, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if err := env.Clientset.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPod(t, env, ns, pod.Name, func(p *corev1.Pod) bool { return p == nil })
}

// TestActiveDeadline: a pod past its activeDeadlineSeconds fails as the
// kubelet fails it.
func TestActiveDeadline(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	node := startFakelet(t, env)
	pod := createPod(t, env, ns, node, corev1.PodSpec{
		RestartPolicy:         corev1.RestartPolicyNever,
		ActiveDeadlineSeconds: new(int64(1)),
		Containers:            []corev1.Container{fakelet.Container("main", fakelet.Plan{For: fakelet.Forever})},
	})
	p := waitPod(t, env, ns, pod.Name, func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodFailed })
	if p.Status.Reason != "DeadlineExceeded" {
		t.Errorf("reason %q, want DeadlineExceeded", p.Status.Reason)
	}
}

// TestOnFailureRestarts: under restartPolicy OnFailure a failing container
// is restarted, counted in restartCount, until it succeeds... never here.
func TestOnFailureRestarts(t *testing.T) {
	t.Parallel()
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	node := startFakelet(t, env)
	pod := createPod(t, env, ns, node, corev1.PodSpec{
		RestartPolicy: corev1.RestartPolicyOnFailure,
		Containers:    []corev1.Container{fakelet.Container("main", fakelet.Plan{For: 50 * time.Millisecond, ExitCode: 1})},
	})
	p := waitPod(t, env, ns, pod.Name, func(p *corev1.Pod) bool {
		st := p.Status.ContainerStatuses
		return len(st) == 1 && st[0].RestartCount >= 2
	})
	if p.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s, want Running while it restarts", p.Status.Phase)
	}
	if last := p.Status.ContainerStatuses[0].LastTerminationState.Terminated; last == nil || last.ExitCode != 1 {
		t.Errorf("last termination %+v, want exit code 1", last)
	}
}

// TestCheckCommands: a container without a command is refused wherever it
// is; containers made by Container pass.
func TestCheckCommands(t *testing.T) {
	ok := fakelet.Container("main", fakelet.Plan{})
	bare := corev1.Container{Name: "bare", Image: "busybox"}
	job := func(c corev1.Container) *batchv1.Job {
		return &batchv1.Job{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{c}}}}}
	}
	wf := func(tmpl wfv1.Template) *wfv1.Workflow {
		return &wfv1.Workflow{Spec: wfv1.WorkflowSpec{Templates: []wfv1.Template{tmpl}}}
	}
	for name, tc := range map[string]struct {
		obj  any
		want bool
	}{
		"job ok":              {job(ok), true},
		"job bare":            {job(bare), false},
		"pod init bare":       {&corev1.Pod{Spec: corev1.PodSpec{InitContainers: []corev1.Container{bare}, Containers: []corev1.Container{ok}}}, false},
		"cronjob bare":        {&batchv1.CronJob{Spec: batchv1.CronJobSpec{JobTemplate: batchv1.JobTemplateSpec{Spec: job(bare).Spec}}}, false},
		"workflow ok":         {wf(wfv1.Template{Name: "t", Container: &ok}), true},
		"workflow bare":       {wf(wfv1.Template{Name: "t", Container: &bare}), false},
		"workflow script":     {wf(wfv1.Template{Name: "t", Script: &wfv1.ScriptTemplate{Container: bare, Source: "echo"}}), false},
		"workflow sidecar":    {wf(wfv1.Template{Name: "t", Container: &ok, Sidecars: []wfv1.UserContainer{{Container: bare}}}), false},
		"workflow set":        {wf(wfv1.Template{Name: "t", ContainerSet: &wfv1.ContainerSetTemplate{Containers: []wfv1.ContainerNode{{Container: bare}}}}), false},
		"workflow no pods":    {wf(wfv1.Template{Name: "t", HTTP: &wfv1.HTTP{URL: "http://127.0.0.1:1"}}), true},
		"cronworkflow bare":   {&wfv1.CronWorkflow{Spec: wfv1.CronWorkflowSpec{WorkflowSpec: wf(wfv1.Template{Name: "t", Container: &bare}).Spec}}, false},
		"template defaults":   {&wfv1.WorkflowTemplate{Spec: wfv1.WorkflowSpec{TemplateDefaults: &wfv1.Template{Container: &bare}}}, false},
		"unknown kind":        {&corev1.ConfigMap{}, false},
		"value, not pointer":  {*job(ok), false},
		"workflowtemplate ok": {&wfv1.WorkflowTemplate{Spec: wf(wfv1.Template{Name: "t", Container: &ok}).Spec}, true},
	} {
		err := fakelet.CheckCommands(tc.obj)
		if (err == nil) != tc.want {
			t.Errorf("%s: CheckCommands = %v, want ok %v", name, err, tc.want)
		}
		if err != nil && !tc.want && strings.Contains(name, "bare") && !errors.Is(err, fakelet.ErrNoCommand) {
			t.Errorf("%s: %v does not wrap ErrNoCommand", name, err)
		}
	}
}
