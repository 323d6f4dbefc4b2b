package kubetest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/pkg/client/clientset/versioned"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/yaml"

	"github.com/batchlatch/batchlatch/internal/fakelet"
	"github.com/batchlatch/batchlatch/internal/subprocess"
)

// The real controllers in the test cluster: kube-controller-manager (the
// CronJob, Job, TTL-after-finished and garbage-collector controllers) and
// Argo's workflow-controller, built by hack/controllers.sh and run as
// processes of the test binary; and the fakelet, which plays the pods (there
// is no kubelet). Each is shared by the tests of a package that use it at the
// same time and stopped when the last of them ends; a test that stops or
// kills one (an outage) must not run in parallel with others using it.
//
// Nothing the controllers do may leave the machine: they get an HTTP(S)
// proxy on a closed loopback port (Go never proxies loopback requests, so
// the API server is reached directly), and every container the tests create
// must have a command (see Create): without one, Argo's controller
// looks the image up in its registry.

const (
	// ArgoNamespace is where Argo's controller is installed.
	ArgoNamespace = "argo"
	// ArgoConfigMap is the controller's configuration.
	ArgoConfigMap = "workflow-controller-configmap"
	// argoLease is the controller's leader-election Lease (no instance ID).
	argoLease = "workflow-controller"
	// deadProxy is a closed port on loopback: a request through it fails at
	// once instead of leaving the machine.
	deadProxy = "http://127.0.0.1:9"
	// readyTimeout bounds a controller's start (the cluster is up already).
	readyTimeout = 2 * time.Minute
	// stopTimeout is how long a stopped process gets before SIGKILL.
	stopTimeout = 10 * time.Second
)

// kubeControllers are the controllers kube-controller-manager runs.
var kubeControllers = []string{
	"cronjob-controller", "job-controller", "ttl-after-finished-controller", "garbage-collector-controller",
}

// Tools are the controllers' binaries, built and cached by
// hack/controllers.sh.
type Tools struct {
	KubeControllerManager, WorkflowController, Argoexec string
	// ArgoVersion is the version of Argo the binaries are built from.
	ArgoVersion string
}

var (
	toolsOnce sync.Once
	tools     Tools
	toolsErr  error
)

// ControllerTools builds (first time only, minutes cold) or finds the
// controllers' binaries. Like Get, it skips the test if they cannot be
// built, or fails it when CI is set.
func ControllerTools(t testing.TB) Tools {
	t.Helper()
	toolsOnce.Do(func() { tools, toolsErr = buildTools() })
	if toolsErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("controllers unavailable (CI is set, so this fails instead of skipping): %v", toolsErr)
		}
		t.Skipf("controllers unavailable: %v", toolsErr)
	}
	return tools
}

func buildTools() (Tools, error) {
	root, err := repoRoot()
	if err != nil {
		return Tools{}, err
	}
	// The script's progress (a cold build takes minutes) goes to stderr
	// as it comes; its answer is on stdout.
	var out, progress bytes.Buffer
	cmd := exec.Command(filepath.Join(root, "hack", "controllers.sh"), "paths")
	cmd.Stdout = &out
	cmd.Stderr = io.MultiWriter(os.Stderr, &progress)
	if err := cmd.Run(); err != nil {
		return Tools{}, fmt.Errorf("hack/controllers.sh paths: %v\n%s", err, progress.Bytes())
	}
	answer := out.String()
	vars := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(answer))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			vars[k] = v
		}
	}
	tl := Tools{
		KubeControllerManager: vars["KUBE_CONTROLLER_MANAGER"],
		WorkflowController:    vars["WORKFLOW_CONTROLLER"],
		Argoexec:              vars["ARGOEXEC"],
		ArgoVersion:           vars["ARGO_VERSION"],
	}
	if tl.KubeControllerManager == "" || tl.WorkflowController == "" || tl.Argoexec == "" || tl.ArgoVersion == "" {
		return Tools{}, fmt.Errorf("hack/controllers.sh paths printed no paths:\n%s", answer)
	}
	// The controller must be the Argo the tests link and whose CRDs they
	// install: the same module version.
	if linked := linkedModule(ArgoModule); linked != "" && linked != ArgoModule+"@"+tl.ArgoVersion {
		return Tools{}, fmt.Errorf("the tests link %s but hack/argo builds the controller from %s; make them agree", linked, tl.ArgoVersion)
	}
	return tl, nil
}

