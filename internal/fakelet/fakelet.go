// Package fakelet stands in for the kubelet of the tests' cluster, which has
// no nodes. It binds every unscheduled pod to a node of its own and plays its
// containers as their environment describes (see Container): how long each
// runs and its exit code. It reports that in the pod's status the way the
// kubelet does (container states with exit codes and times, the pod's phase,
// conditions, restarts under the restart policy, activeDeadlineSeconds, a
// deleted pod's containers killed and the pod removed), so that Jobs and
// Workflows end through their controllers' own code.
//
// For a pod of an Argo Workflow it also does what Argo's wait container does:
// it creates the node's WorkflowTaskResult when the pod starts and, once the
// main containers have ended, reports the outputs and marks the result
// complete (Argo's controller waits for that before it marks a node
// Succeeded), then ends the wait container with exit code 0. Argo's agent pod
// (HTTP templates) runs Argo's own 'argoexec agent' as a local process when
// Config.Argoexec is set.
//
// What it does not do: pull images, run commands (except argoexec's agent),
// networking, probes, volumes, resources, native sidecars (init containers
// with restartPolicy Always end at once like any init container), exec and
// logs (nothing answers the API server's proxy to a kubelet: a node of that
// name does not exist, so such requests fail at once).
package fakelet

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/argoproj/argo-workflows/v3/pkg/client/clientset/versioned"
	"github.com/argoproj/argo-workflows/v3/workflow/common"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// DefaultNodeName is the node pods are bound to unless Config.NodeName says
// otherwise.
const DefaultNodeName = "fakelet"

// Exit codes and messages of containers the kubelet stops.
const (
	exitCodeSIGKILL = 137
	exitCodeSIGTERM = 143
	// The kubelet's status for a pod past its activeDeadlineSeconds.
	deadlineReason  = "DeadlineExceeded"
	deadlineMessage = "Pod was active on the node longer than the specified deadline"
)

// Config is what the fakelet works with.
type Config struct {
	// Client reads and writes pods.
	Client kubernetes.Interface
	// Argo writes WorkflowTaskResults for the pods of Argo Workflows. Nil
	// when Argo is not in the cluster: then such pods are played like any
	// other, and Argo's controller never marks their nodes Succeeded.
	Argo versioned.Interface
	// NodeName is the node the fakelet binds pods to (DefaultNodeName if
	// empty). Pods bound to other nodes are left alone.
	NodeName string
	// Argoexec is the path of Argo's argoexec binary, run for Argo's agent
	// pods with RESTConfig's server and CA and the token of the pod's
	// service account. Empty: agent pods stay Pending.
	Argoexec string
	// RESTConfig is the API server the agent is pointed at (its host and
	// CA; its credentials are not used).
	RESTConfig *rest.Config
	// AgentEnv is added to the agent's environment (after the pod's).
	AgentEnv []string
	// AgentLogDir receives each agent's output (a file per pod).
	AgentLogDir string
	// RestartDelay is how long a container restarted under the pod's
	// restart policy waits (the kubelet's crash-loop back-off starts at
	// 10 s; tests want less). Zero: 1 s.
	RestartDelay time.Duration
	// Logf reports what the fakelet does and its errors; nil: nothing.
	Logf func(format string, args ...any)
}

// Fakelet plays pods; see the package comment.
type Fakelet struct {
	cfg    Config
	pods   corelisters.PodLister
	queue  workqueue.TypedRateLimitingInterface[string]
	agents *agents

	mu sync.Mutex
	// started remembers when each container run began, more precisely than
	// the status's whole seconds: key podUID/container/restartCount.
	started map[string]time.Time
}

// Run plays pods until ctx is done.
func Run(ctx context.Context, cfg Config) error {
	if cfg.Client == nil {
		return errors.New("fakelet: no Client")
	}
	if cfg.NodeName == "" {
		cfg.NodeName = DefaultNodeName
	}
	if cfg.RestartDelay == 0 {
		cfg.RestartDelay = time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	if cfg.Argoexec != "" && cfg.RESTConfig == nil {
		return errors.New("fakelet: Argoexec needs RESTConfig")
	}
	factory := informers.NewSharedInformerFactory(cfg.Client, 0)
	podInformer := factory.Core().V1().Pods()
	f := &Fakelet{
		cfg:     cfg,
		pods:    podInformer.Lister(),
		queue:   workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]()),
		started: map[string]time.Time{},
	}
	f.agents = newAgents(&f.cfg, func(key string) { f.queue.Add(key) })
	defer f.agents.stopAll()
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			f.queue.Add(key)
		}
	}
	if _, err := podInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), podInformer.Informer().HasSynced) {
		return ctx.Err()
	}
	go func() {
		<-ctx.Done()
		f.queue.ShutDown()
	}()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for f.processNext(ctx) {
			}
		})
	}
	wg.Wait()
	return nil
}

