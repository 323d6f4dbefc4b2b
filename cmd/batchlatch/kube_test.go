package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	argoclient "github.com/argoproj/argo-workflows/v3/pkg/client/clientset/versioned"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/kubetest"
	"github.com/batchlatch/batchlatch/internal/testwait"
)

// childEnv makes the test binary act as the batchlatch command, for tests
// that kill it.
const childEnv = "BATCHLATCH_TEST_CHILD_ARGS"

func TestMain(m *testing.M) {
	if args := os.Getenv(childEnv); args != "" {
		var argv []string
		if err := json.Unmarshal([]byte(args), &argv); err != nil {
			panic(err)
		}
		main2(argv)
		return
	}
	kubetest.Main(m)
}

// main2 is main with explicit arguments.
func main2(args []string) {
	os.Args = append([]string{"batchlatch"}, args...)
	main()
}

// kubeEnv is the environment run sees for a cluster and namespace.
func kubeEnv(kubeconfig string, extra ...string) map[string]string {
	env := map[string]string{"KUBECONFIG": kubeconfig}
	for i := 0; i+1 < len(extra); i += 2 {
		env[extra[i]] = extra[i+1]
	}
	return env
}

func TestConfigMapStateSurvivesRestart(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	args := []string{"--state", "configmap", "--namespace", ns, "--interval", "100ms"}
	svc := start(t, kubeEnv(env.Kubeconfig), args...)
	waitHTTP(t, svc, "/readyz", 200)
	t0 := time.Now().Add(-time.Hour)
	for i, body := range []string{
		callback("ml", "nightly", "n1", "Failed", t0),
		callback("ml", "nightly", "n2", "Failed", t0.Add(time.Minute)),
		callback("ml", "hourly", "h1", "Failed", t0),
		callback("etl", "load", "l1", "Succeeded", t0),
	} {
		if code, data := svc.post("", body); code != 200 {
			t.Fatalf("callback %d: %d %s", i, code, data)
		}
	}
	before := svc.failures()
	svc.stop()

	again := start(t, kubeEnv(env.Kubeconfig), args...)
	waitHTTP(t, again, "/readyz", 200)
	after := again.failures()
	for i := range before.Failures { // the only field that moves with the clock
		before.Failures[i].FailingSeconds = 0
	}
	for i := range after.Failures {
		after.Failures[i].FailingSeconds = 0
	}
	if fmt.Sprint(after) != fmt.Sprint(before) || len(after.Failures) != 2 || after.Failures[0].ConsecutiveFailures+after.Failures[1].ConsecutiveFailures != 3 {
		t.Fatalf("after restart:\n%+v\nbefore:\n%+v", after, before)
	}
	if code, _ := again.get("/api/v1/jobs/etl/load"); code != 200 {
		t.Fatalf("healthy job lost: %d", code)
	}
	// Who is failing shows at a glance in the ConfigMap.
	if data := storedJobs(t, env, ns); len(data) != 3 || !strings.Contains(data["ml.nightly"], `"failedRuns":2`) {
		t.Fatalf("state ConfigMaps: %v", data)
	}
}

