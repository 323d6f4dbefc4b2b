// Package kubetest gives tests a real kube-apiserver (with etcd) on
// 127.0.0.1, started by hack/kube-env.sh once per test package.
//
// Use it from a package's tests:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		env := kubetest.Get(t) // starts the cluster on first use
//		ns := env.NewNamespace(t)
//		...
//	}
//
// If BATCHLATCH_TEST_KUBECONFIG is set, the tests use that cluster instead of
// starting one (it must be on a loopback address, e.g. one started by
// 'hack/kube-env.sh start DIR': use DIR/kubeconfig). A developer's KUBECONFIG
// is never used.
//
// When the cluster cannot be built or started, tests that call Get are
// skipped, except when the CI environment variable is set: then they fail.
//
// The cluster has no controllers: deleted namespaces stay Terminating, there
// is no default ServiceAccount and pods never run.
package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// KubeconfigEnv names the environment variable that points the tests at an
// already running test cluster instead of starting one.
const KubeconfigEnv = "BATCHLATCH_TEST_KUBECONFIG"

// Client-side rate limits for the clients this package builds: client-go's
// defaults (5 QPS, burst 10) throttle tests.
const (
	qps   = 200
	burst = 400
)

// Env is a running test cluster.
type Env struct {
	// Dir holds the cluster's kubeconfig, env file, certificates and logs.
	Dir string
	// Kubeconfig is the path of an admin kubeconfig for the cluster.
	Kubeconfig string
	// Clientset is an admin client.
	Clientset *kubernetes.Clientset

	config *rest.Config
	script string // hack/kube-env.sh; empty when the cluster is not ours
}

var (
	mainCalled bool
	once       sync.Once
	shared     *Env
	stopShared func()
	startErr   error
)

// Main runs the package's tests and then stops the cluster if one of them
// started it. Call it from TestMain.
func Main(m *testing.M) {
	mainCalled = true
	code := m.Run()
	if stopShared != nil {
		stopShared()
	}
	os.Exit(code)
}

// Get returns the package's cluster, starting it on first use. If it is not
// available, Get skips the test, or fails it when CI is set.
func Get(t testing.TB) *Env {
	t.Helper()
	if !mainCalled {
		t.Fatal("kubetest.Get: add func TestMain(m *testing.M) { kubetest.Main(m) } to this package's tests")
	}
	once.Do(func() { shared, stopShared, startErr = Start() })
	if startErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("test Kubernetes API server unavailable (CI is set, so this fails instead of skipping): %v", startErr)
		}
		t.Skipf("test Kubernetes API server unavailable: %v", startErr)
	}
	return shared
}

// Start starts a cluster with hack/kube-env.sh in a temporary directory (or
// attaches to the one named by BATCHLATCH_TEST_KUBECONFIG) and returns it
// with a function that stops it. Most tests want Main and Get instead.
func Start() (*Env, func(), error) {
	if kc := os.Getenv(KubeconfigEnv); kc != "" {
		env, err := newEnv(filepath.Dir(kc), kc, "")
		if err != nil {
			return nil, nil, fmt.Errorf("%s=%s: %w", KubeconfigEnv, kc, err)
		}
		return env, func() {}, nil
	}
	root, err := repoRoot()
	if err != nil {
		return nil, nil, err
	}
	script := filepath.Join(root, "hack", "kube-env.sh")
	dir, err := os.MkdirTemp("", "batchlatch-kube-")
	if err != nil {
		return nil, nil, err
	}
	stop := func() {
		if out, err := runScript(script, "stop", dir); err != nil {
			fmt.Fprintf(os.Stderr, "kubetest: %v\n%s", err, out)
		}
		os.RemoveAll(dir)
	}
	if out, err := runScript(script, "start", dir); err != nil {
		stop()
		return nil, nil, fmt.Errorf("%v\n%s", err, out)
	}
	env, err := newEnv(dir, filepath.Join(dir, "kubeconfig"), script)
	if err != nil {
		stop()
		return nil, nil, err
	}
	return env, stop, nil
}

