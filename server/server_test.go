package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/filestore"
)

var now = time.Date(2026, 11, 24, 5, 0, 0, 0, time.UTC)

type countingKicker struct{ kicks atomic.Int32 }

func (k *countingKicker) Kick() { k.kicks.Add(1) }

type fixture struct {
	t      *testing.T
	srv    *httptest.Server
	store  state.Store
	kicker *countingKicker
	token  string
}

func newFixture(t *testing.T, token string) *fixture {
	t.Helper()
	store, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureWithStore(t, token, store)
}

func newFixtureWithStore(t *testing.T, token string, store state.Store) *fixture {
	reg := prometheus.NewRegistry()
	kicker := &countingKicker{}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	h := NewServer(logger, store, kicker, reg, NewMetrics(reg), Config{Token: token, Now: func() time.Time { return now }})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, store: store, kicker: kicker, token: token}
}

func (f *fixture) do(method, path, contentType, body string, auth bool) (int, http.Header, []byte) {
	f.t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if auth && f.token != "" {
		req.Header.Set("Authorization", "Bearer "+f.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, data
}

func (f *fixture) post(body string) (int, []byte) {
	code, _, data := f.do("POST", "/api/v1/results", "application/json", body, true)
	return code, data
}

func result(cron, uid, phase string, createdAt time.Time) string {
	return fmt.Sprintf(`{"namespace":"ml","workflowName":"%s-%s","uid":"%s","cronWorkflow":"%s","phase":"%s","createdAt":"%s","durationSeconds":30,"failures":"null"}`,
		cron, uid, uid, cron, phase, createdAt.Format(time.RFC3339))
}

func decode[T any](t *testing.T, data []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("decode %s: %v", data, err)
	}
	return v
}

func TestRoutes(t *testing.T) {
	f := newFixture(t, "")
	t1 := now.Add(-3 * time.Hour)

	code, body := f.post(result("nightly", "u1", "Failed", t1))
	if code != 200 {
		t.Fatalf("POST failure: %d %s", code, body)
	}
	got := decode[api.ResultResponse](t, body)
	if got.Duplicate || !got.Job.Failing || got.Job.ConsecutiveFailures != 1 || got.Job.Job != "nightly" {
		t.Fatalf("response %+v", got)
	}
	if f.kicker.kicks.Load() != 1 {
		t.Errorf("kicks = %d after a new failure, want 1", f.kicker.kicks.Load())
	}

	// Redelivery: 200, duplicate, nothing counted twice.
	code, body = f.post(result("nightly", "u1", "Failed", t1))
	if got := decode[api.ResultResponse](t, body); code != 200 || !got.Duplicate || got.Job.ConsecutiveFailures != 1 {
		t.Fatalf("duplicate: %d %s", code, body)
	}
	f.post(result("nightly", "u2", "Failed", t1.Add(time.Hour)))
	f.post(result("hourly", "h1", "Failed", t1.Add(2*time.Hour)))
	f.post(result("etl", "e1", "Succeeded", t1))
	if f.kicker.kicks.Load() != 2 {
		t.Errorf("kicks = %d, want 2 (one per newly failing job)", f.kicker.kicks.Load())
	}

	code, _, body = f.do("GET", "/api/v1/failures", "", "", false)
	failures := decode[api.FailureList](t, body)
	if code != 200 || len(failures.Failures) != 2 || failures.Failures[0].Job != "nightly" || failures.Failures[1].Job != "hourly" {
		t.Fatalf("failures (longest first): %d %s", code, body)
	}
	if f0 := failures.Failures[0]; f0.ConsecutiveFailures != 2 || f0.FailingSeconds != now.Sub(t1.Add(30*time.Second)).Seconds() {
		t.Errorf("nightly: %+v", f0)
	}
	_, _, body = f.do("GET", "/api/v1/failures?namespace=other", "", "", false)
	if got := decode[api.FailureList](t, body); len(got.Failures) != 0 {
		t.Errorf("failures in namespace other: %s", body)
	}
	if !strings.Contains(string(body), `"failures":[]`) {
		t.Errorf("empty list should be [], got %s", body)
	}

	_, _, body = f.do("GET", "/api/v1/jobs", "", "", false)
	if got := decode[api.JobList](t, body); len(got.Jobs) != 3 {
		t.Errorf("jobs: %s", body)
	}
	_, _, body = f.do("GET", "/api/v1/jobs/ml", "", "", false)
	if got := decode[api.JobList](t, body); len(got.Jobs) != 3 {
		t.Errorf("jobs in ml: %s", body)
	}
	_, _, body = f.do("GET", "/api/v1/jobs/nope", "", "", false)
	if got := decode[api.JobList](t, body); len(got.Jobs) != 0 {
		t.Errorf("jobs in nope: %s", body)
	}
	code, _, body = f.do("GET", "/api/v1/jobs/ml/nightly", "", "", false)
	if got := decode[api.Job](t, body); code != 200 || got.ConsecutiveFailures != 2 || got.LastUID != "u2" {
		t.Errorf("job: %d %s", code, body)
	}
	code, _, body = f.do("GET", "/api/v1/jobs/ml/missing", "", "", false)
	if got := decode[api.ErrorBody](t, body); code != 404 || got.Error.Code != "not_found" {
		t.Errorf("missing job: %d %s", code, body)
	}

	// Success ends the streak.
	code, body = f.post(result("nightly", "u3", "Succeeded", now.Add(-time.Minute)))
	got = decode[api.ResultResponse](t, body)
	if code != 200 || got.Job.Failing || got.Job.LastStreak == nil || got.Job.LastStreak.Failures != 2 {
		t.Fatalf("recovery: %d %s", code, body)
	}

	code, _, _ = f.do("DELETE", "/api/v1/jobs/ml/hourly", "", "", false)
	if code != 204 {
		t.Errorf("DELETE: %d", code)
	}
	code, _, _ = f.do("DELETE", "/api/v1/jobs/ml/hourly", "", "", false)
	if code != 404 {
		t.Errorf("second DELETE: %d, want 404", code)
	}
	_, _, body = f.do("GET", "/api/v1/failures", "", "", false)
	if got := decode[api.FailureList](t, body); len(got.Failures) != 0 {
		t.Errorf("failures after recovery and delete: %s", body)
	}

	for _, path := range []string{"/healthz", "/readyz"} {
		if code, _, body := f.do("GET", path, "", "", false); code != 200 {
			t.Errorf("%s: %d %s", path, code, body)
		}
	}
	code, _, body = f.do("GET", "/metrics", "", "", false)
	if code != 200 || !strings.Contains(string(body), `batchlatch_results_total{outcome="duplicate"} 1`) {
		t.Errorf("metrics: %d\n%s", code, body)
	}
	if code, _, _ := f.do("GET", "/api/v1/nothing", "", "", false); code != 404 {
		t.Errorf("unknown route: %d", code)
	}
	if code, header, _ := f.do("PUT", "/api/v1/results", "", "", false); code != 405 || header.Get("Allow") != "POST" {
		t.Errorf("PUT results: %d, Allow %q; want 405, Allow POST", code, header.Get("Allow"))
	}
	// A trailing slash is redirected to the route (the client follows it).
	if code, _, body := f.do("GET", "/api/v1/failures/", "", "", false); code != 200 || !strings.Contains(string(body), `"failures"`) {
		t.Errorf("GET /api/v1/failures/: %d %s", code, body)
	}
}

func TestNamespaceWideJob(t *testing.T) {
	f := newFixture(t, "")
	body := `{"namespace":"etl","workflowName":"manual-1","phase":"Error"}`
	if code, data := f.post(body); code != 200 {
		t.Fatalf("%d %s", code, data)
	}
	code, _, data := f.do("GET", "/api/v1/jobs/etl/-", "", "", false)
	if got := decode[api.Job](t, data); code != 200 || got.Job != "" || !got.Failing {
		t.Fatalf("namespace-wide job: %d %s", code, data)
	}
	if code, _, _ := f.do("DELETE", "/api/v1/jobs/etl/-", "", "", false); code != 204 {
		t.Fatalf("delete namespace-wide job: %d", code)
	}
}

func TestAuth(t *testing.T) {
	f := newFixture(t, "s3cret")
	body := result("nightly", "u1", "Failed", now)
	for _, header := range []string{"", "Bearer wrong", "s3cret", "Bearer s3cret2", "Bearers3cret", "Basic s3cret", "Bearer\ts3cret"} {
		req, _ := http.NewRequest("POST", f.srv.URL+"/api/v1/results", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if header != "" {
			req.Header.Set("Authorization", header)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if got := decode[api.ErrorBody](t, data); resp.StatusCode != 401 || got.Error.Field != "Authorization" {
			t.Errorf("Authorization %q: %d %s", header, resp.StatusCode, data)
		}
		// RFC 9110: a 401 says which scheme to use.
		if got := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(got, "Bearer ") {
			t.Errorf("Authorization %q: WWW-Authenticate %q, want a Bearer challenge", header, got)
		}
	}
	if code, _, _ := f.do("DELETE", "/api/v1/jobs/ml/nightly", "", "", false); code != 401 {
		t.Errorf("DELETE without token: %d", code)
	}
	assertNoJobs(t, f.store)
	if code, data := f.post(body); code != 200 {
		t.Fatalf("with token: %d %s", code, data)
	}
	// RFC 9110 11.1 and 11.4 (RFC 7235 before it): the scheme is
	// case-insensitive, and one or more spaces separate it from the
	// credentials.
	for _, header := range []string{"bearer s3cret", "BEARER s3cret", "Bearer   s3cret"} {
		req, _ := http.NewRequest("POST", f.srv.URL+"/api/v1/results", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("Authorization %q: %d %s", header, resp.StatusCode, data)
		}
	}
	// The token in api.TokenHeader, as through the API server's service
	// proxy, which removes Authorization: the same token, no other.
	for header, want := range map[string]int{"s3cret": 200, "wrong": 401, "Bearer s3cret": 401} {
		req, _ := http.NewRequest("POST", f.srv.URL+"/api/v1/results", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(api.TokenHeader, header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST with %s %q: %d, want %d", api.TokenHeader, header, resp.StatusCode, want)
		}
	}
	// Reads stay open.
	if code, _, _ := f.do("GET", "/api/v1/failures", "", "", false); code != 200 {
		t.Errorf("GET failures without token: %d", code)
	}
	if code, _, _ := f.do("DELETE", "/api/v1/jobs/ml/nightly", "", "", true); code != 204 {
		t.Errorf("DELETE with token: %d", code)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	f := newFixture(t, "")
	tests := []struct {
		name, contentType, body string
		status                  int
		field                   string
	}{
		{"malformed JSON", "application/json", `{"namespace":"ml",`, 400, ""},
		{"wrong type", "application/json", `{"namespace":"ml","workflowName":"w","phase":"Failed","uid":12}`, 400, "uid"},
		{"missing namespace", "application/json", `{"workflowName":"w","phase":"Failed"}`, 400, "namespace"},
		{"invalid namespace", "application/json", `{"namespace":"Not Valid","workflowName":"w","phase":"Failed"}`, 400, "namespace"},
		{"unknown phase", "application/json", `{"namespace":"ml","workflowName":"w","phase":"Exploded"}`, 400, "phase"},
		{"Running", "application/json", `{"namespace":"ml","workflowName":"w","phase":"Running"}`, 400, "phase"},
		{"oversized body", "application/json", `{"namespace":"ml","workflowName":"w","phase":"Failed","annotations":{"x":"` + strings.Repeat("a", MaxBodyBytes) + `"}}`, 413, ""},
		{"wrong content type", "text/plain", result("nightly", "u1", "Failed", now), 415, "Content-Type"},
		{"no content type", "", result("nightly", "u1", "Failed", now), 415, "Content-Type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, data := f.do("POST", "/api/v1/results", tt.contentType, tt.body, true)
			got := decode[api.ErrorBody](t, data)
			if code != tt.status || got.Error.Field != tt.field || got.Error.Message == "" || got.Error.Code == "" {
				t.Errorf("%d %s; want %d naming field %q", code, data, tt.status, tt.field)
			}
			assertNoJobs(t, f.store)
		})
	}
	if code, _, _ := f.do("POST", "/api/v1/results", "application/json; charset=utf-8", result("nightly", "u1", "Failed", now), true); code != 200 {
		t.Errorf("charset parameter refused: %d", code)
	}
}

func assertNoJobs(t *testing.T, store state.Store) {
	t.Helper()
	jobs, err := store.List(context.Background())
	if err != nil || len(jobs) != 0 {
		t.Fatalf("store changed: %d jobs, %v", len(jobs), err)
	}
}

// downStore is a store whose backend cannot be reached.
type downStore struct{ state.Store }

func (downStore) Record(context.Context, api.Result, time.Time) (state.Recorded, error) {
	return state.Recorded{}, fmt.Errorf("%w: connection refused", state.ErrUnavailable)
}
func (downStore) Ready(context.Context) error { return state.ErrUnavailable }

func TestStoreUnavailableIs503WithRetryAfter(t *testing.T) {
	inner, _ := filestore.Open(filepath.Join(t.TempDir(), "s.json"))
	f := newFixtureWithStore(t, "", downStore{inner})
	code, header, data := f.do("POST", "/api/v1/results", "application/json", result("nightly", "u1", "Failed", now), true)
	if code != 503 || header.Get("Retry-After") == "" {
		t.Fatalf("%d Retry-After=%q %s", code, header.Get("Retry-After"), data)
	}
	if code, _, _ := f.do("GET", "/readyz", "", "", false); code != 503 {
		t.Errorf("readyz with the store down: %d", code)
	}
	if f.kicker.kicks.Load() != 0 {
		t.Error("kicked for a result that was not stored")
	}
}

// Path segments are checked like the body's fields: no path reaches one job
// under another's name ("a.b/c" and "a/b.c" share the stored key "a.b.c").
func TestPathsAreValidatedLikeBodies(t *testing.T) {
	f := newFixture(t, "")
	body := `{"namespace":"a","workflowName":"w","uid":"u","cronWorkflow":"b.c","phase":"Failed","createdAt":"2026-11-24T04:00:00Z"}`
	if code, data := f.post(body); code != 200 {
		t.Fatalf("%d %s", code, data)
	}
	tests := []struct{ method, path, field string }{
		{"DELETE", "/api/v1/jobs/a.b/c", "{namespace}"},
		{"GET", "/api/v1/jobs/a.b/c", "{namespace}"},
		{"GET", "/api/v1/jobs/a.b.c/-", "{namespace}"},
		{"GET", "/api/v1/jobs/A/b.c", "{namespace}"},
		{"GET", "/api/v1/jobs/a.b", "{namespace}"},
		{"GET", "/api/v1/jobs/" + strings.Repeat("a", 64), "{namespace}"},
		{"GET", "/api/v1/jobs/a/B.C", "{job}"},
		{"GET", "/api/v1/jobs/a/b_c", "{job}"},
		{"DELETE", "/api/v1/jobs/a/" + strings.Repeat("j", 252), "{job}"}, // "a." + 252 > 253
		{"GET", "/api/v1/jobs/a/b.c?kind=Cron", "kind"},
		{"GET", "/api/v1/jobs/a/-?kind=CronJob", "{job}"},
		{"GET", "/api/v1/jobs/a/B?kind=CronJob", "{job}"},
		{"GET", "/api/v1/failures?namespace=a.b", "namespace"},
		{"GET", "/api/v1/failures?namespace=" + strings.Repeat("x", 60000), "namespace"},
	}
	for _, tt := range tests {
		code, _, data := f.do(tt.method, tt.path, "", "", true)
		got := decode[api.ErrorBody](t, data)
		if code != 400 || got.Error.Field != tt.field || len(data) > 500 {
			t.Errorf("%s %.80s: %d %.300s; want 400 naming %s", tt.method, tt.path, code, data, tt.field)
		}
	}
	// The job is still there, under its own name only.
	if code, _, data := f.do("GET", "/api/v1/jobs/a/b.c", "", "", false); code != 200 {
		t.Fatalf("GET a/b.c: %d %s", code, data)
	}
	if code, _, _ := f.do("DELETE", "/api/v1/jobs/a/b.c", "", "", true); code != 204 {
		t.Fatalf("DELETE a/b.c: %d", code)
	}
}

// A CronJob and a CronWorkflow of one name in one namespace are two jobs:
// each has its own state, its own path (?kind=CronJob) and says its kind.
func TestCronJobAndCronWorkflowOfOneNameAreTwoJobs(t *testing.T) {
	f := newFixture(t, "")
	created := now.Add(-time.Hour).Format(time.RFC3339)
	workflow := fmt.Sprintf(`{"namespace":"ml","workflowName":"nightly-1","uid":"w1","cronWorkflow":"nightly","phase":"Failed","createdAt":%q}`, created)
	cronJob := fmt.Sprintf(`{"namespace":"ml","workflowName":"nightly-29000000","uid":"c1","cronJob":"nightly","phase":"Succeeded","createdAt":%q}`, created)
	for _, body := range []string{workflow, cronJob} {
		if code, data := f.post(body); code != 200 {
			t.Fatalf("%d %s", code, data)
		}
	}
	_, _, body := f.do("GET", "/api/v1/jobs/ml", "", "", false)
	if got := decode[api.JobList](t, body); len(got.Jobs) != 2 {
		t.Fatalf("jobs in ml: %s", body)
	}
	for path, want := range map[string]struct {
		kind    string
		failing bool
	}{
		"/api/v1/jobs/ml/nightly":               {api.KindWorkflow, true},
		"/api/v1/jobs/ml/nightly?kind=Workflow": {api.KindWorkflow, true},
		"/api/v1/jobs/ml/nightly?kind=CronJob":  {api.KindCronJob, false},
	} {
		code, _, body := f.do("GET", path, "", "", false)
		if got := decode[api.Job](t, body); code != 200 || got.Kind != want.kind || got.Failing != want.failing {
			t.Errorf("GET %s: %d %s, want kind %s failing %v", path, code, body, want.kind, want.failing)
		}
	}
	if code, _, _ := f.do("DELETE", "/api/v1/jobs/ml/nightly?kind=CronJob", "", "", true); code != 204 {
		t.Fatalf("DELETE the CronJob's job: %d", code)
	}
	if code, _, _ := f.do("GET", "/api/v1/jobs/ml/nightly", "", "", false); code != 200 {
		t.Errorf("the CronWorkflow's job went with the CronJob's: %d", code)
	}
}

// `argo retry` reruns a failed workflow under the same uid; its success ends
// the streak, however early createdAt + the retry's duration falls.
func TestArgoRetryRecovers(t *testing.T) {
	f := newFixture(t, "")
	created := now.Add(-3 * time.Hour)
	failed := fmt.Sprintf(`{"namespace":"ml","workflowName":"nightly-1","uid":"u1","cronWorkflow":"nightly","phase":"Failed","createdAt":%q,"durationSeconds":7200}`, created.Format(time.RFC3339))
	if code, data := f.post(failed); code != 200 {
		t.Fatalf("%d %s", code, data)
	}
	// The exit handler's retry re-renders the body: another duration.
	again := strings.Replace(failed, "7200", "7201.5", 1)
	code, data := f.post(again)
	if got := decode[api.ResultResponse](t, data); code != 200 || !got.Duplicate || got.Job.ConsecutiveFailures != 1 {
		t.Fatalf("redelivered failure: %d %s", code, data)
	}
	retried := fmt.Sprintf(`{"namespace":"ml","workflowName":"nightly-1","uid":"u1","cronWorkflow":"nightly","phase":"Succeeded","createdAt":%q,"durationSeconds":60}`, created.Format(time.RFC3339))
	code, data = f.post(retried)
	got := decode[api.ResultResponse](t, data)
	if code != 200 || got.Duplicate || got.Stale || !got.Retry || got.Job.Failing || got.Job.LastStreak == nil || got.Job.LastStreak.Failures != 1 {
		t.Fatalf("retry's success: %d %s", code, data)
	}
	if f.kicker.kicks.Load() != 2 {
		t.Errorf("kicks = %d, want 2 (failing, recovered)", f.kicker.kicks.Load())
	}
}

// A result from the future would make every real result of its job stale:
// its times are left out, and it is ordered by when it was received.
func TestFutureResultIsOrderedByReceipt(t *testing.T) {
	f := newFixture(t, "")
	for i, tt := range []struct{ body, field string }{
		{`{"namespace":"ml","workflowName":"w0","cronWorkflow":"nightly","phase":"Succeeded","createdAt":"2099-01-01T00:00:00Z"}`, "createdAt"},
		{`{"namespace":"ml","workflowName":"w1","cronWorkflow":"nightly","phase":"Succeeded","createdAt":"2026-11-24T04:00:00Z","durationSeconds":1e10}`, "durationSeconds"},
		{`{"namespace":"ml","workflowName":"w2","cronWorkflow":"nightly","phase":"Succeeded","createdAt":"2026-11-24T04:00:00Z","durationSeconds":3901}`, "durationSeconds"},
	} {
		code, data := f.post(tt.body)
		got := decode[api.ResultResponse](t, data)
		if code != 200 || len(got.Warnings) == 0 || got.Warnings[0].Field != tt.field || got.Stale || !got.Job.LastResultAt.Equal(now) {
			t.Errorf("result %d: %d %s; want recorded as received, with a warning naming %s", i, code, data, tt.field)
		}
	}
	// The next real failure is not stale.
	code, data := f.post(result("nightly", "u9", "Failed", now))
	if got := decode[api.ResultResponse](t, data); code != 200 || got.Stale || !got.Job.Failing {
		t.Fatalf("%d %s", code, data)
	}
}

// Every GET route answers HEAD as it answers GET, without the body.
func TestHeadOnEveryGetRoute(t *testing.T) {
	f := newFixture(t, "")
	if code, data := f.post(result("nightly", "u1", "Failed", now.Add(-time.Hour))); code != 200 {
		t.Fatalf("%d %s", code, data)
	}
	reg := prometheus.NewRegistry()
	engine := NewServer(discardLogger(), f.store, f.kicker, reg, NewMetrics(reg), Config{}).(*gin.Engine)
	example := strings.NewReplacer(":namespace", "ml", ":job", "nightly", ":id", "0123456789abcdef")
	tried := 0
	for _, route := range engine.Routes() {
		if route.Method != http.MethodGet {
			continue
		}
		path := example.Replace(route.Path)
		getCode, getHeader, getBody := f.do("GET", path, "", "", false)
		headCode, headHeader, headBody := f.do("HEAD", path, "", "", false)
		if getCode != 200 || headCode != getCode || headHeader.Get("Content-Type") != getHeader.Get("Content-Type") || len(headBody) != 0 || len(getBody) == 0 {
			t.Errorf("HEAD %s: %d %q, %d bytes; GET: %d %q, %d bytes", path, headCode, headHeader.Get("Content-Type"), len(headBody), getCode, getHeader.Get("Content-Type"), len(getBody))
		}
		tried++
	}
	if tried < 10 {
		t.Errorf("only %d GET routes", tried)
	}
	if code, header, _ := f.do("HEAD", "/api/v1/nothing", "", "", false); code != 404 || header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Errorf("HEAD of an unknown route: %d %q", code, header.Get("Content-Type"))
	}
}

// A method a path does not serve is 405 with the API's error body and the
// methods it does serve in Allow.
func TestMethodNotAllowedSaysAllow(t *testing.T) {
	f := newFixture(t, "")
	for _, tc := range []struct {
		method, path string
		allow        []string
	}{
		{"PUT", "/api/v1/results", []string{"POST"}},
		{"GET", "/api/v1/results", []string{"POST"}},
		{"POST", "/api/v1/failures", []string{"GET", "HEAD"}},
		{"PATCH", "/api/v1/jobs/ml/nightly", []string{"DELETE", "GET", "HEAD"}},
		{"DELETE", "/api/v1/silences", []string{"GET", "HEAD", "POST"}},
		{"GET", "/api/v1/silences/0123456789abcdef", []string{"DELETE"}},
		{"OPTIONS", "/", []string{"GET", "HEAD"}},
		{"POST", "/metrics", []string{"GET", "HEAD"}},
	} {
		code, header, data := f.do(tc.method, tc.path, "", "", false)
		allow := strings.Split(header.Get("Allow"), ", ")
		slices.Sort(allow)
		if got := decode[api.ErrorBody](t, data); code != 405 || got.Error.Code != "method_not_allowed" || !slices.Equal(allow, tc.allow) {
			t.Errorf("%s %s: %d %s, Allow %q; want 405 allowing %v", tc.method, tc.path, code, data, header.Get("Allow"), tc.allow)
		}
	}
}

// A stray trailing slash, or a base URL ending in "/", is redirected to
// the route: 301 for GET, 307 otherwise (which keeps a POST's body).
func TestRedirectsToTheRoute(t *testing.T) {
	f := newFixture(t, "")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		method, path string
		status       int
		location     string
	}{
		{"GET", "/api/v1/failures/?namespace=ml", 301, "/api/v1/failures?namespace=ml"},
		{"GET", "/api/v1/jobs/ml/nightly/", 301, "/api/v1/jobs/ml/nightly"},
		{"GET", "/healthz/", 301, "/healthz"},
		{"HEAD", "/api/v1/jobs/", 307, "/api/v1/jobs"},
		{"POST", "/api/v1/results/", 307, "/api/v1/results"},
		{"POST", "//api/v1/results", 307, "/api/v1/results"},
		{"DELETE", "/api/v1/jobs/ml/nightly/", 307, "/api/v1/jobs/ml/nightly"},
	} {
		req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, nil)
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.location {
			t.Errorf("%s %s: %d to %q, want %d to %q", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Location"), tc.status, tc.location)
		}
	}
	// A client follows a 307 with the body.
	code, _, data := f.do("POST", "//api/v1/results/", "application/json", result("nightly", "u1", "Failed", now.Add(-time.Hour)), false)
	if got := decode[api.ResultResponse](t, data); code != 200 || !got.Job.Failing {
		t.Errorf("POST //api/v1/results/: %d %s", code, data)
	}
	// No path is redirected to a route that is not there.
	if code, _, data := f.do("GET", "/api/v1/nothing/", "", "", false); code != 404 || decode[api.ErrorBody](t, data).Error.Code != "not_found" {
		t.Errorf("GET /api/v1/nothing/: %d %s", code, data)
	}
}

// TestJobHasItsRuns: one job's view has its runs, newest first, a duplicate
// counted once and a run's time, duration and source as sent; the lists
// and the callback's answer leave them out.
func TestJobHasItsRuns(t *testing.T) {
	f := newFixture(t, "")
	t1 := now.Add(-3 * time.Hour)
	for _, body := range []string{
		result("nightly", "u1", "Failed", t1),
		result("nightly", "u2", "Failed", t1.Add(time.Hour)),
		result("nightly", "u2", "Failed", t1.Add(time.Hour)), // duplicate
		strings.Replace(result("nightly", "u3", "Succeeded", t1.Add(2*time.Hour)), `"phase"`, `"scheduledTime":"`+t1.Add(2*time.Hour).Format(time.RFC3339)+`","phase"`, 1),
	} {
		code, data := f.post(body)
		if code != 200 || strings.Contains(string(data), `"runs"`) {
			t.Fatalf("POST: %d %s", code, data)
		}
	}
	code, _, body := f.do("GET", "/api/v1/jobs/ml/nightly", "", "", false)
	job := decode[api.JobDetail](t, body)
	var got []string
	for _, r := range job.Runs {
		got = append(got, fmt.Sprintf("%s %s %s %v %v", r.Phase, r.Source, r.FinishedAt.Format(time.RFC3339), *r.DurationSeconds, r.ScheduledAt != nil))
	}
	want := []string{"Succeeded callback 2026-11-24T04:00:30Z 30 true", "Failed callback 2026-11-24T03:00:30Z 30 false", "Failed callback 2026-11-24T02:00:30Z 30 false"}
	if code != 200 || !slices.Equal(got, want) {
		t.Fatalf("GET: %d, runs\n got %q\nwant %q", code, got, want)
	}
	// Three runs: too few to tell what it usually does, and it says so.
	if u := job.Usual; u == nil || u.MedianSeconds != nil || u.IntervalSeconds != nil || u.SuccessfulRuns != 1 ||
		u.Note != "the usual duration needs 5 successful runs of known duration, 1 known; the usual interval needs 5 runs, 3 known" {
		t.Errorf("usual: %+v", u)
	}
	for _, path := range []string{"/api/v1/jobs", "/api/v1/jobs/ml", "/api/v1/failures"} {
		if _, _, body := f.do("GET", path, "", "", false); strings.Contains(string(body), `"runs"`) || strings.Contains(string(body), `"usual"`) {
			t.Errorf("%s has runs: %s", path, body)
		}
	}
}