func TestCrashLosesNoAcknowledgedCallback(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	addr := freePort(t)
	args := []string{"--listen", addr, "--state", "configmap", "--namespace", ns, "--interval", "1h"}
	child := exec.Command(os.Args[0])
	argv, _ := json.Marshal(args)
	child.Env = append(os.Environ(), childEnv+"="+string(argv), "KUBECONFIG="+env.Kubeconfig)
	var childErr syncBuffer
	child.Stderr = &childErr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Process.Kill()
	url := "http://" + addr
	waitURL(t, url+"/readyz", 200)

	// At most recentRunsKept (8) runs per job: all finish at the same time, so
	// only the remembered run hashes, not the finish times, tell redeliveries.
	const jobs, runsPerJob, clients = 15, 8, 16
	type call struct {
		job, run int
		body     string
	}
	var calls []call
	t0 := time.Now().Add(-time.Hour)
	for r := 0; r < runsPerJob; r++ {
		for j := 0; j < jobs; j++ {
			// Same finish time for every run: none is stale, each counts once.
			calls = append(calls, call{j, r, callback("ml", fmt.Sprintf("job%d", j), fmt.Sprintf("j%d-r%d", j, r), "Failed", t0)})
		}
	}
	acked := make([]bool, len(calls))
	var ackedCount sync.WaitGroup
	next := make(chan int)
	var mu sync.Mutex
	n := 0
	killed := make(chan struct{})
	client := &http.Client{Timeout: 10 * time.Second}
	for c := 0; c < clients; c++ {
		ackedCount.Go(func() {
			for i := range next {
				resp, err := client.Post(url+"/api/v1/results", "application/json", strings.NewReader(calls[i].body))
				if err != nil {
					continue // killed mid-request: not acknowledged
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					mu.Lock()
					acked[i] = true
					n++
					if n == len(calls)/2 {
						child.Process.Signal(syscall.SIGKILL)
						close(killed)
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range calls {
		select {
		case next <- i:
		case <-killed:
		}
	}
	close(next)
	ackedCount.Wait()
	// Fewer than half acknowledged (requests that timed out on a busy
	// machine): kill it now rather than wait for it forever.
	mu.Lock()
	select {
	case <-killed:
	default:
		child.Process.Signal(syscall.SIGKILL)
		close(killed)
	}
	mu.Unlock()
	child.Wait()

	perJob := make([]int, jobs)
	total := 0
	for i, ok := range acked {
		if ok {
			perJob[calls[i].job]++
			total++
		}
	}
	t.Logf("%d of %d callbacks acknowledged before SIGKILL", total, len(calls))

	svc := start(t, kubeEnv(env.Kubeconfig), "--state", "configmap", "--namespace", ns, "--interval", "1h")
	waitHTTP(t, svc, "/readyz", 200)
	for j := 0; j < jobs; j++ {
		job := getJob(t, svc, "ml", fmt.Sprintf("job%d", j))
		if job.ConsecutiveFailures < perJob[j] || job.ConsecutiveFailures > runsPerJob {
			t.Errorf("job%d: %d failures stored, %d acknowledged, %d sent", j, job.ConsecutiveFailures, perJob[j], runsPerJob)
		}
	}
	// Argo delivers at least once: redeliver everything. Acknowledged
	// callbacks are duplicates, and every job ends with exactly its runs.
	for i, c := range calls {
		code, data := svc.post("", c.body)
		if code != 200 {
			t.Fatalf("redelivery: %d %s", code, data)
		}
		if acked[i] && !strings.Contains(string(data), `"duplicate":true`) {
			t.Errorf("acknowledged callback %s counted again: %s", c.body, data)
		}
	}
	for j := 0; j < jobs; j++ {
		if job := getJob(t, svc, "ml", fmt.Sprintf("job%d", j)); job.ConsecutiveFailures != runsPerJob {
			t.Errorf("job%d after redelivery: %d failures, want %d", j, job.ConsecutiveFailures, runsPerJob)
		}
	}
}

func getJob(t *testing.T, svc *instance, namespace, job string) api.Job {
	t.Helper()
	code, data := svc.get("/api/v1/jobs/" + namespace + "/" + job)
	var j api.Job
	if err := json.Unmarshal(data, &j); code != 200 || err != nil {
		t.Fatalf("job %s/%s: %d %s", namespace, job, code, data)
	}
	return j
}

func waitURL(t *testing.T, url string, status int) {
	t.Helper()
	testwait.Until(t, patience, fmt.Sprintf("%s to answer %d", url, status), func(ctx context.Context) (bool, string, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return false, "", err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return false, "", err
		}
		resp.Body.Close()
		return resp.StatusCode == status, fmt.Sprintf("status %d", resp.StatusCode), nil
	})
}

func waitHTTP(t *testing.T, svc *instance, path string, status int) {
	t.Helper()
	t.Cleanup(func() {
		if t.Failed() { // what the service said tells why it did not answer
			log := svc.stderr.String()
			t.Logf("%s's log:\n%s", svc.url, log[max(len(log)-4000, 0):])
		}
	})
	waitURL(t, svc.url+path, status)
}

// leaderTest runs two replicas with leader election and checks that exactly
// one writes entries, and that the other takes over when the leader stops.
func leaderTest(t *testing.T, kubeconfig, ns string) {
	t.Helper()
	// A lease long enough that a busy machine's slow renewal never loses it
	// (the leader renews within two thirds of it): exactly one writes. A
	// leader that stops releases it, so the other need not wait it out.
	args := []string{"--state", "configmap", "--namespace", ns, "--interval", "100ms", "--leader-elect", "--lease-duration", "15s"}
	a := start(t, kubeEnv(kubeconfig, "POD_NAME", "replica-a"), args...)
	waitHTTP(t, a, "/readyz", 200)
	b := start(t, kubeEnv(kubeconfig, "POD_NAME", "replica-b"), args...)
	waitHTTP(t, b, "/readyz", 200)
	// Each replica takes callbacks.
	if code, data := a.post("", callback("ml", "nightly", "u1", "Failed", time.Now())); code != 200 {
		t.Fatalf("replica a: %d %s", code, data)
	}
	if code, data := b.post("", callback("ml", "hourly", "u2", "Failed", time.Now())); code != 200 {
		t.Fatalf("replica b: %d %s", code, data)
	}
	deadline := time.Now().Add(patience)
	for len(a.entries())+len(b.entries()) < 10 {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries within %s, want 10", len(a.entries())+len(b.entries()), patience)
		}
		time.Sleep(50 * time.Millisecond)
	}
	leader, follower := a, b
	if len(b.entries()) > len(a.entries()) {
		leader, follower = b, a
	}
	if n := len(follower.entries()); n != 0 {
		t.Fatalf("both replicas write entries: leader %d, follower %d", len(leader.entries()), n)
	}
	// The leader writes for jobs whose callback went to the other replica.
	leader.waitForEntries("entries for both jobs from the leader", func(e []stdoutEntry) bool {
		jobs := map[string]bool{}
		for _, x := range e {
			jobs[x.Job] = true
		}
		return jobs["nightly"] && jobs["hourly"]
	})

	if err := leader.stop(); err != nil {
		t.Fatalf("leader stopped with %v", err)
	}
	stopped := time.Now()
	follower.waitForEntries("the other replica to take over", func(e []stdoutEntry) bool {
		jobs := map[string]bool{}
		for _, x := range e {
			jobs[x.Job] = true
		}
		return jobs["nightly"] && jobs["hourly"]
	})
	t.Logf("takeover after %s", time.Since(stopped).Round(time.Millisecond))
}

func TestLeaderElection(t *testing.T) {
	env := kubetest.Get(t)
	leaderTest(t, env.Kubeconfig, env.NewNamespace(t))
}

func TestAPIServerOutage(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	svc := start(t, kubeEnv(env.Kubeconfig), "--state", "configmap", "--namespace", ns, "--interval", "100ms")
	waitHTTP(t, svc, "/readyz", 200)
	if code, data := svc.post("", callback("ml", "nightly", "u1", "Failed", time.Now())); code != 200 {
		t.Fatalf("%d %s", code, data)
	}

	env.StopAPIServer(t)
	req, _ := http.NewRequest("POST", svc.url+"/api/v1/results", strings.NewReader(callback("ml", "nightly", "u2", "Failed", time.Now())))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("while the API server is down: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	waitHTTP(t, svc, "/readyz", 503)
	// The loop keeps writing from the last known state.
	seen := len(svc.entries())
	svc.waitForEntries("entries while the API server is down", func(e []stdoutEntry) bool { return len(e) >= seen+3 })

	env.StartAPIServer(t)
	waitHTTP(t, svc, "/readyz", 200)
	code, data := svc.post("", callback("ml", "nightly", "u2", "Failed", time.Now()))
	if code != 200 || !strings.Contains(string(data), `"consecutiveFailures":2`) {
		t.Fatalf("after the outage: %d %s", code, data)
	}
}

// serviceAccountKubeconfig binds role to a new ServiceAccount and writes a
// kubeconfig that authenticates with that account's token only.
func serviceAccountKubeconfig(t *testing.T, env *kubetest.Env, ns string, role *rbacv1.Role) (string, *kubernetes.Clientset) {
	t.Helper()
	ctx := context.Background()
	if _, err := env.Clientset.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "batchlatch", Namespace: ns}},
	}
	if _, err := env.Clientset.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := env.TokenFor(t, ns, "batchlatch")
	restConfig := env.RESTConfigForToken(token)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: restConfig.Host, CertificateAuthority: restConfig.CAFile, CertificateAuthorityData: restConfig.CAData}
	kc.AuthInfos["batchlatch"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "batchlatch", Namespace: ns}
	kc.CurrentContext = "test"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(restConfig)
	if err != nil {
		t.Fatal(err)
	}
	return path, cs
}

// runsWithRole goes through a callback, a restart and a leader election
// with nothing but role's permissions, and checks a call outside it fails.
func runsWithRole(t *testing.T, env *kubetest.Env, ns string, role *rbacv1.Role) {
	kubeconfig, sa := serviceAccountKubeconfig(t, env, ns, role)
	args := []string{"--state", "configmap", "--interval", "100ms"} // namespace from the kubeconfig
	svc := start(t, kubeEnv(kubeconfig), args...)
	waitHTTP(t, svc, "/readyz", 200)
	if code, data := svc.post("", callback("ml", "nightly", "u1", "Failed", time.Now())); code != 200 {
		t.Fatalf("callback: %d %s\n%s", code, data, svc.stderr)
	}
	svc.waitForEntries("an ERROR entry", func(e []stdoutEntry) bool { return count(e, "ERROR") > 0 })
	svc.stop()
	again := start(t, kubeEnv(kubeconfig), args...)
	waitHTTP(t, again, "/readyz", 200)
	if f := again.failures(); len(f.Failures) != 1 {
		t.Fatalf("after restart: %+v", f)
	}
	again.stop()
	leaderTest(t, kubeconfig, ns)
	if strings.Contains(svc.stderr.String()+again.stderr.String(), "forbidden") {
		t.Errorf("a request was forbidden:\n%s\n%s", svc.stderr, again.stderr)
	}

	ctx := context.Background()
	for what, call := range map[string]func() error{
		"list configmaps": func() error { _, err := sa.CoreV1().ConfigMaps(ns).List(ctx, metav1.ListOptions{}); return err },
		"get another cm":  func() error { _, err := sa.CoreV1().ConfigMaps(ns).Get(ctx, "other", metav1.GetOptions{}); return err },
		"delete the state": func() error {
			return sa.CoreV1().ConfigMaps(ns).Delete(ctx, "batchlatch-state", metav1.DeleteOptions{})
		},
		"read secrets": func() error { _, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); return err },
		"another namespace cm": func() error {
			_, err := sa.CoreV1().ConfigMaps("default").Get(ctx, "batchlatch-state", metav1.GetOptions{})
			return err
		},
	} {
		if err := call(); !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want forbidden", what, err)
		}
	}
}

