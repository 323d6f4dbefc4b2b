package examples_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/util/template"
	"github.com/argoproj/argo-workflows/v3/workflow/common"
	"github.com/argoproj/argo-workflows/v3/workflow/templateresolution"
	"github.com/argoproj/argo-workflows/v3/workflow/validate"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/server"
	"github.com/batchlatch/batchlatch/state/filestore"
)

const manifestFile = "cronworkflow.yaml"

// manifests is the content of cronworkflow.yaml, each object decoded strictly.
type manifests struct {
	cron    *wfv1.CronWorkflow
	account *corev1.ServiceAccount
	role    *rbacv1.Role
	binding *rbacv1.RoleBinding
}

// loadManifests reads every document of the example and decodes it strictly
// (unknown or duplicate fields are errors) into its Go type. A kind the test
// does not know is an error too, so nothing in the file goes unchecked.
func loadManifests(t *testing.T) manifests {
	t.Helper()
	data, err := os.ReadFile(manifestFile)
	if err != nil {
		t.Fatal(err)
	}
	var m manifests
	for i, doc := range yamlDocuments(t, data) {
		var target any
		switch gvk := doc.kind; gvk {
		case wfv1.SchemeGroupVersion.WithKind("CronWorkflow"):
			if m.cron != nil {
				t.Fatalf("document %d: a second CronWorkflow", i)
			}
			m.cron = &wfv1.CronWorkflow{}
			target = m.cron
		case corev1.SchemeGroupVersion.WithKind("ServiceAccount"):
			m.account = &corev1.ServiceAccount{}
			target = m.account
		case rbacv1.SchemeGroupVersion.WithKind("Role"):
			m.role = &rbacv1.Role{}
			target = m.role
		case rbacv1.SchemeGroupVersion.WithKind("RoleBinding"):
			m.binding = &rbacv1.RoleBinding{}
			target = m.binding
		default:
			t.Fatalf("document %d: unexpected kind %v", i, gvk)
		}
		if err := yaml.UnmarshalStrict(doc.yaml, target); err != nil {
			t.Fatalf("document %d (%s): strict decode: %v", i, doc.kind.Kind, err)
		}
	}
	if m.cron == nil || m.account == nil || m.role == nil || m.binding == nil {
		t.Fatalf("%s must hold a CronWorkflow, a ServiceAccount, a Role and a RoleBinding; got %+v", manifestFile, m)
	}
	return m
}

// yamlDocument is one document of a multi-document YAML file, with its kind.
type yamlDocument struct {
	kind schema.GroupVersionKind
	yaml []byte
}