// runScript runs hack/kube-env.sh, showing its progress messages (a cold
// build takes minutes) and returning them too for error messages.
func runScript(script string, args ...string) ([]byte, error) {
	var out bytes.Buffer
	cmd := exec.Command(script, args...)
	// The script's watchdog stops the cluster and removes its temp dir when
	// this process exits, even if it crashes before Main can do it.
	cmd.Env = append(os.Environ(), "KUBE_ENV_OWNER_PID="+strconv.Itoa(os.Getpid()), "KUBE_ENV_REMOVE_DIR=1")
	cmd.Stdout = io.MultiWriter(os.Stderr, &out)
	cmd.Stderr = cmd.Stdout
	// The servers run on after the script exits but don't hold its output
	// open; don't hang if that ever changes.
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return out.Bytes(), fmt.Errorf("%s %s: %w", script, strings.Join(args, " "), err)
	}
	return out.Bytes(), nil
}

// repoRoot walks up from the working directory (a test's package directory)
// to the directory holding go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "hack", "kube-env.sh")); err != nil {
				return "", fmt.Errorf("%s has go.mod but no hack/kube-env.sh", dir)
			}
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func newEnv(dir, kubeconfig, script string) (*Env, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return nil, err
	}
	if err := requireLoopback(cfg.Host); err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = qps, burst
	// Loopback only: never go through a proxy from the environment.
	cfg.Proxy = func(*http.Request) (*url.URL, error) { return nil, nil }
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Env{Dir: dir, Kubeconfig: kubeconfig, Clientset: cs, config: cfg, script: script}, nil
}

// requireLoopback refuses any server but 127.0.0.1/::1/localhost, so that
// tests can never create and delete things in a real cluster.
func requireLoopback(host string) error {
	u, err := url.Parse(host)
	if err != nil {
		return err
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); h != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("refusing to run tests against %s: not a loopback address", host)
	}
	return nil
}

// RESTConfig returns a copy of the admin client configuration.
func (e *Env) RESTConfig() *rest.Config {
	return rest.CopyConfig(e.config)
}

// RESTConfigForToken returns a configuration that authenticates with the
// bearer token only (no admin credentials).
func (e *Env) RESTConfigForToken(token string) *rest.Config {
	cfg := rest.AnonymousClientConfig(e.config)
	cfg.BearerToken = token
	return cfg
}

// NewNamespace creates a namespace with a unique name for the test and
// deletes it when the test ends (without waiting: with no controllers it
// stays Terminating).
func (e *Env) NewNamespace(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ns, err := e.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName: namespacePrefix(t.Name()),
			Annotations:  map[string]string{"batchlatch.test/name": t.Name()},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := e.Clientset.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Logf("delete namespace %s: %v", ns.Name, err)
		}
	})
	return ns.Name
}

// namespacePrefix turns a test name into a GenerateName prefix: a DNS label
// the server appends 5 random characters to.
func namespacePrefix(testName string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(testName) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := b.String()
	if len(s) > 40 {
		s = s[:40]
	}
	s = strings.Trim(s, "-")
	if s == "" || s[0] < 'a' {
		s = "t-" + s
	}
	return s + "-"
}

// TokenFor creates the ServiceAccount namespace/serviceAccount (if needed)
// and returns a token for it from the TokenRequest API, valid for an hour.
func (e *Env) TokenFor(t testing.TB, namespace, serviceAccount string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sas := e.Clientset.CoreV1().ServiceAccounts(namespace)
	_, err := sas.Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: serviceAccount},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create service account %s/%s: %v", namespace, serviceAccount, err)
	}
	expiry := int64(3600)
	tr, err := sas.CreateToken(ctx, serviceAccount, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &expiry},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("token for %s/%s: %v", namespace, serviceAccount, err)
	}
	return tr.Status.Token
}