func TestLeastPrivilegeRoleIsEnough(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	// The Role the Helm chart installs, with its default values.
	runsWithRole(t, env, ns, chartRole(t, ns))
}

// child is the batchlatch command in a process of its own, to be killed.
type child struct {
	cmd    *exec.Cmd
	url    string
	stdout *syncBuffer
	stderr *syncBuffer
}

func startChild(t *testing.T, extraEnv []string, args ...string) *child {
	t.Helper()
	addr := freePort(t)
	argv, _ := json.Marshal(append([]string{"--listen", addr}, args...))
	c := &child{cmd: exec.Command(os.Args[0]), url: "http://" + addr, stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	c.cmd.Env = append(append(os.Environ(), childEnv+"="+string(argv)), extraEnv...)
	c.cmd.Stdout, c.cmd.Stderr = c.stdout, c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	waitURL(t, c.url+"/readyz", 200)
	return c
}

// A leader killed (its Lease not released) is replaced once the Lease runs
// out. How soon is a figure of the machine, logged: the test waits for the
// takeover, with a lease long enough that a busy machine's slow renewals
// never hand the lease over before the kill.
func TestLeaderKilledIsReplaced(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	const lease = 10 * time.Second
	args := []string{"--state", "configmap", "--namespace", ns, "--interval", "100ms", "--leader-elect", "--lease-duration", lease.String()}
	a := startChild(t, []string{"KUBECONFIG=" + env.Kubeconfig, "POD_NAME=replica-a"}, args...)
	b := startChild(t, []string{"KUBECONFIG=" + env.Kubeconfig, "POD_NAME=replica-b"}, args...)
	resp, err := http.Post(a.url+"/api/v1/results", "application/json", strings.NewReader(callback("ml", "nightly", "u1", "Failed", time.Now())))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("callback: %v %v", resp, err)
	}
	resp.Body.Close()
	lines := func(c *child) int { return strings.Count(c.stdout.String(), "\n") }
	deadline := time.Now().Add(patience)
	for lines(a)+lines(b) < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries within %s, want 5", lines(a)+lines(b), patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
	leader, follower := a, b
	if lines(b) > lines(a) {
		leader, follower = b, a
	}
	if lines(follower) != 0 || lines(leader) == 0 {
		t.Fatalf("entries: leader %d, follower %d; want exactly one writer", lines(leader), lines(follower))
	}

	// SIGKILL: the Lease is not released; the other replica must wait it out.
	leader.cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	for lines(follower) == 0 {
		if time.Since(killed) > lease+patience {
			t.Fatalf("the follower wrote nothing %s after the leader was killed (lease %s)", time.Since(killed).Round(time.Second), lease)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("takeover %s after SIGKILL (lease %s)", time.Since(killed).Round(time.Millisecond), lease)
}

func TestStartsWhileAPIServerIsDown(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	env.StopAPIServer(t)
	// The process starts, serves, is not ready, and keeps trying.
	svc := start(t, kubeEnv(env.Kubeconfig), "--state", "configmap", "--namespace", ns, "--interval", "100ms")
	if code, _ := svc.get("/healthz"); code != 200 {
		t.Fatalf("healthz while the API server is down: %d", code)
	}
	waitHTTP(t, svc, "/readyz", 503)
	code, data := svc.post("", callback("ml", "nightly", "u1", "Failed", time.Now()))
	if code != 503 {
		t.Fatalf("callback before the state is loaded: %d %s", code, data)
	}

	env.StartAPIServer(t)
	waitHTTP(t, svc, "/readyz", 200)
	if code, data := svc.post("", callback("ml", "nightly", "u1", "Failed", time.Now())); code != 200 {
		t.Fatalf("after the API server came up: %d %s", code, data)
	}
	svc.waitForEntries("an ERROR entry", func(e []stdoutEntry) bool { return count(e, "ERROR") > 0 })
}

// Two replicas sharing the ConfigMap, many clients on each, with callbacks
// whose job key no ConfigMap can hold mixed in: every valid callback gets a
// 2xx and counts once, every over-long one a 400 naming the field.
func TestTwoReplicasUnderLoadAnswerOnly2xx(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	args := []string{"--state", "configmap", "--namespace", ns, "--interval", "1h"}
	replicas := []*instance{start(t, kubeEnv(env.Kubeconfig), args...), start(t, kubeEnv(env.Kubeconfig), args...)}
	for _, r := range replicas {
		waitHTTP(t, r, "/readyz", 200)
	}
	const jobs, runs, clientsPerReplica, overLong = 24, 10, 16, 150
	created := time.Now().Add(-time.Hour)
	type post struct {
		body      string
		wantField string // "" for a valid callback
	}
	posts := make(chan post)
	type answer struct {
		post
		code int
		data []byte
	}
	answers := make(chan answer, jobs*runs+overLong)
	var clients sync.WaitGroup
	for _, r := range replicas {
		for range clientsPerReplica {
			clients.Go(func() {
				for p := range posts {
					resp, err := http.Post(r.url+"/api/v1/results", "application/json", strings.NewReader(p.body))
					if err != nil {
						answers <- answer{post: p, data: []byte(err.Error())}
						continue
					}
					data, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					answers <- answer{post: p, code: resp.StatusCode, data: data}
				}
			})
		}
	}
	// A 63-character namespace, a 200-character CronWorkflow: each is a
	// valid name, but "<namespace>.<job>" is over 253 characters.
	longNamespace, longJob := strings.Repeat("n", 63), strings.Repeat("j", 200)
	sentLong := 0
	for run := range runs {
		for job := range jobs {
			posts <- post{body: callback("ml", fmt.Sprintf("job%d", job), fmt.Sprintf("u%d-%d", job, run), "Failed", created)}
			if sentLong < overLong {
				posts <- post{body: callback(longNamespace, longJob, fmt.Sprintf("long-%d", sentLong), "Failed", created), wantField: "cronWorkflow"}
				sentLong++
			}
		}
	}
	close(posts)
	clients.Wait()
	close(answers)
	valid, refused := 0, 0
	for a := range answers {
		if a.wantField == "" {
			valid++
			if a.code != 200 {
				t.Errorf("valid callback: %d %s", a.code, a.data)
			}
			continue
		}
		refused++
		var body api.ErrorBody
		if json.Unmarshal(a.data, &body); a.code != 400 || body.Error.Field != a.wantField {
			t.Errorf("over-long callback: %d %s, want 400 naming %s", a.code, a.data, a.wantField)
		}
	}
	if valid != jobs*runs || refused != overLong {
		t.Fatalf("%d valid and %d over-long answers, want %d and %d", valid, refused, jobs*runs, overLong)
	}
	// What is stored, read straight from the API server.
	data := storedJobs(t, env, ns)
	for job := range jobs {
		if value := data[fmt.Sprintf("ml.job%d", job)]; !strings.Contains(value, fmt.Sprintf(`"failedRuns":%d,`, runs)) {
			t.Errorf("job%d: %s, want %d failed runs", job, value, runs)
		}
	}
	if len(data) != jobs {
		t.Errorf("%d keys stored, want %d", len(data), jobs)
	}
}

// The Argo watcher runs with nothing but the chart's Role and the RBAC its
// argo.watch values add: a ClusterRole for all namespaces, or a Role in each
// listed one. It picks up a completed run whose callback never came.
func TestLeastPrivilegeArgoWatcher(t *testing.T) {
	env := kubetest.Get(t)
	env.InstallArgoCRDs(t)
	for _, allNamespaces := range []bool{false, true} {
		t.Run(fmt.Sprintf("all namespaces %v", allNamespaces), func(t *testing.T) {
			ns, watched := env.NewNamespace(t), env.NewNamespace(t)
			ctx := context.Background()
			kubeconfig, sa := serviceAccountKubeconfig(t, env, ns, chartRole(t, ns))
			values := "argo:\n  watch:\n    enabled: true\n    namespaces: [" + watched + "]\n"
			args := []string{"--state", "configmap", "--watch-argo", "--reconcile-interval", "200ms", "--argo-namespaces", watched}
			if allNamespaces {
				values = "argo:\n  watch:\n    enabled: true\n"
				args = args[:len(args)-2]
			}
			render := mustTemplate(t, "batchlatch", ns, values)
			bindChartWatcherRBAC(t, env, render, ns, watched, allNamespaces)

			argo, err := argoclient.NewForConfig(env.RESTConfig())
			if err != nil {
				t.Fatal(err)
			}
			cwf, err := argo.ArgoprojV1alpha1().CronWorkflows(watched).Create(ctx, &wfv1.CronWorkflow{
				ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
				Spec:       wfv1.CronWorkflowSpec{Schedules: []string{"0 0 1 1 *"}, WorkflowSpec: wfv1.WorkflowSpec{Entrypoint: "main"}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			ended := time.Now().Add(-2 * time.Minute)
			wf, err := argo.ArgoprojV1alpha1().Workflows(watched).Create(ctx, &wfv1.Workflow{
				ObjectMeta: metav1.ObjectMeta{Name: "nightly-1795485600", Labels: map[string]string{
					"workflows.argoproj.io/cron-workflow": cwf.Name, "workflows.argoproj.io/phase": "Failed", "workflows.argoproj.io/completed": "true"}},
				Spec: cwf.Spec.WorkflowSpec,
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			wf.Status = wfv1.WorkflowStatus{Phase: wfv1.WorkflowFailed, Message: "lost callback", StartedAt: metav1.NewTime(ended.Add(-time.Minute)), FinishedAt: metav1.NewTime(ended)}
			if _, err := argo.ArgoprojV1alpha1().Workflows(watched).Update(ctx, wf, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}

			svc := start(t, kubeEnv(kubeconfig), args...)
			waitHTTP(t, svc, "/readyz", 200)
			deadline := time.Now().Add(patience)
			for {
				code, data := svc.get("/api/v1/jobs/" + watched + "/nightly")
				var j api.Job
				if code == 200 && json.Unmarshal(data, &j) == nil && j.Failing && j.LastUID == string(wf.UID) {
					// A watched job's view says when it should run.
					nextNewYear := time.Date(time.Now().UTC().Year()+1, 1, 1, 0, 0, 0, 0, time.UTC)
					if s := j.Schedule; s == nil || s.Kind != "CronWorkflow" || s.Timezone != "UTC" || s.NextTick == nil || !s.NextTick.Equal(nextNewYear) {
						t.Errorf("schedule in the job's view: %s", data)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("lost callback not picked up: %d %s\n%s", code, data, svc.stderr)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if strings.Contains(svc.stderr.String(), "forbidden") {
				t.Errorf("a request was forbidden:\n%s", svc.stderr)
			}
			saArgo, err := argoclient.NewForConfig(env.RESTConfigForToken(env.TokenFor(t, ns, "batchlatch")))
			if err != nil {
				t.Fatal(err)
			}
			for what, call := range map[string]func() error{
				"delete a workflow": func() error {
					return saArgo.ArgoprojV1alpha1().Workflows(watched).Delete(ctx, wf.Name, metav1.DeleteOptions{})
				},
				"update a cronworkflow": func() error {
					_, err := saArgo.ArgoprojV1alpha1().CronWorkflows(watched).Update(ctx, cwf, metav1.UpdateOptions{})
					return err
				},
				"read secrets where it watches": func() error {
					_, err := sa.CoreV1().Secrets(watched).List(ctx, metav1.ListOptions{})
					return err
				},
			} {
				if err := call(); !apierrors.IsForbidden(err) {
					t.Errorf("%s: %v, want forbidden", what, err)
				}
			}
			if !allNamespaces {
				if _, err := saArgo.ArgoprojV1alpha1().Workflows(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
					t.Errorf("list workflows outside the listed namespaces: %v, want forbidden", err)
				}
			}
		})
	}
}

// bindChartWatcherRBAC creates a watcher's RBAC objects exactly as the chart
// rendered them (with one watcher on), bound to the test's ServiceAccount in
// ns.
func bindChartWatcherRBAC(t *testing.T, env *kubetest.Env, render chartRender, ns, watched string, cluster bool) {
	t.Helper()
	ctx := context.Background()
	sa := []rbacv1.Subject{{Kind: "ServiceAccount", Name: "batchlatch", Namespace: ns}}
	if cluster {
		role := renderedObject[rbacv1.ClusterRole](t, render, "ClusterRole")
		role.Name = ns + "-watcher" // one per test: cluster-scoped
		if _, err := env.Clientset.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
			RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: role.Name}, Subjects: sa}
		if _, err := env.Clientset.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			env.Clientset.RbacV1().ClusterRoleBindings().Delete(ctx, role.Name, metav1.DeleteOptions{})
			env.Clientset.RbacV1().ClusterRoles().Delete(ctx, role.Name, metav1.DeleteOptions{})
		})
		return
	}
	var role *rbacv1.Role
	for _, obj := range render.all("Role") {
		if obj.GetNamespace() == watched {
			role = new(rbacv1.Role)
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, role); err != nil {
				t.Fatal(err)
			}
		}
	}
	if role == nil {
		t.Fatalf("the chart renders no Role in %s", watched)
	}
	if _, err := env.Clientset.RbacV1().Roles(watched).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: watched},
		RoleRef: rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}, Subjects: sa}
	if _, err := env.Clientset.RbacV1().RoleBindings(watched).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// The CronJob watcher runs with exactly the chart's RBAC: it latches a
// CronJob's failed Job, and can do nothing else.
func TestLeastPrivilegeCronJobWatcher(t *testing.T) {
	env := kubetest.Get(t)
	for _, allNamespaces := range []bool{false, true} {
		t.Run(fmt.Sprintf("all namespaces %v", allNamespaces), func(t *testing.T) {
			ns, watched := env.NewNamespace(t), env.NewNamespace(t)
			ctx := context.Background()
			kubeconfig, sa := serviceAccountKubeconfig(t, env, ns, chartRole(t, ns))
			values := "cronjobs:\n  watch:\n    enabled: true\n    namespaces: [" + watched + "]\n"
			args := []string{"--state", "configmap", "--watch-cronjobs", "--cronjob-namespaces", watched}
			if allNamespaces {
				values = "cronjobs:\n  watch:\n    enabled: true\n"
				args = args[:len(args)-2]
			}
			render := mustTemplate(t, "batchlatch", ns, values)
			bindChartWatcherRBAC(t, env, render, ns, watched, allNamespaces)

			jobs := env.Clientset.BatchV1()
			template := corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "main", Image: "busybox"}}}}
			cj, err := jobs.CronJobs(watched).Create(ctx, &batchv1.CronJob{
				ObjectMeta: metav1.ObjectMeta{Name: "nightly"},
				Spec:       batchv1.CronJobSpec{Schedule: "0 0 1 1 *", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: template}}},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			job, err := jobs.Jobs(watched).Create(ctx, &batchv1.Job{
				ObjectMeta: metav1.ObjectMeta{Name: "nightly-29924760",
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))}},
				Spec: batchv1.JobSpec{Template: template},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// As the Job controller sets it when the backoff limit is exceeded.
			now := metav1.Now()
			job.Status = batchv1.JobStatus{StartTime: &metav1.Time{Time: now.Add(-time.Minute)}, Failed: 1, Conditions: []batchv1.JobCondition{
				{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now},
				{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "Job has reached the specified backoff limit", LastTransitionTime: now},
			}}
			if job, err = jobs.Jobs(watched).UpdateStatus(ctx, job, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}

			svc := start(t, kubeEnv(kubeconfig), args...)
			waitHTTP(t, svc, "/readyz", 200)
			deadline := time.Now().Add(patience)
			for {
				code, data := svc.get("/api/v1/jobs/" + watched + "/nightly?kind=CronJob")
				var j api.Job
				if code == 200 && json.Unmarshal(data, &j) == nil && j.Failing && j.LastUID == string(job.UID) {
					if j.Kind != api.KindCronJob || len(j.LastFailures) != 1 || j.LastFailures[0].DisplayName != "BackoffLimitExceeded" ||
						j.Schedule == nil || j.Schedule.Kind != api.KindCronJob {
						t.Errorf("the CronJob's job: %s", data)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("failed Job not latched: %d %s\n%s", code, data, svc.stderr)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if strings.Contains(svc.stderr.String(), "forbidden") {
				t.Errorf("a request was forbidden:\n%s", svc.stderr)
			}
			for what, call := range map[string]func() error{
				"delete a job": func() error { return sa.BatchV1().Jobs(watched).Delete(ctx, job.Name, metav1.DeleteOptions{}) },
				"update a cronjob": func() error {
					_, err := sa.BatchV1().CronJobs(watched).Update(ctx, cj, metav1.UpdateOptions{})
					return err
				},
				"read pods where it watches": func() error {
					_, err := sa.CoreV1().Pods(watched).List(ctx, metav1.ListOptions{})
					return err
				},
			} {
				if err := call(); !apierrors.IsForbidden(err) {
					t.Errorf("%s: %v, want forbidden", what, err)
				}
			}
			if !allNamespaces {
				if _, err := sa.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
					t.Errorf("list jobs outside the listed namespaces: %v, want forbidden", err)
				}
			}
		})
	}
}