// yamlDocuments splits data into its documents, skipping those with only
// comments; each must be valid YAML without duplicate keys.
func yamlDocuments(t *testing.T, data []byte) []yamlDocument {
	t.Helper()
	var docs []yamlDocument
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for i := 0; ; i++ {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		asJSON, err := yaml.YAMLToJSONStrict(doc)
		if err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		if string(bytes.TrimSpace(asJSON)) == "null" {
			continue // only comments
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(asJSON, &tm); err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		docs = append(docs, yamlDocument{kind: tm.GroupVersionKind(), yaml: doc})
	}
}

func findTemplate(t *testing.T, spec *wfv1.WorkflowSpec, name string) *wfv1.Template {
	t.Helper()
	for i := range spec.Templates {
		if spec.Templates[i].Name == name {
			return &spec.Templates[i]
		}
	}
	t.Fatalf("no template %q", name)
	return nil
}

// exitHandler returns the onExit wrapper's single step and the HTTP template it calls.
func exitHandler(t *testing.T, cwf *wfv1.CronWorkflow) (wfv1.WorkflowStep, *wfv1.Template) {
	t.Helper()
	spec := &cwf.Spec.WorkflowSpec
	if spec.OnExit == "" {
		t.Fatal("spec.workflowSpec.onExit is not set")
	}
	wrapper := findTemplate(t, spec, spec.OnExit)
	if len(wrapper.Steps) != 1 || len(wrapper.Steps[0].Steps) != 1 {
		t.Fatalf("onExit template %q must be a steps template with exactly one step, got %+v", wrapper.Name, wrapper.Steps)
	}
	step := wrapper.Steps[0].Steps[0]
	tmpl := findTemplate(t, spec, step.Template)
	if tmpl.HTTP == nil {
		t.Fatalf("the onExit step calls template %q, which is not an http template", step.Template)
	}
	return step, tmpl
}

// secretHeader returns the secretKeyRef of the Authorization header.
func secretHeader(t *testing.T, h *wfv1.HTTP) *corev1.SecretKeySelector {
	t.Helper()
	for _, header := range h.Headers {
		if http.CanonicalHeaderKey(header.Name) != "Authorization" {
			continue
		}
		if header.Value != "" || header.ValueFrom == nil || header.ValueFrom.SecretKeyRef == nil {
			t.Fatalf("the Authorization header must come from a Secret (valueFrom.secretKeyRef), got %+v", header)
		}
		ref := header.ValueFrom.SecretKeyRef
		if ref.Name == "" || ref.Key == "" {
			t.Fatalf("the Authorization secretKeyRef needs a name and a key, got %+v", ref)
		}
		return ref
	}
	t.Fatal("the http template sends no Authorization header")
	return nil
}

func TestCronWorkflowShape(t *testing.T) {
	m := loadManifests(t)
	cwf := m.cron

	if cwf.Namespace == "" || cwf.Name == "" {
		t.Fatalf("the CronWorkflow needs a name and a namespace, got %q/%q", cwf.Namespace, cwf.Name)
	}
	// A Replace-d (terminated) run skips its exit handler: batchlatch would never hear of it.
	if cwf.Spec.ConcurrencyPolicy == wfv1.ReplaceConcurrent {
		t.Error("concurrencyPolicy Replace terminates runs, and terminated runs send no callback")
	}

	step, tmpl := exitHandler(t, cwf)
	if step.ContinueOn == nil || !step.ContinueOn.Failed || !step.ContinueOn.Error {
		t.Errorf("the onExit step must have continueOn {failed: true, error: true} so a batchlatch outage never fails the workflow, got %+v", step.ContinueOn)
	}

	h := tmpl.HTTP
	if h.Method != http.MethodPost {
		t.Errorf("method = %q, want POST", h.Method)
	}
	u, err := url.Parse(h.URL)
	if err != nil || u.Path != "/api/v1/results" || !strings.HasPrefix(u.Host, "batchlatch.") {
		t.Errorf("url = %q (%v), want http://batchlatch.<namespace>...:<port>/api/v1/results", h.URL, err)
	}
	var contentType string
	for _, header := range h.Headers {
		if http.CanonicalHeaderKey(header.Name) == "Content-Type" {
			contentType = header.Value
		}
	}
	if mediaType, _, err := mime.ParseMediaType(contentType); err != nil || mediaType != "application/json" {
		t.Errorf("Content-Type header = %q, want application/json", contentType)
	}
	ref := secretHeader(t, h)
	if h.TimeoutSeconds == nil || *h.TimeoutSeconds <= 0 || *h.TimeoutSeconds > 60 {
		t.Errorf("timeoutSeconds = %v, want set, between 1 and 60 (Argo sets no deadline otherwise)", h.TimeoutSeconds)
	}
	if h.Body == "" || h.BodyFrom != nil {
		t.Errorf("the callback goes in body, got body %q, bodyFrom %v", h.Body, h.BodyFrom)
	}
	if h.SuccessCondition != "" {
		t.Errorf("successCondition = %q: batchlatch's answer is any 2xx, leave it unset", h.SuccessCondition)
	}

	rs := tmpl.RetryStrategy
	switch {
	case rs == nil:
		t.Error("the http template has no retryStrategy")
	case rs.Limit == nil || rs.Limit.IntValue() < 1:
		t.Errorf("retryStrategy.limit = %v, want at least 1", rs.Limit)
	case rs.Backoff == nil || rs.Backoff.Duration == "":
		t.Errorf("retryStrategy.backoff = %+v, want a duration", rs.Backoff)
	case rs.RetryPolicyActual() != wfv1.RetryPolicyAlways && rs.RetryPolicyActual() != wfv1.RetryPolicyOnFailure:
		// The agent reports a failed request (refused, timed out) as Failed.
		t.Errorf("retryPolicy %q does not retry failed requests", rs.RetryPolicyActual())
	}

	// The agent runs as the workflow's service account and needs RBAC for its
	// task set and for the Secret.
	sa := cwf.Spec.WorkflowSpec.ServiceAccountName
	if sa == "" || m.account.Name != sa {
		t.Errorf("serviceAccountName = %q, but the file defines ServiceAccount %q", sa, m.account.Name)
	}
	for _, meta := range []metav1.ObjectMeta{m.account.ObjectMeta, m.role.ObjectMeta, m.binding.ObjectMeta} {
		if meta.Namespace != cwf.Namespace {
			t.Errorf("%s is in namespace %q, the CronWorkflow in %q", meta.Name, meta.Namespace, cwf.Namespace)
		}
	}
	if r := m.binding.RoleRef; r.Kind != "Role" || r.Name != m.role.Name || r.APIGroup != rbacv1.GroupName {
		t.Errorf("RoleBinding roleRef = %+v, want the Role %q", r, m.role.Name)
	}
	if !slices.ContainsFunc(m.binding.Subjects, func(s rbacv1.Subject) bool {
		return s.Kind == rbacv1.ServiceAccountKind && s.Name == sa && s.Namespace == cwf.Namespace
	}) {
		t.Errorf("RoleBinding subjects %+v do not include ServiceAccount %s/%s", m.binding.Subjects, cwf.Namespace, sa)
	}
	for _, want := range []struct{ group, resource, verb, name string }{
		{"argoproj.io", "workflowtaskresults", "create", ""},
		{"argoproj.io", "workflowtaskresults", "patch", ""},
		{"argoproj.io", "workflowtasksets", "list", ""},
		{"argoproj.io", "workflowtasksets", "watch", ""},
		{"argoproj.io", "workflowtasksets/status", "patch", ""},
		{"", "secrets", "get", ref.Name},
	} {
		if !roleAllows(m.role, want.group, want.resource, want.verb, want.name) {
			t.Errorf("Role %s does not allow %s on %s %q (group %q)", m.role.Name, want.verb, want.resource, want.name, want.group)
		}
	}
}

// roleAllows reports whether one rule of role grants verb on resource (named
// name, if not empty).
func roleAllows(role *rbacv1.Role, group, resource, verb, name string) bool {
	for _, r := range role.Rules {
		if slices.Contains(r.APIGroups, group) && slices.Contains(r.Resources, resource) && slices.Contains(r.Verbs, verb) &&
			(len(r.ResourceNames) == 0 || slices.Contains(r.ResourceNames, name)) {
			return true
		}
	}
	return false
}

// noWorkflowTemplates is a WorkflowTemplate getter for a namespace without any.
type noWorkflowTemplates struct{}

func (noWorkflowTemplates) Get(name string) (*wfv1.WorkflowTemplate, error) {
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: "argoproj.io", Resource: "workflowtemplates"}, name)
}