// Process is a controller the tests run: one per cluster, shared by the
// tests using it at the same time.
type Process struct {
	name    string
	path    string
	args    []string
	env     []string
	logPath string
	// ready waits until the process serves, once started.
	ready func(ctx context.Context, startedAt time.Time) error

	mu       sync.Mutex
	users    int                 // tests using it now
	proc     *subprocess.Process // nil: not running
	desc     string              // its configuration, to refuse a conflicting one
	extraEnv []string            // added to env
}

// LogPath is the file that receives the process's output (appended at each
// start).
func (p *Process) LogPath() string { return p.logPath }

// use registers t as a user of p, starting p if it is not running, and
// releases p (stopping it once unused) when t ends.
func (p *Process) use(t testing.TB) {
	t.Helper()
	p.mu.Lock()
	p.users++
	p.mu.Unlock()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tail of %s:\n%s", p.logPath, tail(p.logPath, 40))
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.users--
		// Under the lock: a test starting to use it meanwhile waits,
		// then starts it again.
		if p.users == 0 {
			if err := p.stopLocked(syscall.SIGTERM); err != nil {
				t.Errorf("stop %s: %v", p.name, err)
			}
		}
	})
	if err := p.start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err) // the cleanup shows the log
	}
}

// Stop stops the process (SIGTERM, then SIGKILL after 10 s) for an outage;
// Start brings it back. If the test doesn't, it is restarted when the test
// ends (for the other users of the package). It fails the test if other
// tests use the process now.
func (p *Process) Stop(t testing.TB) {
	t.Helper()
	p.outage(t, syscall.SIGTERM)
}

// Kill kills the process with SIGKILL (a crash); Start brings it back.
func (p *Process) Kill(t testing.TB) {
	t.Helper()
	p.outage(t, syscall.SIGKILL)
}

func (p *Process) outage(t testing.TB, sig syscall.Signal) {
	t.Helper()
	p.mu.Lock()
	users := p.users
	p.mu.Unlock()
	if users > 1 {
		t.Fatalf("%s is used by %d tests now: a test that stops it must not run in parallel with others using it", p.name, users)
	}
	if err := p.stop(sig); err != nil {
		t.Fatalf("stop %s: %v", p.name, err)
	}
	t.Cleanup(func() {
		if err := p.start(); err != nil { // a no-op if the test restarted it
			t.Errorf("restart %s after the test: %v", p.name, err)
		}
	})
}

// Start starts the process again after Stop or Kill and waits until it is
// ready.
func (p *Process) Start(t testing.TB) {
	t.Helper()
	if err := p.start(); err != nil {
		t.Fatalf("start %s: %v", p.name, err) // the cleanup of its use shows the log
	}
}

// Running reports whether the process runs now.
func (p *Process) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.proc != nil
}

func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		select {
		case <-p.proc.Done():
			p.proc = nil // it died: start it again
		default:
			return nil
		}
	}
	logFile, err := os.OpenFile(p.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	startedAt := time.Now()
	fmt.Fprintf(logFile, "==== kubetest: %s starting %s %s\n", startedAt.Format(time.RFC3339Nano), p.path, strings.Join(p.args, " "))
	cmd := exec.Command(p.path, p.args...)
	cmd.Env = append(slices.Clip(p.env), p.extraEnv...)
	cmd.Dir = filepath.Dir(p.logPath)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	proc, err := subprocess.Start(cmd)
	if err != nil {
		logFile.Close()
		return err
	}
	go func() {
		<-proc.Done()
		fmt.Fprintf(logFile, "==== kubetest: %s exited: %v\n", time.Now().Format(time.RFC3339Nano), proc.Err())
		logFile.Close()
	}()
	p.proc = proc
	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	ctx, stop := contextUntilExit(ctx, proc)
	defer stop()
	if err := p.ready(ctx, startedAt); err != nil {
		if exited(proc) {
			p.proc = nil
			return fmt.Errorf("%s exited: %v", p.name, proc.Err())
		}
		return fmt.Errorf("%s not ready within %s: %w", p.name, readyTimeout, err)
	}
	return nil
}

// stop signals the process and waits for it to exit (SIGKILL after
// stopTimeout).
func (p *Process) stop(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stopLocked(sig)
}

func (p *Process) stopLocked(sig syscall.Signal) error {
	proc := p.proc
	p.proc = nil
	if proc == nil || exited(proc) {
		return nil
	}
	if err := proc.Cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case <-proc.Done():
		return nil
	case <-time.After(stopTimeout):
	}
	_ = proc.Cmd.Process.Kill()
	<-proc.Done()
	return fmt.Errorf("%s did not exit within %s of %v: killed", p.name, stopTimeout, sig)
}

