package alarm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	logtypepb "google.golang.org/genproto/googleapis/logging/type"
	"google.golang.org/grpc/codes"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/fakelogging"
	"github.com/batchlatch/batchlatch/state"
)

const clProject = "test-project"

// clServer starts a fake Cloud Logging API on 127.0.0.1 for this test.
func clServer(tb testing.TB) *fakelogging.Server {
	tb.Helper()
	// Safety net: were the client to probe the metadata server, it would
	// find nothing at once instead of stalling or reaching a real one.
	tb.Setenv("GCE_METADATA_HOST", "127.0.0.1:1")
	srv, err := fakelogging.New()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(srv.Close)
	return srv
}

// clConfig is a complete configuration; tests change what they test.
func clConfig() CloudLoggingConfig {
	return CloudLoggingConfig{
		Project:       clProject,
		Cluster:       "test-cluster",
		Location:      "europe-west1",
		Instance:      "batchlatch",
		PodName:       "batchlatch-6d5f-abcde",
		ContainerName: "batchlatch",
		OwnNamespace:  "monitoring",
	}
}

// clSink makes a sink that writes to srv; it is closed when the test ends.
func clSink(tb testing.TB, srv *fakelogging.Server, cfg CloudLoggingConfig, metrics *Metrics, logger *slog.Logger) *CloudLoggingSink {
	tb.Helper()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	sink, err := NewCloudLoggingSink(context.Background(), cfg, metrics, logger, srv.ClientOptions()...)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = sink.Close(ctx)
	})
	return sink
}

func clMetrics() *Metrics { return NewMetrics(prometheus.NewRegistry()) }

func clSinkErrors(m *Metrics) float64 {
	return testutil.ToFloat64(m.SinkErrors.WithLabelValues(cloudLoggingSinkName))
}

// clLister is a Lister over a fixed set of jobs.
type clLister struct {
	mu    sync.Mutex
	jobs  []state.Job
	calls int
}

func (l *clLister) List(context.Context) ([]state.Job, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls++
	return append([]state.Job(nil), l.jobs...), nil
}