func (f *Fakelet) processNext(ctx context.Context) bool {
	key, quit := f.queue.Get()
	if quit {
		return false
	}
	defer f.queue.Done(key)
	next, err := f.sync(ctx, key)
	switch {
	case apierrors.IsConflict(err):
		// The cache was behind the server (often our own last write):
		// the informer's event for the newer pod brings it back.
		f.queue.Forget(key)
	case err != nil:
		if !apierrors.IsNotFound(err) && ctx.Err() == nil {
			f.cfg.Logf("fakelet: pod %s: %v", key, err)
		}
		f.queue.AddRateLimited(key)
	case next > 0:
		f.queue.Forget(key)
		f.queue.AddAfter(key, next)
	default:
		f.queue.Forget(key)
	}
	return true
}

// sync moves the pod one step on. It returns how long until the pod's next
// step is due (0: none is, or an update event will bring the pod back).
func (f *Fakelet) sync(ctx context.Context, key string) (time.Duration, error) {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return 0, nil
	}
	cached, err := f.pods.Pods(ns).Get(name)
	if apierrors.IsNotFound(err) {
		f.agents.stop(key)
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pod := cached.DeepCopy()
	now := time.Now()

	switch {
	case pod.Spec.NodeName == "":
		if pod.DeletionTimestamp != nil || len(pod.Spec.SchedulingGates) > 0 {
			return 0, nil
		}
		return 0, f.bind(ctx, pod)
	case pod.Spec.NodeName != f.cfg.NodeName:
		return 0, nil
	case terminal(pod):
		f.agents.stop(key)
		if pod.DeletionTimestamp != nil {
			return 0, f.remove(ctx, pod)
		}
		return 0, nil
	case pod.DeletionTimestamp != nil:
		// The kubelet stops the containers (TERM, within the grace
		// period: sleep dies of it), then removes the pod once terminal.
		f.agents.stop(key)
		f.stopAll(pod, now, exitCodeSIGTERM)
		return 0, f.updateStatus(ctx, pod)
	case pod.Status.Phase == "" || pod.Status.Phase == corev1.PodPending:
		if pod.Status.StartTime != nil {
			return 0, nil // init failed; nothing more happens to it
		}
		return f.start(ctx, pod, now)
	}

	// Running.
	if d := pod.Spec.ActiveDeadlineSeconds; d != nil && pod.Status.StartTime != nil {
		deadline := pod.Status.StartTime.Add(time.Duration(*d) * time.Second)
		if !now.Before(deadline) {
			f.agents.stop(key)
			f.stopAll(pod, now, exitCodeSIGKILL)
			pod.Status.Phase = corev1.PodFailed
			pod.Status.Reason, pod.Status.Message = deadlineReason, deadlineMessage
			return 0, f.updateStatus(ctx, pod)
		}
	}
	if isAgentPod(pod) {
		return f.syncAgent(ctx, pod, now)
	}
	return f.advance(ctx, pod, now)
}

// bind does what the scheduler does: bind the pod to the fakelet's node.
func (f *Fakelet) bind(ctx context.Context, pod *corev1.Pod) error {
	err := f.cfg.Client.CoreV1().Pods(pod.Namespace).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: pod.Namespace, UID: pod.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: f.cfg.NodeName},
	}, metav1.CreateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // bound or deleted meanwhile: an event follows
	}
	return err
}

// remove deletes a terminal pod being deleted at once, as the kubelet does
// once its containers are gone.
func (f *Fakelet) remove(ctx context.Context, pod *corev1.Pod) error {
	err := f.cfg.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	f.forget(pod.UID)
	if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
		return nil
	}
	return err
}