// The per-job gauges follow the stored state on both replicas: fail, fail,
// success, restart.
func TestJobGaugesOnTwoReplicas(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	args := []string{"--state", "configmap", "--namespace", ns, "--interval", "1h"}
	a := start(t, kubeEnv(env.Kubeconfig), args...)
	b := start(t, kubeEnv(env.Kubeconfig), args...)
	for _, r := range []*instance{a, b} {
		waitHTTP(t, r, "/readyz", 200)
	}
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	series := func(failing, failures int, since, last time.Time) []string {
		sinceValue := "0"
		if failing == 1 {
			sinceValue = strconv.FormatInt(since.Unix(), 10)
		}
		return []string{
			fmt.Sprintf(`batchlatch_job_failing{job="nightly",kind="Workflow",namespace="ml"} %d`, failing),
			fmt.Sprintf(`batchlatch_job_consecutive_failures{job="nightly",kind="Workflow",namespace="ml"} %d`, failures),
			`batchlatch_job_failing_since_timestamp_seconds{job="nightly",kind="Workflow",namespace="ml"} ` + sinceValue,
			`batchlatch_job_last_result_timestamp_seconds{job="nightly",kind="Workflow",namespace="ml"} ` + strconv.FormatInt(last.Unix(), 10),
		}
	}
	steps := []struct {
		phase   string
		created time.Time
		want    []string
	}{
		{"Failed", t0, series(1, 1, t0.Add(12500*time.Millisecond).Truncate(time.Second), t0.Add(12500*time.Millisecond))},
		{"Failed", t0.Add(time.Hour), series(1, 2, t0.Add(12500*time.Millisecond).Truncate(time.Second), t0.Add(time.Hour+12500*time.Millisecond))},
		{"Succeeded", t0.Add(2 * time.Hour), series(0, 0, time.Time{}, t0.Add(2*time.Hour+12500*time.Millisecond))},
	}
	for i, step := range steps {
		if code, data := a.post("", callback("ml", "nightly", fmt.Sprintf("u%d", i), step.phase, step.created)); code != 200 {
			t.Fatalf("step %d: %d %s", i, code, data)
		}
		for _, r := range []*instance{a, b} {
			waitMetrics(t, r, step.want)
		}
	}
	// Rebuilt from the stored state at start.
	b.stop()
	again := start(t, kubeEnv(env.Kubeconfig), args...)
	waitHTTP(t, again, "/readyz", 200)
	waitMetrics(t, again, steps[2].want)
}

