package fakelet

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// The environment variables of a container that tell the fakelet how its
// run goes. A container without them exits 0 at once.
const (
	// EnvDuration is how long the container runs: a Go duration, or
	// "forever" (until its pod is deleted or its deadline passes).
	EnvDuration = "FAKELET_DURATION"
	// EnvExitCode is the container's exit code.
	EnvExitCode = "FAKELET_EXIT_CODE"
)

// Forever is a Plan.For that never ends.
const Forever time.Duration = -1

// Plan is how a container's run goes: it runs For (or Forever), then exits
// with ExitCode.
type Plan struct {
	For      time.Duration
	ExitCode int
}

// Container returns a container named name whose run the fakelet plays as
// planned. Its command does the same in a shell, so the object means the
// same on a real cluster; it is never executed here. The image is never
// pulled: no kubelet runs here, and Argo's controller looks an image up in
// its registry only for a container without a command.
func Container(name string, plan Plan) corev1.Container {
	duration := "forever"
	script := "while :; do sleep 3600; done"
	if plan.For >= 0 {
		duration = plan.For.String()
		script = fmt.Sprintf("sleep %s; exit %d", strconv.FormatFloat(plan.For.Seconds(), 'f', -1, 64), plan.ExitCode)
	}
	return corev1.Container{
		Name:    name,
		Image:   "busybox:1.37",
		Command: []string{"sh", "-c", script},
		Env: []corev1.EnvVar{
			{Name: EnvDuration, Value: duration},
			{Name: EnvExitCode, Value: strconv.Itoa(plan.ExitCode)},
		},
	}
}

// planOf reads a container's plan from its environment.
func planOf(c *corev1.Container) (Plan, error) {
	run := Plan{}
	for _, e := range c.Env {
		switch e.Name {
		case EnvDuration:
			if e.Value == "forever" {
				run.For = Forever
				continue
			}
			d, err := time.ParseDuration(e.Value)
			if err != nil || d < 0 {
				return Plan{}, fmt.Errorf("container %s: %s=%q: want a duration >= 0 or \"forever\"", c.Name, EnvDuration, e.Value)
			}
			run.For = d
		case EnvExitCode:
			code, err := strconv.Atoi(e.Value)
			if err != nil || code < 0 || code > 255 {
				return Plan{}, fmt.Errorf("container %s: %s=%q: want 0..255", c.Name, EnvExitCode, e.Value)
			}
			run.ExitCode = code
		}
	}
	return run, nil
}

// ErrNoCommand is returned by CheckCommands for a container without a
// command.
var ErrNoCommand = errors.New("container has no command")

// CheckCommands returns an error wrapping ErrNoCommand if any container of
// obj has no command: Argo's controller would look its image up in a
// registry (leaving the machine) to find the entrypoint. obj is a Workflow,
// CronWorkflow, WorkflowTemplate, ClusterWorkflowTemplate, WorkflowSpec,
// Job, CronJob, Pod or PodSpec (a pointer); any other type is an error, so that a new kind of object cannot slip through unchecked.
func CheckCommands(obj any) error {
	var bad []string
	need := func(where string, c *corev1.Container) {
		if c != nil && len(c.Command) == 0 {
			bad = append(bad, where)
		}
	}
	podSpec := func(where string, s *corev1.PodSpec) {
		for i := range s.InitContainers {
			need(where+".initContainers["+s.InitContainers[i].Name+"]", &s.InitContainers[i])
		}
		for i := range s.Containers {
			need(where+".containers["+s.Containers[i].Name+"]", &s.Containers[i])
		}
	}
	template := func(where string, t *wfv1.Template) {
		if t == nil {
			return
		}
		where += ".templates[" + t.Name + "]"
		need(where+".container", t.Container)
		if t.Script != nil {
			need(where+".script", &t.Script.Container)
		}
		for i := range t.InitContainers {
			need(where+".initContainers["+t.InitContainers[i].Name+"]", &t.InitContainers[i].Container)
		}
		for i := range t.Sidecars {
			need(where+".sidecars["+t.Sidecars[i].Name+"]", &t.Sidecars[i].Container)
		}
		if t.ContainerSet != nil {
			for i := range t.ContainerSet.Containers {
				need(where+".containerSet["+t.ContainerSet.Containers[i].Name+"]", &t.ContainerSet.Containers[i].Container)
			}
		}
	}
	workflowSpec := func(where string, s *wfv1.WorkflowSpec) {
		for i := range s.Templates {
			template(where, &s.Templates[i])
		}
		template(where+".templateDefaults", s.TemplateDefaults)
	}
	switch o := obj.(type) {
	case *wfv1.Workflow:
		workflowSpec("Workflow "+o.Name, &o.Spec)
	case *wfv1.CronWorkflow:
		workflowSpec("CronWorkflow "+o.Name, &o.Spec.WorkflowSpec)
	case *wfv1.WorkflowTemplate:
		workflowSpec("WorkflowTemplate "+o.Name, &o.Spec)
	case *wfv1.ClusterWorkflowTemplate:
		workflowSpec("ClusterWorkflowTemplate "+o.Name, &o.Spec)
	case *wfv1.WorkflowSpec:
		workflowSpec("WorkflowSpec", o)
	case *batchv1.Job:
		podSpec("Job "+o.Name, &o.Spec.Template.Spec)
	case *batchv1.CronJob:
		podSpec("CronJob "+o.Name, &o.Spec.JobTemplate.Spec.Template.Spec)
	case *corev1.Pod:
		podSpec("Pod "+o.Name, &o.Spec)
	case *corev1.PodSpec:
		podSpec("PodSpec", o)
	default:
		return fmt.Errorf("fakelet.CheckCommands: cannot check a %T", obj)
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s (give every container a command, e.g. with fakelet.Container)", ErrNoCommand, strings.Join(bad, ", "))
	}
	return nil
}

// argoTemplate decodes the template Argo's controller gives its init and
// wait containers (ARGO_TEMPLATE), or returns nil.
func argoTemplate(pod *corev1.Pod) *wfv1.Template {
	for _, c := range append(append([]corev1.Container{}, pod.Spec.InitContainers...), pod.Spec.Containers...) {
		for _, e := range c.Env {
			if e.Name != "ARGO_TEMPLATE" || !strings.HasPrefix(e.Value, "{") {
				continue
			}
			var t wfv1.Template
			if json.Unmarshal([]byte(e.Value), &t) == nil {
				return &t
			}
		}
	}
	return nil
}
