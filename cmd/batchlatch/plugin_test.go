package main

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/proxy"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"github.com/batchlatch/batchlatch/api"
	batchlatchcli "github.com/batchlatch/batchlatch/internal/cli"
	"github.com/batchlatch/batchlatch/internal/kubetest"
)

// plugin runs `kubectl batchlatch args…` as kubectl-batchlatch would, with
// env as the whole environment (KUBECONFIG aside: client-go reads the
// process's).
func plugin(t *testing.T, env map[string]string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr strings.Builder
	err := batchlatchcli.Run(t.Context(), batchlatchcli.KubectlPlugin, args, func(k string) string { return env[k] }, &stdout, &stderr)
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit exitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.Code
	case err != nil:
		t.Fatalf("%v: Run returned %v, not an exit code", args, err)
	}
	return r
}

// writeKubeconfig writes a kubeconfig of contexts (name → namespace) on the
// cluster of cfg, all with its credentials, the first one current.
func writeKubeconfig(t *testing.T, cfg *rest.Config, token string, contexts ...[2]string) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthority: cfg.CAFile, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["user"] = &clientcmdapi.AuthInfo{Token: token}
	for i, c := range contexts {
		kc.Contexts[c[0]] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "user", Namespace: c[1]}
		if i == 0 {
			kc.CurrentContext = c[0]
		}
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// chartService creates the chart's Service in namespace, and its Endpoints
// as the endpoints controller writes them while no pod is ready: the API
// server cannot proxy to a test server on loopback (docs/kubectl-plugin.md),
// so its "no endpoints" answer is how the tests see that a request went
// through the service proxy of that Service.
func chartService(t *testing.T, env *kubetest.Env, namespace, name string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app.kubernetes.io/name": "batchlatch"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 8080, TargetPort: intstr.FromString("http")}},
		},
	}
	if _, err := env.Clientset.CoreV1().Services(namespace).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eps := &corev1.Endpoints{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if _, err := env.Clientset.CoreV1().Endpoints(namespace).Create(ctx, eps, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// noPodReady is what the plugin says when the API server's service proxy
// of namespace/service answered that no pod is behind it.
func noPodReady(namespace, service string) string {
	return "no batchlatch pod is ready behind service " + namespace + "/" + service
}

// TestPluginFindsTheServiceThroughTheKubeconfig: the plugin's requests
// reach the service proxy of the chart's Service on the real API server,
// in the namespace and with the credentials the kubeconfig, KUBECONFIG,
// --context and -n name, as kubectl's would.
func TestPluginFindsTheServiceThroughTheKubeconfig(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	chartService(t, env, ns, "batchlatch")
	chartService(t, env, ns, "prod-batchlatch")
	admin := env.RESTConfig()
	kubeconfig := writeKubeconfig(t, admin, admin.BearerToken, [2]string{"here", ns}, [2]string{"elsewhere", "default"})

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"the current context's namespace", []string{"--kubeconfig", kubeconfig}, noPodReady(ns, "batchlatch")},
		{"another context", []string{"--kubeconfig", kubeconfig, "--context", "elsewhere"}, `no service batchlatch in namespace default`},
		{"-n over the context's", []string{"--kubeconfig", kubeconfig, "--context", "elsewhere", "-n", ns}, noPodReady(ns, "batchlatch")},
		{"a release", []string{"--kubeconfig", kubeconfig, "--release", "prod"}, noPodReady(ns, "prod-batchlatch")},
		{"a release's service", []string{"--kubeconfig", kubeconfig, "--service", "prod-batchlatch"}, noPodReady(ns, "prod-batchlatch")},
		{"a missing release", []string{"--kubeconfig", kubeconfig, "--release", "nosuch"}, "no service nosuch-batchlatch in namespace " + ns},
	} {
		r := plugin(t, nil, append([]string{"failures"}, tc.args...)...)
		if r.code != exitTrouble || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("%s: exit %d, stderr %q, want %q", tc.name, r.code, r.stderr, tc.want)
		}
	}
	// KUBECONFIG, as kubectl reads it.
	t.Setenv("KUBECONFIG", kubeconfig)
	if r := plugin(t, nil, "jobs"); r.code != exitTrouble || !strings.Contains(r.stderr, noPodReady(ns, "batchlatch")) {
		t.Errorf("KUBECONFIG: exit %d, stderr %q", r.code, r.stderr)
	}
	// --server goes where it says, as batchlatch does; with a kube flag it is
	// a contradiction; BATCHLATCH_SERVER gives way to a flag.
	if r := plugin(t, nil, "jobs", "--server", "127.0.0.1:1"); r.code != exitTrouble || !strings.Contains(r.stderr, "cannot reach the server at http://127.0.0.1:1") {
		t.Errorf("--server: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := plugin(t, nil, "jobs", "--server", "127.0.0.1:1", "-n", ns); r.code != exitTrouble || !strings.Contains(r.stderr, "--server and --namespace") {
		t.Errorf("--server and -n: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := plugin(t, map[string]string{"BATCHLATCH_SERVER": "127.0.0.1:1"}, "jobs", "-n", ns); r.code != exitTrouble || !strings.Contains(r.stderr, noPodReady(ns, "batchlatch")) {
		t.Errorf("BATCHLATCH_SERVER and -n: exit %d, stderr %q", r.code, r.stderr)
	}
	// batchlatch itself takes the same flags.
	if r := cli(t, nil, "failures", "--release", "prod"); r.code != exitTrouble || !strings.Contains(r.stderr, noPodReady(ns, "prod-batchlatch")) {
		t.Errorf("batchlatch failures --release: exit %d, stderr %q", r.code, r.stderr)
	}
}

// documentedRole is the Role docs/kubectl-plugin.md shows, in namespace
// (its Service and release: batchlatch).
func documentedRole(t *testing.T, namespace string) (*rbacv1.Role, *rbacv1.RoleBinding) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "kubectl-plugin.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindSubmatch(data)
	if m == nil {
		t.Fatal("docs/kubectl-plugin.md: no yaml block")
	}
	docs := strings.Split(string(m[1]), "\n---\n")
	if len(docs) != 2 {
		t.Fatalf("docs/kubectl-plugin.md: %d documents, want a Role and a RoleBinding", len(docs))
	}
	var role rbacv1.Role
	var binding rbacv1.RoleBinding
	if err := yaml.UnmarshalStrict([]byte(docs[0]), &role); err != nil {
		t.Fatal(err)
	}
	if err := yaml.UnmarshalStrict([]byte(docs[1]), &binding); err != nil {
		t.Fatal(err)
	}
	role.Namespace, binding.Namespace = namespace, namespace
	return &role, &binding
}

