package examples_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"sigs.k8s.io/yaml"

	argoconfig "github.com/argoproj/argo-workflows/v3/config"
	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/workflow/common"
	"github.com/argoproj/argo-workflows/v3/workflow/templateresolution"
	"github.com/argoproj/argo-workflows/v3/workflow/validate"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/server"
	"github.com/batchlatch/batchlatch/state/filestore"
)

const defaultsFile = "workflow-defaults.yaml"

// The workflow controller reads its configuration from this ConfigMap
// (workflow-controller's --configmap default) in its own namespace.
const (
	controllerConfigMap = "workflow-controller-configmap"
	controllerNamespace = "argo"
)

// loadDefaults reads workflow-defaults.yaml: exactly one ConfigMap, decoded
// strictly, whose only key is workflowDefaults. The value is decoded strictly
// into a Workflow, and Argo's own ConfigMap parser (config.Controller.Parse,
// also strict) must read the same defaults out of the ConfigMap.
func loadDefaults(t *testing.T) *wfv1.Workflow {
	t.Helper()
	data := readFile(t, defaultsFile)
	var cm *corev1.ConfigMap
	for i, doc := range yamlDocuments(t, data) {
		if gvk := doc.kind; gvk != corev1.SchemeGroupVersion.WithKind("ConfigMap") || cm != nil {
			t.Fatalf("document %d: %s must hold exactly one ConfigMap, found %v", i, defaultsFile, gvk)
		}
		cm = &corev1.ConfigMap{}
		if err := yaml.UnmarshalStrict(doc.yaml, cm); err != nil {
			t.Fatalf("document %d (ConfigMap): strict decode: %v", i, err)
		}
	}
	if cm == nil {
		t.Fatalf("%s holds no ConfigMap", defaultsFile)
	}
	if cm.Name != controllerConfigMap || cm.Namespace != controllerNamespace {
		t.Fatalf("ConfigMap %s/%s, want %s/%s (the workflow controller's)", cm.Namespace, cm.Name, controllerNamespace, controllerConfigMap)
	}
	if keys := slices.Sorted(func(yield func(string) bool) {
		for k := range cm.Data {
			if !yield(k) {
				return
			}
		}
	}); !slices.Equal(keys, []string{"workflowDefaults"}) || len(cm.BinaryData) != 0 {
		t.Fatalf("ConfigMap data keys = %v, want only workflowDefaults (a fragment to merge)", keys)
	}

	var defaults wfv1.Workflow
	if err := yaml.UnmarshalStrict([]byte(cm.Data["workflowDefaults"]), &defaults); err != nil {
		t.Fatalf("workflowDefaults: strict decode into a Workflow: %v", err)
	}
	cfg, err := argoconfig.NewController(cm.Namespace, cm.Name, nil).Parse(cm)
	if err != nil {
		t.Fatalf("Argo's config parser rejects the ConfigMap: %v", err)
	}
	if cfg.WorkflowDefaults == nil {
		t.Fatal("Argo's config parser finds no workflowDefaults")
	}
	if got, want := mustJSON(t, cfg.WorkflowDefaults), mustJSON(t, &defaults); got != want {
		t.Fatalf("Argo reads other defaults than the strict decode:\n got %s\nwant %s", got, want)
	}
	return cfg.WorkflowDefaults
}

