package main

// Tests of the Helm chart in charts/batchlatch: it lints, renders with every
// option, rejects bad values, passes the "restricted" Pod Security Standard
// on a real API server, configures this very binary as intended, and its Role
// is all the service needs (TestLeastPrivilegeRoleIsEnough).
//
// helm comes from hack/helm.sh (built with go install, cached). When it
// cannot be obtained the tests skip, or fail if CI is set.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/alarm"
	"github.com/batchlatch/batchlatch/server"
	"github.com/batchlatch/batchlatch/state/configmapstore"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	batchlatchcli "github.com/batchlatch/batchlatch/internal/cli"
	"github.com/batchlatch/batchlatch/internal/kubetest"
)

// chartValues are the value sets the tests render the chart with.
var chartValues = []struct {
	name    string
	release string
	values  string
}{
	{"defaults", "batchlatch", ""},
	{
		// Every option on, with an existing Secret for the token.
		"everything", "prod", `
nameOverride: latch
replicaCount: 3
leaderElect: true
leaseName: prod-leader
leaseDuration: 10s
configMapName: prod-state
project: my-project
cluster:
  name: prod-1
  location: europe-west1
sink: cloudlogging
logName: batchlatch-prod
interval: 30s
recoveryWindow: 45m
policyWindow: 20m
logLevel: debug
existingSecret: callback-token
existingSecretKey: bearer
readToken:
  existingSecret: read-token
  existingSecretKey: reader
metricsAuth: true
argoUrl: https://argo.example.com
maxInFlight:
  scrapes: 2
  pages: 1
  reads: 3
  writes: 0
image:
  repository: registry.example.com/batchlatch
  tag: v9.9.9
  pullPolicy: Always
imagePullSecrets:
  - name: regcred
serviceAccount:
  create: true
  name: prod-sa
  annotations:
    iam.gke.io/gcp-service-account: batchlatch@my-project.iam.gserviceaccount.com
rbac:
  create: true
service:
  port: 9090
  annotations:
    example.com/owner: sre
podDisruptionBudget:
  enabled: true
serviceMonitor:
  enabled: true
  interval: 15s
  scrapeTimeout: 10s
  labels:
    release: prometheus
podMonitoring:
  enabled: true
  interval: 20s
  timeout: 15s
resources:
  requests:
    cpu: 100m
    memory: 128Mi
    ephemeral-storage: 10Mi
  limits:
    cpu: "1"
    memory: 512Mi
podAnnotations:
  example.com/team: sre
podLabels:
  team: sre
nodeSelector:
  kubernetes.io/os: linux
tolerations:
  - key: dedicated
    operator: Equal
    value: batch
    effect: NoSchedule
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              app.kubernetes.io/name: latch
priorityClassName: batchlatch-test
watchRules:
  missedGrace: 15m
  maxRuntime: 3h
  forgetAfter: 1h
argo:
  watch:
    enabled: true
    reconcileInterval: 2m
cronjobs:
  watch:
    enabled: true
    namespaces: [batch-a, batch-b]
`,
	},
	{
		// One replica without leader election, a token given as a value, an
		// existing ServiceAccount and no RBAC from the chart.
		"single", "single", `
fullnameOverride: bl
replicaCount: 1
leaderElect: false
token: s3cret-token
sink: stdout
image:
  digest: sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
serviceAccount:
  create: false
  name: existing-sa
rbac:
  create: false
resources: null
`,
	},
}

var (
	helmOnce sync.Once
	helmPath string
	helmErr  error
)

// chartRepoRoot is the directory holding go.mod, above the test's directory.
func chartRepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func chartDir(t testing.TB) string {
	return filepath.Join(chartRepoRoot(t), "charts", "batchlatch")
}

// helmBinary returns the helm of hack/helm.sh, building it on first use.
func helmBinary(t testing.TB) string {
	t.Helper()
	script := filepath.Join(chartRepoRoot(t), "hack", "helm.sh")
	helmOnce.Do(func() {
		var stderr bytes.Buffer
		cmd := exec.Command(script)
		cmd.Stderr = io.MultiWriter(os.Stderr, &stderr) // progress of a cold build
		out, err := cmd.Output()
		if err != nil {
			helmErr = fmt.Errorf("%s: %w\n%s", script, err, stderr.Bytes())
			return
		}
		helmPath = strings.TrimSpace(string(out))
		if _, err := os.Stat(helmPath); err != nil {
			helmErr = fmt.Errorf("%s printed %q: %w", script, helmPath, err)
		}
	})
	if helmErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("helm unavailable (CI is set, so this fails instead of skipping): %v", helmErr)
		}
		t.Skipf("helm unavailable: %v", helmErr)
	}
	return helmPath
}

// runHelm runs helm with args in an environment of its own: no kubeconfig,
// no repositories, no HELM_* settings of the developer's.
func runHelm(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return runHelmWithKubeconfig(t, "", args...)
}