// start runs the init containers (each ends at once with its exit code) and
// then starts the containers: phase Running.
func (f *Fakelet) start(ctx context.Context, pod *corev1.Pod, now time.Time) (time.Duration, error) {
	st := &pod.Status
	st.StartTime = &metav1.Time{Time: now}
	st.HostIP, st.PodIP = "127.0.0.1", "127.0.0.1"
	st.HostIPs = []corev1.HostIP{{IP: "127.0.0.1"}}
	st.PodIPs = []corev1.PodIP{{IP: "127.0.0.1"}}
	setCondition(pod, corev1.PodReadyToStartContainers, corev1.ConditionTrue, "", now)
	st.InitContainerStatuses = nil
	for i := range pod.Spec.InitContainers {
		c := &pod.Spec.InitContainers[i]
		run, err := planOf(c)
		if err != nil {
			return 0, f.failConfig(ctx, pod, err)
		}
		cs := f.containerStatus(pod, c, 0)
		cs.State = terminatedState(pod, c.Name, 0, now, now, run.ExitCode)
		cs.Ready, cs.Started = run.ExitCode == 0, new(false)
		st.InitContainerStatuses = append(st.InitContainerStatuses, cs)
		if run.ExitCode != 0 {
			// The kubelet retries a failed init container unless the
			// policy is Never; the fakelet fails the pod either way.
			setCondition(pod, corev1.PodInitialized, corev1.ConditionFalse, "ContainersNotInitialized", now)
			setCondition(pod, corev1.ContainersReady, corev1.ConditionFalse, "ContainersNotReady", now)
			setCondition(pod, corev1.PodReady, corev1.ConditionFalse, "ContainersNotReady", now)
			st.ContainerStatuses = nil
			for j := range pod.Spec.Containers {
				cs := f.containerStatus(pod, &pod.Spec.Containers[j], 0)
				cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}
				st.ContainerStatuses = append(st.ContainerStatuses, cs)
			}
			st.Phase = corev1.PodFailed
			return 0, f.updateStatus(ctx, pod)
		}
	}
	setCondition(pod, corev1.PodInitialized, corev1.ConditionTrue, "", now)
	st.ContainerStatuses = nil
	for i := range pod.Spec.Containers {
		c := &pod.Spec.Containers[i]
		if _, err := planOf(c); err != nil {
			return 0, f.failConfig(ctx, pod, err)
		}
		cs := f.containerStatus(pod, c, 0)
		cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Time{Time: now}}}
		cs.Ready, cs.Started = true, new(true)
		f.markStarted(pod.UID, c.Name, 0, now)
		st.ContainerStatuses = append(st.ContainerStatuses, cs)
	}
	setCondition(pod, corev1.ContainersReady, corev1.ConditionTrue, "", now)
	setCondition(pod, corev1.PodReady, corev1.ConditionTrue, "", now)
	st.Phase = corev1.PodRunning
	if isArgoPod(pod) && f.cfg.Argo != nil {
		// What the wait container does first (InitializeOutput).
		if err := f.initTaskResult(ctx, pod); err != nil {
			return 0, err
		}
	}
	if err := f.updateStatus(ctx, pod); err != nil {
		return 0, err
	}
	if isAgentPod(pod) {
		return 0, nil // the update event brings it back to start the agent
	}
	return f.nextDue(pod, now), nil
}

// failConfig fails a pod whose containers' runs cannot be read, saying why.
func (f *Fakelet) failConfig(ctx context.Context, pod *corev1.Pod, err error) error {
	f.cfg.Logf("fakelet: pod %s/%s: %v", pod.Namespace, pod.Name, err)
	pod.Status.Phase = corev1.PodFailed
	pod.Status.Reason, pod.Status.Message = "FakeletConfig", err.Error()
	return f.updateStatus(ctx, pod)
}

