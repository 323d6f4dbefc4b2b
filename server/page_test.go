package server

import (
	"context"
	"encoding/json"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/filestore"
)

// What the status page's tests show: every kind of row, and data from
// callbacks that would run script if it were not escaped.
const (
	hostileMessage = `<script>alert(1)</script> exit code 1`
	hostileStep    = `<img src=x onerror=alert(2)>`
	hostileReason  = `Upstream API migration <b>OPS-142</b>`
	// hostileJob is as close to markup as a DNS-1123 subdomain gets.
	hostileJob = "script.alert-1"
	argoURL    = "https://argo.example.com/"
)

// pageServer is a server over a file store holding the page fixture's jobs,
// at the fixed now of server_test.go, on 127.0.0.1.
func pageServer(t *testing.T, readToken string) *httptest.Server {
	t.Helper()
	store, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	seedPageJobs(t, store)
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	nextTick := time.Date(2026, 11, 24, 5, 30, 0, 0, time.UTC)
	cfg := Config{
		ReadToken: readToken,
		ArgoURL:   argoURL,
		Now:       func() time.Time { return now },
		Schedules: func(kind, namespace, name string, _ time.Time) *api.Schedule {
			if kind == api.KindWorkflow && namespace == "ml" && name == "feature-refresh" {
				return &api.Schedule{Kind: "CronWorkflow", Schedules: []string{"*/30 * * * *"}, Timezone: "UTC", NextTick: &nextTick}
			}
			return nil
		},
		Silences: func(context.Context) ([]api.Silence, error) {
			return []api.Silence{{
				ID: "s1", Namespace: "reports", Job: "weekly-digest", Kind: api.KindWorkflow,
				StartsAt: now.Add(-time.Hour), EndsAt: now.Add(5 * time.Hour),
				Reason: hostileReason, CreatedBy: "alice",
			}}, nil
		},
	}
	srv := httptest.NewServer(NewServer(logger, store, &countingKicker{}, reg, NewMetrics(reg), cfg))
	t.Cleanup(srv.Close)
	return srv
}

// run is one callback of the fixture: its job, when it was created, how long
// it ran, how it ended.
type run struct {
	namespace, cronWorkflow, cronJob, workflow string
	created                                    string
	seconds                                    float64
	phase                                      api.Phase
	failures                                   []api.Failure
	threshold                                  string
}

