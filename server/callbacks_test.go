package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state/filestore"
)

// syncBuffer is a log the handlers write to concurrently.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// lines are the JSON log lines with message msg.
func (b *syncBuffer) lines(t *testing.T, msg string) []map[string]any {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []map[string]any
	for l := range strings.Lines(b.buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// reportFixture is a server whose log, metrics and clock the test reads.
type reportFixture struct {
	*fixture
	log     *syncBuffer
	metrics *Metrics
	clock   atomic.Pointer[time.Time]
}

func newReportFixture(t *testing.T, token string) *reportFixture {
	t.Helper()
	store, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	reg := prometheus.NewRegistry()
	f := &reportFixture{log: &syncBuffer{}, metrics: NewMetrics(reg)}
	f.setNow(now)
	logger := slog.New(slog.NewJSONHandler(f.log, nil))
	h := NewServer(logger, store, &countingKicker{}, reg, f.metrics, Config{Token: token, Now: func() time.Time { return *f.clock.Load() }})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	f.fixture = &fixture{t: t, srv: srv, store: store, kicker: &countingKicker{}, token: token}
	return f
}

func (f *reportFixture) setNow(t time.Time) { f.clock.Store(&t) }

// refused is the refusal counter's value for namespace and reason.
func (f *reportFixture) refused(namespace, reason string) float64 {
	return testutil.ToFloat64(f.metrics.Refused.WithLabelValues(namespace, reason))
}

func (f *reportFixture) page(t *testing.T, path string) string {
	t.Helper()
	code, _, body := f.do("GET", path, "", "", true)
	if code != 200 {
		t.Fatalf("GET %s: %d %s", path, code, body)
	}
	return string(body)
}

// A failed run is never lost to a secondary problem: a bad failure threshold
// or a skewed clock is left out with a warning, and the failure counts. The
// answer, the job's view and pages, the log and a counter tell.
func TestDegradedFailureIsRecorded(t *testing.T) {
	for _, tt := range []struct {
		name, extra, field string
		threshold          int
	}{
		{"threshold abc", `"annotations":{"batchlatch.io/failure-threshold":"abc"}`, "annotations.batchlatch.io/failure-threshold", 1},
		{"threshold 0", `"annotations":{"batchlatch.io/failure-threshold":"0"}`, "annotations.batchlatch.io/failure-threshold", 1},
		{"threshold 101", `"annotations":{"batchlatch.io/failure-threshold":"101"}`, "annotations.batchlatch.io/failure-threshold", 1},
		{"threshold with a space", `"annotations":{"batchlatch.io/failure-threshold":" 3"}`, "annotations.batchlatch.io/failure-threshold", 1},
		{"createdAt 10 minutes ahead", `"createdAt":"` + now.Add(10*time.Minute).Format(time.RFC3339) + `","durationSeconds":30`, "createdAt", 1},
		{"createdAt absurdly old", `"createdAt":"1970-01-01T00:00:00Z"`, "createdAt", 1},
		{"duration out of range", `"createdAt":"` + now.Add(-time.Hour).Format(time.RFC3339) + `","durationSeconds":1e12`, "durationSeconds", 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newReportFixture(t, "")
			code, data := f.post(`{"namespace":"ml","workflowName":"nightly-1","uid":"u1","cronWorkflow":"nightly","phase":"Failed",` + tt.extra + `}`)
			if code != 200 {
				t.Fatalf("%d %s: the failed run was not recorded", code, data)
			}
			resp := decode[api.ResultResponse](t, data)
			if len(resp.Warnings) != 1 || resp.Warnings[0].Field != tt.field || !strings.Contains(resp.Warnings[0].Message, "ignored") {
				t.Errorf("warnings %+v, want one naming %s", resp.Warnings, tt.field)
			}
			if !resp.Job.Failing || !resp.Job.Alerting || resp.Job.ConsecutiveFailures != 1 || resp.Job.FailureThreshold != tt.threshold {
				t.Errorf("job %+v, want failing and alerting at threshold %d", resp.Job, tt.threshold)
			}
			// The job's REST view and its pages show the warning.
			code, _, data = f.do("GET", "/api/v1/jobs/ml/nightly", "", "", false)
			view := decode[api.Job](t, data)
			if code != 200 || view.LastWarning == nil || view.LastWarning.Field != tt.field || view.LastWarning.Workflow != "nightly-1" || !view.LastWarning.At.Equal(now) {
				t.Errorf("view's lastWarning %+v", view.LastWarning)
			}
			for _, path := range []string{"/", "/jobs/ml/nightly"} {
				if body := f.page(t, path); !strings.Contains(body, "<code>"+tt.field+"</code>") {
					t.Errorf("%s does not show the warning about %s", path, tt.field)
				}
			}
			// One WARN line naming the job and the field, and the counter.
			lines := f.log.lines(t, LogCallbackDegraded)
			if len(lines) != 1 || lines[0]["level"] != "WARN" || lines[0]["namespace"] != "ml" || lines[0]["job"] != "nightly" || lines[0]["field"] != tt.field {
				t.Errorf("log lines %v", lines)
			}
			top, _, _ := strings.Cut(tt.field, ".")
			if got := testutil.ToFloat64(f.metrics.Warnings.WithLabelValues(top)); got != 1 {
				t.Errorf("warnings counter for %s = %v, want 1", top, got)
			}
			// A later clean result clears the warning.
			f.setNow(now.Add(2 * time.Minute))
			if code, data := f.post(result("nightly", "u2", "Failed", now.Add(time.Minute))); code != 200 || decode[api.ResultResponse](t, data).Job.LastWarning != nil {
				t.Errorf("%d %s: want the warning gone", code, data)
			}
		})
	}
}

// A run from a skewed clock is ordered by when it was received: the real
// results around it still count.
func TestSkewedRunIsOrderedByReceipt(t *testing.T) {
	f := newReportFixture(t, "")
	// A run 4 minutes in the future: within the bound, trusted.
	if code, data := f.post(result("nightly", "u1", "Succeeded", now.Add(4*time.Minute))); code != 200 {
		t.Fatalf("%d %s", code, data)
	}
	f.setNow(now.Add(time.Minute))
	code, data := f.post(`{"namespace":"ml","workflowName":"nightly-u2","uid":"u2","cronWorkflow":"nightly","phase":"Failed","createdAt":"2099-01-01T00:00:00Z"}`)
	resp := decode[api.ResultResponse](t, data)
	if code != 200 || resp.Stale || !resp.Job.Failing {
		t.Fatalf("%d %s: want the failure counted", code, data)
	}
	f.setNow(now.Add(2 * time.Minute))
	code, data = f.post(result("nightly", "u3", "Failed", now.Add(-time.Minute)))
	if resp := decode[api.ResultResponse](t, data); code != 200 || resp.Job.ConsecutiveFailures != 1 || !resp.Stale {
		// An older run stays older than the skewed one, which was received later.
		t.Errorf("%d %s", code, data)
	}
}

// Every refused callback leaves a trace: a WARN line (namespace and job when
// known, the field, why), a counter by namespace and reason, and the status
// page's count for the last hour with the latest reasons.
func TestRefusedCallbacksLeaveATrace(t *testing.T) {
	f := newReportFixture(t, "secret")
	for _, c := range []struct {
		body   string
		auth   bool
		status int
	}{
		{`{"namespace":"Not Valid","workflowName":"w","phase":"Failed"}`, true, 400},
		{`{"workflowName":"w","phase":"Failed"}`, true, 400},
		{`{"namespace":"ml","workflowName":"w","cronWorkflow":"nightly","phase":"Running"}`, true, 400},
		{`{"namespace":"ml",`, true, 400},
		{`{"namespace":"ml","workflowName":"w","phase":"Failed"}`, false, 401},
	} {
		if code, _, data := f.do("POST", "/api/v1/results", "application/json", c.body, c.auth); code != c.status {
			t.Fatalf("%s: %d %s, want %d", c.body, code, data, c.status)
		}
	}
	for _, want := range []struct {
		namespace, reason string
	}{{NamespaceInvalid, "namespace"}, {NamespaceUnknown, "namespace"}, {"ml", "phase"}, {NamespaceUnknown, ReasonMalformed}, {NamespaceUnknown, ReasonUnauthenticated}} {
		if got := f.refused(want.namespace, want.reason); got != 1 {
			t.Errorf("%s{namespace=%q,reason=%q} = %v, want 1", MetricCallbacksRefused, want.namespace, want.reason, got)
		}
	}
	lines := f.log.lines(t, LogCallbackRefused)
	if len(lines) != 5 {
		t.Fatalf("%d WARN lines, want 5: %v", len(lines), lines)
	}
	phase := lines[2]
	if phase["level"] != "WARN" || phase["namespace"] != "ml" || phase["job"] != "nightly" || phase["field"] != "phase" || !strings.Contains(fmt.Sprint(phase["detail"]), "Running") {
		t.Errorf("the phase refusal's line: %v", phase)
	}
	if lines[4]["reason"] != ReasonUnauthenticated || lines[4]["status"] != float64(401) {
		t.Errorf("the token refusal's line: %v", lines[4])
	}

	f.setNow(now.Add(30 * time.Minute))
	body := f.page(t, "/")
	if !strings.Contains(body, "5 callbacks refused in the last hour") || !inOrder(body, "missing or wrong bearer token", "malformed JSON", "Running") {
		t.Errorf("the status page does not show the refusals:\n%s", section(body, "refused"))
	}
	f.setNow(now.Add(61 * time.Minute))
	if body := f.page(t, "/"); strings.Contains(body, "refused in the last hour") {
		t.Error("refusals older than an hour still shown")
	}
}

// The namespace label takes at most maxNamespaceLabels values, whatever
// arrives.
func TestRefusalLabelsAreBounded(t *testing.T) {
	f := newReportFixture(t, "")
	for i := range maxNamespaceLabels + 50 {
		if code, _ := f.post(fmt.Sprintf(`{"namespace":"ns-%d","workflowName":"w","phase":"Bogus"}`, i)); code != 400 {
			t.Fatal(code)
		}
	}
	if got := testutil.CollectAndCount(f.metrics.Refused); got != maxNamespaceLabels+1 {
		t.Errorf("%d series, want %d", got, maxNamespaceLabels+1)
	}
	if got := f.refused(NamespaceOverflow, "phase"); got != 50 {
		t.Errorf("overflow = %v, want 50", got)
	}
}

// A flood of refusals writes a burst of lines, then one per interval that
// counts those held back.
func TestRefusalLinesAreRateLimited(t *testing.T) {
	f := newReportFixture(t, "")
	bad := `{"namespace":"ml","workflowName":"w","phase":"Bogus"}`
	for range 3 * logBurst {
		f.post(bad)
	}
	// Another namespace is not held back by the first's flood.
	f.post(`{"namespace":"etl","workflowName":"w","phase":"Bogus"}`)
	if got := len(f.log.lines(t, LogCallbackRefused)); got != logBurst+1 {
		t.Fatalf("%d lines, want %d", got, logBurst+1)
	}
	f.setNow(now.Add(logInterval))
	f.post(bad)
	lines := f.log.lines(t, LogCallbackRefused)
	if last := lines[len(lines)-1]; last["namespace"] != "ml" || last["suppressed"] != float64(2*logBurst) {
		t.Errorf("line after the interval: %v, want suppressed %d", last, 2*logBurst)
	}
	if got := f.refused("ml", "phase"); got != 3*logBurst+1 {
		t.Errorf("counter %v: every refusal counts", got)
	}
}