// advance ends the containers whose time has come, restarts them under the
// pod's restart policy, and makes the pod terminal when all have ended.
func (f *Fakelet) advance(ctx context.Context, pod *corev1.Pod, now time.Time) (time.Duration, error) {
	argo := isArgoPod(pod)
	changed := false
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		c := containerSpec(pod, cs.Name)
		if c == nil || cs.State.Running == nil {
			if cs.State.Waiting != nil && cs.State.Waiting.Reason == "CrashLoopBackOff" && c != nil {
				if last := cs.LastTerminationState.Terminated; last != nil && !now.Before(last.FinishedAt.Add(f.cfg.RestartDelay)) {
					cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Time{Time: now}}}
					cs.ContainerID = containerID(pod, c.Name, cs.RestartCount)
					cs.Ready, cs.Started = true, new(true)
					f.markStarted(pod.UID, c.Name, cs.RestartCount, now)
					changed = true
				}
			}
			continue
		}
		if argo && !isArgoMain(pod, cs.Name) {
			continue // the wait container and sidecars end with the mains
		}
		run, _ := planOf(c) // checked at start
		if run.For == Forever || now.Before(f.startedAt(pod.UID, cs, c.Name).Add(run.For)) {
			continue
		}
		f.terminate(pod, cs, now, run.ExitCode)
		changed = true
	}
	if argo && f.argoMainsDone(pod) && f.argoWaitRunning(pod) {
		if changed {
			// Let the main containers' end be seen before the wait
			// container's, as on a node.
			if err := f.updateStatus(ctx, pod); err != nil {
				return 0, err
			}
		}
		// What the wait container does once the mains have ended: its
		// sidecars are killed, the outputs reported, the result complete.
		for i := range pod.Status.ContainerStatuses {
			cs := &pod.Status.ContainerStatuses[i]
			if cs.State.Running != nil && cs.Name != common.WaitContainerName {
				f.terminate(pod, cs, now, exitCodeSIGKILL)
			}
		}
		if f.cfg.Argo != nil {
			if err := f.completeTaskResult(ctx, pod); err != nil {
				return 0, err
			}
		}
		for i := range pod.Status.ContainerStatuses {
			if cs := &pod.Status.ContainerStatuses[i]; cs.Name == common.WaitContainerName {
				f.terminate(pod, cs, now, 0)
			}
		}
		changed = true
	}
	if !changed {
		return f.nextDue(pod, now), nil
	}
	f.settlePhase(pod, now)
	if err := f.updateStatus(ctx, pod); err != nil {
		return 0, err
	}
	return f.nextDue(pod, now), nil
}

// terminate ends a running container with code, restarting it later if the
// restart policy says so.
func (f *Fakelet) terminate(pod *corev1.Pod, cs *corev1.ContainerStatus, now time.Time, code int) {
	state := terminatedState(pod, cs.Name, cs.RestartCount, f.startedAt(pod.UID, cs, cs.Name), now, code)
	policy := pod.Spec.RestartPolicy
	if policy == corev1.RestartPolicyAlways || policy == corev1.RestartPolicyOnFailure && code != 0 {
		cs.LastTerminationState = state
		cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason:  "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", f.cfg.RestartDelay, cs.Name, pod.Name, pod.Namespace, pod.UID),
		}}
		cs.RestartCount++
		cs.Ready, cs.Started = false, new(false)
		return
	}
	cs.State = state
	cs.Ready, cs.Started = false, new(false)
}

// stopAll kills every running or waiting container with code (no restart).
func (f *Fakelet) stopAll(pod *corev1.Pod, now time.Time, code int) {
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		if cs.State.Terminated != nil {
			continue
		}
		start := now
		if cs.State.Running != nil {
			start = f.startedAt(pod.UID, cs, cs.Name)
		}
		cs.State = terminatedState(pod, cs.Name, cs.RestartCount, start, now, code)
		cs.Ready, cs.Started = false, new(false)
	}
	f.settlePhase(pod, now)
	if !terminal(pod) {
		pod.Status.Phase = corev1.PodFailed
	}
}

// settlePhase sets the phase and readiness from the container states, as
// the kubelet does: terminal once no container runs or will restart.
func (f *Fakelet) settlePhase(pod *corev1.Pod, now time.Time) {
	// A pod with no container statuses never started: it is not over by
	// itself (stopAll fails it).
	allEnded, allZero := len(pod.Status.ContainerStatuses) > 0, true
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.State.Terminated == nil {
			allEnded = false
			break
		}
		if cs.State.Terminated.ExitCode != 0 {
			allZero = false
		}
	}
	if !allEnded {
		ready := true
		for _, cs := range pod.Status.ContainerStatuses {
			ready = ready && cs.Ready
		}
		status, reason := corev1.ConditionTrue, ""
		if !ready {
			status, reason = corev1.ConditionFalse, "ContainersNotReady"
		}
		setCondition(pod, corev1.ContainersReady, status, reason, now)
		setCondition(pod, corev1.PodReady, status, reason, now)
		return
	}
	if allZero {
		pod.Status.Phase = corev1.PodSucceeded
	} else {
		pod.Status.Phase = corev1.PodFailed
	}
	setCondition(pod, corev1.PodReadyToStartContainers, corev1.ConditionFalse, "", now)
	setCondition(pod, corev1.ContainersReady, corev1.ConditionFalse, "PodCompleted", now)
	setCondition(pod, corev1.PodReady, corev1.ConditionFalse, "PodCompleted", now)
}