func readFile(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// mergeDefaults merges the controller's workflowDefaults into wf as the
// controller does before it validates and runs a workflow without a
// workflowTemplateRef (WorkflowController.setWorkflowDefaults). It is
// workflow/util.MergeTo of Argo v3.7.18, line for line: importing that
// package would add some twenty modules (pgx, cobra, ...) to go.mod. The
// spec is strategically merged, the workflow winning, with templates merged
// by name; hooks are added one by one, only where wf has none of that name.
func mergeDefaults(t *testing.T, defaults, wf *wfv1.Workflow) {
	t.Helper()
	patch := defaults.DeepCopy()
	patchHooks := patch.Spec.Hooks
	patch.Spec.Hooks = nil
	var patchLabelsFrom map[string]wfv1.LabelValueFrom
	if patch.Spec.WorkflowMetadata != nil {
		patchLabelsFrom = patch.Spec.WorkflowMetadata.LabelsFrom
		patch.Spec.WorkflowMetadata.LabelsFrom = nil
	}
	merged, err := strategicpatch.StrategicMergePatch([]byte(mustJSON(t, patch)), []byte(mustJSON(t, wf)), wfv1.Workflow{})
	if err != nil {
		t.Fatalf("merge workflowDefaults: %v", err)
	}
	wf.Spec = wfv1.WorkflowSpec{}
	if err := json.Unmarshal(merged, wf); err != nil {
		t.Fatal(err)
	}
	if len(patchHooks) != 0 && wf.Spec.Hooks == nil {
		wf.Spec.Hooks = make(wfv1.LifecycleHooks)
	}
	for name, hook := range patchHooks {
		if _, ok := wf.Spec.Hooks[name]; !ok {
			wf.Spec.Hooks[name] = hook
		}
	}
	if len(patchLabelsFrom) != 0 && wf.Spec.WorkflowMetadata.LabelsFrom == nil {
		wf.Spec.WorkflowMetadata.LabelsFrom = make(map[string]wfv1.LabelValueFrom)
	}
	for key, val := range patchLabelsFrom {
		if _, ok := wf.Spec.WorkflowMetadata.LabelsFrom[key]; !ok {
			wf.Spec.WorkflowMetadata.LabelsFrom[key] = val
		}
	}
}

// exitTemplate is the template the workflow runs when it ends, resolved as
// the controller resolves it (WorkflowSpec.GetExitHook: onExit wins over
// hooks.exit). Empty when the workflow has no exit handler.
func exitTemplate(spec *wfv1.WorkflowSpec) string {
	hook := spec.GetExitHook(spec.Arguments)
	if hook == nil {
		return ""
	}
	return hook.Template
}

// defaultHook returns the default exit hook's steps wrapper, its single step
// and the HTTP template that step calls, all from spec (the defaults
// themselves, or a workflow they were merged into).
func defaultHook(t *testing.T, spec *wfv1.WorkflowSpec) (*wfv1.Template, wfv1.WorkflowStep, *wfv1.Template) {
	t.Helper()
	hook, ok := spec.Hooks[wfv1.ExitLifecycleEvent]
	if !ok {
		t.Fatalf("no hooks.%s", wfv1.ExitLifecycleEvent)
	}
	if hook.Template == "" || hook.TemplateRef != nil {
		t.Fatalf("hooks.exit must name a template of the defaults (they merge into every workflow), got %+v", hook)
	}
	if hook.Expression != "" || !hook.Arguments.IsEmpty() {
		t.Fatalf("hooks.exit must run unconditionally and without arguments, got %+v", hook)
	}
	wrapper := findTemplate(t, spec, hook.Template)
	if len(wrapper.Steps) != 1 || len(wrapper.Steps[0].Steps) != 1 {
		t.Fatalf("hook template %q must be a steps template with exactly one step, got %+v", wrapper.Name, wrapper.Steps)
	}
	step := wrapper.Steps[0].Steps[0]
	post := findTemplate(t, spec, step.Template)
	if post.HTTP == nil {
		t.Fatalf("the hook's step calls template %q, which is not an http template", step.Template)
	}
	return wrapper, step, post
}

func TestWorkflowDefaultsShape(t *testing.T) {
	defaults := loadDefaults(t)
	spec := &defaults.Spec

	if spec.OnExit != "" {
		t.Errorf("workflowDefaults sets onExit %q: use hooks.exit (a workflow's own onExit would still win, but a default onExit is merged as a plain field)", spec.OnExit)
	}
	if len(spec.Hooks) != 1 {
		t.Errorf("hooks = %v, want only %q", spec.Hooks, wfv1.ExitLifecycleEvent)
	}
	if spec.Entrypoint != "" || spec.ServiceAccountName != "" {
		t.Errorf("workflowDefaults must not set entrypoint (%q) or serviceAccountName (%q) for every workflow", spec.Entrypoint, spec.ServiceAccountName)
	}
	wrapper, step, post := defaultHook(t, spec)
	if len(spec.Templates) != 2 {
		t.Errorf("workflowDefaults has %d templates, want the hook's two (each one is merged into every workflow)", len(spec.Templates))
	}
	if step.ContinueOn == nil || !step.ContinueOn.Failed || !step.ContinueOn.Error {
		t.Errorf("the hook's step must have continueOn {failed: true, error: true} so a batchlatch outage never fails a workflow, got %+v", step.ContinueOn)
	}
	// Template names are merge keys: names that a user's workflow might use
	// for its own templates would mix the two.
	for _, name := range []string{wrapper.Name, post.Name} {
		if !strings.HasPrefix(name, "batchlatch-") {
			t.Errorf("template %q: give the default templates a batchlatch- prefix", name)
		}
	}

	// The same request as the CronWorkflow example, except the body: method,
	// URL, headers (the Secret), timeout, success condition, retries.
	cwf := loadManifests(t)
	_, cronPost := exitHandler(t, cwf.cron)
	for _, name := range []string{wrapper.Name, post.Name} {
		if slices.ContainsFunc(cwf.cron.Spec.WorkflowSpec.Templates, func(tm wfv1.Template) bool { return tm.Name == name }) {
			t.Errorf("template %q exists in %s too: the default would be merged into the CronWorkflow's template", name, manifestFile)
		}
	}
	h, cronHTTP := post.HTTP.DeepCopy(), cronPost.HTTP.DeepCopy()
	h.Body, cronHTTP.Body = "", ""
	if got, want := mustJSON(t, h), mustJSON(t, cronHTTP); got != want {
		t.Errorf("http request differs from %s's:\n got %s\nwant %s", manifestFile, got, want)
	}
	if got, want := mustJSON(t, post.RetryStrategy), mustJSON(t, cronPost.RetryStrategy); got != want {
		t.Errorf("retryStrategy differs from %s's:\n got %s\nwant %s", manifestFile, got, want)
	}
	if post.HTTP.Body == "" || post.HTTP.BodyFrom != nil {
		t.Errorf("the callback goes in body, got body %q, bodyFrom %v", post.HTTP.Body, post.HTTP.BodyFrom)
	}
	// The example's Role (which the comments tell to copy into every
	// namespace) lets the agent read the Secret of the defaults.
	ref := secretHeader(t, post.HTTP)
	if !roleAllows(cwf.role, "", "secrets", "get", ref.Name) {
		t.Errorf("the Role of %s does not allow get on Secret %q of the defaults", manifestFile, ref.Name)
	}
}

// plainWorkflow is a Workflow submitted by hand (no CronWorkflow, no
// WorkflowTemplate), as the controller sees it when its exit hook starts.
func plainWorkflow(namespace, name, uid string, created time.Time, labels map[string]string) *wfv1.Workflow {
	wf := &wfv1.Workflow{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, GenerateName: "adhoc-", Namespace: namespace, UID: types.UID(uid),
			CreationTimestamp: metav1.NewTime(created.UTC()),
			Labels:            map[string]string{common.LabelKeyPhase: string(wfv1.WorkflowRunning), common.LabelKeyCompleted: "false"},
		},
		Spec: wfv1.WorkflowSpec{
			Entrypoint: "main",
			Templates: []wfv1.Template{{
				Name:      "main",
				Container: &corev1.Container{Image: "busybox", Command: []string{"sh", "-c", "exit 1"}},
			}},
		},
	}
	for k, v := range labels {
		wf.Labels[k] = v
	}
	wf.Status.Phase = wfv1.WorkflowRunning
	wf.Status.StartedAt = metav1.NewTime(wf.CreationTimestamp.Add(time.Second))
	return wf
}