// clRunLoop runs a real Loop over jobs into sink every 50ms until the test ends.
func clRunLoop(t *testing.T, jobs []state.Job, sink Sink, metrics *Metrics) {
	t.Helper()
	loop := NewLoop(&clLister{jobs: jobs}, sink, LoopConfig{Interval: 50 * time.Millisecond, RecoveryWindow: time.Minute}, metrics, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		loop.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// clFailingJob is a job whose latest run failed, failing for an hour.
func clFailingJob(namespace, name string) state.Job {
	since := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	return state.Job{
		Namespace:           namespace,
		Name:                name,
		FailingSince:        &since,
		ConsecutiveFailures: 3,
		LastResultAt:        since.Add(50 * time.Minute),
		LastWorkflow:        name + "-1764900000",
		LastUID:             "4f1c2f7e-9a1b-4c55-8d7e-0a1b2c3d4e5f",
		LastPhase:           api.PhaseFailed,
		LastFailures: []api.Failure{{
			DisplayName: name + "-1764900000[0].train", Message: "Error (exit code 1)",
			TemplateName: "train", Phase: "Failed", PodName: name + "-1764900000-train-1234",
		}},
	}
}

// clWait polls cond every few milliseconds until it holds or d passes.
func clWait(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func clWaitEntries(t *testing.T, srv *fakelogging.Server, d time.Duration, ok func([]fakelogging.Entry) bool) []fakelogging.Entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	entries, err := srv.WaitFor(ctx, ok)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func atLeast(n int) func([]fakelogging.Entry) bool {
	return func(e []fakelogging.Entry) bool { return len(e) >= n }
}

// lockedBuffer collects log output written from several goroutines.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestCloudLoggingSinkWritesEntries writes one entry of each severity with
// the client's default bundling and checks every part of what arrives.
func TestCloudLoggingSinkWritesEntries(t *testing.T) {
	srv := clServer(t)
	metrics := clMetrics()
	sink := clSink(t, srv, clConfig(), metrics, nil)

	now := time.Now().UTC().Truncate(time.Microsecond)
	failing := clFailingJob("ml", "nightly")
	recovered := clFailingJob("etl", "")
	until := now.Add(-time.Minute)
	recovered.FailingSince, recovered.ConsecutiveFailures = nil, 0
	recovered.LastPhase = api.PhaseSucceeded
	recovered.LastStreak = &api.Streak{Since: until.Add(-2 * time.Hour), Until: until, Seconds: 7200, Failures: 2}
	recovered.RecoveredAt = &now
	written := []Entry{failingEntry(failing, nil, now), recoveredEntry(recovered, now), healthyEntry(recovered, now.Add(time.Second))}
	for _, e := range written {
		if err := sink.Write(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}

	entries := clWaitEntries(t, srv, patience, atLeast(len(written)))
	if len(entries) != len(written) {
		t.Fatalf("got %d entries, want %d", len(entries), len(written))
	}
	wantSeverity := []logtypepb.LogSeverity{logtypepb.LogSeverity_ERROR, logtypepb.LogSeverity_NOTICE, logtypepb.LogSeverity_INFO}
	for i, got := range entries {
		want := written[i]
		if got.LogName != "projects/"+clProject+"/logs/"+DefaultLogName {
			t.Errorf("entry %d: log name %q", i, got.LogName)
		}
		if got.Severity != wantSeverity[i] {
			t.Errorf("entry %d: severity %v, want %v", i, got.Severity, wantSeverity[i])
		}
		if !got.Timestamp.Equal(want.Time) {
			t.Errorf("entry %d: timestamp %v, want %v", i, got.Timestamp, want.Time)
		}
		// The writing pod is a label; the resource names the instance, the
		// same for every replica (one series per job across leaders).
		wantLabels := maps.Clone(want.Labels)
		wantLabels[LabelWriter] = "batchlatch-6d5f-abcde"
		if !reflect.DeepEqual(got.Labels, wantLabels) {
			t.Errorf("entry %d: labels %v, want %v", i, got.Labels, wantLabels)
		}
		if got.Proto.GetInsertId() != want.InsertID {
			t.Errorf("entry %d: insertId %q, want %q", i, got.Proto.GetInsertId(), want.InsertID)
		}
		if got.Proto.GetResource() == nil {
			t.Errorf("entry %d: no resource of its own: the job's namespace is not on the entry", i)
		}
		wantResource := map[string]string{
			"project_id": clProject, "location": "europe-west1", "cluster_name": "test-cluster",
			"namespace_name": want.Payload.Namespace, "pod_name": "batchlatch", "container_name": "batchlatch",
		}
		if got.Resource.GetType() != "k8s_container" || !reflect.DeepEqual(got.Resource.GetLabels(), wantResource) {
			t.Errorf("entry %d: resource %v, want k8s_container %v", i, got.Resource, wantResource)
		}
		// The payload is exactly the Payload's JSON.
		raw, err := json.Marshal(want.Payload)
		if err != nil {
			t.Fatal(err)
		}
		var wantPayload map[string]any
		if err := json.Unmarshal(raw, &wantPayload); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got.Payload, wantPayload) {
			t.Errorf("entry %d: payload\n got %v\nwant %v", i, got.Payload, wantPayload)
		}
	}

	// The fields the shipped metric and policy read, by name.
	p := entries[0].Payload
	want := map[string]any{
		"namespace":              "ml",
		"job":                    "nightly",
		"lastWorkflow":           "nightly-1764900000",
		"lastUID":                failing.LastUID,
		"lastPhase":              "Failed",
		FieldFailing:             1.0,
		"failingSince":           failing.FailingSince.Format(time.RFC3339Nano),
		FieldConsecutiveFailures: 3.0,
		FieldFailingSeconds:      written[0].Payload.FailingSeconds,
	}
	for k, v := range want {
		if p[k] != v {
			t.Errorf("payload %s = %#v, want %#v", k, p[k], v)
		}
	}
	if fs, _ := p[FieldFailingSeconds].(float64); fs < 3600 {
		t.Errorf("failingSeconds %v, want about an hour", fs)
	}
	if msg, _ := p["message"].(string); !strings.Contains(msg, "ml/nightly is failing") || !strings.Contains(msg, "Error (exit code 1)") {
		t.Errorf("message %q", msg)
	}
	if _, ok := p["truncated"]; ok {
		t.Errorf("small payload marked truncated")
	}
	if entries[1].Payload["lastStreak"] == nil || entries[2].Payload[FieldFailing] != 0.0 {
		t.Errorf("recovery entries: %v / %v", entries[1].Payload, entries[2].Payload)
	}

	// The request carries the common resource: the sink's own namespace.
	req := srv.LastRequest()
	if ns := req.GetResource().GetLabels()["namespace_name"]; req.GetResource().GetType() != "k8s_container" || ns != "monitoring" {
		t.Errorf("request resource %v, want k8s_container in monitoring", req.GetResource())
	}
	if !req.GetPartialSuccess() {
		t.Errorf("request without partialSuccess: one bad entry would drop the whole bundle")
	}
	if n := clSinkErrors(metrics); n != 0 {
		t.Errorf("sink errors %v", n)
	}
}

func TestNewCloudLoggingSinkRejectsBadConfig(t *testing.T) {
	t.Setenv("GCE_METADATA_HOST", "127.0.0.1:1")
	for name, mutate := range map[string]func(*CloudLoggingConfig){
		"no project":       func(c *CloudLoggingConfig) { c.Project = "" },
		"project path":     func(c *CloudLoggingConfig) { c.Project = "projects/p" },
		"bad log name":     func(c *CloudLoggingConfig) { c.LogName = "bad name!" },
		"negative timeout": func(c *CloudLoggingConfig) { c.WriteTimeout = -time.Second },
	} {
		cfg := clConfig()
		mutate(&cfg)
		if s, err := NewCloudLoggingSink(context.Background(), cfg, clMetrics(), nil); err == nil {
			_ = s.Close(context.Background())
			t.Errorf("%s: no error", name)
		}
	}
}

// TestCloudLoggingSinkRetriesUnavailable: while the API answers Unavailable
// the loop keeps running, and the entries written meanwhile arrive once the
// API is back, with nothing counted as lost.
func TestCloudLoggingSinkRetriesUnavailable(t *testing.T) {
	srv := clServer(t)
	metrics := clMetrics()
	cfg := clConfig()
	cfg.LogName = "batchlatch-test"
	// Longer than the outage can last (it lasts until the waits below see
	// what they wait for): nothing written during it times out.
	cfg.WriteTimeout = 10 * patience
	cfg.delayThreshold = 10 * time.Millisecond
	sink := clSink(t, srv, cfg, metrics, nil)

	srv.SetError(codes.Unavailable)
	clRunLoop(t, []state.Job{clFailingJob("ml", "nightly")}, sink, metrics)

	// The client retries, and the loop goes on passing (it is never blocked
	// by the sink).
	clWait(t, patience, "retries and passes during the outage", func() bool {
		_, rejected, _ := srv.Stats()
		return rejected >= 3 && testutil.ToFloat64(metrics.Passes) >= 6
	})
	if n := len(srv.Entries()); n != 0 {
		t.Fatalf("%d entries stored while the API was unavailable", n)
	}
	recoveredAt := time.Now()
	srv.SetError(codes.OK)

	entries := clWaitEntries(t, srv, patience, func(es []fakelogging.Entry) bool {
		var before, after bool
		for _, e := range es {
			before = before || e.Timestamp.Before(recoveredAt)
			after = after || e.Timestamp.After(recoveredAt)
		}
		return before && after
	})
	for _, e := range entries {
		if e.LogName != "projects/"+clProject+"/logs/batchlatch-test" {
			t.Fatalf("log name %q", e.LogName)
		}
		if e.Payload[FieldHeartbeat] == true {
			if e.Resource.GetLabels()["namespace_name"] != "monitoring" || e.Severity != logtypepb.LogSeverity_INFO {
				t.Fatalf("heartbeat %v", e)
			}
			continue
		}
		if e.Resource.GetLabels()["namespace_name"] != "ml" || e.Severity != logtypepb.LogSeverity_ERROR {
			t.Fatalf("entry %v", e)
		}
	}
	if n := clSinkErrors(metrics); n != 0 {
		t.Errorf("sink errors %v after a short outage, want 0 (entries are retried)", n)
	}
}

// TestCloudLoggingSinkCountsPermissionDenied: a permanent error drops the
// entries, is counted and logged, and the loop keeps writing; once the API
// accepts again, entries arrive.
func TestCloudLoggingSinkCountsPermissionDenied(t *testing.T) {
	srv := clServer(t)
	metrics := clMetrics()
	var logs lockedBuffer
	cfg := clConfig()
	cfg.delayThreshold = 10 * time.Millisecond
	sink := clSink(t, srv, cfg, metrics, slog.New(slog.NewTextHandler(&logs, nil)))

	srv.SetError(codes.PermissionDenied)
	began := time.Now()
	clRunLoop(t, []state.Job{clFailingJob("ml", "nightly"), clFailingJob("etl", "daily")}, sink, metrics)

	clWait(t, patience, "two counted errors", func() bool { return clSinkErrors(metrics) >= 2 })
	passes := testutil.ToFloat64(metrics.Passes)
	clWait(t, patience, "more passes after the errors", func() bool {
		return testutil.ToFloat64(metrics.Passes) >= passes+2
	})
	if n := len(srv.Entries()); n != 0 {
		t.Fatalf("%d entries stored while the API denied", n)
	}
	// PermissionDenied is not retried: each error is one rejected request.
	if _, rejected, _ := srv.Stats(); clSinkErrors(metrics) > float64(rejected) {
		t.Errorf("%d rejected requests, %v errors", rejected, clSinkErrors(metrics))
	}
	if out := logs.String(); !strings.Contains(out, "err=") || !strings.Contains(out, "PermissionDenied") || !strings.Contains(out, "sink=cloudlogging") {
		t.Errorf("log output %q: want the error under key err", out)
	}
	// At least two errors, at most one line per errorLogEvery (once in a
	// test that takes less).
	if n, most := strings.Count(logs.String(), "\n"), int(time.Since(began)/errorLogEvery)+1; n < 1 || n > most {
		t.Errorf("%d log lines for %v errors, want 1 to %d (rate-limited)", n, clSinkErrors(metrics), most)
	}

	srv.SetError(codes.OK)
	clWaitEntries(t, srv, patience, func(es []fakelogging.Entry) bool {
		seen := map[string]bool{}
		for _, e := range es {
			seen[e.Resource.GetLabels()["namespace_name"]] = true
		}
		return seen["ml"] && seen["etl"]
	})
}

// TestCloudLoggingSinkWriteTimeoutBoundsRetries: with the API unavailable for
// good, a write gives up after WriteTimeout (not the client's 10 minutes), so
// Close returns promptly and the loss is counted.
func TestCloudLoggingSinkWriteTimeoutBoundsRetries(t *testing.T) {
	srv := clServer(t)
	metrics := clMetrics()
	cfg := clConfig()
	cfg.WriteTimeout = 300 * time.Millisecond
	cfg.delayThreshold = 10 * time.Millisecond
	sink := clSink(t, srv, cfg, metrics, nil)
	srv.SetError(codes.Unavailable)

	if err := sink.Write(context.Background(), failingEntry(clFailingJob("ml", "nightly"), nil, time.Now())); err != nil {
		t.Fatal(err)
	}
	clWait(t, patience, "a rejected request", func() bool { _, r, _ := srv.Stats(); return r >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	if err := sink.Close(ctx); err != nil {
		t.Fatalf("close: %v", err)
	}
	// Not the client's 10 minutes: well within Close's 20 s context.
	if d := time.Since(start); d > 15*time.Second {
		t.Errorf("close took %s with a write timeout of 300ms", d)
	}
	clWait(t, patience, "the dropped write counted", func() bool { return clSinkErrors(metrics) >= 1 })
	if _, rejected, _ := srv.Stats(); rejected < 2 {
		t.Errorf("%d rejected requests: Unavailable was not retried", rejected)
	}
}

// TestCloudLoggingSinkCloseHonoursContext: Close gives up when its context
// is done, even while a write is still being retried.
func TestCloudLoggingSinkCloseHonoursContext(t *testing.T) {
	srv := clServer(t)
	metrics := clMetrics()
	cfg := clConfig()
	cfg.WriteTimeout = time.Minute
	cfg.delayThreshold = 10 * time.Millisecond
	sink := clSink(t, srv, cfg, metrics, nil)
	srv.SetError(codes.Unavailable)

	e := failingEntry(clFailingJob("ml", "nightly"), nil, time.Now())
	if err := sink.Write(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	clWait(t, patience, "a rejected request", func() bool { _, r, _ := srv.Stats(); return r >= 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := sink.Close(ctx)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("close: %v, want a deadline error", err)
	}
	// Not the write timeout of a minute.
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("close took %s with a 200ms context", d)
	}
	// The abandoned write ends and is counted.
	clWait(t, patience, "the abandoned write counted", func() bool { return clSinkErrors(metrics) >= 1 })

	if err := sink.Write(context.Background(), e); err == nil {
		t.Errorf("write after close: no error")
	}
	if err := sink.Close(context.Background()); err != nil {
		t.Errorf("second close: %v", err)
	}
}

// TestCloudLoggingSinkTruncatesOversizedPayload: entries whose payload
// exceeds the API's 256 KiB limit are cut to fit and still arrive.
func TestCloudLoggingSinkTruncatesOversizedPayload(t *testing.T) {
	srv := clServer(t)
	metrics := clMetrics()
	cfg := clConfig()
	cfg.delayThreshold = 10 * time.Millisecond
	sink := clSink(t, srv, cfg, metrics, nil)
	now := time.Now()

	// A 1 MiB failure message; failingEntry copies it into the message too.
	huge := clFailingJob("huge", "message")
	huge.LastFailures = []api.Failure{
		{DisplayName: "step", Message: "boom: " + strings.Repeat("é", 1<<19) + "END", Phase: "Failed"},
		{DisplayName: "other", Message: "exit code 2", Phase: "Failed"},
	}
	// A short message, but a huge failure.
	failureOnly := failingEntry(huge, nil, now)
	failureOnly.Labels[LabelNamespace], failureOnly.Payload.Namespace = "failure", "failure"
	failureOnly.Payload.Message = "short message"
	// Many small failures: the list itself is over the limit.
	many := clFailingJob("many", "failures")
	many.LastFailures = nil
	for range 2000 {
		many.LastFailures = append(many.LastFailures, api.Failure{DisplayName: "d", Message: strings.Repeat("m", 200), Phase: "Failed"})
	}
	written := []Entry{failingEntry(huge, nil, now), failureOnly, failingEntry(many, nil, now)}
	for _, e := range written {
		if err := sink.Write(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	entries := clWaitEntries(t, srv, patience, atLeast(len(written)))
	byNS := map[string]fakelogging.Entry{}
	for _, e := range entries {
		if e.Size > fakelogging.MaxEntryBytes {
			t.Errorf("entry of %s takes %d bytes", e.Resource.GetLabels()["namespace_name"], e.Size)
		}
		if e.Payload["truncated"] != true {
			t.Errorf("entry of %s not marked truncated", e.Resource.GetLabels()["namespace_name"])
		}
		byNS[e.Payload["namespace"].(string)] = e
	}

	// The message is cut (on a rune boundary) and keeps its beginning.
	msg, _ := byNS["huge"].Payload["message"].(string)
	if !strings.HasPrefix(msg, "huge/message is failing: 3 failed run(s)") || !strings.HasSuffix(msg, truncatedMark) || !utf8.ValidString(msg) || strings.Contains(msg, "\ufffd") {
		t.Errorf("message of %d bytes: %.80q…%q", len(msg), msg, msg[max(0, len(msg)-40):])
	}
	if len(msg) > messageBytes || len(msg) < messageBytes-8 {
		t.Errorf("message cut to %d bytes, want about %d", len(msg), messageBytes)
	}
	if fs, _ := byNS["huge"].Payload[fieldFailures].([]any); len(fs) != 2 {
		t.Errorf("huge: %d failures kept, want 2 (cut)", len(fs))
	}
	for _, ns := range []string{"huge", "failure"} {
		p := byNS[ns].Payload
		if p["job"] != "message" || p["lastUID"] != huge.LastUID || p[FieldFailing] != 1.0 || p[FieldConsecutiveFailures] != 3.0 {
			t.Errorf("%s: fields lost: %v", ns, p)
		}
	}
	// With a short message, the failures are cut and the message stays.
	p := byNS["failure"].Payload
	if p["message"] != "short message" {
		t.Errorf("message %q changed although the failures alone were too big", p["message"])
	}
	fs, _ := p[fieldFailures].([]any)
	if len(fs) != 2 {
		t.Fatalf("failures %d, want both kept (cut)", len(fs))
	}
	if m := fs[0].(map[string]any)["message"].(string); len(m) > failureFieldBytes || !strings.HasPrefix(m, "boom: é") {
		t.Errorf("failure message of %d bytes: %.40q", len(m), m)
	}
	if fs[1].(map[string]any)["message"] != "exit code 2" {
		t.Errorf("second failure %v", fs[1])
	}
	// Many failures: as many as fit are kept.
	kept, _ := byNS["many"].Payload[fieldFailures].([]any)
	if len(kept) < 500 || len(kept) >= 2000 {
		t.Errorf("kept %d of 2000 failures, want as many as fit (about 1000)", len(kept))
	}
	if n := clSinkErrors(metrics); n != 0 {
		t.Errorf("sink errors %v", n)
	}
	// The caller's entries are left alone.
	if len(written[1].Payload.LastFailures[0].Message) < 1<<20 || len(written[2].Payload.LastFailures) != 2000 {
		t.Errorf("Write modified the caller's payload")
	}
}

func TestFitPayload(t *testing.T) {
	p := failingEntry(clFailingJob("ml", "nightly"), nil, time.Now()).Payload
	st, err := fitPayload(p, maxPayloadBytes)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := st.GetFields()["truncated"]; ok {
		t.Errorf("small payload truncated")
	}
	// Huge strings everywhere: even the last resort fits.
	big := strings.Repeat("x", 300<<10)
	p = Payload{Message: big, JobView: &JobView{Namespace: big, Job: big, LastWorkflow: big, LastUID: big, LastPhase: api.Phase(big)}}
	st, err = fitPayload(p, maxPayloadBytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.GetFields()["namespace"].GetStringValue(); len(got) > payloadFieldBytes || !strings.HasSuffix(got, truncatedMark) {
		t.Errorf("namespace of %d bytes", len(got))
	}
	// Invalid UTF-8 is made valid (a proto string must be).
	p = Payload{Message: "bad \xff byte"}
	if st, err = fitPayload(p, maxPayloadBytes); err != nil || st.GetFields()["message"].GetStringValue() != "bad \ufffd byte" {
		t.Errorf("invalid UTF-8: %v, %v", st, err)
	}
	for _, tc := range []struct {
		s    string
		n    int
		want string
	}{
		{"short", 10, "short"},
		{strings.Repeat("a", 20), len(truncatedMark) + 3, "aaa" + truncatedMark},
		{"ééééééééé", 4, "éé"},
		{"aéééééééééééééé", len(truncatedMark) + 2, "a" + truncatedMark},
	} {
		if got := cutString(tc.s, tc.n); got != tc.want || len(got) > tc.n && len(tc.s) > tc.n {
			t.Errorf("cutString(%q, %d) = %q, want %q", tc.s, tc.n, got, tc.want)
		}
	}
}

// BenchmarkCloudLoggingSinkWrite measures entries per second through the
// real client to the fake API, delivery included.
func BenchmarkCloudLoggingSinkWrite(b *testing.B) {
	srv := clServer(b)
	srv.Discard()
	metrics := clMetrics()
	sink, err := NewCloudLoggingSink(context.Background(), clConfig(), metrics, slog.New(slog.DiscardHandler), srv.ClientOptions()...)
	if err != nil {
		b.Fatal(err)
	}
	e := failingEntry(clFailingJob("ml", "nightly"), nil, time.Now())
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if err := sink.Write(context.Background(), e); err != nil {
			b.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sink.Close(ctx); err != nil {
		b.Fatal(err)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	if got := srv.Accepted(); got != b.N {
		b.Fatalf("%d entries arrived, want %d", got, b.N)
	}
	if n := clSinkErrors(metrics); n != 0 {
		b.Fatalf("sink errors %v", n)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "entries/s")
}