// nextDue returns how long until the next container of pod ends or
// restarts (0: none will by itself).
func (f *Fakelet) nextDue(pod *corev1.Pod, now time.Time) time.Duration {
	var next time.Time
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	argo := isArgoPod(pod)
	for i := range pod.Status.ContainerStatuses {
		cs := &pod.Status.ContainerStatuses[i]
		c := containerSpec(pod, cs.Name)
		if c == nil || argo && !isArgoMain(pod, cs.Name) {
			continue // Argo's wait container and sidecars end with the mains
		}
		if cs.State.Waiting != nil && cs.LastTerminationState.Terminated != nil {
			consider(cs.LastTerminationState.Terminated.FinishedAt.Add(f.cfg.RestartDelay))
		}
		if cs.State.Running == nil {
			continue
		}
		if run, _ := planOf(c); run.For != Forever {
			consider(f.startedAt(pod.UID, cs, cs.Name).Add(run.For))
		}
	}
	if d := pod.Spec.ActiveDeadlineSeconds; d != nil && pod.Status.StartTime != nil && !terminal(pod) {
		consider(pod.Status.StartTime.Add(time.Duration(*d) * time.Second))
	}
	if next.IsZero() {
		return 0
	}
	// Due now or in the past: come back at once (AddAfter needs > 0).
	return max(next.Sub(now), time.Millisecond)
}

// updateStatus writes pod's status, and keeps the written pod (its new
// resourceVersion) in pod for a further update in the same step.
func (f *Fakelet) updateStatus(ctx context.Context, pod *corev1.Pod) error {
	updated, err := f.cfg.Client.CoreV1().Pods(pod.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
	if err != nil {
		return err
	}
	*pod = *updated
	return nil
}

func (f *Fakelet) containerStatus(pod *corev1.Pod, c *corev1.Container, restarts int32) corev1.ContainerStatus {
	return corev1.ContainerStatus{
		Name:         c.Name,
		Image:        c.Image,
		ImageID:      "fakelet://" + c.Image,
		ContainerID:  containerID(pod, c.Name, restarts),
		RestartCount: restarts,
	}
}

func containerID(pod *corev1.Pod, name string, restarts int32) string {
	return fmt.Sprintf("fakelet://%s/%s/%d", pod.UID, name, restarts)
}

func terminatedState(pod *corev1.Pod, name string, restarts int32, started, finished time.Time, code int) corev1.ContainerState {
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	return corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode:    int32(code),
		Reason:      reason,
		StartedAt:   metav1.Time{Time: started},
		FinishedAt:  metav1.Time{Time: finished},
		ContainerID: containerID(pod, name, restarts),
	}}
}

func (f *Fakelet) markStarted(uid types.UID, name string, restarts int32, t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.started[fmt.Sprintf("%s/%s/%d", uid, name, restarts)] = t
}

// startedAt is when the container's current run began: remembered, or
// from its status (whole seconds) after a restart of the fakelet.
func (f *Fakelet) startedAt(uid types.UID, cs *corev1.ContainerStatus, name string) time.Time {
	f.mu.Lock()
	t, ok := f.started[fmt.Sprintf("%s/%s/%d", uid, name, cs.RestartCount)]
	f.mu.Unlock()
	if ok {
		return t
	}
	if cs.State.Running != nil {
		return cs.State.Running.StartedAt.Time
	}
	return time.Now()
}

func (f *Fakelet) forget(uid types.UID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	prefix := string(uid) + "/"
	maps.DeleteFunc(f.started, func(k string, _ time.Time) bool { return len(k) > len(prefix) && k[:len(prefix)] == prefix })
}

func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

func containerSpec(pod *corev1.Pod, name string) *corev1.Container {
	i := slices.IndexFunc(pod.Spec.Containers, func(c corev1.Container) bool { return c.Name == name })
	if i < 0 {
		return nil
	}
	return &pod.Spec.Containers[i]
}

func setCondition(pod *corev1.Pod, typ corev1.PodConditionType, status corev1.ConditionStatus, reason string, now time.Time) {
	for i := range pod.Status.Conditions {
		c := &pod.Status.Conditions[i]
		if c.Type != typ {
			continue
		}
		if c.Status != status {
			c.LastTransitionTime = metav1.Time{Time: now}
		}
		c.Status, c.Reason = status, reason
		return
	}
	pod.Status.Conditions = append(pod.Status.Conditions, corev1.PodCondition{
		Type: typ, Status: status, Reason: reason, LastTransitionTime: metav1.Time{Time: now},
	})
}