func validateCron(cwf *wfv1.CronWorkflow) error {
	return validate.ValidateCronWorkflow(context.Background(), noWorkflowTemplates{}, &templateresolution.NullClusterWorkflowTemplateGetter{}, cwf, nil)
}

func TestCronWorkflowValidates(t *testing.T) {
	m := loadManifests(t)
	if err := validateCron(m.cron); err != nil {
		t.Fatalf("argo rejects %s: %v", manifestFile, err)
	}

	// The validator does look at the callback: these break it.
	t.Run("unknown variable in body is rejected", func(t *testing.T) {
		cwf := m.cron.DeepCopy()
		_, tmpl := exitHandler(t, cwf)
		tmpl.HTTP.Body = strings.Replace(tmpl.HTTP.Body, "{", `{"extra":"{{workflow.labels.no-such-label}}",`, 1)
		if err := validateCron(cwf); err == nil || !strings.Contains(err.Error(), "no-such-label") {
			t.Fatalf("err = %v, want a failure to resolve workflow.labels.no-such-label", err)
		}
	})
	t.Run("missing onExit template is rejected", func(t *testing.T) {
		cwf := m.cron.DeepCopy()
		cwf.Spec.WorkflowSpec.OnExit = "no-such-template"
		if err := validateCron(cwf); err == nil {
			t.Fatal("err = nil, want an error")
		}
	})
	// {{workflow.labels.workflows.argoproj.io/cron-workflow}} validates only because
	// the CronWorkflow puts that label on its runs: the same spec in a plain
	// Workflow (or in workflowDefaults) is invalid.
	t.Run("cron label variable needs a CronWorkflow", func(t *testing.T) {
		_, tmpl := exitHandler(t, m.cron)
		if !strings.Contains(tmpl.HTTP.Body, "{{workflow.labels."+common.LabelKeyCronWorkflow+"}}") {
			t.Skip("the body does not use the cron-workflow label")
		}
		wf := &wfv1.Workflow{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "adhoc-", Namespace: m.cron.Namespace},
			Spec:       *m.cron.Spec.WorkflowSpec.DeepCopy(),
		}
		err := validate.ValidateWorkflow(noWorkflowTemplates{}, &templateresolution.NullClusterWorkflowTemplateGetter{}, wf, nil, validate.ValidateOpts{})
		if err == nil || !strings.Contains(err.Error(), common.LabelKeyCronWorkflow) {
			t.Fatalf("err = %v, want a failure to resolve the cron-workflow label", err)
		}
	})
}

