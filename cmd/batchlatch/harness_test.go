package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
)

// syncBuffer is an io.Writer the test can read while run writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// instance is one run of the service inside the test process.
type instance struct {
	t      *testing.T
	url    string
	stdout *syncBuffer
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// patience bounds every wait for the service (or the cluster) to do
// something: generous, as it only matters when they fail to. One minute was
// once too short for two replicas to become ready beside the rest of the
// suite on a loaded 2-core machine.
const patience = 3 * time.Minute

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start calls run with args and env (nothing is read from the process
// environment) and waits until it serves.
func start(t *testing.T, env map[string]string, args ...string) *instance {
	t.Helper()
	addr := freePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	in := &instance{t: t, url: "http://" + addr, stdout: &syncBuffer{}, stderr: &syncBuffer{}, cancel: cancel, done: make(chan error, 1)}
	getenv := func(k string) string { return env[k] }
	argv := append([]string{"batchlatch", "--listen", addr}, args...)
	go func() { in.done <- run(ctx, argv, getenv, in.stdout, in.stderr) }()
	t.Cleanup(func() { in.stop() })
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) {
		select {
		case err := <-in.done:
			in.done <- err
			t.Fatalf("run ended early: %v\n%s", err, in.stderr)
		default:
		}
		resp, err := http.Get(in.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			return in
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("not serving within %s:\n%s", patience, in.stderr)
	return nil
}

// stop cancels run (as SIGTERM does) and returns its error.
func (in *instance) stop() error {
	in.cancel()
	select {
	case err := <-in.done:
		in.done <- err
		return err
	case <-time.After(30 * time.Second):
		in.t.Fatalf("run did not stop within 30s:\n%s", in.stderr)
		return nil
	}
}

func (in *instance) post(token, body string) (int, []byte) {
	in.t.Helper()
	req, _ := http.NewRequest("POST", in.url+"/api/v1/results", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func (in *instance) get(path string) (int, []byte) {
	in.t.Helper()
	resp, err := http.Get(in.url + path)
	if err != nil {
		in.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

func (in *instance) failures() api.FailureList {
	in.t.Helper()
	code, data := in.get("/api/v1/failures")
	var out api.FailureList
	if err := json.Unmarshal(data, &out); code != 200 || err != nil {
		in.t.Fatalf("failures: %d %s", code, data)
	}
	return out
}

// stdoutEntry is one line the stdout sink wrote.
type stdoutEntry struct {
	Severity            string            `json:"severity"`
	Message             string            `json:"message"`
	Labels              map[string]string `json:"logging.googleapis.com/labels"`
	Namespace           string            `json:"namespace"`
	Job                 string            `json:"job"`
	Failing             int               `json:"failing"`
	ConsecutiveFailures int               `json:"consecutiveFailures"`
	FailingSeconds      float64           `json:"failingSeconds"`
	LastWorkflow        string            `json:"lastWorkflow"`
	Heartbeat           bool              `json:"heartbeat"`
}

// entries parses every line of the stdout sink written so far, but the
// heartbeats (heartbeats counts those).
func (in *instance) entries() []stdoutEntry {
	in.t.Helper()
	var out []stdoutEntry
	for _, e := range in.allEntries() {
		if !e.Heartbeat {
			out = append(out, e)
		}
	}
	return out
}

// heartbeats counts the heartbeat lines written so far.
func (in *instance) heartbeats() int {
	in.t.Helper()
	return len(in.allEntries()) - len(in.entries())
}

func (in *instance) allEntries() []stdoutEntry {
	in.t.Helper()
	var out []stdoutEntry
	sc := bufio.NewScanner(strings.NewReader(in.stdout.String()))
	for sc.Scan() {
		var e stdoutEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			in.t.Fatalf("stdout line is not JSON: %q", sc.Text())
		}
		out = append(out, e)
	}
	return out
}

// waitForEntries polls until match holds for the entries, or fails.
func (in *instance) waitForEntries(what string, match func([]stdoutEntry) bool) []stdoutEntry {
	in.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		e := in.entries()
		if match(e) {
			return e
		}
		if time.Now().After(deadline) {
			in.t.Fatalf("waiting for %s: entries so far:\n%s", what, in.stdout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// passesAfter waits until the service wrote n more heartbeats than it had:
// with n of 2 or more, every pass that began before the call has ended (a
// pass writes its heartbeat last) and one began and ended after it.
func (in *instance) passesAfter(n int) {
	in.t.Helper()
	from := in.heartbeats()
	deadline := time.Now().Add(patience)
	for in.heartbeats() < from+n {
		if time.Now().After(deadline) {
			in.t.Fatalf("%d passes within %s, want %d:\n%s", in.heartbeats()-from, patience, n, in.stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func count(entries []stdoutEntry, severity string) int {
	n := 0
	for _, e := range entries {
		if e.Severity == severity {
			n++
		}
	}
	return n
}

// callback is a body as the shipped onExit template sends it.
func callback(namespace, cron, uid, phase string, created time.Time) string {
	return fmt.Sprintf(`{"namespace":%q,"workflowName":"%s-%d","uid":%q,"cronWorkflow":%q,"phase":%q,"createdAt":%q,"durationSeconds":12.5,"failures":"null","labels":{"workflows.argoproj.io/cron-workflow":%q}}`,
		namespace, cron, created.Unix(), uid, cron, phase, created.UTC().Format(time.RFC3339), cron)
}