func exited(proc *subprocess.Process) bool {
	select {
	case <-proc.Done():
		return true
	default:
		return false
	}
}

// contextUntilExit is ctx, canceled early if proc exits.
func contextUntilExit(ctx context.Context, proc *subprocess.Process) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-proc.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// controllerDir holds the controllers' logs and files of a cluster.
func (e *Env) controllerDir() (string, error) {
	dir := filepath.Join(e.Dir, "controllers")
	return dir, os.MkdirAll(dir, 0o755)
}

// processes of each cluster, by name.
var (
	processesMu sync.Mutex
	processes   = map[*Env]map[string]*Process{}
)

func (e *Env) process(name string, create func() (*Process, error)) (*Process, error) {
	processesMu.Lock()
	defer processesMu.Unlock()
	if p := processes[e][name]; p != nil {
		return p, nil
	}
	p, err := create()
	if err != nil {
		return nil, err
	}
	if processes[e] == nil {
		processes[e] = map[string]*Process{}
	}
	processes[e][name] = p
	return p, nil
}

// baseEnv is the environment of every controller: nothing of the test
// binary's (a developer's KUBECONFIG, proxies, cloud credentials), a home of
// its own, and the dead proxy.
func baseEnv(home string) []string {
	return []string{
		"HOME=" + home,
		"HTTP_PROXY=" + deadProxy, "HTTPS_PROXY=" + deadProxy,
		"http_proxy=" + deadProxy, "https_proxy=" + deadProxy,
		"NO_PROXY=", "no_proxy=",
	}
}