// failedNodeStatus mirrors the controller's entry of {{workflow.failures}}
// (workflow/controller/operator.go), which is unexported.
type failedNodeStatus struct {
	DisplayName  string      `json:"displayName"`
	Message      string      `json:"message"`
	TemplateName string      `json:"templateName"`
	Phase        string      `json:"phase"`
	PodName      string      `json:"podName"`
	FinishedAt   metav1.Time `json:"finishedAt"`
}

// run is one workflow created by the CronWorkflow, at the moment its exit
// handler starts.
type run struct {
	wf       *wfv1.Workflow
	status   wfv1.WorkflowPhase // what the exit handler sees: Succeeded, Failed or Error
	elapsed  time.Duration      // from status.startedAt to the exit handler
	failures []failedNodeStatus
}

// newRun builds the Workflow the cron controller creates for the tick
// scheduled, as the workflow controller sees it when the exit handler starts.
func newRun(cwf *wfv1.CronWorkflow, scheduled time.Time, uid string) *wfv1.Workflow {
	name := fmt.Sprintf("%s-%d", cwf.Name, scheduled.Unix()) // cron/operator.go getChildWorkflowName
	wf := common.ConvertCronWorkflowToWorkflowWithProperties(cwf, name, scheduled)
	wf.Namespace = cwf.Namespace
	wf.UID = types.UID(uid)
	// The API server stores seconds; the creation follows the tick closely.
	wf.CreationTimestamp = metav1.NewTime(scheduled.Add(2 * time.Second).UTC())
	wf.Status.Phase = wfv1.WorkflowRunning
	wf.Status.StartedAt = metav1.NewTime(wf.CreationTimestamp.Add(time.Second))
	// Set by the controller while the workflow runs.
	wf.Labels[common.LabelKeyPhase] = string(wfv1.WorkflowRunning)
	wf.Labels[common.LabelKeyCompleted] = "false"
	wf.Annotations[common.AnnotationKeyPodNameVersion] = "v2"
	return wf
}

// podNameV2 is workflow/util.GeneratePodName for pod name version v2.
func podNameV2(workflowName, nodeName, templateName string) string {
	h := fnv.New32a()
	_, _ = h.Write([]byte(nodeName))
	return fmt.Sprintf("%s-%s-%v", workflowName, templateName, h.Sum32())
}