// runHelmWithKubeconfig runs helm against the cluster of kubeconfig (a test
// cluster: kubetest only hands out loopback ones).
func runHelmWithKubeconfig(t testing.TB, kubeconfig string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	bin := helmBinary(t)
	home := t.TempDir()
	if kubeconfig == "" {
		kubeconfig = filepath.Join(home, "no-kubeconfig")
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{
		"HOME=" + home,
		"PATH=" + os.Getenv("PATH"),
		"HELM_CACHE_HOME=" + filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME=" + filepath.Join(home, "config"),
		"HELM_DATA_HOME=" + filepath.Join(home, "data"),
		"KUBECONFIG=" + kubeconfig,
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// chartValuesFile writes values to a file for helm's -f.
func chartValuesFile(t testing.TB, values string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(path, []byte(values), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// chartRender is the output of helm template.
type chartRender struct {
	raw  string
	objs []*unstructured.Unstructured
}

// templateChart runs helm template for release in namespace with values (a
// YAML document).
func templateChart(t testing.TB, release, namespace, values string) (chartRender, error) {
	t.Helper()
	out, stderr, err := runHelm(t, "template", release, chartDir(t), "--namespace", namespace, "-f", chartValuesFile(t, values))
	if err != nil {
		return chartRender{}, fmt.Errorf("helm template: %v\n%s", err, stderr)
	}
	r := chartRender{raw: out}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return chartRender{}, fmt.Errorf("decode the output of helm template: %v\n%s", err, out)
		}
		if obj == nil {
			continue // an empty document
		}
		r.objs = append(r.objs, &unstructured.Unstructured{Object: obj})
	}
	return r, nil
}

func mustTemplate(t testing.TB, release, namespace, values string) chartRender {
	t.Helper()
	r, err := templateChart(t, release, namespace, values)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// all returns the objects of kind.
func (r chartRender) all(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one decodes the only object of kind into a typed object, rejecting
// fields the type does not have.
func renderedObject[T any](t testing.TB, r chartRender, kind string) *T {
	t.Helper()
	objs := r.all(kind)
	if len(objs) != 1 {
		t.Fatalf("%d objects of kind %s, want 1:\n%s", len(objs), kind, r.raw)
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(objs[0].Object, out, true); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	return out
}

// renderedObjectIn is the only object of kind in namespace.
func renderedObjectIn[T any](t testing.TB, r chartRender, kind, namespace string) *T {
	t.Helper()
	var found []*unstructured.Unstructured
	for _, o := range r.all(kind) {
		if o.GetNamespace() == namespace {
			found = append(found, o)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d objects of kind %s in %s, want 1:\n%s", len(found), kind, namespace, r.raw)
	}
	out := new(T)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(found[0].Object, out, true); err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
	return out
}

func renderedKinds(r chartRender) []string {
	var out []string
	for _, o := range r.objs {
		out = append(out, o.GetKind())
	}
	slices.Sort(out)
	return out
}

// chartMeta reads Chart.yaml.
func chartMeta(t testing.TB) (version, appVersion string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		APIVersion string `json:"apiVersion"`
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	if c.APIVersion != "v2" || c.Version == "" || c.AppVersion == "" {
		t.Fatalf("Chart.yaml: %+v", c)
	}
	return c.Version, c.AppVersion
}

func TestChartLint(t *testing.T) {
	for _, v := range chartValues {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			out, stderr, err := runHelm(t, "lint", "--strict", chartDir(t), "-f", chartValuesFile(t, v.values))
			if err != nil {
				t.Fatalf("helm lint --strict: %v\n%s%s", err, out, stderr)
			}
			if strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
				t.Fatalf("helm lint --strict:\n%s", out)
			}
		})
	}
}

func TestChartTemplate(t *testing.T) {
	chartVersion, appVersion := chartMeta(t)
	t.Run("defaults", func(t *testing.T) {
		t.Parallel()
		r := mustTemplate(t, "batchlatch", "monitoring", "")
		want := []string{"Deployment", "PodDisruptionBudget", "Role", "RoleBinding", "Secret", "Service", "ServiceAccount"}
		if got := renderedKinds(r); !slices.Equal(got, want) {
			t.Fatalf("kinds %v, want %v", got, want)
		}
		for _, o := range r.objs {
			if o.GetName() != "batchlatch" || o.GetNamespace() != "monitoring" {
				t.Errorf("%s %s/%s: want batchlatch in the release namespace", o.GetKind(), o.GetNamespace(), o.GetName())
			}
			wantLabels := map[string]string{
				"app.kubernetes.io/name":       "batchlatch",
				"app.kubernetes.io/instance":   "batchlatch",
				"app.kubernetes.io/version":    appVersion,
				"app.kubernetes.io/managed-by": "Helm",
				"helm.sh/chart":                "batchlatch-" + chartVersion,
			}
			for k, v := range wantLabels {
				if got := o.GetLabels()[k]; got != v {
					t.Errorf("%s: label %s=%q, want %q", o.GetKind(), k, got, v)
				}
			}
		}

		d := renderedObject[appsv1.Deployment](t, r, "Deployment")
		if *d.Spec.Replicas != 2 {
			t.Errorf("replicas %d, want 2", *d.Spec.Replicas)
		}
		c := d.Spec.Template.Spec.Containers[0]
		if want := "ghcr.io/batchlatch/batchlatch:" + appVersion; c.Image != want {
			t.Errorf("image %q, want %q", c.Image, want)
		}
		if !slices.Contains(c.Args, "--leader-elect=true") || !slices.Contains(c.Args, "--state=configmap") {
			t.Errorf("args %q", c.Args)
		}
		if c.LivenessProbe.HTTPGet.Path != "/healthz" || c.ReadinessProbe.HTTPGet.Path != "/readyz" ||
			c.LivenessProbe.HTTPGet.Port.String() != "http" || c.ReadinessProbe.HTTPGet.Port.String() != "http" {
			t.Errorf("probes: liveness %+v, readiness %+v", c.LivenessProbe.HTTPGet, c.ReadinessProbe.HTTPGet)
		}
		if c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
			t.Errorf("resources %+v", c.Resources)
		}
		if d.Spec.Template.Spec.ServiceAccountName != "batchlatch" {
			t.Errorf("serviceAccountName %q", d.Spec.Template.Spec.ServiceAccountName)
		}
		for k, v := range d.Spec.Selector.MatchLabels {
			if d.Spec.Template.Labels[k] != v {
				t.Errorf("the selector's %s=%s is not on the pods", k, v)
			}
		}

		svc := renderedObject[corev1.Service](t, r, "Service")
		if len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Name != "http" || svc.Spec.Ports[0].Port != 8080 || svc.Spec.Ports[0].TargetPort.String() != "http" {
			t.Errorf("service ports %+v", svc.Spec.Ports)
		}
		if !maps.Equal(svc.Spec.Selector, d.Spec.Selector.MatchLabels) {
			t.Errorf("service selector %v, deployment selector %v", svc.Spec.Selector, d.Spec.Selector.MatchLabels)
		}
		pdb := renderedObject[policyv1.PodDisruptionBudget](t, r, "PodDisruptionBudget")
		if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() != 1 || !maps.Equal(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels) {
			t.Errorf("pdb %+v", pdb.Spec)
		}

		role := renderedObject[rbacv1.Role](t, r, "Role")
		wantRules := []rbacv1.PolicyRule{
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, ResourceNames: stateConfigMaps("batchlatch-state", 32), Verbs: []string{"get", "update"}},
			{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"create"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{"batchlatch-leader"}, Verbs: []string{"get", "update"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		}
		if fmt.Sprint(role.Rules) != fmt.Sprint(wantRules) {
			t.Errorf("role rules:\n%+v\nwant\n%+v", role.Rules, wantRules)
		}
		rb := renderedObject[rbacv1.RoleBinding](t, r, "RoleBinding")
		if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != role.Name || len(rb.Subjects) != 1 ||
			rb.Subjects[0].Kind != "ServiceAccount" || rb.Subjects[0].Name != "batchlatch" || rb.Subjects[0].Namespace != "monitoring" {
			t.Errorf("role binding %+v %+v", rb.RoleRef, rb.Subjects)
		}
		secret := renderedObject[corev1.Secret](t, r, "Secret")
		if len(secret.Data["token"]) < 32 {
			t.Errorf("generated token %q: want a long random one", secret.Data["token"])
		}
		if again := renderedObject[corev1.Secret](t, mustTemplate(t, "batchlatch", "monitoring", ""), "Secret"); bytes.Equal(again.Data["token"], secret.Data["token"]) {
			t.Errorf("two installs generated the same token")
		}
	})

	t.Run("everything", func(t *testing.T) {
		t.Parallel()
		r := mustTemplate(t, "prod", "monitoring", chartValues[1].values)
		// existingSecret: the chart makes no Secret.
		// The CronJob watcher adds a Role and a RoleBinding in each namespace it reads.
		want := []string{"ClusterRole", "ClusterRoleBinding", "Deployment", "PodDisruptionBudget", "PodMonitoring", "Role", "Role", "Role", "RoleBinding", "RoleBinding", "RoleBinding", "Service", "ServiceAccount", "ServiceMonitor"}
		if got := renderedKinds(r); !slices.Equal(got, want) {
			t.Fatalf("kinds %v, want %v", got, want)
		}
		for _, o := range r.objs {
			// The Argo watcher's ClusterRole is cluster-scoped: its name
			// carries the release namespace.
			if o.GetKind() == "ClusterRole" || o.GetKind() == "ClusterRoleBinding" {
				if o.GetName() != "monitoring-prod-latch-argo" {
					t.Errorf("%s named %q", o.GetKind(), o.GetName())
				}
			} else if o.GetNamespace() == "batch-a" || o.GetNamespace() == "batch-b" {
				// The CronJob watcher's Role in each namespace it reads.
				if o.GetName() != "prod-latch-cronjobs" {
					t.Errorf("%s named %q in %s", o.GetKind(), o.GetName(), o.GetNamespace())
				}
			} else if o.GetKind() != "ServiceAccount" && o.GetName() != "prod-latch" {
				t.Errorf("%s named %q, want prod-latch", o.GetKind(), o.GetName())
			}
			if o.GetLabels()["app.kubernetes.io/name"] != "latch" {
				t.Errorf("%s: labels %v", o.GetKind(), o.GetLabels())
			}
		}
		// Google Managed Prometheus scrapes every pod's /metrics.
		pm := r.all("PodMonitoring")[0]
		pmEndpoints, _, _ := unstructured.NestedSlice(pm.Object, "spec", "endpoints")
		pmSelector, _, _ := unstructured.NestedStringMap(pm.Object, "spec", "selector", "matchLabels")
		if pm.GetAPIVersion() != "monitoring.googleapis.com/v1" || len(pmEndpoints) != 1 || pmSelector["app.kubernetes.io/name"] != "latch" ||
			fmt.Sprint(pmEndpoints[0]) != "map[authorization:map[credentials:map[secret:map[key:reader name:read-token]] type:Bearer] interval:20s path:/metrics port:http timeout:15s]" {
			t.Errorf("PodMonitoring %s %v %v", pm.GetAPIVersion(), pmEndpoints, pmSelector)
		}

		sa := renderedObject[corev1.ServiceAccount](t, r, "ServiceAccount")
		if sa.Name != "prod-sa" || sa.Annotations["iam.gke.io/gcp-service-account"] != "batchlatch@my-project.iam.gserviceaccount.com" {
			t.Errorf("service account %s %v", sa.Name, sa.Annotations)
		}
		d := renderedObject[appsv1.Deployment](t, r, "Deployment")
		pod := d.Spec.Template.Spec
		c := pod.Containers[0]
		for _, arg := range []string{"--project=my-project", "--cluster=prod-1", "--location=europe-west1", "--sink=cloudlogging", "--lease-name=prod-leader", "--configmap=prod-state",
			"--watch-argo=true", "--missed-grace=15m", "--reconcile-interval=2m", "--max-runtime=3h", "--forget-after=1h",
			"--watch-cronjobs=true", "--cronjob-namespaces=batch-a,batch-b"} {
			if !slices.Contains(c.Args, arg) {
				t.Errorf("args %q lack %s", c.Args, arg)
			}
		}
		// One flag per rule for both watchers.
		for _, flag := range []string{"--missed-grace=", "--max-runtime=", "--forget-after="} {
			if n := len(slices.DeleteFunc(slices.Clone(c.Args), func(a string) bool { return !strings.HasPrefix(a, flag) })); n != 1 {
				t.Errorf("args %q hold %s %d times", c.Args, flag, n)
			}
		}
		if *d.Spec.Replicas != 3 || c.Image != "registry.example.com/batchlatch:v9.9.9" || c.ImagePullPolicy != corev1.PullAlways ||
			pod.ServiceAccountName != "prod-sa" || pod.PriorityClassName != "batchlatch-test" ||
			len(pod.ImagePullSecrets) != 1 || pod.NodeSelector["kubernetes.io/os"] != "linux" || len(pod.Tolerations) != 1 ||
			pod.Affinity == nil || pod.Affinity.PodAntiAffinity == nil ||
			d.Spec.Template.Labels["team"] != "sre" || d.Spec.Template.Annotations["example.com/team"] != "sre" {
			t.Errorf("deployment:\n%s", r.raw)
		}
		if c.Resources.Requests.Cpu().String() != "100m" || c.Resources.Limits.Memory().String() != "512Mi" || c.Resources.Requests.StorageEphemeral().String() != "10Mi" {
			t.Errorf("resources %+v", c.Resources)
		}
		vol := pod.Volumes[0]
		if vol.Secret == nil || vol.Secret.SecretName != "callback-token" || vol.Secret.Items[0].Key != "bearer" {
			t.Errorf("token volume %+v", vol)
		}
		svc := renderedObject[corev1.Service](t, r, "Service")
		if svc.Spec.Ports[0].Port != 9090 || svc.Spec.Ports[0].Name != "http" || svc.Annotations["example.com/owner"] != "sre" {
			t.Errorf("service %+v", svc)
		}
		rb := renderedObjectIn[rbacv1.RoleBinding](t, r, "RoleBinding", "monitoring")
		if rb.Subjects[0].Name != "prod-sa" {
			t.Errorf("role binding subjects %+v", rb.Subjects)
		}
		role := renderedObjectIn[rbacv1.Role](t, r, "Role", "monitoring")
		if role.Rules[0].ResourceNames[0] != "prod-state" || role.Rules[2].ResourceNames[0] != "prod-leader" {
			t.Errorf("role rules %+v", role.Rules)
		}
		// The CronJob watcher reads CronJobs and Jobs in the namespaces it
		// watches; nothing more.
		for _, ns := range []string{"batch-a", "batch-b"} {
			cr := renderedObjectIn[rbacv1.Role](t, r, "Role", ns)
			crb := renderedObjectIn[rbacv1.RoleBinding](t, r, "RoleBinding", ns)
			if len(cr.Rules) != 1 || !slices.Equal(cr.Rules[0].APIGroups, []string{"batch"}) || !slices.Equal(cr.Rules[0].Resources, []string{"cronjobs", "jobs"}) ||
				!slices.Equal(cr.Rules[0].Verbs, []string{"get", "list", "watch"}) {
				t.Errorf("%s: CronJob watcher's role rules %+v", ns, cr.Rules)
			}
			if crb.RoleRef.Name != cr.Name || crb.Subjects[0].Name != "prod-sa" || crb.Subjects[0].Namespace != "monitoring" {
				t.Errorf("%s: CronJob watcher's role binding %+v", ns, crb)
			}
		}

		sm := r.all("ServiceMonitor")[0]
		if sm.GetAPIVersion() != "monitoring.coreos.com/v1" || sm.GetLabels()["release"] != "prometheus" {
			t.Errorf("service monitor %v", sm.Object)
		}
		endpoints, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
		selector, _, _ := unstructured.NestedStringMap(sm.Object, "spec", "selector", "matchLabels")
		// metricsAuth: both monitors send the read token, which the per-job
		// series need.
		if len(endpoints) != 1 || fmt.Sprint(endpoints[0]) != "map[authorization:map[credentials:map[key:reader name:read-token] type:Bearer] interval:15s path:/metrics port:http scrapeTimeout:10s]" || !maps.Equal(selector, svc.Spec.Selector) {
			t.Errorf("service monitor spec %v", sm.Object["spec"])
		}
	})

	t.Run("single", func(t *testing.T) {
		t.Parallel()
		r := mustTemplate(t, "single", "monitoring", chartValues[2].values)
		// One replica: no PodDisruptionBudget (it would block every drain);
		// no RBAC and no ServiceAccount from the chart.
		want := []string{"Deployment", "Secret", "Service"}
		if got := renderedKinds(r); !slices.Equal(got, want) {
			t.Fatalf("kinds %v, want %v", got, want)
		}
		d := renderedObject[appsv1.Deployment](t, r, "Deployment")
		c := d.Spec.Template.Spec.Containers[0]
		if want := "ghcr.io/batchlatch/batchlatch@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"; c.Image != want {
			t.Errorf("image %q, want %q", c.Image, want)
		}
		if d.Spec.Template.Spec.ServiceAccountName != "existing-sa" || d.Name != "bl" {
			t.Errorf("deployment %s, service account %s", d.Name, d.Spec.Template.Spec.ServiceAccountName)
		}
		if c.Resources.Limits != nil || c.Resources.Requests != nil {
			t.Errorf("resources %+v, want none", c.Resources)
		}
		secret := renderedObject[corev1.Secret](t, r, "Secret")
		if string(secret.Data["token"]) != "s3cret-token" {
			t.Errorf("secret %q", secret.Data)
		}
		// A new token restarts the pods (the token is read at start-up).
		other := mustTemplate(t, "single", "monitoring", chartValues[2].values+"\ntoken: other\n")
		sum := d.Spec.Template.Annotations["checksum/token"]
		if sum == "" || sum == renderedObject[appsv1.Deployment](t, other, "Deployment").Spec.Template.Annotations["checksum/token"] {
			t.Errorf("checksum/token %q does not follow the token", sum)
		}
	})
}

// TestChartNotes checks what helm install prints. helm install, even with
// --dry-run=client, insists on reaching a cluster: it gets the test one, and
// creates nothing there.
func TestChartNotes(t *testing.T) {
	helmBinary(t)
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	for _, v := range chartValues {
		// It also maps every object to a resource of the cluster, which has
		// no ServiceMonitor or PodMonitoring.
		out, stderr, err := runHelmWithKubeconfig(t, env.Kubeconfig, "install", v.release, chartDir(t), "--dry-run=client", "--namespace", ns,
			"-f", chartValuesFile(t, v.values), "--set", "serviceMonitor.enabled=false", "--set", "podMonitoring.enabled=false")
		if err != nil {
			t.Fatalf("%s: helm install --dry-run=client: %v\n%s", v.name, err, stderr)
		}
		_, notes, ok := strings.Cut(out, "NOTES:\n")
		if !ok {
			t.Fatalf("%s: no NOTES:\n%s", v.name, out)
		}
		for _, want := range []string{
			"examples/cronworkflow.yaml", `--from-literal=authorization="Bearer ${TOKEN}"`,
			"kubectl -n " + ns + " port-forward svc/", "curl -s http://127.0.0.1:8080/api/v1/failures",
			"batchlatch failures --server http://127.0.0.1:8080", "status page: http://127.0.0.1:8080/",
			"." + ns + ".svc.cluster.local:", "TOKEN=\"$(kubectl -n " + ns + " get secret ",
		} {
			if !strings.Contains(notes, want) {
				t.Errorf("%s: NOTES lack %q:\n%s", v.name, want, notes)
			}
		}
		// The caps the chart sets, as the binary reads them.
		var values struct {
			MaxInFlight *server.InFlight `json:"maxInFlight"`
			MetricsAuth bool             `json:"metricsAuth"`
		}
		if err := yaml.Unmarshal([]byte(v.values), &values); err != nil {
			t.Fatal(err)
		}
		caps := server.DefaultInFlight
		if values.MaxInFlight != nil {
			caps = *values.MaxInFlight
		}
		if want := fmt.Sprintf("429 with Retry-After: scrapes %d, pages %d, reads %d, writes %d.", caps.Scrapes, caps.Pages, caps.Reads, caps.Writes); !strings.Contains(notes, want) {
			t.Errorf("%s: NOTES lack %q:\n%s", v.name, want, notes)
		}
		if got := strings.Contains(notes, "per-job series need the read token"); got != values.MetricsAuth {
			t.Errorf("%s: NOTES say the per-job series need the read token: %v, metricsAuth %v", v.name, got, values.MetricsAuth)
		}
		if strings.Contains(notes, "<no value>") || strings.Contains(notes, "%!") {
			t.Errorf("%s: NOTES:\n%s", v.name, notes)
		}
		// The kubectl plugin's command line finds the release's Service,
		// and the RBAC named is for that Service's proxy.
		service := mustTemplate(t, v.release, ns, v.values).all("Service")[0].GetName()
		m := regexp.MustCompile(`kubectl batchlatch failures -n (\S+)(?: --(release|service) (\S+))?\n`).FindStringSubmatch(notes)
		found := batchlatchcli.ServiceForRelease("batchlatch")
		switch {
		case m == nil:
			t.Errorf("%s: NOTES lack the plugin's command:\n%s", v.name, notes)
		case m[2] == "release":
			found = batchlatchcli.ServiceForRelease(m[3])
		case m[2] == "service":
			found = m[3]
		}
		if m != nil && (m[1] != ns || found != service) {
			t.Errorf("%s: the plugin's command %q finds service %s/%s, the chart's is %s/%s", v.name, m[0], m[1], found, ns, service)
		}
		if want := `resourceNames ["http:` + service + `:http"]`; !strings.Contains(notes, want) {
			t.Errorf("%s: NOTES lack %q:\n%s", v.name, want, notes)
		}
		t.Logf("%s:\n%s", v.name, notes)
	}
}

func TestChartRejectsBadValues(t *testing.T) {
	for _, tc := range []struct {
		name, values string
		mention      []string
		// helm lint checks values against the schema, but renders in a
		// mode where the templates' fail only prints an INFO line.
		lintFails bool
	}{
		{"misspelled key", "replicaCont: 3\n", []string{"replicaCont"}, true},
		{"misspelled nested key", "serviceAccount:\n  anotations:\n    a: b\n", []string{"anotations"}, true},
		{"misspelled deep key", "resources:\n  requests:\n    mem: 1Gi\n", []string{"mem"}, true},
		{"string for integer", "replicaCount: two\n", []string{"replicaCount", "integer"}, true},
		{"string for boolean", "leaderElect: \"yes\"\n", []string{"leaderElect", "boolean"}, true},
		{"number for duration", "interval: 60\n", []string{"interval", "string"}, true},
		{"bad duration", "recoveryWindow: 30 minutes\n", []string{"recoveryWindow"}, true},
		{"unknown sink", "sink: gcp\n", []string{"sink"}, true},
		{"argoUrl without a scheme", "argoUrl: argo.example.com\n", []string{"argoUrl"}, true},
		{"map for string", "project:\n  id: x\n", []string{"project"}, true},
		// Combinations the schema cannot express, checked by the templates.
		{"replicas without leader election", "leaderElect: false\n", []string{"leaderElect"}, false},
		{"cloudlogging without project", "sink: cloudlogging\n", []string{"project"}, false},
		{"token and existingSecret", "token: a\nexistingSecret: b\n", []string{"existingSecret"}, false},
		{"metricsAuth without a read token", "metricsAuth: true\n", []string{"readToken.existingSecret"}, false},
		{"string for metricsAuth", "metricsAuth: \"yes\"\n", []string{"metricsAuth", "boolean"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := templateChart(t, "batchlatch", "monitoring", tc.values)
			if err == nil {
				t.Fatalf("helm template accepted %q", tc.values)
			}
			for _, m := range tc.mention {
				if !strings.Contains(err.Error(), m) {
					t.Errorf("error does not mention %q: %v", m, err)
				}
			}
			if !tc.lintFails {
				return
			}
			out, stderr, err := runHelm(t, "lint", "--strict", chartDir(t), "-f", chartValuesFile(t, tc.values))
			if err == nil || !strings.Contains(out+stderr, tc.mention[0]) {
				t.Errorf("helm lint: %v, want an error about %s:\n%s%s", err, tc.mention[0], out, stderr)
			}
		})
	}
}

// TestChartConfigParses feeds the rendered container's args and env to the
// binary's own flag parser.
func TestChartConfigParses(t *testing.T) {
	flags := map[string]bool{}
	newFlagSet(&Config{}, io.Discard).VisitAll(func(f *flag.Flag) { flags[envName(f.Name)] = true })
	const podName, namespace = "batchlatch-5d8f7b9c4-x2x9k", "monitoring"

	for _, v := range chartValues {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			r := mustTemplate(t, v.release, namespace, v.values)
			var values struct {
				LeaderElect       *bool            `json:"leaderElect"`
				ConfigMapName     string           `json:"configMapName"`
				LeaseName         string           `json:"leaseName"`
				Project           string           `json:"project"`
				Sink              string           `json:"sink"`
				ExistingSecret    string           `json:"existingSecret"`
				ExistingSecretKey string           `json:"existingSecretKey"`
				Interval          string           `json:"interval"`
				PolicyWindow      string           `json:"policyWindow"`
				ArgoURL           string           `json:"argoUrl"`
				MetricsAuth       bool             `json:"metricsAuth"`
				MaxInFlight       *server.InFlight `json:"maxInFlight"`
				ReadToken         struct {
					ExistingSecret, ExistingSecretKey string
				} `json:"readToken"`
				Cluster struct {
					Name, Location string
				} `json:"cluster"`
			}
			if err := yaml.Unmarshal([]byte(v.values), &values); err != nil {
				t.Fatal(err)
			}
			d := renderedObject[appsv1.Deployment](t, r, "Deployment")
			if n := len(d.Spec.Template.Spec.Containers); n != 1 {
				t.Fatalf("%d containers", n)
			}
			c := d.Spec.Template.Spec.Containers[0]
			if len(c.Command) != 0 {
				t.Errorf("command %q overrides the image's entrypoint", c.Command)
			}
			env := map[string]string{}
			fromAPI := map[string]string{}
			for _, e := range c.Env {
				if strings.HasPrefix(e.Name, envPrefix) && !flags[e.Name] {
					t.Errorf("env %s names no flag of batchlatch", e.Name)
				}
				switch {
				case e.ValueFrom == nil:
					env[e.Name] = e.Value
				case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
					env[e.Name] = podName
					fromAPI[e.Name] = "metadata.name"
				case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
					env[e.Name] = namespace
					fromAPI[e.Name] = "metadata.namespace"
				case e.ValueFrom.ResourceFieldRef != nil && e.ValueFrom.ResourceFieldRef.Resource == "limits.memory":
					env[e.Name] = strconv.FormatInt(c.Resources.Limits.Memory().Value(), 10)
					fromAPI[e.Name] = "limits.memory"
				case e.ValueFrom.SecretKeyRef != nil:
					ref := e.ValueFrom.SecretKeyRef
					if ref.Name != values.ReadToken.ExistingSecret || ref.Key != values.ReadToken.ExistingSecretKey {
						t.Errorf("env %s from Secret %s key %s, want readToken's", e.Name, ref.Name, ref.Key)
					}
					env[e.Name] = "secret:" + ref.Name + "/" + ref.Key
				default:
					t.Fatalf("env %s: no test value for %+v", e.Name, e.ValueFrom)
				}
			}
			wantFromAPI := map[string]string{"POD_NAME": "metadata.name", "BATCHLATCH_POD_NAME": "metadata.name", "BATCHLATCH_NAMESPACE": "metadata.namespace"}
			if _, limited := c.Resources.Limits[corev1.ResourceMemory]; limited {
				wantFromAPI["BATCHLATCH_MEMORY_LIMIT"] = "limits.memory"
			}
			if !maps.Equal(fromAPI, wantFromAPI) {
				t.Errorf("Downward API env %v, want %v", fromAPI, wantFromAPI)
			}
			cfg, err := parseConfig(c.Args, func(k string) string { return env[k] }, io.Discard)
			if err != nil {
				t.Fatalf("parseConfig(%q): %v", c.Args, err)
			}

			leaderElect := values.LeaderElect == nil || *values.LeaderElect
			sink := orDefault(values.Sink, "auto")
			if sink == "auto" { // resolved once, right after parsing
				sink = "stdout"
				if values.Project != "" {
					sink = "cloudlogging"
				}
			}
			want := Config{
				State: "configmap", LeaderElect: leaderElect, Namespace: namespace, PodName: podName,
				ConfigMap: orDefault(values.ConfigMapName, "batchlatch-state"), LeaseName: orDefault(values.LeaseName, "batchlatch-leader"),
				Project: values.Project, Sink: sink, Cluster: values.Cluster.Name, Location: values.Cluster.Location,
			}
			got := Config{
				State: cfg.State, LeaderElect: cfg.LeaderElect, Namespace: cfg.Namespace, PodName: cfg.PodName,
				ConfigMap: cfg.ConfigMap, LeaseName: cfg.LeaseName,
				Project: cfg.Project, Sink: cfg.Sink, Cluster: cfg.Cluster, Location: cfg.Location,
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("config\n%+v\nwant\n%+v", got, want)
			}
			if interval, _ := time.ParseDuration(orDefault(values.Interval, "60s")); cfg.Interval != interval {
				t.Errorf("interval %s, want %s", cfg.Interval, interval)
			}
			if window, _ := time.ParseDuration(orDefault(values.PolicyWindow, alarm.DefaultPolicyWindow.String())); cfg.PolicyWindow != window {
				t.Errorf("policy window %s, want %s", cfg.PolicyWindow, window)
			}
			if want := ""; values.ReadToken.ExistingSecret != "" {
				want = "secret:" + values.ReadToken.ExistingSecret + "/" + values.ReadToken.ExistingSecretKey
				if cfg.ReadToken != want {
					t.Errorf("read token %q, want %q", cfg.ReadToken, want)
				}
			} else if cfg.ReadToken != want {
				t.Errorf("read token %q without readToken.existingSecret", cfg.ReadToken)
			}
			// The runtime's soft limit follows the container's, when it has one.
			if want := c.Resources.Limits.Memory().Value(); cfg.MemoryLimit != want {
				t.Errorf("memory limit %d, want the container's %d", cfg.MemoryLimit, want)
			}
			// The chart's caps are the service's defaults, or what it is given.
			if want := server.DefaultInFlight; cfg.MaxInFlight != want && values.MaxInFlight == nil {
				t.Errorf("max in flight %+v, want the service's defaults %+v", cfg.MaxInFlight, want)
			} else if values.MaxInFlight != nil && cfg.MaxInFlight != *values.MaxInFlight {
				t.Errorf("max in flight %+v, want %+v", cfg.MaxInFlight, *values.MaxInFlight)
			}
			if cfg.MetricsAuth != values.MetricsAuth {
				t.Errorf("metrics auth %v, want %v", cfg.MetricsAuth, values.MetricsAuth)
			}
			if cfg.ArgoURL != values.ArgoURL {
				t.Errorf("argo url %q, want %q", cfg.ArgoURL, values.ArgoURL)
			}
			// Every replica writes as one instance: the Deployment's name.
			if cfg.Instance != d.Name {
				t.Errorf("instance %q, want the Deployment's name %q", cfg.Instance, d.Name)
			}

			// The API listens on the container port the probes and the Service use.
			if len(c.Ports) != 1 || c.Ports[0].Name != "http" || fmt.Sprintf(":%d", c.Ports[0].ContainerPort) != cfg.Listen {
				t.Errorf("ports %+v, listen %q", c.Ports, cfg.Listen)
			}

			// --token-file is the Secret's key, mounted.
			secretName, key := values.ExistingSecret, orDefault(values.ExistingSecretKey, "token")
			if secretName == "" {
				secret := renderedObject[corev1.Secret](t, r, "Secret")
				secretName, key = secret.Name, "token"
				if len(secret.Data[key]) == 0 {
					t.Errorf("secret %s has no %s", secret.Name, key)
				}
			}
			tokenFile := ""
			for _, vol := range d.Spec.Template.Spec.Volumes {
				if vol.Secret == nil || vol.Secret.SecretName != secretName {
					continue
				}
				for _, m := range c.VolumeMounts {
					if m.Name != vol.Name {
						continue
					}
					for _, item := range vol.Secret.Items {
						if item.Key == key {
							tokenFile = filepath.Join(m.MountPath, item.Path)
						}
					}
					if !m.ReadOnly {
						t.Errorf("token volume mounted read-write")
					}
				}
			}
			if tokenFile == "" || cfg.TokenFile != tokenFile {
				t.Errorf("--token-file %q, want the Secret %s key %s mounted (%q)", cfg.TokenFile, secretName, key, tokenFile)
			}
		})
	}
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// warningRecorder collects the API server's warnings.
type warningRecorder struct {
	mu   sync.Mutex
	list []string
}

func (w *warningRecorder) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warningRecorder) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// TestChartRestricted applies the rendered chart (server-side, dry run) to
// the test API server, in a namespace that enforces the "restricted" Pod
// Security Standard, and creates (dry run) a Pod from the Deployment's
// template there: PodSecurity admission rejects a violating Pod, while it
// only warns about a Deployment.
func TestChartRestricted(t *testing.T) {
	helmBinary(t)
	env := kubetest.Get(t)
	ctx := context.Background()
	if err := env.Clientset.SchedulingV1().PriorityClasses().Delete(ctx, "batchlatch-test", metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	if _, err := env.Clientset.SchedulingV1().PriorityClasses().Create(ctx, &schedulingv1.PriorityClass{
		ObjectMeta: metav1.ObjectMeta{Name: "batchlatch-test"}, Value: 1000,
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Clientset.SchedulingV1().PriorityClasses().Delete(ctx, "batchlatch-test", metav1.DeleteOptions{})
	})

	warn := &warningRecorder{}
	cfg := env.RESTConfig()
	cfg.WarningHandler = warn
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	groups, err := restmapper.GetAPIGroupResources(discovery.NewDiscoveryClientForConfigOrDie(cfg))
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDiscoveryRESTMapper(groups)

	for _, v := range chartValues {
		t.Run(v.name, func(t *testing.T) {
			ns := env.NewNamespace(t)
			nsObj, err := env.Clientset.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if nsObj.Labels == nil {
				nsObj.Labels = map[string]string{}
			}
			nsObj.Labels["pod-security.kubernetes.io/enforce"] = "restricted"
			nsObj.Labels["pod-security.kubernetes.io/enforce-version"] = "latest"
			if _, err := env.Clientset.CoreV1().Namespaces().Update(ctx, nsObj, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
			warn.take()

			r := mustTemplate(t, v.release, ns, v.values)
			applied := 0
			for _, o := range r.objs {
				gvk := o.GroupVersionKind()
				if gvk.Group == "monitoring.coreos.com" || gvk.Group == "monitoring.googleapis.com" {
					continue // no Prometheus Operator or GMP CRDs here; TestChartTemplate checks them
				}
				mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				if err != nil {
					t.Fatalf("%s: %v", gvk, err)
				}
				var res dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
				if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
					if (o.GetKind() == "Role" || o.GetKind() == "RoleBinding") && strings.HasSuffix(o.GetName(), "-cronjobs") && o.GetNamespace() != ns {
						continue // a watched namespace's, which does not exist here; TestChartTemplate checks them
					}
					if o.GetNamespace() != ns {
						t.Fatalf("%s %s in namespace %q, want the release namespace %s", o.GetKind(), o.GetName(), o.GetNamespace(), ns)
					}
					res = dyn.Resource(mapping.Resource).Namespace(ns)
				}
				data, err := o.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				force := true
				if _, err := res.Patch(ctx, o.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
					DryRun: []string{metav1.DryRunAll}, FieldManager: "batchlatch-chart-test", Force: &force,
					FieldValidation: metav1.FieldValidationStrict,
				}); err != nil {
					t.Errorf("apply %s %s: %v", o.GetKind(), o.GetName(), err)
				}
				applied++
				if w := warn.take(); len(w) > 0 {
					t.Errorf("apply %s %s: warnings %q", o.GetKind(), o.GetName(), w)
				}
			}
			if applied < 3 {
				t.Fatalf("applied %d objects", applied)
			}

			d := renderedObject[appsv1.Deployment](t, r, "Deployment")
			pod := &corev1.Pod{
				ObjectMeta: metav1.ObjectMeta{Name: d.Name + "-test", Namespace: ns, Labels: d.Spec.Template.Labels, Annotations: d.Spec.Template.Annotations},
				Spec:       d.Spec.Template.Spec,
			}
			if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
				t.Errorf("a pod of the deployment in a restricted namespace: %v", err)
			}
			if w := warn.take(); len(w) > 0 {
				t.Errorf("pod: warnings %q", w)
			}

			// The namespace does enforce: the same pod allowed to escalate is rejected.
			bad := pod.DeepCopy()
			escalate := true
			bad.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &escalate
			_, err = cs.CoreV1().Pods(ns).Create(ctx, bad, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
				t.Errorf("a violating pod: %v, want forbidden by PodSecurity", err)
			}
			warn.take()
		})
	}
}

// chartRole is the Role the chart renders with its default values in
// namespace ns, for TestLeastPrivilegeRoleIsEnough. The tests run the binary
// with the default --configmap, --state-shards and --lease-name, which must be the names the
// Role grants.
func chartRole(t *testing.T, ns string) *rbacv1.Role {
	t.Helper()
	role := renderedObject[rbacv1.Role](t, mustTemplate(t, "batchlatch", ns, ""), "Role")
	defaults := map[string]string{}
	newFlagSet(&Config{}, io.Discard).VisitAll(func(f *flag.Flag) { defaults[f.Name] = f.DefValue })
	var names []string
	for _, rule := range role.Rules {
		names = append(names, rule.ResourceNames...)
	}
	shards, _ := strconv.Atoi(defaults["state-shards"])
	if want := append(stateConfigMaps(defaults["configmap"], shards), defaults["lease-name"]); !slices.Equal(names, want) {
		t.Fatalf("the chart's Role grants %q, the binary's defaults are %q", names, want)
	}
	if role.Namespace != ns {
		t.Fatalf("role in namespace %q, want %s", role.Namespace, ns)
	}
	return role
}

// stateConfigMaps are the state's ConfigMaps: the layout's, n shards, their
// journals and the silence shards.
func stateConfigMaps(name string, n int) []string {
	names := []string{name}
	for i := range n {
		names = append(names, configmapstore.ShardName(name, i))
	}
	for i := range configmapstore.JournalCount(n) {
		names = append(names, configmapstore.JournalName(name, i))
	}
	for i := range configmapstore.SilenceShards {
		names = append(names, configmapstore.SilencesName(name, i))
	}
	return names
}

// The Role names every shard and journal the binary opens, whatever the
// shard count: the chart computes the journals' count as the store does.
func TestChartRoleNamesEveryShardAndJournal(t *testing.T) {
	for _, shards := range []int{1, 8, 9, 32, 100} {
		r := mustTemplate(t, "batchlatch", "batchlatch", fmt.Sprintf("stateShards: %d\n", shards))
		role := renderedObject[rbacv1.Role](t, r, "Role")
		var names []string
		for _, rule := range role.Rules {
			names = append(names, rule.ResourceNames...)
		}
		if want := append(stateConfigMaps("batchlatch-state", shards), "batchlatch-leader"); !slices.Equal(names, want) {
			t.Errorf("stateShards %d: the Role grants %q, want %q", shards, names, want)
		}
	}
}