func seedPageJobs(t *testing.T, store state.Store) {
	t.Helper()
	oom := []api.Failure{{DisplayName: "train", Message: "OOMKilled (exit code 137): container exceeded its 8Gi memory limit", PodName: "nightly-train-1795485600-train-1"}}
	runs := []run{
		// ml/nightly-train: two earlier streaks, failing for 3h 13m now.
		{"ml", "nightly-train", "", "nightly-train-1794794400", "2026-11-10T01:45:00Z", 120, api.PhaseFailed, oom, ""},
		{"ml", "nightly-train", "", "nightly-train-1794880800", "2026-11-11T01:45:00Z", 120, api.PhaseSucceeded, nil, ""},
		{"ml", "nightly-train", "", "nightly-train-1795140000", "2026-11-14T01:45:00Z", 120, api.PhaseFailed, oom, ""},
		{"ml", "nightly-train", "", "nightly-train-1795226400", "2026-11-15T01:45:00Z", 120, api.PhaseFailed, oom, ""},
		{"ml", "nightly-train", "", "nightly-train-1795312800", "2026-11-16T01:45:00Z", 120, api.PhaseSucceeded, nil, ""},
		{"ml", "nightly-train", "", "nightly-train-1795485600", "2026-11-24T01:45:00Z", 120, api.PhaseFailed, oom, ""},
		{"ml", "nightly-train", "", "nightly-train-1795489200", "2026-11-24T02:46:00Z", 60, api.PhaseFailed, oom, ""},
		{"ml", "nightly-train", "", "nightly-train-1795492800", "2026-11-24T03:46:00Z", 60, api.PhaseFailed, oom, ""},
		// web/script.alert-1: what a callback sends is never markup.
		{"web", hostileJob, "", hostileJob + "-1795497600", "2026-11-24T04:19:00Z", 60, api.PhaseFailed, []api.Failure{
			{DisplayName: hostileStep, Message: hostileMessage, PodName: hostileJob + "-1795497600-1"},
			{DisplayName: "cleanup", Message: "step failed", PodName: hostileJob + "-1795497600-2"},
		}, ""},
		// billing/invoice-export: a CronJob below its threshold of 3.
		{"billing", "", "invoice-export", "invoice-export-29400000", "2026-11-24T04:00:00Z", 90, api.PhaseFailed, []api.Failure{
			{DisplayName: "invoice-export-29400000", Message: "Job has reached the specified backoff limit"},
		}, "3"},
		// reports/weekly-digest: failing, silenced by the Silences of pageServer.
		{"reports", "weekly-digest", "", "weekly-digest-1795140000", "2026-11-23T06:00:00Z", 300, api.PhaseFailed, []api.Failure{
			{DisplayName: "fetch", Message: "GET upstream /v1/reports: 410 Gone"},
		}, ""},
		// Healthy: a watched CronWorkflow, a CronJob, a namespace as a whole.
		{"ml", "feature-refresh", "", "feature-refresh-1795492800", "2026-11-24T04:30:00Z", 45, api.PhaseSucceeded, nil, ""},
		{"billing", "", "ledger-sync", "ledger-sync-29400060", "2026-11-24T04:00:00Z", 30, api.PhaseSucceeded, nil, ""},
		{"etl", "", "", "manual-x7k2p", "2026-11-23T22:10:00Z", 600, api.PhaseSucceeded, nil, ""},
	}
	for i, r := range runs {
		result := api.Result{
			Namespace: r.namespace, WorkflowName: r.workflow, UID: r.workflow, CronWorkflow: r.cronWorkflow, CronJob: r.cronJob,
			Phase: r.phase, CreatedAt: r.created, DurationSeconds: r.seconds, Failures: r.failures,
		}
		if r.threshold != "" {
			result.Annotations = map[string]string{api.AnnotationFailureThreshold: r.threshold}
		}
		created, err := time.Parse(time.RFC3339, r.created)
		if err != nil {
			t.Fatal(err)
		}
		received := created.Add(time.Duration(r.seconds)*time.Second + 2*time.Second)
		if _, err := store.Record(context.Background(), result, received); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
}

// get fetches path as a plain client would: no JavaScript anywhere.
func get(t *testing.T, srv *httptest.Server, path string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

// section is the HTML of <section id="id">, or "".
func section(body, id string) string {
	_, rest, ok := strings.Cut(body, `<section id="`+id+`">`)
	if !ok {
		return ""
	}
	s, _, _ := strings.Cut(rest, "</section>")
	return s
}

// inOrder reports whether each of subs appears in s after the one before.
func inOrder(s string, subs ...string) bool {
	for _, sub := range subs {
		i := strings.Index(s, sub)
		if i < 0 {
			return false
		}
		s = s[i+len(sub):]
	}
	return true
}

// The whole status page is there in the HTML itself: no script builds it.
func TestStatusPageWithoutJavaScript(t *testing.T) {
	srv := pageServer(t, "")
	code, header, body := get(t, srv, "/")
	if code != 200 {
		t.Fatalf("GET /: %d\n%s", code, body)
	}
	if ct := header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type %q", ct)
	}
	csp := header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "style-src 'nonce-", "img-src data:"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") || strings.Contains(csp, "script-src") {
		t.Errorf("Content-Security-Policy %q lets something through", csp)
	}
	nonce := strings.TrimSuffix(strings.SplitN(strings.SplitN(csp, "'nonce-", 2)[1], "'", 2)[0], "'")
	if !strings.Contains(body, `<style nonce="`+nonce+`">`) {
		t.Errorf("the style sheet does not carry the header's nonce %q", nonce)
	}
	if _, _, again := get(t, srv, "/"); strings.Contains(again, nonce) {
		t.Error("the nonce is the same in two responses")
	}

	// Nothing from a callback is markup, and the page has no script at all.
	if strings.Contains(strings.ToLower(body), "<script") || strings.Contains(body, "<img") || strings.Contains(body, "<b>OPS") {
		t.Errorf("markup from a callback reached the page:\n%s", body)
	}
	for _, escaped := range []string{
		"&lt;script&gt;alert(1)&lt;/script&gt; exit code 1",
		"&lt;img src=x onerror=alert(2)&gt;",
		"Upstream API migration &lt;b&gt;OPS-142&lt;/b&gt;",
	} {
		if !strings.Contains(body, escaped) {
			t.Errorf("page lacks %s", escaped)
		}
	}
	if !strings.Contains(body, `<meta http-equiv="refresh" content="30">`) || !strings.Contains(body, `name="viewport"`) {
		t.Error("page neither refreshes itself nor fits a phone")
	}

	// Failing first (alerting ones longest-failing first, then those below
	// their threshold), then silenced, then healthy.
	if !inOrder(body, `id="failing"`, `id="silenced"`, `id="healthy"`) {
		t.Fatalf("sections out of order:\n%s", body)
	}
	failing, silenced, healthy := section(body, "failing"), section(body, "silenced"), section(body, "healthy")
	if !inOrder(failing, ">nightly-train<", ">"+hostileJob+"<", ">invoice-export<") || strings.Count(failing, `<li class="job`) != 3 {
		t.Errorf("failing section:\n%s", failing)
	}
	for _, want := range []string{
		// ml/nightly-train: duration, absolute start, runs, Argo link, message.
		`<span class="rel duration">3h 13m</span>`,
		`<time datetime="2026-11-24T01:47:00Z">2026-11-24 01:47 UTC</time>`,
		`<b class="runs">3</b>`,
		`href="https://argo.example.com/workflows/ml/nightly-train-1795492800"`,
		"OOMKilled (exit code 137)",
		// web/script.alert-1: its second failed step is one click away.
		"and 1 more failed step<",
		// billing/invoice-export: a CronJob (no Argo link) below threshold.
		">CronJob<",
		"below threshold (1 of 3)",
		"train: OOMKilled",
	} {
		if !strings.Contains(failing, want) {
			t.Errorf("failing section lacks %s", want)
		}
	}
	if strings.Contains(body, "/workflows/billing/") {
		t.Error("a CronJob's run links into Argo")
	}
	if !strings.Contains(silenced, ">weekly-digest<") || !strings.Contains(silenced, `<span class="badge silenced">silenced</span>`) ||
		!strings.Contains(silenced, `<span class="rel">in 5h</span>`) || !strings.Contains(silenced, "(alice)") {
		t.Errorf("silenced section:\n%s", silenced)
	}
	if !inOrder(healthy, ">ledger-sync<", ">(whole namespace)<", ">feature-refresh<") {
		t.Errorf("healthy section (by key):\n%s", healthy)
	}
	for _, want := range []string{
		`href="/jobs/etl/-"`,
		`href="/jobs/billing/ledger-sync?kind=CronJob"`,
		// ml/feature-refresh: last success and next expected run.
		`<span class="rel">29m 15s ago</span>`,
		`Next expected run</dt><dd><span class="rel">in 30m</span> <time class="abs" datetime="2026-11-24T05:30:00Z">`,
	} {
		if !strings.Contains(healthy, want) {
			t.Errorf("healthy section lacks %s:\n%s", want, healthy)
		}
	}
	if !strings.Contains(body, "<title>(3 failing) batchlatch</title>") {
		t.Error("title does not count the failing jobs")
	}

	// Narrowed to one namespace.
	code, _, body = get(t, srv, "/?namespace=ml")
	if code != 200 || !strings.Contains(body, ">nightly-train<") || strings.Contains(body, ">weekly-digest<") || !strings.Contains(body, "Namespace <b>ml</b> only") {
		t.Errorf("GET /?namespace=ml: %d\n%s", code, body)
	}
	code, header, body = get(t, srv, "/?namespace=Not_A-Label")
	if code != 400 || header.Get("Content-Type") != "text/html; charset=utf-8" || !strings.Contains(body, "400 Bad Request") {
		t.Errorf("bad namespace: %d %s\n%s", code, header.Get("Content-Type"), body)
	}
}