// globals are the global parameters the workflow controller has when it
// renders the exit handler's templates, built as operator.go builds them:
// setGlobalParameters, setGlobalRuntimeParameters, then the exit-handler
// values of workflow.status and workflow.failures.
func globals(t *testing.T, r run) common.Parameters {
	t.Helper()
	wf := r.wf
	p := common.Parameters{}
	// setGlobalParameters
	p[common.GlobalVarWorkflowName] = wf.Name
	p[common.GlobalVarWorkflowNamespace] = wf.Namespace
	p[common.GlobalVarWorkflowMainEntrypoint] = wf.Spec.Entrypoint
	p[common.GlobalVarWorkflowServiceAccountName] = wf.Spec.ServiceAccountName
	p[common.GlobalVarWorkflowUID] = string(wf.UID)
	p[common.GlobalVarWorkflowCreationTimestamp] = wf.CreationTimestamp.Format(time.RFC3339)
	if v, ok := wf.Annotations[common.AnnotationKeyCronWfScheduledTime]; ok {
		p[common.GlobalVarWorkflowCronScheduleTime] = v
	}
	p[common.GlobalVarWorkflowCreationTimestamp+".s"] = strconv.FormatInt(wf.CreationTimestamp.Unix(), 10)
	p[common.GlobalVarWorkflowCreationTimestamp+".RFC3339"] = wf.CreationTimestamp.Format(time.RFC3339)
	params := mustJSON(t, wf.Spec.Arguments.Parameters)
	p[common.GlobalVarWorkflowParameters] = params
	p[common.GlobalVarWorkflowParametersJSON] = params
	annotations := mustJSON(t, wf.Annotations)
	p[common.GlobalVarWorkflowAnnotations] = annotations
	p[common.GlobalVarWorkflowAnnotationsJSON] = annotations
	for k, v := range wf.Annotations {
		p["workflow.annotations."+k] = v
	}
	labels := mustJSON(t, wf.Labels)
	p[common.GlobalVarWorkflowLabels] = labels
	p[common.GlobalVarWorkflowLabelsJSON] = labels
	for k, v := range wf.Labels {
		p["workflow.labels."+k] = v
	}
	// setGlobalRuntimeParameters: duration is time.Since(startedAt) while running.
	p[common.GlobalVarWorkflowDuration] = fmt.Sprintf("%f", r.elapsed.Seconds())
	// Exit handler: the entry node's phase as a workflow phase, and the failed
	// nodes, JSON-encoded and then quoted with strconv.Quote.
	p[common.GlobalVarWorkflowStatus] = string(r.status)
	p[common.GlobalVarWorkflowFailures] = strconv.Quote(mustJSON(t, r.failures))
	return p
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// render substitutes the globals in the http template as the controller does
// (common.SubstituteParams: the template as JSON through template.Replace),
// here without allowing unresolved variables, and checks the result against
// the controller's own common.ProcessArgs.
func render(t *testing.T, tmpl *wfv1.Template, params common.Parameters) *wfv1.HTTP {
	t.Helper()
	raw := mustJSON(t, tmpl)
	replaced, err := template.Replace(raw, template.ToAnyMap(params), false)
	if err != nil {
		t.Fatalf("substitute: %v", err)
	}
	var out wfv1.Template
	if err := json.Unmarshal([]byte(replaced), &out); err != nil {
		t.Fatal(err)
	}

	processed, err := common.ProcessArgs(tmpl, &wfv1.Arguments{}, params, common.Parameters{}, false, params[common.GlobalVarWorkflowNamespace], nil)
	if err != nil {
		t.Fatalf("common.ProcessArgs: %v", err)
	}
	if processed.HTTP.Body != out.HTTP.Body {
		t.Fatalf("template.Replace and common.ProcessArgs disagree:\n%s\n%s", out.HTTP.Body, processed.HTTP.Body)
	}
	if !json.Valid([]byte(out.HTTP.Body)) {
		t.Fatalf("the rendered body is not JSON:\n%s", out.HTTP.Body)
	}
	return out.HTTP
}

// agent sends the rendered request the way argoexec's agent does, against
// the test server, with the Secret's value as the Authorization header.
type agent struct {
	t       *testing.T
	baseURL string
	secrets map[string]map[string]string // name → key → value
}

func (a agent) send(h *wfv1.HTTP) (int, []byte) {
	a.t.Helper()
	u, err := url.Parse(h.URL)
	if err != nil {
		a.t.Fatal(err)
	}
	req, err := http.NewRequest(h.Method, a.baseURL+u.RequestURI(), strings.NewReader(h.Body))
	if err != nil {
		a.t.Fatal(err)
	}
	for _, header := range h.Headers {
		value := header.Value
		if header.ValueFrom != nil && header.ValueFrom.SecretKeyRef != nil {
			ref := header.ValueFrom.SecretKeyRef
			v, ok := a.secrets[ref.Name][ref.Key]
			if !ok {
				a.t.Fatalf("no Secret %s with key %s", ref.Name, ref.Key)
			}
			value = v
		}
		req.Header.Add(header.Name, value)
	}
	timeout := 30 * time.Second // the test's own bound; Argo sets none without timeoutSeconds
	if h.TimeoutSeconds != nil {
		timeout = time.Duration(*h.TimeoutSeconds) * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	return resp.StatusCode, body
}

func (a agent) post(h *wfv1.HTTP) api.ResultResponse {
	a.t.Helper()
	code, body := a.send(h)
	if code != http.StatusOK {
		a.t.Fatalf("POST: %d %s\nbody sent:\n%s", code, body, h.Body)
	}
	var out api.ResultResponse
	if err := json.Unmarshal(body, &out); err != nil {
		a.t.Fatalf("%v: %s", err, body)
	}
	return out
}

type noKick struct{}

func (noKick) Kick() {}

// finishedAt is when batchlatch considers the run finished: createdAt plus
// durationSeconds, both as rendered.
func finishedAt(t *testing.T, p common.Parameters) time.Time {
	t.Helper()
	created, err := time.Parse(time.RFC3339, p[common.GlobalVarWorkflowCreationTimestamp])
	if err != nil {
		t.Fatal(err)
	}
	secs, err := strconv.ParseFloat(p[common.GlobalVarWorkflowDuration], 64)
	if err != nil {
		t.Fatal(err)
	}
	// batchlatch keeps times to the second.
	return created.Add(time.Duration(secs * float64(time.Second))).UTC().Truncate(time.Second)
}

// runResult is the api.Result that every callback about run wf carries.
func runResult(wf *wfv1.Workflow, phase wfv1.WorkflowPhase, durationSeconds float64) api.Result {
	return api.Result{
		Namespace:       wf.Namespace,
		WorkflowName:    wf.Name,
		UID:             string(wf.UID),
		Phase:           api.Phase(phase),
		CreatedAt:       wf.CreationTimestamp.Format(time.RFC3339),
		DurationSeconds: durationSeconds,
		Labels:          wf.Labels,
		Annotations:     wf.Annotations,
	}
}

// decodesTo decodes a rendered body as the server does, received a minute
// after the run ended, and requires want.
func decodesTo(t *testing.T, body string, want api.Result) api.Result {
	t.Helper()
	receivedAt := want.FinishedAt(time.Time{}).Add(time.Minute)
	decoded, err := api.DecodeResult([]byte(body), receivedAt)
	if err != nil {
		t.Fatalf("DecodeResult: %v\n%s", err, body)
	}
	if got, want := mustJSON(t, decoded), mustJSON(t, want); got != want {
		t.Fatalf("decoded callback:\n got %s\nwant %s", got, want)
	}
	return decoded
}

// twoTicks are two consecutive ticks of cwf's schedule, as the cron
// controller computes them.
func twoTicks(t *testing.T, cwf *wfv1.CronWorkflow) (time.Time, time.Time) {
	t.Helper()
	schedules := cwf.Spec.GetSchedulesWithTimezone(context.Background())
	if len(schedules) == 0 {
		t.Fatal("the CronWorkflow has no schedule")
	}
	schedule, err := cron.ParseStandard(schedules[0])
	if err != nil {
		t.Fatal(err)
	}
	tick1 := schedule.Next(time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC))
	return tick1, schedule.Next(tick1)
}

func TestCallbackReachesServer(t *testing.T) {
	m := loadManifests(t)
	cwf := m.cron
	_, tmpl := exitHandler(t, cwf)
	ref := secretHeader(t, tmpl.HTTP)

	// The ticks of the example's schedule, as the cron controller computes them.
	tick1, tick2 := twoTicks(t, cwf)

	const token = "s3cr3t-token"
	store, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	reg := prometheus.NewRegistry()
	clock := tick2.Add(time.Hour)
	h := server.NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)), store, noKick{}, reg, server.NewMetrics(reg),
		server.Config{Token: token, Now: func() time.Time { return clock }})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	ag := agent{t: t, baseURL: srv.URL, secrets: map[string]map[string]string{
		// What the Secret of the example's comment holds: the whole header value.
		ref.Name: {ref.Key: "Bearer " + token},
	}}

	// Run 1 fails: the train pod exits 1 with a message holding quotes, a
	// newline and characters JSON escapes; the entry node fails with it.
	wf1 := newRun(cwf, tick1, "5f0c6a54-3b1e-4d0a-9d7e-2f4c9a1b7e01")
	podFinished := metav1.NewTime(wf1.Status.StartedAt.Add(12*time.Minute + 30*time.Second))
	trainNode := wf1.Name + "[0].train"
	trainMessage := "Error (exit code 1): ValueError: \"learning_rate\" must be > 0 & < 1\n  File \"train.py\", line 42"
	run1 := run{
		wf:      wf1,
		status:  wfv1.WorkflowFailed,
		elapsed: 12*time.Minute + 34*time.Second + 218376512*time.Nanosecond,
		failures: []failedNodeStatus{
			{
				DisplayName:  "train",
				Message:      trainMessage,
				TemplateName: "train",
				Phase:        string(wfv1.NodeFailed),
				PodName:      podNameV2(wf1.Name, trainNode, "train"),
				FinishedAt:   podFinished,
			},
			{
				DisplayName:  wf1.Name,
				Message:      fmt.Sprintf("child '%s' failed", wf1.NodeID(wf1.Name+"[0]")),
				TemplateName: cwf.Spec.WorkflowSpec.Entrypoint,
				Phase:        string(wfv1.NodeFailed),
				PodName:      wf1.Name, // GeneratePodName of the entry node
				FinishedAt:   metav1.NewTime(podFinished.Add(2 * time.Second)),
			},
		},
	}
	params1 := globals(t, run1)
	if got := params1[common.GlobalVarWorkflowDuration]; got != "754.218377" {
		t.Fatalf("workflow.duration = %q; the controller formats it with %%f", got)
	}
	body1 := render(t, tmpl, params1)

	// The body is the api.Result of the run; failures arrives as a string
	// holding JSON, labels and annotations as objects.
	var wire map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body1.Body), &wire); err != nil {
		t.Fatal(err)
	}
	var failuresString string
	if err := json.Unmarshal(wire["failures"], &failuresString); err != nil {
		t.Fatalf("failures must be a JSON string, got %s", wire["failures"])
	}
	if want := mustJSON(t, run1.failures); failuresString != want {
		t.Fatalf("failures = %s, want %s", failuresString, want)
	}
	wantResult := runResult(wf1, wfv1.WorkflowFailed, 754.218377)
	wantResult.CronWorkflow = cwf.Name
	wantResult.ScheduledTime = tick1.Format(time.RFC3339)
	for _, f := range run1.failures {
		wantResult.Failures = append(wantResult.Failures, api.Failure{
			DisplayName: f.DisplayName, Message: f.Message, TemplateName: f.TemplateName,
			Phase: f.Phase, PodName: f.PodName, FinishedAt: f.FinishedAt.UTC().Format(time.RFC3339),
		})
	}
	decoded := decodesTo(t, body1.Body, wantResult)
	if decoded.Labels[common.LabelKeyCronWorkflow] != cwf.Name {
		t.Fatalf("labels = %v, want %s=%s", decoded.Labels, common.LabelKeyCronWorkflow, cwf.Name)
	}

	// Without the Secret's header the server refuses the callback.
	noAuth := *body1
	noAuth.Headers = slices.DeleteFunc(slices.Clone(noAuth.Headers), func(h wfv1.HTTPHeader) bool { return h.ValueFrom != nil })
	if code, body := ag.send(&noAuth); code != http.StatusUnauthorized {
		t.Fatalf("without Authorization: %d %s, want 401", code, body)
	}

	res := ag.post(body1)
	job := res.Job
	finished1 := finishedAt(t, params1)
	switch {
	case res.Duplicate || res.Stale:
		t.Fatalf("first result: %+v", res)
	case job.Namespace != cwf.Namespace || job.Job != cwf.Name:
		t.Fatalf("job = %s/%s, want %s/%s", job.Namespace, job.Job, cwf.Namespace, cwf.Name)
	case !job.Failing || job.ConsecutiveFailures != 1 || job.LastPhase != api.PhaseFailed:
		t.Fatalf("after a failed run: %+v", job)
	case job.FailingSince == nil || !job.FailingSince.Equal(finished1):
		t.Fatalf("failingSince = %v, want createdAt + duration = %v", job.FailingSince, finished1)
	case job.LastWorkflow != wf1.Name || job.LastUID != string(wf1.UID):
		t.Fatalf("last run = %s (%s), want %s (%s)", job.LastWorkflow, job.LastUID, wf1.Name, wf1.UID)
	}
	if !slices.ContainsFunc(job.LastFailures, func(f api.Failure) bool {
		// batchlatch keeps the step, its message and its pod; the rest is in Argo.
		return f.DisplayName == "train" && f.Message == trainMessage && f.PodName == run1.failures[0].PodName
	}) {
		t.Fatalf("lastFailures = %+v, want the train node with message %q", job.LastFailures, trainMessage)
	}

	// At-least-once delivery: the same callback again changes nothing.
	again := ag.post(body1)
	if !again.Duplicate || !again.Job.Failing || again.Job.ConsecutiveFailures != 1 {
		t.Fatalf("redelivery: %+v", again)
	}

	// Run 2, the next tick, succeeds: no failed nodes, so workflow.failures is
	// the quoted string "null".
	wf2 := newRun(cwf, tick2, "9a3e1d2c-7b64-4f8e-a0c5-6d2b8e4f1c02")
	run2 := run{wf: wf2, status: wfv1.WorkflowSucceeded, elapsed: 11*time.Minute + 5*time.Second + 500*time.Millisecond}
	params2 := globals(t, run2)
	if got := params2[common.GlobalVarWorkflowFailures]; got != strconv.Quote("null") {
		t.Fatalf("workflow.failures without failed nodes = %s, want %s", got, strconv.Quote("null"))
	}
	res2 := ag.post(render(t, tmpl, params2))
	job2 := res2.Job
	finished2 := finishedAt(t, params2)
	switch {
	case res2.Duplicate || res2.Stale:
		t.Fatalf("second result: %+v", res2)
	case job2.Namespace != cwf.Namespace || job2.Job != cwf.Name:
		t.Fatalf("job = %s/%s, want %s/%s", job2.Namespace, job2.Job, cwf.Namespace, cwf.Name)
	case job2.Failing || job2.FailingSince != nil || job2.ConsecutiveFailures != 0 || job2.LastPhase != api.PhaseSucceeded || len(job2.LastFailures) != 0:
		t.Fatalf("after a successful run: %+v", job2)
	case job2.LastStreak == nil || job2.LastStreak.Failures != 1:
		t.Fatalf("lastStreak = %+v, want one failure", job2.LastStreak)
	case !job2.LastStreak.Since.Equal(finished1) || !job2.LastStreak.Until.Equal(finished2):
		t.Fatalf("lastStreak = %+v, want %v .. %v", job2.LastStreak, finished1, finished2)
	}

	// The stored state agrees with the answers.
	code, body := ag.send(&wfv1.HTTP{Method: http.MethodGet, URL: "http://x/api/v1/failures", TimeoutSeconds: body1.TimeoutSeconds})
	if code != http.StatusOK || !strings.Contains(string(body), `"failures":[]`) {
		t.Fatalf("GET /api/v1/failures after the recovery: %d %s", code, body)
	}
}