// StartKubeControllerManager runs kube-controller-manager against the
// cluster with the CronJob, Job, TTL-after-finished and garbage-collector
// controllers (no leader election, no serving port), until the last test
// using it ends. Jobs' pods run only with the fakelet (StartFakelet).
func StartKubeControllerManager(t testing.TB, env *Env) *Process {
	t.Helper()
	tl := ControllerTools(t)
	p, err := env.process("kube-controller-manager", func() (*Process, error) {
		dir, err := env.controllerDir()
		if err != nil {
			return nil, err
		}
		p := &Process{
			name: "kube-controller-manager",
			path: tl.KubeControllerManager,
			args: []string{
				"--kubeconfig=" + env.Kubeconfig,
				"--controllers=" + strings.Join(kubeControllers, ","),
				"--leader-elect=false",
				"--secure-port=0",
				"--use-service-account-credentials=false",
				// Start every controller at once, not with up to a
				// second of jitter each.
				"--controller-start-interval=0",
				"--v=2",
			},
			env:     baseEnv(dir),
			logPath: filepath.Join(dir, "kube-controller-manager.log"),
		}
		p.ready = func(ctx context.Context, startedAt time.Time) error {
			return waitLog(ctx, p.logPath, startedAt, kubeControllersStarted)
		}
		return p, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	p.use(t)
	return p
}

// kubeControllersStarted are the log lines (after the start marker) that
// say each controller has started (its caches sync a moment later; nothing
// logs that per controller).
var kubeControllersStarted = func() []string {
	var lines []string
	for _, c := range kubeControllers {
		lines = append(lines, fmt.Sprintf("\"Controller starting...\" controller=%q", c))
	}
	return lines
}()

// waitLog waits until every one of want appears in the log after the start
// at startedAt.
func waitLog(ctx context.Context, path string, startedAt time.Time, want []string) error {
	marker := "==== kubetest: " + startedAt.Format(time.RFC3339Nano) + " starting"
	var missing []string
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(context.Context) (bool, error) {
		data, err := os.ReadFile(path)
		if err != nil {
			return false, err
		}
		s := string(data)
		if i := strings.LastIndex(s, marker); i >= 0 {
			s = s[i:]
		}
		missing = slices.DeleteFunc(slices.Clone(want), func(w string) bool { return strings.Contains(s, w) })
		return len(missing) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("%w: log lines missing: %q", err, missing)
	}
	return nil
}

// ArgoConfig is how Argo's controller is configured.
type ArgoConfig struct {
	// Config is the data of the controller's ConfigMap: keys of Argo's
	// configuration, each a YAML value (e.g. "workflowDefaults"). Metrics
	// and telemetry servers are off unless set here (they would bind fixed
	// ports on every interface, and a second controller on the machine
	// would crash on a taken port).
	Config map[string]string
	// Env is added to the controller's environment (e.g.
	// DEFAULT_REQUEUE_TIME).
	Env []string
}

func (c ArgoConfig) data() map[string]string {
	data := map[string]string{
		"metricsConfig":   "enabled: false\n",
		"telemetryConfig": "enabled: false\n",
	}
	maps.Copy(data, c.Config)
	return data
}

func (c ArgoConfig) describe() string {
	keys := slices.Sorted(maps.Keys(c.data()))
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%q;", k, c.data()[k])
	}
	fmt.Fprintf(&b, "env=%q", c.Env)
	return b.String()
}

// StartArgoController installs Argo's CRDs and runs Argo's
// workflow-controller cluster-wide, installed in namespace argo with its
// ConfigMap workflow-controller-configmap (written from cfg) and leader
// election (LEADER_ELECTION_IDENTITY), until the last test using it ends.
// Tests using it at the same time must pass the same cfg. It returns once
// the controller leads. Workflows' pods run only with the fakelet
// (StartFakelet).
func StartArgoController(t testing.TB, env *Env, cfg ArgoConfig) *Process {
	t.Helper()
	tl := ControllerTools(t)
	env.InstallArgoCRDs(t)
	p, err := env.process("workflow-controller", func() (*Process, error) {
		dir, err := env.controllerDir()
		if err != nil {
			return nil, err
		}
		// One identity per cluster and test binary: a restarted controller
		// takes the lease over at once instead of waiting for it to expire.
		identity := fmt.Sprintf("kubetest-%d", os.Getpid())
		p := &Process{
			name: "workflow-controller",
			path: tl.WorkflowController,
			args: []string{
				"--kubeconfig=" + env.Kubeconfig,
				"--namespace=" + ArgoNamespace,
				"--configmap=" + ArgoConfigMap,
				"--loglevel=info",
			},
			env:     append(baseEnv(dir), "LEADER_ELECTION_IDENTITY="+identity),
			logPath: filepath.Join(dir, "workflow-controller.log"),
		}
		p.ready = func(ctx context.Context, startedAt time.Time) error {
			return waitLease(ctx, env, ArgoNamespace, argoLease, identity, startedAt)
		}
		return p, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := checkWorkflowDefaults(cfg.Config["workflowDefaults"]); err != nil {
		t.Fatal(err)
	}
	desc := cfg.describe()
	p.mu.Lock()
	if p.users > 0 && p.desc != desc {
		p.mu.Unlock()
		t.Fatalf("Argo's controller runs for another test with another configuration: tests that run it at the same time must use the same ArgoConfig")
	}
	if p.users == 0 {
		p.desc = desc
		p.extraEnv = cfg.Env
	}
	p.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := env.applyArgoConfig(ctx, cfg.data()); err != nil {
		t.Fatalf("Argo's controller configuration: %v", err)
	}
	p.use(t)
	return p
}

// checkWorkflowDefaults applies CheckCommands to the templates of the
// controller's workflowDefaults: the controller merges them into every
// Workflow.
func checkWorkflowDefaults(yamlDoc string) error {
	if yamlDoc == "" {
		return nil
	}
	var wf wfv1.Workflow
	if err := yaml.UnmarshalStrict([]byte(yamlDoc), &wf); err != nil {
		return fmt.Errorf("ArgoConfig workflowDefaults: %w", err)
	}
	return fakelet.CheckCommands(&wf)
}

// applyArgoConfig creates namespace argo and the controller's ConfigMap, or
// replaces its data.
func (e *Env) applyArgoConfig(ctx context.Context, data map[string]string) error {
	_, err := e.Clientset.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: ArgoNamespace},
	}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	cms := e.Clientset.CoreV1().ConfigMaps(ArgoNamespace)
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: ArgoConfigMap}, Data: data}
	if _, err := cms.Create(ctx, cm, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		return err
	}
	cur, err := cms.Get(ctx, ArgoConfigMap, metav1.GetOptions{})
	if err != nil {
		return err
	}
	cur.Data = data
	_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}

// waitLease waits until identity holds the Lease, renewed since startedAt
// (a lease of an earlier run of the same identity doesn't count).
func waitLease(ctx context.Context, env *Env, namespace, name, identity string, startedAt time.Time) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		lease, err := env.Clientset.CoordinationV1().Leases(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			last = err.Error()
			return false, nil
		}
		if leaseHeldSince(lease, identity, startedAt) {
			return true, nil
		}
		last = fmt.Sprintf("held by %q", ptrString(lease.Spec.HolderIdentity))
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("lease %s/%s: %w (last: %s)", namespace, name, err, last)
	}
	return nil
}