func TestJobPage(t *testing.T) {
	srv := pageServer(t, "")
	code, header, body := get(t, srv, "/jobs/ml/nightly-train")
	if code != 200 || header.Get("Content-Security-Policy") == "" {
		t.Fatalf("GET job page: %d\n%s", code, body)
	}
	streaks := section(body, "streaks")
	// The running streak, then the finished ones, newest first.
	if !inOrder(streaks,
		`<tr class="current"><td data-label="From"><span class="rel">3h 13m ago</span>`, "still failing", `<td data-label="Failed runs">3</td>`,
		`datetime="2026-11-14T01:47:00Z"`, `datetime="2026-11-16T01:47:00Z"`, `<td data-label="Lasted">2d</td><td data-label="Failed runs">2</td>`,
		`datetime="2026-11-10T01:47:00Z"`, `datetime="2026-11-11T01:47:00Z"`, `<td data-label="Lasted">1d</td><td data-label="Failed runs">1</td>`,
	) {
		t.Errorf("streaks:\n%s", streaks)
	}
	if !strings.Contains(body, `href="/api/v1/jobs/ml/nightly-train"`) || !strings.Contains(section(body, "failures"), "nightly-train-1795485600-train-1") {
		t.Errorf("job page:\n%s", body)
	}

	_, _, body = get(t, srv, "/jobs/web/"+hostileJob)
	if strings.Contains(body, "<script") || strings.Contains(body, "<img") || !strings.Contains(section(body, "failures"), "&lt;script&gt;alert(1)&lt;/script&gt;") ||
		!strings.Contains(section(body, "failures"), "cleanup") {
		t.Errorf("hostile job page:\n%s", body)
	}
	_, _, body = get(t, srv, "/jobs/ml/feature-refresh")
	if s := section(body, "schedule"); !strings.Contains(s, "<code>*/30 * * * *</code>") || !strings.Contains(body, "No failure streak so far.") {
		t.Errorf("watched job page:\n%s", body)
	}
	for path, want := range map[string]string{
		"/jobs/billing/invoice-export?kind=CronJob": "below threshold (1 of 3)",
		"/jobs/etl/-":                 "(whole namespace)",
		"/jobs/reports/weekly-digest": "Upstream API migration &lt;b&gt;OPS-142&lt;/b&gt;",
	} {
		if code, _, body := get(t, srv, path); code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d, want %q\n%s", path, code, want, body)
		}
	}
	for path, status := range map[string]int{
		"/jobs/billing/invoice-export":  404, // a CronJob's job needs its kind
		"/jobs/ml/missing":              404,
		"/jobs/A/b":                     400,
		"/jobs/ml/-?kind=CronJob":       400,
		"/jobs/ml/nightly-train?kind=x": 400,
	} {
		code, header, body := get(t, srv, path)
		if code != status || header.Get("Content-Type") != "text/html; charset=utf-8" || strings.Contains(body, "http-equiv") {
			t.Errorf("GET %s: %d %s, want %d as a page that does not refresh\n%s", path, code, header.Get("Content-Type"), status, body)
		}
	}
}