// TestPluginNeedsTheDocumentedRole: a user without services/proxy is told
// what is missing; the Role of docs/kubectl-plugin.md lets reads through
// (to the Service: "no pod ready") and not a silence.
func TestPluginNeedsTheDocumentedRole(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	chartService(t, env, ns, "batchlatch")
	token := env.TokenFor(t, ns, "oncall")
	kubeconfig := writeKubeconfig(t, env.RESTConfig(), token, [2]string{"oncall", ns})

	r := plugin(t, nil, "failures", "--kubeconfig", kubeconfig)
	if r.code != exitTrouble || !strings.Contains(r.stderr, `cannot get resource "services/proxy"`) ||
		!strings.Contains(r.stderr, "needs get on services/proxy of service batchlatch in namespace "+ns) {
		t.Fatalf("without the Role: exit %d, stderr %q", r.code, r.stderr)
	}

	role, binding := documentedRole(t, ns)
	binding.Subjects = []rbacv1.Subject{{Kind: "ServiceAccount", Name: "oncall", Namespace: ns}}
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if _, err := env.Clientset.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Clientset.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The authorizer reads RBAC from its cache: wait for it to hold them.
	deadline := time.Now().Add(patience)
	for {
		r = plugin(t, nil, "failures", "--kubeconfig", kubeconfig)
		if strings.Contains(r.stderr, noPodReady(ns, "batchlatch")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with the Role: exit %d, stderr %q", r.code, r.stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r = plugin(t, nil, "silence", "ml/nightly", "--for", "1h", "--reason", "r", "--kubeconfig", kubeconfig)
	if r.code != exitTrouble || !strings.Contains(r.stderr, `cannot create resource "services/proxy"`) {
		t.Errorf("silence with the reader's Role: exit %d, stderr %q", r.code, r.stderr)
	}
}

// apiServerStandIn does what the API server does with a request for the
// service proxy of namespace/service (the real one cannot proxy to
// loopback): it authenticates Authorization (kubeToken), removes it, and
// proxies the rest of the path with apimachinery's UpgradeAwareHandler, the
// API server's own service proxy handler, to backend.
func apiServerStandIn(t *testing.T, kubeToken, namespace, service, backend string) *httptest.Server {
	t.Helper()
	target, err := url.Parse(backend)
	if err != nil {
		t.Fatal(err)
	}
	prefix := batchlatchcli.ProxyPath(namespace, service)
	status := func(w http.ResponseWriter, code int, reason metav1.StatusReason, message string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusFailure, Code: int32(code), Reason: reason, Message: message})
	}
	// TLS: clientcmd sends a kubeconfig's credentials over TLS only.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+kubeToken {
			status(w, http.StatusUnauthorized, metav1.StatusReasonUnauthorized, "Unauthorized")
			return
		}
		r.Header.Del("Authorization") // as k8s.io/apiserver's WithAuthentication does
		rest, ok := strings.CutPrefix(r.URL.EscapedPath(), prefix)
		if !ok {
			status(w, http.StatusNotFound, metav1.StatusReasonNotFound, "not the service proxy of "+namespace+"/"+service)
			return
		}
		location := *target
		location.Path = rest
		proxy.NewUpgradeAwareHandler(&location, http.DefaultTransport, true, false, errorResponder{t}).ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv
}

