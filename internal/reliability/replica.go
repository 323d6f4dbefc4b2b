package reliability

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/batchlatch/batchlatch/internal/buildtags"
	"github.com/batchlatch/batchlatch/internal/procstat"
)

// Build builds the batchlatch binary of the module at root into dir, with
// the build tags every build of it has.
func Build(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "batchlatch")
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", buildtags.Tags, "-o", bin, "./cmd/batchlatch")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/batchlatch: %v\n%s", err, out)
	}
	return bin, nil
}

// RepoRoot is the directory above the working directory that holds go.mod.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found above the working directory")
		}
		dir = parent
	}
}

var shardsDefault = regexp.MustCompile(`--state-shards \(BATCHLATCH_STATE_SHARDS, default (\d+)\)`)

// ShardsOf reports whether the binary has --state-shards, and its default.
func ShardsOf(bin string) (bool, int) {
	out, _ := exec.Command(bin, "--help").CombinedOutput()
	m := shardsDefault.FindSubmatch(out)
	if m == nil {
		return false, 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return true, n
}

// FreeAddr is a free 127.0.0.1 port, as host:port.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// Replica is one batchlatch process. Start may be called again after it
// exited (a restart on the same address, as a Deployment would).
type Replica struct {
	Name string // --pod-name
	Addr string // --listen, 127.0.0.1:port
	URL  string

	bin  string
	args []string
	env  []string
	log  string // stdout and stderr, appended across restarts

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// NewReplica describes a replica of bin named name, logging to logPath; args
// come after --listen and --pod-name; env is the process's whole environment.
func NewReplica(bin, name, logPath string, env []string, args ...string) (*Replica, error) {
	addr, err := FreeAddr()
	if err != nil {
		return nil, err
	}
	return &Replica{
		Name: name, Addr: addr, URL: "http://" + addr,
		bin:  bin,
		args: append([]string{"--listen", addr, "--pod-name", name}, args...),
		env:  env,
		log:  logPath,
	}, nil
}

// ReplicaEnv is the environment of a replica: this process's, without
// anything that would point it elsewhere (BATCHLATCH_*, proxies, an
// in-cluster service, Google credentials), plus KUBECONFIG and a metadata
// server on a closed loopback port, so nothing can reach Google.
func ReplicaEnv(kubeconfig string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "BATCHLATCH_"), strings.HasSuffix(strings.ToUpper(k), "_PROXY"),
			k == "KUBECONFIG", k == "POD_NAME", strings.HasPrefix(k, "KUBERNETES_"),
			strings.HasPrefix(k, "GOOGLE_"), k == "GCE_METADATA_HOST", k == "CLOUDSDK_CONFIG":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "KUBECONFIG="+kubeconfig, "GCE_METADATA_HOST=127.0.0.1:1")
}

// Start starts the process (it is killed if this process dies).
func (r *Replica) Start() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd != nil && !r.exitedLocked() {
		return fmt.Errorf("%s: already running", r.Name)
	}
	f, err := os.OpenFile(r.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(f, "==== reliability: starting %s at %s\n", r.Name, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(r.bin, r.args...)
	cmd.Env = r.env
	cmd.Stdout, cmd.Stderr = f, f
	setParentDeathSignal(cmd)
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", r.Name, err)
	}
	done := make(chan struct{})
	r.cmd, r.done, r.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		f.Close()
		r.mu.Lock()
		r.err = err
		r.mu.Unlock()
		close(done)
	}()
	return nil
}

func (r *Replica) exitedLocked() bool {
	select {
	case <-r.done:
		return true
	default:
		return false
	}
}

// Alive reports whether the process runs.
func (r *Replica) Alive() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cmd != nil && !r.exitedLocked()
}

// ExitErr is how the last process ended (nil while it runs or after exit 0).
func (r *Replica) ExitErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// PID is the running process's id, 0 when none runs.
func (r *Replica) PID() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.exitedLocked() {
		return 0
	}
	return r.cmd.Process.Pid
}

// Signal sends sig and, for SIGKILL and SIGTERM, waits up to 30 s for the
// process to end.
func (r *Replica) Signal(sig syscall.Signal) error {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	if sig != syscall.SIGKILL && sig != syscall.SIGTERM {
		return nil
	}
	select {
	case <-done:
		return nil
	case <-time.After(30 * time.Second):
		return fmt.Errorf("%s: still running 30s after %s", r.Name, sig)
	}
}

// Stop ends the process: SIGTERM, then SIGKILL if it has not exited.
func (r *Replica) Stop() {
	if r.Signal(syscall.SIGTERM) != nil {
		_ = r.Signal(syscall.SIGKILL)
	}
}

// RSS is the process's resident set size in bytes (VmRSS).
func (r *Replica) RSS() (int64, error) {
	pid := r.PID()
	if pid == 0 {
		return 0, fmt.Errorf("%s: not running", r.Name)
	}
	return procstat.RSS(pid)
}

// WaitStatus polls path until it answers want, the process exits, or
// within passes.
func (r *Replica) WaitStatus(path string, want int, within time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{Proxy: nil}}
	deadline := time.Now().Add(within)
	last := "no answer"
	for time.Now().Before(deadline) {
		if !r.Alive() {
			return fmt.Errorf("%s exited (%v) while waiting for %s %d; log: %s", r.Name, r.ExitErr(), path, want, r.log)
		}
		resp, err := client.Get(r.URL + path)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: %s not %d within %s (last: %s); log: %s", r.Name, path, want, within, last, r.log)
}

// LogContains reports whether the replica's log has a line containing s.
func (r *Replica) LogContains(s string) bool {
	data, err := os.ReadFile(r.log)
	return err == nil && strings.Contains(string(data), s)
}

// LogPath is the replica's log file.
func (r *Replica) LogPath() string { return r.log }

// Metric sums the samples of the Prometheus metric name (any labels) that
// the replica's /metrics shows; 0 when it is not running or has none.
func (r *Replica) Metric(name string) float64 {
	if !r.Alive() {
		return 0
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	resp, err := client.Get(r.URL + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	sum := 0.0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		fields := strings.Fields(rest[strings.LastIndexByte(rest, '}')+1:])
		if len(fields) > 0 {
			v, _ := strconv.ParseFloat(fields[0], 64)
			sum += v
		}
	}
	return sum
}