// StopAPIServer stops kube-apiserver (etcd keeps running) to test an
// outage. StartAPIServer brings it back on the same address; if the test
// doesn't, it is restarted when the test ends. Tests that use it must not
// run in parallel with others of the package. It skips the test when the
// cluster is shared (BATCHLATCH_TEST_KUBECONFIG).
func (e *Env) StopAPIServer(t testing.TB) {
	t.Helper()
	e.requireOwned(t)
	if out, err := runScript(e.script, "stop-apiserver", e.Dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() {
		// A no-op if the test restarted it.
		if out, err := runScript(e.script, "start-apiserver", e.Dir); err != nil {
			t.Errorf("restart kube-apiserver after the test: %v\n%s", err, out)
		}
	})
}

// StartAPIServer restarts kube-apiserver after StopAPIServer and waits until
// it is ready.
func (e *Env) StartAPIServer(t testing.TB) {
	t.Helper()
	e.requireOwned(t)
	if out, err := runScript(e.script, "start-apiserver", e.Dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

func (e *Env) requireOwned(t testing.TB) {
	t.Helper()
	if e.script == "" {
		t.Skipf("stopping kube-apiserver needs a cluster of this package's own; unset %s", KubeconfigEnv)
	}
}

// KillAPIServer kills kube-apiserver with SIGKILL (a crash: nothing is
// drained); StartAPIServer brings it back on the same address. If the test
// doesn't, it is restarted when the test ends. Like StopAPIServer, it skips
// the test when the cluster is shared.
func (e *Env) KillAPIServer(t testing.TB) {
	t.Helper()
	e.requireOwned(t)
	if out, err := runScript(e.script, "kill-apiserver", e.Dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := runScript(e.script, "start-apiserver", e.Dir); err != nil {
			t.Errorf("restart kube-apiserver after the test: %v\n%s", err, out)
		}
	})
}

// StopEtcd stops etcd, keeping its data (kill: with SIGKILL, else SIGTERM
// and SIGKILL after 5 s); kube-apiserver keeps running and fails its
// requests meanwhile. StartEtcd brings etcd back on the same ports; if the
// test doesn't, it is restarted when the test ends. It skips the test when
// the cluster is shared.
func (e *Env) StopEtcd(t testing.TB, kill bool) {
	t.Helper()
	e.requireOwned(t)
	args := []string{"stop-etcd", e.Dir}
	if kill {
		args = append(args, "--kill")
	}
	if out, err := runScript(e.script, args...); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	t.Cleanup(func() {
		if out, err := runScript(e.script, "start-etcd", e.Dir); err != nil {
			t.Errorf("restart etcd after the test: %v\n%s", err, out)
		}
	})
}

// StartEtcd restarts etcd after StopEtcd, on its data, and waits until it is
// healthy (kube-apiserver reconnects by itself).
func (e *Env) StartEtcd(t testing.TB) {
	t.Helper()
	e.requireOwned(t)
	if out, err := runScript(e.script, "start-etcd", e.Dir); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
}

// Traffic counts what a client sends and reads: its requests, the bytes of
// the responses, and their content types.
type Traffic struct {
	Requests, Bytes atomic.Int64
	contentTypes    sync.Map
}

// Count returns a copy of cfg whose client counts its traffic in t.
func (t *Traffic) Count(cfg *rest.Config) *rest.Config {
	cfg = rest.CopyConfig(cfg)
	cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper { return countingTransport{next: rt, t: t} }
	return cfg
}

// ContentTypes are the content types of the responses read, sorted.
func (t *Traffic) ContentTypes() []string {
	var types []string
	t.contentTypes.Range(func(k, _ any) bool { types = append(types, k.(string)); return true })
	slices.Sort(types)
	return types
}

type countingTransport struct {
	next http.RoundTripper
	t    *Traffic
}

func (c countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.t.Requests.Add(1)
	resp, err := c.next.RoundTrip(req)
	if resp != nil {
		c.t.contentTypes.Store(resp.Header.Get("Content-Type"), true)
		if resp.Body != nil {
			resp.Body = countingBody{ReadCloser: resp.Body, bytes: &c.t.Bytes}
		}
	}
	return resp, err
}

type countingBody struct {
	io.ReadCloser
	bytes *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.bytes.Add(int64(n))
	return n, err
}