// waitMetrics polls /metrics until every line of want is in it (within the
// ConfigMap store's one-second cache).
func waitMetrics(t *testing.T, svc *instance, want []string) {
	t.Helper()
	testwait.Until(t, patience, "/metrics to hold every line wanted", func(context.Context) (bool, string, error) {
		_, data := svc.get("/metrics")
		text := normalizeFloats(string(data))
		for _, line := range want {
			if !strings.Contains(text, line+"\n") {
				return false, fmt.Sprintf("/metrics lacks %q:\n%s", line, grepLines(text, "batchlatch_job_")), nil
			}
		}
		return true, "", nil
	})
}

// normalizeFloats rewrites values such as 1.7954856e+09 as integers.
func normalizeFloats(text string) string {
	var out strings.Builder
	for _, line := range strings.Split(text, "\n") {
		if i := strings.LastIndexByte(line, ' '); i > 0 && !strings.HasPrefix(line, "#") {
			if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil && v == float64(int64(v)) {
				line = line[:i+1] + strconv.FormatInt(int64(v), 10)
			}
		}
		out.WriteString(line + "\n")
	}
	return out.String()
}

func grepLines(text, prefix string) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

// storedJobs is what the state's ConfigMaps hold, one key per job, read
// straight from the API server, as the store reads them: a journal's value
// wins over its shard's (a compaction writes the shard first and only then
// removes the job from the journal, so a job may be in both for a moment;
// a tombstone means deleted). A job in two shards, or in two journals, is
// an error.
func storedJobs(t *testing.T, env *kubetest.Env, ns string) map[string]string {
	t.Helper()
	list, err := env.Clientset.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=state"})
	if err != nil {
		t.Fatal(err)
	}
	shards, journals := map[string]string{}, map[string]string{}
	for _, cm := range list.Items {
		held := shards
		if strings.Contains(cm.Name, "-journal-") {
			held = journals
		}
		for key, value := range cm.Data {
			if strings.HasPrefix(key, "_") {
				continue
			}
			if _, twice := held[key]; twice {
				t.Errorf("job %s is stored in two ConfigMaps of a kind", key)
			}
			held[key] = value
		}
	}
	for key, value := range journals {
		shards[key] = value
		if value == "deleted" {
			delete(shards, key)
		}
	}
	return shards
}