// withoutOnExit is the example CronWorkflow without its own exit handler and
// the templates only that handler uses: a CronWorkflow that relies on the
// defaults.
func withoutOnExit(t *testing.T, cwf *wfv1.CronWorkflow) *wfv1.CronWorkflow {
	t.Helper()
	out := cwf.DeepCopy()
	step, post := exitHandler(t, out)
	spec := &out.Spec.WorkflowSpec
	spec.Templates = slices.DeleteFunc(spec.Templates, func(tm wfv1.Template) bool {
		return tm.Name == spec.OnExit || tm.Name == step.Template || tm.Name == post.Name
	})
	spec.OnExit = ""
	return out
}

func validateWorkflow(wf *wfv1.Workflow, defaults *wfv1.Workflow) error {
	return validate.ValidateWorkflow(noWorkflowTemplates{}, &templateresolution.NullClusterWorkflowTemplateGetter{}, wf, defaults, validate.ValidateOpts{})
}

func validateCronWithDefaults(cwf *wfv1.CronWorkflow, defaults *wfv1.Workflow) error {
	return validate.ValidateCronWorkflow(context.Background(), noWorkflowTemplates{}, &templateresolution.NullClusterWorkflowTemplateGetter{}, cwf, defaults)
}

// controllerAccepts does what the controller does with a new workflow:
// merge the defaults, then validate the result (operator.go setExecWorkflow;
// a failure marks the workflow Failed with "invalid spec"). Note that
// ValidateWorkflow's own wfDefaults argument merges nothing: it only adds the
// label and annotation keys of the defaults' workflowMetadata.
func controllerAccepts(t *testing.T, wf *wfv1.Workflow, defaults *wfv1.Workflow) (*wfv1.Workflow, error) {
	t.Helper()
	merged := wf.DeepCopy()
	mergeDefaults(t, defaults, merged)
	return merged, validateWorkflow(merged, defaults)
}