// The pages are reads: behind --read-token, which a browser answers with
// HTTP Basic authentication.
func TestPagesNeedTheReadToken(t *testing.T) {
	srv := pageServer(t, "r3ad")
	for _, path := range []string{"/", "/jobs/ml/nightly-train"} {
		code, header, body := get(t, srv, path)
		if code != 401 || !strings.HasPrefix(header.Get("WWW-Authenticate"), "Basic") || strings.Contains(body, "nightly") {
			t.Errorf("GET %s without a token: %d %q", path, code, header.Get("WWW-Authenticate"))
		}
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.SetBasicAuth("anyone", "r3ad")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s with the read token: %d", path, resp.StatusCode)
		}
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		2 * time.Hour:     "2h ago",
		30 * time.Second:  "just now",
		-30 * time.Second: "just now",
		-25 * time.Minute: "in 25m",
	} {
		if got := stampOf(now, now.Add(-d)).Rel; got != want {
			t.Errorf("stampOf(now-%v).Rel = %q, want %q", d, got, want)
		}
	}
}

// A 99-second streak is "1m 39s" on the pages, as in the entries' messages
// (api.FormatDuration), running or finished.
func TestPagesShowDurationsAsTheEntriesDo(t *testing.T) {
	f := newReportFixture(t, "")
	if code, data := f.post(result("nightly", "u1", "Failed", now.Add(-30*time.Second))); code != 200 {
		t.Fatalf("%d %s", code, data)
	}
	f.setNow(now.Add(99 * time.Second))
	if body := f.page(t, "/jobs/ml/nightly"); !strings.Contains(body, `<span class="rel duration">1m 39s</span>`) || !strings.Contains(body, "1m 39s so far") {
		t.Errorf("running streak:\n%s", section(body, "streaks"))
	}
	if code, data := f.post(result("nightly", "u2", "Succeeded", now.Add(69*time.Second))); code != 200 {
		t.Fatalf("%d %s", code, data)
	}
	if body := f.page(t, "/jobs/ml/nightly"); !strings.Contains(section(body, "streaks"), `<td data-label="Lasted">1m 39s</td>`) {
		t.Errorf("finished streak:\n%s", section(body, "streaks"))
	}
}