func leaseHeldSince(lease *coordinationv1.Lease, identity string, since time.Time) bool {
	s := lease.Spec
	// The Lease's times have microseconds; compare at that precision.
	return ptrString(s.HolderIdentity) == identity && s.RenewTime != nil && !s.RenewTime.Time.Before(since.Truncate(time.Microsecond))
}

func ptrString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Fakelet is the stand-in for the kubelet running for the cluster.
type Fakelet struct {
	// LogPath receives what it does and its errors.
	LogPath string
}

var (
	fakeletsMu sync.Mutex
	fakelets   = map[*Env]*sharedFakelet{}
)

type sharedFakelet struct {
	users  int
	cancel context.CancelFunc
	done   chan struct{}
	f      *Fakelet
}

// StartFakelet runs the fakelet (package fakelet) for the cluster, in this
// process, until the last test using it ends. It plays every pod, and runs
// Argo's agent pods with argoexec.
func StartFakelet(t testing.TB, env *Env) *Fakelet {
	t.Helper()
	tl := ControllerTools(t)
	fakeletsMu.Lock()
	defer fakeletsMu.Unlock()
	s := fakelets[env]
	if s == nil {
		dir, err := env.controllerDir()
		if err != nil {
			t.Fatal(err)
		}
		logPath := filepath.Join(dir, "fakelet.log")
		logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		argo, err := versioned.NewForConfig(env.RESTConfig())
		if err != nil {
			t.Fatal(err)
		}
		var logMu sync.Mutex
		ctx, cancel := context.WithCancel(context.Background())
		s = &sharedFakelet{cancel: cancel, done: make(chan struct{}), f: &Fakelet{LogPath: logPath}}
		go func() {
			defer close(s.done)
			defer logFile.Close()
			err := fakelet.Run(ctx, fakelet.Config{
				Client:      env.Clientset,
				Argo:        argo,
				Argoexec:    tl.Argoexec,
				RESTConfig:  env.RESTConfig(),
				AgentEnv:    baseEnv(dir)[1:], // the fakelet sets the agent's HOME
				AgentLogDir: dir,
				Logf: func(format string, args ...any) {
					logMu.Lock()
					defer logMu.Unlock()
					fmt.Fprintf(logFile, time.Now().Format(time.RFC3339Nano)+" "+format+"\n", args...)
				},
			})
			if err != nil {
				fmt.Fprintf(logFile, "fakelet: %v\n", err)
			}
		}()
		fakelets[env] = s
	}
	s.users++
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tail of %s:\n%s", s.f.LogPath, tail(s.f.LogPath, 40))
		}
		fakeletsMu.Lock()
		defer fakeletsMu.Unlock()
		s.users--
		if s.users == 0 {
			s.cancel()
			<-s.done
			delete(fakelets, env)
		}
	})
	return s.f
}

// ArgoServiceAccount creates the service account name in namespace with
// what Argo's pods need to run as it: the Roles of Argo's quick start for
// the agent (HTTP templates: list and watch WorkflowTaskSets, patch their
// status) and the executor (create and patch WorkflowTaskResults), and the
// token Secret Argo mounts into the agent pod (<name>.service-account-token,
// filled with a token from the TokenRequest API, valid for an hour: no
// token controller runs here). Workflows name it in serviceAccountName.
func ArgoServiceAccount(t testing.TB, env *Env, namespace, name string) {
	t.Helper()
	token := env.TokenFor(t, namespace, name)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cs := env.Clientset
	_, err := cs.CoreV1().Secrets(namespace).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name + ".service-account-token",
			Annotations: map[string]string{corev1.ServiceAccountNameKey: name},
		},
		Type: corev1.SecretTypeServiceAccountToken,
		Data: map[string][]byte{corev1.ServiceAccountTokenKey: []byte(token)},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("service account token Secret: %v", err)
	}
	_, err = cs.RbacV1().Roles(namespace).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-argo"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"argoproj.io"}, Resources: []string{"workflowtasksets"}, Verbs: []string{"list", "watch"}},
			{APIGroups: []string{"argoproj.io"}, Resources: []string{"workflowtasksets/status"}, Verbs: []string{"patch"}},
			{APIGroups: []string{"argoproj.io"}, Resources: []string{"workflowtaskresults"}, Verbs: []string{"create", "patch"}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("Role for %s: %v", name, err)
	}
	_, err = cs.RbacV1().RoleBindings(namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-argo"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name + "-argo"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: namespace}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("RoleBinding for %s: %v", name, err)
	}
}