func TestWorkflowDefaultsValidate(t *testing.T) {
	defaults := loadDefaults(t)
	m := loadManifests(t)
	hookTemplate := defaults.Spec.Hooks[wfv1.ExitLifecycleEvent].Template
	tick := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)

	t.Run("CronWorkflow with its own onExit keeps it", func(t *testing.T) {
		if err := validateCronWithDefaults(m.cron, defaults); err != nil {
			t.Fatalf("ValidateCronWorkflow with the defaults: %v", err)
		}
		merged, err := controllerAccepts(t, newRun(m.cron, tick, "uid-1"), defaults)
		if err != nil {
			t.Fatalf("the controller would fail the run: %v", err)
		}
		if got := exitTemplate(&merged.Spec); got != m.cron.Spec.WorkflowSpec.OnExit {
			t.Fatalf("exit template = %q, want the CronWorkflow's own onExit %q", got, m.cron.Spec.WorkflowSpec.OnExit)
		}
	})

	cronNoExit := withoutOnExit(t, m.cron)
	t.Run("CronWorkflow without onExit gets the hook", func(t *testing.T) {
		if err := validateCronWithDefaults(cronNoExit, defaults); err != nil {
			t.Fatalf("ValidateCronWorkflow with the defaults: %v", err)
		}
		run := newRun(cronNoExit, tick, "uid-2")
		if got := exitTemplate(&run.Spec); got != "" {
			t.Fatalf("before the merge the run already has exit template %q", got)
		}
		merged, err := controllerAccepts(t, run, defaults)
		if err != nil {
			t.Fatalf("the controller would fail the run: %v", err)
		}
		if got := exitTemplate(&merged.Spec); got != hookTemplate {
			t.Fatalf("exit template = %q, want the default hook's %q", got, hookTemplate)
		}
		// Argo's validation checks hooks.exit only for an expression, not that
		// its template exists: defaultHook is what checks that here.
		defaultHook(t, &merged.Spec)
	})

	plain := plainWorkflow(m.cron.Namespace, "adhoc-x7k2p", "uid-3", tick, nil)
	t.Run("plain Workflow gets the hook", func(t *testing.T) {
		merged, err := controllerAccepts(t, plain, defaults)
		if err != nil {
			t.Fatalf("the controller would fail every non-cron workflow: %v", err)
		}
		if got := exitTemplate(&merged.Spec); got != hookTemplate {
			t.Fatalf("exit template = %q, want the default hook's %q", got, hookTemplate)
		}
		if _, err := controllerAccepts(t, merged, defaults); err != nil {
			t.Fatalf("merging twice: %v", err)
		}
	})

	t.Run("a workflow's own exit hook wins", func(t *testing.T) {
		own := plain.DeepCopy()
		own.Spec.Templates = append(own.Spec.Templates, wfv1.Template{Name: "my-exit", Container: &corev1.Container{Image: "busybox"}})
		own.Spec.Hooks = wfv1.LifecycleHooks{wfv1.ExitLifecycleEvent: {Template: "my-exit"}}
		merged, err := controllerAccepts(t, own, defaults)
		if err != nil {
			t.Fatal(err)
		}
		if got := exitTemplate(&merged.Spec); got != "my-exit" {
			t.Fatalf("exit template = %q, want the workflow's own", got)
		}
	})

	// What the defaults' comments say Argo forbids in a default hook.
	bodyWith := func(t *testing.T, field string) *wfv1.Workflow {
		t.Helper()
		d := defaults.DeepCopy()
		_, _, post := defaultHook(t, &d.Spec)
		post.HTTP.Body = strings.Replace(post.HTTP.Body, "{", "{"+field+",", 1)
		return d
	}
	t.Run("workflow.failures is rejected in hooks.exit", func(t *testing.T) {
		d := bodyWith(t, `"failures": {{workflow.failures}}`)
		for name, wf := range map[string]*wfv1.Workflow{"plain": plain, "cron-made": newRun(cronNoExit, tick, "uid-4")} {
			if _, err := controllerAccepts(t, wf, d); err == nil || !strings.Contains(err.Error(), common.GlobalVarWorkflowFailures) {
				t.Errorf("%s: err = %v, want a failure to resolve %s (argo-workflows #12330)", name, err, common.GlobalVarWorkflowFailures)
			}
		}
	})
	t.Run("cron label variable fails every non-cron workflow", func(t *testing.T) {
		d := bodyWith(t, `"cronWorkflow": "{{workflow.labels.`+common.LabelKeyCronWorkflow+`}}"`)
		if _, err := controllerAccepts(t, newRun(cronNoExit, tick, "uid-5"), d); err != nil {
			t.Fatalf("cron-made run: %v", err)
		}
		if _, err := controllerAccepts(t, plain, d); err == nil || !strings.Contains(err.Error(), common.LabelKeyCronWorkflow) {
			t.Fatalf("plain workflow: err = %v, want a failure to resolve the cron-workflow label", err)
		}
		// The trap: handing the defaults to Argo's validators does not
		// validate them. Only the merged workflow shows the error.
		if err := validateWorkflow(plain, d); err != nil {
			t.Fatalf("ValidateWorkflow(wf, wfDefaults) now checks the defaults' templates (%v): controllerAccepts may drop its own merge", err)
		}
		if err := validateCronWithDefaults(cronNoExit, d); err != nil {
			t.Fatalf("ValidateCronWorkflow now checks the defaults' templates: %v", err)
		}
	})
}