// Failed steps: the job keeps the first ones with as much of their messages
// as its budget allows, and REST and the pages say how many more failed.
func TestFailedStepsLeftOutAreCounted(t *testing.T) {
	f := newReportFixture(t, "")
	message := "Error (exit code 1): " + strings.Repeat("a line of the step's output, ", 20) // 600 bytes
	steps := []api.Failure{{DisplayName: "train", Message: message, PodName: "nightly-1-train-1"}, {DisplayName: "eval", Message: "exit code 2"}}
	for _, n := range []string{"a", "b", "c"} {
		steps = append(steps, api.Failure{DisplayName: n, Message: "exit code 3"})
	}
	failures, _ := json.Marshal(steps)
	body := `{"namespace":"ml","workflowName":"nightly-1","uid":"u1","cronWorkflow":"nightly","phase":"Failed","failures":` + string(failures) + `}`
	if code, data := f.post(body); code != 200 {
		t.Fatalf("%d %s", code, data)
	}
	_, _, data := f.do("GET", "/api/v1/jobs/ml/nightly", "", "", false)
	view := decode[api.Job](t, data)
	if view.LastFailuresOmitted != 3 || len(view.LastFailures) != 2 || view.LastFailures[0].Message != message {
		t.Errorf("REST: %d steps, %d omitted, first message %d bytes of %d", len(view.LastFailures), view.LastFailuresOmitted, len(view.LastFailures[0].Message), len(message))
	}
	if body := f.page(t, "/"); !strings.Contains(body, "and 4 more failed steps") {
		t.Errorf("status page:\n%s", section(body, "failing"))
	}
	page := f.page(t, "/jobs/ml/nightly")
	if s := section(page, "failures"); !strings.Contains(s, "and 3 more failed steps, not kept") || !strings.Contains(s, template.HTMLEscapeString(strings.TrimSpace(message[len(message)-60:]))) {
		t.Errorf("job page:\n%s", s)
	}
}

// TestPagesShowTheRuns: without a browser, the status page has a strip of
// marks per job that ran, each saying its run in its title, and the job
// page a row and a bar per run (fewer than 5 successes: no usual range,
// and it says why).
func TestPagesShowTheRuns(t *testing.T) {
	srv := pageServer(t, "")
	_, _, status := get(t, srv, "/")
	marks := strings.Count(status, `<span class="mark `)
	// 8 runs of nightly-train, one of each of its 6 other jobs.
	if marks != 8+6 || !strings.Contains(status, `<span class="mark failed" title="Failed · 2026-11-24 03:47 UTC (1h 13m ago) · took 1m · from callback"></span>`) {
		t.Errorf("%d marks on the status page:\n%s", marks, status)
	}
	_, _, page := get(t, srv, "/jobs/ml/nightly-train")
	if rows, bars := strings.Count(page, `<td data-label="Outcome">`), strings.Count(page, `<rect class="bar `); rows != 8 || bars != 8 ||
		strings.Contains(page, `class="band"`) || !strings.Contains(page, "No usual range yet: 2 successful runs of known duration; 5 needed") {
		t.Errorf("job page: %d rows, %d bars:\n%s", rows, bars, page)
	}
}