type errorResponder struct{ t *testing.T }

func (e errorResponder) Error(w http.ResponseWriter, _ *http.Request, err error) {
	e.t.Errorf("proxy: %v", err)
	http.Error(w, err.Error(), http.StatusBadGateway)
}

// TestPluginThroughTheProxyToBatchlatch: the whole way, with a stand-in for
// the API server's last hop. The token reaches batchlatch in
// X-Batchlatch-Token, the kubeconfig's credentials reach only the API
// server; reads, lists and writes work.
func TestPluginThroughTheProxyToBatchlatch(t *testing.T) {
	dir := t.TempDir()
	tokenFile, readTokenFile := filepath.Join(dir, "token"), filepath.Join(dir, "read-token")
	for path, token := range map[string]string{tokenFile: "writer", readTokenFile: "reader"} {
		if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	svc := start(t, map[string]string{"BATCHLATCH_TOKEN_FILE": tokenFile, "BATCHLATCH_READ_TOKEN": "reader"}, "--state-file", filepath.Join(dir, "state.json"))
	if code, data := svc.post("writer", failedRun("ml", "nightly", "run-1", time.Now().Add(-time.Hour), "OOMKilled", 0)); code != 200 {
		t.Fatalf("post: %d %s", code, data)
	}
	standIn := apiServerStandIn(t, "kube-token", "batchlatch", "batchlatch", svc.url)
	cluster := &rest.Config{Host: standIn.URL}
	cluster.CAData = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: standIn.Certificate().Raw})
	kubeconfig := writeKubeconfig(t, cluster, "kube-token", [2]string{"test", "batchlatch"})

	r := plugin(t, nil, "failures", "--kubeconfig", kubeconfig)
	if r.code != exitTrouble || !strings.Contains(r.stderr, "missing or wrong") {
		t.Fatalf("without batchlatch's token: exit %d, stderr %q", r.code, r.stderr)
	}
	env := map[string]string{"BATCHLATCH_TOKEN_FILE": readTokenFile}
	r = plugin(t, env, "failures", "--kubeconfig", kubeconfig)
	if r.code != exitFailing || r.stderr != "" {
		t.Fatalf("failures: exit %d, stderr %q", r.code, r.stderr)
	}
	if _, rows := table(t, r.stdout); len(rows) != 1 || rowOf(t, rows, "ml", "nightly")["STATUS"] != "Failing" {
		t.Errorf("failures:\n%s", r.stdout)
	}
	// get shows the job's runs, as batchlatch get does.
	r = plugin(t, env, "get", "ml/nightly", "--kubeconfig", kubeconfig)
	if sections := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n\n"); r.code != 0 || len(sections) != 3 {
		t.Errorf("get: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	} else if _, rows := table(t, sections[2]); len(rows) != 1 || rows[0]["PHASE"] != "Failed" || rows[0]["SOURCE"] != "callback" {
		t.Errorf("get: runs %v", rows)
	}
	r = plugin(t, env, "get", "ml/nightly", "-o", "json", "--kubeconfig", kubeconfig)
	var job api.Job
	if err := json.Unmarshal([]byte(r.stdout), &job); err != nil || r.code != 0 || job.LastUID != "run-1" {
		t.Errorf("get: exit %d, %v, stdout %q, stderr %q", r.code, err, r.stdout, r.stderr)
	}
	// Writes: the read token is refused by batchlatch, the write token taken.
	silence := []string{"silence", "ml/nightly", "--for", "1h", "--reason", "fix rolling out", "--kubeconfig", kubeconfig}
	if r := plugin(t, env, silence...); r.code != exitTrouble || !strings.Contains(r.stderr, "missing or wrong bearer token") {
		t.Errorf("silence with the read token: exit %d, stderr %q", r.code, r.stderr)
	}
	env["BATCHLATCH_TOKEN_FILE"] = tokenFile
	if r := plugin(t, env, silence...); r.code != 0 || !strings.Contains(r.stdout, "ml/nightly silenced until") {
		t.Errorf("silence: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := plugin(t, env, "failures", "--kubeconfig", kubeconfig); r.code != 0 {
		t.Errorf("failures once silenced: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := plugin(t, env, "unsilence", "ml/nightly", "--kubeconfig", kubeconfig); r.code != 0 {
		t.Errorf("unsilence: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	// The kubeconfig's credentials refused: the API server's 401, explained.
	wrong := writeKubeconfig(t, cluster, "other", [2]string{"test", "batchlatch"})
	if r := plugin(t, env, "jobs", "--kubeconfig", wrong); r.code != exitTrouble || !strings.Contains(r.stderr, "the credentials of context test were refused") {
		t.Errorf("wrong kube credentials: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestServiceForReleaseIsTheChartsName: the Service the plugin looks for is
// the one helm template names, for release names of every shape.
func TestServiceForReleaseIsTheChartsName(t *testing.T) {
	for _, release := range []string{"batchlatch", "prod", "batchlatch-prod", "my-batchlatch", strings.Repeat("a", 50) + "-lo"} {
		r := mustTemplate(t, release, "batchlatch", "")
		services := r.all("Service")
		if len(services) != 1 {
			t.Fatalf("release %s: %d Services", release, len(services))
		}
		if got, want := batchlatchcli.ServiceForRelease(release), services[0].GetName(); got != want {
			t.Errorf("release %s: ServiceForRelease %q, the chart's Service %q", release, got, want)
		}
		var ports []string
		for _, p := range renderedObject[corev1.Service](t, r, "Service").Spec.Ports {
			ports = append(ports, p.Name)
		}
		if !strings.HasSuffix(batchlatchcli.ProxyPath("ns", "svc"), ":"+ports[0]+"/proxy") {
			t.Errorf("the chart's port is named %v, the proxy path is %s", ports, batchlatchcli.ProxyPath("ns", "svc"))
		}
	}
}