// newServer starts batchlatch's HTTP handler on 127.0.0.1 with a file store
// and returns an agent holding the Secret the template reads.
func newServer(t *testing.T, ref *corev1.SecretKeySelector, clock time.Time) agent {
	t.Helper()
	const token = "d3faults-token"
	store, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	reg := prometheus.NewRegistry()
	h := server.NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), store, noKick{}, reg, server.NewMetrics(reg),
		server.Config{Token: token, Now: func() time.Time { return clock }})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return agent{t: t, baseURL: srv.URL, secrets: map[string]map[string]string{ref.Name: {ref.Key: "Bearer " + token}}}
}

func TestWorkflowDefaultsCallbackReachesServer(t *testing.T) {
	defaults := loadDefaults(t)
	m := loadManifests(t)
	cwf := withoutOnExit(t, m.cron)
	_, _, defaultPost := defaultHook(t, &defaults.Spec)
	ref := secretHeader(t, defaultPost.HTTP)

	tick1, tick2 := twoTicks(t, cwf)
	ag := newServer(t, ref, tick2.Add(time.Hour))

	// callback merges the defaults into wf, as the controller does, and
	// renders the hook's request with the exit-time globals of r.
	callback := func(t *testing.T, r run) (*wfv1.HTTP, common.Parameters) {
		t.Helper()
		merged, err := controllerAccepts(t, r.wf, defaults)
		if err != nil {
			t.Fatalf("the controller would fail %s: %v", r.wf.Name, err)
		}
		if got, want := exitTemplate(&merged.Spec), defaults.Spec.Hooks[wfv1.ExitLifecycleEvent].Template; got != want {
			t.Fatalf("exit template = %q, want %q", got, want)
		}
		_, _, post := defaultHook(t, &merged.Spec)
		r.wf = merged
		params := globals(t, r)
		return render(t, post, params), params
	}

	// A cron-made run fails. The body has no cronWorkflow field: batchlatch
	// takes the job from the CronWorkflow's label on the run.
	wf1 := newRun(cwf, tick1, "0b8e2a41-6c1d-4f3e-8a9b-1c2d3e4f5a61")
	run1 := run{
		wf: wf1, status: wfv1.WorkflowFailed, elapsed: 3*time.Minute + 7*time.Second,
		failures: []failedNodeStatus{{DisplayName: "train", Message: "Error (exit code 1)", TemplateName: "train", Phase: string(wfv1.NodeFailed)}},
	}
	body1, params1 := callback(t, run1)
	decoded := decodesTo(t, body1.Body, runResult(wf1, wfv1.WorkflowFailed, run1.elapsed.Seconds()))
	if decoded.JobName() != cwf.Name {
		t.Fatalf("job from the body = %q, want %q from label %s", decoded.JobName(), cwf.Name, common.LabelKeyCronWorkflow)
	}
	if decoded.Annotations[common.AnnotationKeyCronWfScheduledTime] == "" {
		t.Errorf("annotations %v lack %s: the scheduled time is lost", decoded.Annotations, common.AnnotationKeyCronWfScheduledTime)
	}

	res := ag.post(body1)
	switch job := res.Job; {
	case job.Namespace != cwf.Namespace || job.Job != cwf.Name:
		t.Fatalf("job = %s/%s, want %s/%s", job.Namespace, job.Job, cwf.Namespace, cwf.Name)
	case !job.Failing || job.ConsecutiveFailures != 1 || job.LastWorkflow != wf1.Name:
		t.Fatalf("after a failed run: %+v", job)
	case job.FailingSince == nil || !job.FailingSince.Equal(finishedAt(t, params1)):
		t.Fatalf("failingSince = %v, want %v", job.FailingSince, finishedAt(t, params1))
	case len(job.LastFailures) != 0:
		t.Fatalf("lastFailures = %+v: the hook cannot send failures", job.LastFailures)
	}
	if again := ag.post(body1); !again.Duplicate {
		t.Fatalf("redelivery: %+v", again)
	}

	// The next tick succeeds: the streak of ml/nightly ends.
	body2, _ := callback(t, run{wf: newRun(cwf, tick2, "7c1f9e20-3a4b-4c5d-9e6f-a1b2c3d4e5f6"), status: wfv1.WorkflowSucceeded, elapsed: 2 * time.Minute})
	res2 := ag.post(body2)
	if job := res2.Job; job.Namespace != cwf.Namespace || job.Job != cwf.Name || job.Failing || job.LastStreak == nil || job.LastStreak.Failures != 1 {
		t.Fatalf("after the successful run: %+v", job)
	}

	// Other workflows of the namespace: a hand-submitted one is the namespace
	// as a whole; one from a WorkflowTemplate is the template's job.
	for _, tc := range []struct {
		name     string
		workflow string
		labels   map[string]string
		wantJob  string
	}{
		{"plain", "adhoc-q8v4m", nil, ""},
		{"from a WorkflowTemplate", "backfill-t2r9c", map[string]string{common.LabelKeyWorkflowTemplate: "backfill"}, "backfill"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wf := plainWorkflow(cwf.Namespace, tc.workflow, "uid-"+tc.workflow, tick1.Add(time.Minute), tc.labels)
			body, _ := callback(t, run{wf: wf, status: wfv1.WorkflowError, elapsed: 30 * time.Second})
			job := ag.post(body).Job
			if job.Namespace != cwf.Namespace || job.Job != tc.wantJob || !job.Failing || job.LastPhase != api.PhaseError {
				t.Fatalf("job = %+v, want %s/%q failing", job, cwf.Namespace, tc.wantJob)
			}
		})
	}

	// Why the body has no scheduledTime: validation accepts the variable in
	// any workflow, but outside cron-made ones the controller leaves it
	// unsubstituted (common.SubstituteParams allows unresolved variables),
	// and batchlatch leaves the literal out with a warning on every run.
	t.Run("scheduledTime would break non-cron callbacks", func(t *testing.T) {
		d := defaults.DeepCopy()
		_, _, post := defaultHook(t, &d.Spec)
		post.HTTP.Body = strings.Replace(post.HTTP.Body, "{", `{"scheduledTime": "{{`+common.GlobalVarWorkflowCronScheduleTime+`}}",`, 1)
		wf := plainWorkflow(cwf.Namespace, "adhoc-sched", "uid-sched", tick1, nil)
		merged, err := controllerAccepts(t, wf, d)
		if err != nil {
			t.Fatalf("validation now rejects scheduledTime in a plain workflow (%v): revisit the comment of %s", err, defaultsFile)
		}
		_, _, mergedPost := defaultHook(t, &merged.Spec)
		params := globals(t, run{wf: merged, status: wfv1.WorkflowSucceeded, elapsed: time.Second})
		tmpl, err := common.SubstituteParams(mergedPost, params, common.Parameters{})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(tmpl.HTTP.Body, "{{"+common.GlobalVarWorkflowCronScheduleTime+"}}") {
			t.Fatalf("the controller now substitutes scheduledTime in plain workflows:\n%s", tmpl.HTTP.Body)
		}
		code, body := ag.send(tmpl.HTTP)
		var resp api.ResultResponse
		if err := json.Unmarshal(body, &resp); code != http.StatusOK || err != nil || len(resp.Warnings) != 1 || resp.Warnings[0].Field != "scheduledTime" {
			t.Fatalf("POST with an unsubstituted scheduledTime: %d %s, want 200 with a warning about scheduledTime", code, body)
		}
	})
}