// A job whose stored value is edited by hand into something unreadable
// keeps alerting from the last readable copy: its ERROR entries go on (its
// incident stays open), and it is shown as unreadable in REST, on the page
// and in /metrics, until it is deleted.
func TestUnreadableJobKeepsAlerting(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	svc := start(t, kubeEnv(env.Kubeconfig), "--state", "configmap", "--namespace", ns, "--interval", "100ms")
	waitHTTP(t, svc, "/readyz", 200)
	if code, data := svc.post("", callback("ml", "nightly", "n1", "Failed", time.Now().Add(-time.Hour))); code != 200 {
		t.Fatalf("callback: %d %s", code, data)
	}
	nightlyErrors := func(entries []stdoutEntry) int {
		n := 0
		for _, e := range entries {
			if e.Severity == "ERROR" && e.Job == "nightly" {
				n++
			}
		}
		return n
	}
	svc.waitForEntries("nightly's ERROR entries", func(e []stdoutEntry) bool { return nightlyErrors(e) > 0 })

	// Edit the value where it is read from: the journal while it holds it.
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	list, err := cms.List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=state"})
	if err != nil {
		t.Fatal(err)
	}
	var edited *corev1.ConfigMap
	for i := range list.Items {
		cm := &list.Items[i]
		if _, ok := cm.Data["ml.nightly"]; ok && (edited == nil || strings.Contains(cm.Name, "-journal-")) {
			edited = cm
		}
	}
	if edited == nil {
		t.Fatal("ml.nightly is in no state ConfigMap")
	}
	edited.Data["ml.nightly"] = "{ edited by hand"
	if _, err := cms.Update(context.Background(), edited, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		job := getJobView(t, svc, "/api/v1/jobs/ml")
		if job.Unreadable != "" && job.Failing && job.ConsecutiveFailures == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ml/nightly after the edit: %+v, want its last readable copy, marked unreadable", job)
		}
		time.Sleep(50 * time.Millisecond)
	}
	seen := nightlyErrors(svc.entries())
	svc.waitForEntries("more ERROR entries of the unreadable job", func(e []stdoutEntry) bool { return nightlyErrors(e) >= seen+5 })
	waitMetrics(t, svc, []string{`batchlatch_job_unreadable{job="nightly",kind="Workflow",namespace="ml"} 1`,
		`batchlatch_job_alerting{job="nightly",kind="Workflow",namespace="ml"} 1`})
	if code, page := svc.get("/"); code != 200 || !strings.Contains(string(page), `badge unreadable`) {
		t.Fatalf("status page: %d, no unreadable badge", code)
	}
	if code, _ := svc.get("/api/v1/jobs/ml/nightly"); code != 500 {
		t.Fatalf("GET of the unreadable job: %d, want 500", code)
	}
}

// getJobView is the one job that GET path lists.
func getJobView(t *testing.T, svc *instance, path string) api.Job {
	t.Helper()
	code, data := svc.get(path)
	var list api.JobList
	if err := json.Unmarshal(data, &list); code != 200 || err != nil || len(list.Jobs) != 1 {
		t.Fatalf("%s: %d %s", path, code, data)
	}
	return list.Jobs[0]
}
