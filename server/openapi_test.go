package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/testwait"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/filestore"
)

// loadOpenAPI loads the document the server serves and checks that it is a
// valid OpenAPI document (examples included).
func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(api.OpenAPI)
	if err != nil {
		t.Fatalf("load api/openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("api/openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

func TestOpenAPIDocumentIsValid(t *testing.T) {
	doc := loadOpenAPI(t)
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi: %q, want 3.x", doc.OpenAPI)
	}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "" {
				t.Errorf("%s %s has no operationId", method, path)
			}
		}
	}
}

// TestOpenAPIDocumentsEveryRoute compares the routes the engine serves with
// the operations the document describes, both ways.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	store, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h := NewServer(slog.New(slog.DiscardHandler), store, &countingKicker{}, reg, NewMetrics(reg), Config{})
	engine, ok := h.(*gin.Engine)
	if !ok {
		t.Fatalf("NewServer returns a %T, not the *gin.Engine whose routes this test reads", h)
	}
	// A gin path parameter (:name, *name) is {name} in the document.
	ginParam := regexp.MustCompile(`[:*]([A-Za-z0-9_]+)`)
	served := map[string]bool{}
	for _, r := range engine.Routes() {
		if r.Method == http.MethodHead { // every GET route's (addRoutes), which the document leaves implicit
			continue
		}
		served[r.Method+" "+ginParam.ReplaceAllString(r.Path, "{$1}")] = true
	}
	documented := map[string]bool{}
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			if method != http.MethodHead && method != http.MethodOptions {
				documented[method+" "+path] = true
			}
		}
	}
	for _, route := range sortedKeys(served) {
		if !documented[route] {
			t.Errorf("%s is served (server/routes.go) but api/openapi.yaml does not describe it", route)
		}
	}
	for _, route := range sortedKeys(documented) {
		if !served[route] {
			t.Errorf("%s is described in api/openapi.yaml but not served (server/routes.go)", route)
		}
	}
}

// TestOpenAPISchemasMatchGoTypes checks each schema against the Go type it
// describes: the same JSON keys, required exactly when always written (no
// omitempty), and the JSON type encoding/json gives the field.
func TestOpenAPISchemasMatchGoTypes(t *testing.T) {
	doc := loadOpenAPI(t)
	for name, typ := range map[string]reflect.Type{
		"Result":         reflect.TypeFor[api.Result](),
		"Failure":        reflect.TypeFor[api.Failure](),
		"ResultResponse": reflect.TypeFor[api.ResultResponse](),
		"Warning":        reflect.TypeFor[api.Warning](),
		"JobWarning":     reflect.TypeFor[api.JobWarning](),
		"Job":            reflect.TypeFor[api.Job](),
		"Streak":         reflect.TypeFor[api.Streak](),
		"Run":            reflect.TypeFor[api.Run](),
		"Usual":          reflect.TypeFor[api.Usual](),
		"Schedule":       reflect.TypeFor[api.Schedule](),
		"Silence":        reflect.TypeFor[api.Silence](),
		"SilenceCreated": reflect.TypeFor[api.SilenceCreated](),
		"SilenceRequest": reflect.TypeFor[api.SilenceRequest](),
		"SilenceList":    reflect.TypeFor[api.SilenceList](),
		"JobList":        reflect.TypeFor[api.JobList](),
		"FailureList":    reflect.TypeFor[api.FailureList](),
		"ErrorBody":      reflect.TypeFor[api.ErrorBody](),
		"ErrorDetail":    reflect.TypeFor[api.ErrorDetail](),
	} {
		ref := doc.Components.Schemas[name]
		if ref == nil {
			t.Errorf("schema %s (api.%s) is missing", name, typ.Name())
			continue
		}
		schema := ref.Value
		var required []string
		keys := map[string]bool{}
		// Visible fields: those of an embedded struct are the object's own.
		fields := reflect.VisibleFields(typ)
		if name == "Job" {
			// One job's answer (api.JobDetail) adds its runs to api.Job.
			for _, f := range reflect.VisibleFields(reflect.TypeFor[api.JobDetail]()) {
				if len(f.Index) == 1 && !f.Anonymous {
					fields = append(fields, f)
				}
			}
		}
		for _, f := range fields {
			if f.Anonymous {
				continue
			}
			key, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
			if key == "" || key == "-" {
				continue
			}
			keys[key] = true
			if !strings.Contains(opts, "omitempty") {
				required = append(required, key)
			}
			prop := schema.Properties[key]
			if prop == nil {
				t.Errorf("schema %s lacks property %q (api.%s.%s)", name, key, typ.Name(), f.Name)
				continue
			}
			if name == "Result" && key == "failures" {
				continue // a string holding the array, or the array: see api.DecodeResult
			}
			want, got := jsonType(f.Type), schemaType(prop.Value)
			if want == "string" && got == "string/date-time" {
				got = want // a time the server parses from the string itself
			}
			if want != got {
				t.Errorf("schema %s.%s is %s, but api.%s.%s is written as %s", name, key, got, typ.Name(), f.Name, want)
			}
		}
		for key := range schema.Properties {
			if !keys[key] {
				t.Errorf("schema %s has property %q, which api.%s lacks", name, key, typ.Name())
			}
		}
		got := slices.Sorted(slices.Values(schema.Required))
		slices.Sort(required)
		if !slices.Equal(got, required) {
			t.Errorf("schema %s requires %v, but api.%s always writes %v", name, got, typ.Name(), required)
		}
	}
}

// jsonType is the JSON type encoding/json writes for t, with date-time for
// a time.
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == reflect.TypeFor[time.Time]() {
		return "string/date-time"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "integer"
	case reflect.Float64, reflect.Float32:
		return "number"
	case reflect.Slice:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	}
	return t.Kind().String()
}

// schemaType is the type a property's schema gives, through a description's
// allOf wrapper.
func schemaType(s *openapi3.Schema) string {
	if s.Type == nil && len(s.AllOf) == 1 {
		s = s.AllOf[0].Value
	}
	if s.Type == nil || !s.Type.IsSingle() {
		return "?"
	}
	typ := s.Type.Slice()[0]
	if typ == "string" && s.Format == "date-time" {
		return "string/date-time"
	}
	return typ
}

// faultStore is a real store that fails every call with the injected error
// while one is set: how the scenario reaches the statuses of a store that is
// down, full or unreadable.
type faultStore struct {
	state.Store
	mu  sync.Mutex
	err error
	// hold, while set, keeps every call waiting until it is closed: how the
	// scenario holds its class's only slot; holding counts the calls held.
	hold    chan struct{}
	holding atomic.Int32
}

// holdCalls makes every call wait until the returned release is called.
func (s *faultStore) holdCalls() (release func()) {
	hold := make(chan struct{})
	s.mu.Lock()
	s.hold = hold
	s.mu.Unlock()
	return sync.OnceFunc(func() {
		s.mu.Lock()
		s.hold = nil
		s.mu.Unlock()
		close(hold)
	})
}

func (s *faultStore) inject(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
}

func (s *faultStore) fault() error {
	s.mu.Lock()
	hold, err := s.hold, s.err
	s.mu.Unlock()
	if hold != nil {
		s.holding.Add(1)
		defer s.holding.Add(-1)
		<-hold
	}
	return err
}

func (s *faultStore) Record(ctx context.Context, r api.Result, at time.Time) (state.Recorded, error) {
	if err := s.fault(); err != nil {
		return state.Recorded{}, err
	}
	return s.Store.Record(ctx, r, at)
}

func (s *faultStore) Get(ctx context.Context, key state.Key) (state.Job, error) {
	if err := s.fault(); err != nil {
		return state.Job{}, err
	}
	return s.Store.Get(ctx, key)
}

func (s *faultStore) List(ctx context.Context) ([]state.Job, error) {
	if err := s.fault(); err != nil {
		return nil, err
	}
	return s.Store.List(ctx)
}

func (s *faultStore) Delete(ctx context.Context, key state.Key) error {
	if err := s.fault(); err != nil {
		return err
	}
	return s.Store.Delete(ctx, key)
}

func (s *faultStore) Edit(ctx context.Context, key state.Key, edit state.Edit) error {
	if err := s.fault(); err != nil {
		return err
	}
	return s.Store.Edit(ctx, key, edit)
}

func (s *faultStore) AddSilence(ctx context.Context, silence api.Silence, now time.Time) error {
	if err := s.fault(); err != nil {
		return err
	}
	return s.Store.AddSilence(ctx, silence, now)
}

func (s *faultStore) DeleteSilence(ctx context.Context, id string, now time.Time) error {
	if err := s.fault(); err != nil {
		return err
	}
	return s.Store.DeleteSilence(ctx, id, now)
}

func (s *faultStore) Silences(ctx context.Context) ([]api.Silence, error) {
	if err := s.fault(); err != nil {
		return nil, err
	}
	return s.Store.Silences(ctx)
}

func (s *faultStore) Ready(ctx context.Context) error {
	if err := s.fault(); err != nil {
		return err
	}
	return s.Store.Ready(ctx)
}

// faultCollector makes gathering fail while the store has a fault: /metrics
// then answers 500.
type faultCollector struct{ store *faultStore }

var faultDesc = prometheus.NewDesc("batchlatch_test_fault", "Fails while a fault is injected.", nil, nil)

func (faultCollector) Describe(chan<- *prometheus.Desc) {} // unchecked: it may yield nothing

func (c faultCollector) Collect(ch chan<- prometheus.Metric) {
	if err := c.store.fault(); err != nil {
		ch <- prometheus.NewInvalidMetric(faultDesc, err)
	}
}

// call is one request of the scenario and the status it must get.
type call struct {
	method, path      string
	contentType, body string
	auth              string // the Authorization header
	fault             error  // what the store answers meanwhile
	status            int
	// offContract marks a request that breaks the document's rules: the
	// document must reject it too, not only the server.
	offContract bool
}

// contract drives the real server and checks every request and response
// against the document.
type contract struct {
	t      *testing.T
	doc    *openapi3.T
	router routers.Router
	srv    *httptest.Server
	store  *faultStore
	opts   *openapi3filter.Options
	// seen holds the statuses each operation answered.
	seen map[string]map[int]bool
}

var registerHTML sync.Once

func newContract(t *testing.T, token, readToken string, caps InFlight) *contract {
	t.Helper()
	// kin-openapi decodes no HTML by itself; the pages are checked as text.
	registerHTML.Do(func() { openapi3filter.RegisterBodyDecoder("text/html", openapi3filter.PlainBodyDecoder) })
	doc := loadOpenAPI(t)
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatalf("router of api/openapi.yaml: %v", err)
	}
	inner, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	store := &faultStore{Store: inner}
	reg := prometheus.NewRegistry()
	reg.MustRegister(faultCollector{store})
	next := now.Add(21 * time.Hour)
	schedules := func(kind, namespace, name string, _ time.Time) *api.Schedule {
		switch {
		case kind == api.KindWorkflow && name == "nightly":
			return &api.Schedule{Kind: "CronWorkflow", Schedules: []string{"0 2 * * *"}, Timezone: "UTC", NextTick: &next}
		case kind == api.KindCronJob:
			return &api.Schedule{Kind: api.KindCronJob, Schedules: []string{"@daily"}, Timezone: "Europe/Berlin", Suspended: true}
		}
		return nil
	}
	h := NewServer(slog.New(slog.DiscardHandler), store, &countingKicker{}, reg, NewMetrics(reg), Config{
		Token: token, ReadToken: readToken, ArgoURL: "https://argo.example.com", Now: func() time.Time { return now }, Schedules: schedules,
		MetricsMaxAge: time.Nanosecond, // a scrape during a fault sees it, not the body of the scrape before
		InFlight:      caps,
	})
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &contract{
		t: t, doc: doc, router: router, srv: srv, store: store, seen: map[string]map[int]bool{},
		opts: &openapi3filter.Options{
			IncludeResponseStatus: true,
			MultiError:            true,
			// The document can only say which scheme a request uses; the
			// server checks the token itself.
			AuthenticationFunc: func(_ context.Context, in *openapi3filter.AuthenticationInput) error {
				prefix := map[string]string{"bearer": "Bearer ", "basic": "Basic "}[in.SecurityScheme.Scheme]
				if prefix == "" || !strings.HasPrefix(in.RequestValidationInput.Request.Header.Get("Authorization"), prefix) {
					return fmt.Errorf("no %s credentials", in.SecurityScheme.Scheme)
				}
				return nil
			},
		},
	}
}

// do sends c to the server, checks the status, then validates the request
// and the response against the document. It returns the response body.
func (ct *contract) do(c call) []byte {
	t := ct.t
	t.Helper()
	name := fmt.Sprintf("%s %.100s (want %d)", c.method, c.path, c.status)
	ct.store.inject(c.fault)
	defer ct.store.inject(nil)

	req, err := http.NewRequest(c.method, ct.srv.URL+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	setHeaders(req.Header, c)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != c.status {
		t.Errorf("%s: got %d %.300s", name, resp.StatusCode, body)
		return body
	}

	vreq := httptest.NewRequest(c.method, c.path, strings.NewReader(c.body))
	setHeaders(vreq.Header, c)
	route, params, err := ct.router.FindRoute(vreq)
	if err != nil {
		t.Errorf("%s: api/openapi.yaml has no operation for it: %v", name, err)
		return body
	}
	op := route.Operation.OperationID
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route, Options: ct.opts}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	switch {
	case c.offContract && reqErr == nil:
		t.Errorf("%s (%s): the request breaks the contract, but api/openapi.yaml accepts it", name, op)
	case !c.offContract && reqErr != nil:
		t.Errorf("%s (%s): the request does not match api/openapi.yaml:\n%v", name, op, reqErr)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Options: ct.opts}
	out.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), out); err != nil {
		t.Errorf("%s (%s): the %d response does not match api/openapi.yaml:\n%v\nbody: %.500s", name, op, resp.StatusCode, err, body)
	}
	// ValidateResponse does not check that a response documented without
	// content has none.
	if r := route.Operation.Responses.Status(resp.StatusCode); r != nil && len(r.Value.Content) == 0 && len(body) > 0 {
		t.Errorf("%s (%s): the %d response is documented without a body, got %.300s", name, op, resp.StatusCode, body)
	}
	if ct.seen[op] == nil {
		ct.seen[op] = map[int]bool{}
	}
	ct.seen[op][resp.StatusCode] = true
	return body
}

func setHeaders(h http.Header, c call) {
	if c.contentType != "" {
		h.Set("Content-Type", c.contentType)
	}
	if c.auth != "" {
		h.Set("Authorization", c.auth)
	}
}

// TestResponsesMatchOpenAPI drives the real server, on a real file store,
// through every route and every status the document lists, and validates
// each request and response against the document. A status the document
// lists that the scenario never reaches fails too, so that the document
// lists no status the server cannot give.
func TestResponsesMatchOpenAPI(t *testing.T) {
	const writeToken, readToken = "write-token", "read-token"
	ct := newContract(t, writeToken, readToken, InFlight{})
	w := "Bearer " + writeToken
	r := "Bearer " + readToken
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("anyone:"+readToken))
	const appJSON = "application/json"
	unavailable := fmt.Errorf("%w: injected", state.ErrUnavailable)
	corrupt := fmt.Errorf("%w: key ml.nightly: injected", state.ErrCorrupt)
	full := fmt.Errorf("%w: injected", state.ErrFull)

	failures := `"[{\"displayName\":\"train\",\"message\":\"OOMKilled\",\"templateName\":\"train\",\"phase\":\"Failed\",\"podName\":\"nightly-1-train\",\"finishedAt\":\"2026-11-24T02:00:12Z\"}]"`
	nightly := func(n int, phase, created, failures string) string {
		return fmt.Sprintf(`{"namespace":"ml","workflowName":"nightly-%d","uid":"u%d","cronWorkflow":"nightly","phase":%q,`+
			`"scheduledTime":%q,"createdAt":%q,"durationSeconds":12.5,"failures":%s,`+
			`"labels":{"workflows.argoproj.io/cron-workflow":"nightly"},"annotations":{"batchlatch.io/failure-threshold":"2"}}`,
			n, n, phase, created, created, failures)
	}
	plainArray := `[{"displayName":"eval","message":"exit code 1","phase":"Failed"}]`

	// Operations and health first.
	ct.do(call{method: "GET", path: "/api/openapi.yaml", status: 200})
	ct.do(call{method: "GET", path: "/healthz", status: 200})
	ct.do(call{method: "GET", path: "/readyz", status: 200})

	// Results: a streak, its recovery and a new streak; a CronJob; the
	// namespace as a whole.
	for _, body := range []string{
		nightly(1, "Failed", "2026-11-24T01:00:00Z", failures),
		nightly(1, "Failed", "2026-11-24T01:00:00Z", failures), // duplicate
		nightly(2, "Failed", "2026-11-24T02:00:00Z", failures),
		nightly(3, "Succeeded", "2026-11-24T03:00:00Z", `"null"`),
		nightly(4, "Failed", "2026-11-24T04:00:00Z", plainArray),
		nightly(0, "Failed", "2026-11-23T23:00:00Z", "null"), // stale
		`{"namespace":"ml","workflowName":"backup-29000000","uid":"c1","cronJob":"backup","phase":"Succeeded","createdAt":"2026-11-24T04:00:00Z"}`,
		`{"namespace":"etl","workflowName":"manual-1","phase":"Error"}`,
	} {
		ct.do(call{method: "POST", path: "/api/v1/results", contentType: appJSON, body: body, auth: w, status: 200})
	}
	ct.do(call{method: "POST", path: "/api/v1/results", contentType: "application/json; charset=utf-8", body: nightly(5, "Failed", "2026-11-24T04:30:00Z", "null"), auth: w, status: 200})
	ct.do(call{method: "GET", path: "/metrics", status: 200})

	good := nightly(9, "Failed", "2026-11-24T04:50:00Z", "null")
	for _, c := range []call{
		{body: good, contentType: appJSON, status: 401, offContract: true},
		{body: good, contentType: appJSON, auth: "Bearer wrong", status: 401},
		{body: good, contentType: "text/plain", auth: w, status: 415, offContract: true},
		{body: good, auth: w, status: 415, offContract: true},
		{body: `{"namespace":"ml","workflowName":"w","phase":"Failed","annotations":{"x":"` + strings.Repeat("a", MaxBodyBytes) + `"}}`, contentType: appJSON, auth: w, status: 413},
		{body: `{"namespace":"ml",`, contentType: appJSON, auth: w, status: 400, offContract: true},
		{body: `{"namespace":"Not Valid","workflowName":"w","phase":"Failed"}`, contentType: appJSON, auth: w, status: 400, offContract: true},
		{body: `{"namespace":"ml","workflowName":"w","phase":"Running"}`, contentType: appJSON, auth: w, status: 400, offContract: true},
		{body: `{"namespace":"ml","workflowName":"w","phase":"Failed","uid":7}`, contentType: appJSON, auth: w, status: 400, offContract: true},
		// Degraded, not refused: recorded without the field, with a warning.
		{body: `{"namespace":"ml","workflowName":"w","phase":"Failed","durationSeconds":"long"}`, contentType: appJSON, auth: w, status: 200, offContract: true},
		{body: `{"namespace":"ml","workflowName":"w2","phase":"Failed","annotations":{"batchlatch.io/failure-threshold":"0"}}`, contentType: appJSON, auth: w, status: 200, offContract: true},
		{body: `{"namespace":"ml","workflowName":"w3","phase":"Failed","createdAt":"2099-01-01T00:00:00Z"}`, contentType: appJSON, auth: w, status: 200},
	} {
		c.method, c.path = "POST", "/api/v1/results"
		ct.do(c)
	}

	// Reads, with every credential a read takes.
	ct.do(call{method: "GET", path: "/api/v1/failures", auth: r, status: 200})
	ct.do(call{method: "GET", path: "/api/v1/failures?namespace=ml", auth: basic, status: 200})
	ct.do(call{method: "GET", path: "/api/v1/failures?namespace=other", auth: w, status: 200})
	ct.do(call{method: "GET", path: "/api/v1/failures?namespace=a.b", auth: r, status: 400, offContract: true})
	ct.do(call{method: "GET", path: "/api/v1/failures", status: 401, offContract: true})
	ct.do(call{method: "GET", path: "/api/v1/jobs", auth: r, status: 200})
	ct.do(call{method: "GET", path: "/api/v1/jobs", auth: "Bearer wrong", status: 401})
	ct.do(call{method: "GET", path: "/api/v1/jobs/ml", auth: r, status: 200})
	ct.do(call{method: "GET", path: "/api/v1/jobs/nope", auth: r, status: 200})
	ct.do(call{method: "GET", path: "/api/v1/jobs/A", auth: r, status: 400, offContract: true})
	ct.do(call{method: "GET", path: "/api/v1/jobs/ml", status: 401, offContract: true})
	// Pages: a continue token and what it gives, a bad limit, a token not given.
	page := decode[api.JobList](t, ct.do(call{method: "GET", path: "/api/v1/jobs?limit=2", auth: r, status: 200}))
	if page.Continue == "" {
		t.Fatalf("GET /api/v1/jobs?limit=2 gave no continue: %+v", page)
	}
	ct.do(call{method: "GET", path: "/api/v1/jobs?limit=2&continue=" + page.Continue, auth: r, status: 200})
	ct.do(call{method: "GET", path: "/api/v1/jobs/ml?continue=" + page.Continue, auth: r, status: 400})
	ct.do(call{method: "GET", path: "/api/v1/failures?limit=1", auth: r, status: 200})
	ct.do(call{method: "GET", path: "/api/v1/failures?continue=bm90IGEgdG9rZW4", auth: r, status: 400})
	ct.do(call{method: "GET", path: "/api/v1/jobs?limit=0", auth: r, status: 400, offContract: true})
	ct.do(call{method: "GET", path: "/api/v1/jobs/ml?limit=1001", auth: r, status: 400, offContract: true})
	for _, path := range []string{"/api/v1/jobs/ml/nightly", "/api/v1/jobs/ml/nightly?kind=Workflow", "/api/v1/jobs/ml/backup?kind=CronJob", "/api/v1/jobs/etl/-"} {
		ct.do(call{method: "GET", path: path, auth: r, status: 200})
	}
	ct.do(call{method: "GET", path: "/api/v1/jobs/ml/missing", auth: r, status: 404})
	ct.do(call{method: "GET", path: "/api/v1/jobs/ml/nightly?kind=Cron", auth: r, status: 400, offContract: true})
	ct.do(call{method: "GET", path: "/api/v1/jobs/ml/B.C", auth: r, status: 400, offContract: true})
	ct.do(call{method: "GET", path: "/api/v1/jobs/ml/nightly", status: 401, offContract: true})

	// Silences.
	var created api.Silence
	body := ct.do(call{method: "POST", path: "/api/v1/silences", contentType: appJSON, auth: w, status: 201,
		body: `{"namespace":"ml","job":"nightly","for":"2h","reason":"the GPU pool is being replaced","createdBy":"alice"}`})
	if err := json.Unmarshal(body, &created); err != nil || created.ID == "" {
		t.Fatalf("created silence: %v %s", err, body)
	}
	ct.do(call{method: "POST", path: "/api/v1/silences", contentType: appJSON, auth: w, status: 201,
		body: `{"namespace":"etl","endsAt":"2026-11-25T00:00:00Z","reason":"migration"}`})
	ct.do(call{method: "POST", path: "/api/v1/silences", contentType: appJSON, auth: w, status: 201,
		body: `{"namespace":"ml","job":"backup","kind":"CronJob","for":"30m","reason":"restore test"}`})
	// A namespace never seen: taken, with a warning; days in for.
	body = ct.do(call{method: "POST", path: "/api/v1/silences", contentType: appJSON, auth: w, status: 201,
		body: `{"namespace":"nowhere","for":"2d12h","reason":"ahead of the first run"}`})
	if created := decode[api.SilenceCreated](t, body); len(created.Warnings) != 1 {
		t.Errorf("a silence of a namespace never seen: %s", body)
	}
	badSilence := `{"namespace":"ml","for":"2h","reason":"x"}`
	for _, c := range []call{
		{body: badSilence, contentType: appJSON, status: 401, offContract: true},
		{body: badSilence, contentType: "text/plain", auth: w, status: 415, offContract: true},
		{body: `{"namespace":"ml","for":"2h","reason":"` + strings.Repeat("r", 9<<10) + `"}`, contentType: appJSON, auth: w, status: 413, offContract: true},
		{body: `{"namespace":"ml","for":"2h","reason":"x","until":"tomorrow"}`, contentType: appJSON, auth: w, status: 400, offContract: true},
		{body: `{"namespace":"ml","reason":"x"}`, contentType: appJSON, auth: w, status: 400, offContract: true},
		{body: `{"namespace":"ml","endsAt":"2026-11-25T00:00:00Z","for":"2h","reason":"x"}`, contentType: appJSON, auth: w, status: 400, offContract: true},
		{body: `{"namespace":"ml","kind":"CronJob","for":"2h","reason":"x"}`, contentType: appJSON, auth: w, status: 400, offContract: true},
		{body: `{"namespace":"ml","for":"2h","reason":"   "}`, contentType: appJSON, auth: w, status: 400, offContract: true},
		{body: `{"namespace":"ml","for":"800h","reason":"x"}`, contentType: appJSON, auth: w, status: 400},
	} {
		c.method, c.path = "POST", "/api/v1/silences"
		ct.do(c)
	}
	ct.do(call{method: "GET", path: "/api/v1/silences", auth: r, status: 200})
	ct.do(call{method: "GET", path: "/api/v1/silences", status: 401, offContract: true})
	ct.do(call{method: "GET", path: "/api/v1/jobs/ml/nightly", auth: r, status: 200}) // silenced
	ct.do(call{method: "GET", path: "/api/v1/jobs", auth: r, status: 200})

	// Pages.
	ct.do(call{method: "GET", path: "/", auth: basic, status: 200})
	ct.do(call{method: "GET", path: "/?namespace=ml", auth: r, status: 200})
	ct.do(call{method: "GET", path: "/?namespace=A", auth: r, status: 400, offContract: true})
	ct.do(call{method: "GET", path: "/?page=2", auth: r, status: 200})
	ct.do(call{method: "GET", path: "/?page=0", auth: r, status: 400, offContract: true})
	ct.do(call{method: "GET", path: "/", status: 401, offContract: true})
	ct.do(call{method: "GET", path: "/jobs/ml/nightly", auth: basic, status: 200})
	ct.do(call{method: "GET", path: "/jobs/ml/backup?kind=CronJob", auth: basic, status: 200})
	ct.do(call{method: "GET", path: "/jobs/etl/-", auth: basic, status: 200})
	ct.do(call{method: "GET", path: "/jobs/ml/missing", auth: basic, status: 404})
	ct.do(call{method: "GET", path: "/jobs/ml/B", auth: basic, status: 400, offContract: true})
	ct.do(call{method: "GET", path: "/jobs/ml/nightly", status: 401, offContract: true})

	// Ending a silence, forgetting a job.
	ct.do(call{method: "DELETE", path: "/api/v1/silences/" + created.ID, auth: w, status: 204})
	ct.do(call{method: "DELETE", path: "/api/v1/silences/" + created.ID, auth: w, status: 404})
	ct.do(call{method: "DELETE", path: "/api/v1/silences/not-an-id", auth: w, status: 400, offContract: true})
	ct.do(call{method: "DELETE", path: "/api/v1/silences/" + created.ID, status: 401, offContract: true})
	ct.do(call{method: "DELETE", path: "/api/v1/jobs/ml/backup?kind=CronJob", auth: w, status: 204})
	ct.do(call{method: "DELETE", path: "/api/v1/jobs/ml/backup?kind=CronJob", auth: w, status: 404})
	ct.do(call{method: "DELETE", path: "/api/v1/jobs/a.b/c", auth: w, status: 400, offContract: true})
	ct.do(call{method: "DELETE", path: "/api/v1/jobs/ml/" + strings.Repeat("j", 252), auth: w, status: 400}) // key over 253
	ct.do(call{method: "DELETE", path: "/api/v1/jobs/ml/nightly", status: 401, offContract: true})

	// The store down, unreadable or full, on every route that uses it.
	storeCalls := []call{
		{method: "POST", path: "/api/v1/results", contentType: appJSON, body: good, auth: w},
		{method: "GET", path: "/api/v1/failures", auth: r},
		{method: "GET", path: "/api/v1/jobs", auth: r},
		{method: "GET", path: "/api/v1/jobs/ml", auth: r},
		{method: "GET", path: "/api/v1/jobs/ml/nightly", auth: r},
		{method: "DELETE", path: "/api/v1/jobs/ml/nightly", auth: w},
		{method: "POST", path: "/api/v1/silences", contentType: appJSON, body: badSilence, auth: w},
		{method: "GET", path: "/api/v1/silences", auth: r},
		{method: "DELETE", path: "/api/v1/silences/0123456789abcdef", auth: w},
		{method: "GET", path: "/", auth: r},
		{method: "GET", path: "/jobs/ml/nightly", auth: r},
	}
	for _, c := range storeCalls {
		for fault, status := range map[error]int{unavailable: 503, corrupt: 500} {
			c.fault, c.status = fault, status
			ct.do(c)
		}
	}
	for _, c := range storeCalls {
		if c.method == "POST" {
			c.fault, c.status = full, 507
			ct.do(c)
		}
	}
	ct.do(call{method: "GET", path: "/readyz", fault: unavailable, status: 503})
	ct.do(call{method: "GET", path: "/metrics", fault: unavailable, status: 500})

	// Past its class's cap, every route of the class answers 429 with
	// Retry-After: on a server with caps of 1, one request of the class is
	// held in the store (/metrics in its gathering) while each route is
	// called. (With caps of 1 on the scenario's server, a request could find
	// the slot of the one before it not yet given back: the handler ends
	// after the answer's last byte.)
	capped := newContract(t, writeToken, readToken, InFlight{Scrapes: 1, Pages: 1, Reads: 1, Writes: 1})
	for _, class := range []struct {
		held  call
		calls []call
	}{
		{call{method: "GET", path: "/metrics"}, []call{{method: "GET", path: "/metrics"}}},
		{call{method: "GET", path: "/", auth: r}, []call{
			{method: "GET", path: "/", auth: r},
			{method: "GET", path: "/jobs/ml/nightly", auth: basic},
		}},
		{call{method: "GET", path: "/api/v1/jobs", auth: r}, []call{
			{method: "GET", path: "/api/v1/failures", auth: r},
			{method: "GET", path: "/api/v1/jobs", auth: r},
			{method: "GET", path: "/api/v1/jobs/ml", auth: r},
			{method: "GET", path: "/api/v1/jobs/ml/nightly", auth: r},
			{method: "GET", path: "/api/v1/silences", auth: r},
			{method: "GET", path: "/api/openapi.yaml"},
		}},
		{call{method: "POST", path: "/api/v1/results", contentType: appJSON, body: good, auth: w}, []call{
			{method: "POST", path: "/api/v1/results", contentType: appJSON, body: good, auth: w},
			{method: "DELETE", path: "/api/v1/jobs/ml/nightly", auth: w},
			{method: "POST", path: "/api/v1/silences", contentType: appJSON, body: badSilence, auth: w},
			{method: "DELETE", path: "/api/v1/silences/0123456789abcdef", auth: w},
		}},
	} {
		release := capped.store.holdCalls()
		held := make(chan int, 1)
		go func() {
			req, _ := http.NewRequest(class.held.method, capped.srv.URL+class.held.path, strings.NewReader(class.held.body))
			setHeaders(req.Header, class.held)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				held <- 0
				return
			}
			resp.Body.Close()
			held <- resp.StatusCode
		}()
		testwait.Poll(t.Context(), patience, func(context.Context) (bool, string, error) { return capped.store.holding.Load() > 0, "", nil })
		if capped.store.holding.Load() == 0 {
			release()
			t.Fatalf("%s %s never reached the store", class.held.method, class.held.path)
		}
		for _, c := range class.calls {
			c.status = http.StatusTooManyRequests
			capped.do(c)
		}
		release()
		select {
		case <-held:
		case <-time.After(patience):
			t.Fatalf("%s %s, held, never ended", class.held.method, class.held.path)
		}
	}
	for op, statuses := range capped.seen {
		for status := range statuses {
			if ct.seen[op] == nil {
				ct.seen[op] = map[int]bool{}
			}
			ct.seen[op][status] = true
		}
	}

	// Every status the document lists was reached.
	for path, item := range ct.doc.Paths.Map() {
		for method, op := range item.Operations() {
			for code := range op.Responses.Map() {
				status, err := strconv.Atoi(code)
				if err != nil {
					t.Errorf("%s %s: response %q is not a status the scenario can reach", method, path, code)
					continue
				}
				if !ct.seen[op.OperationID][status] {
					t.Errorf("%s %s (%s) documents %d, which the scenario never got", method, path, op.OperationID, status)
				}
			}
		}
	}

	// Unknown routes and methods have no operation; their bodies are still
	// the document's ErrorBody.
	errorBody := ct.doc.Components.Schemas["ErrorBody"].Value
	for _, c := range []call{
		{method: "GET", path: "/api/v1/nothing", status: 404},
		{method: "PUT", path: "/api/v1/results", status: 405},
		{method: "POST", path: "/api/v1/failures", status: 405},
	} {
		req, _ := http.NewRequest(c.method, ct.srv.URL+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var v any
		if resp.StatusCode != c.status || json.Unmarshal(data, &v) != nil {
			t.Errorf("%s %s: %d %s, want %d with an ErrorBody", c.method, c.path, resp.StatusCode, data, c.status)
			continue
		}
		if err := errorBody.VisitJSON(v); err != nil {
			t.Errorf("%s %s: the %d body is not the document's ErrorBody: %v", c.method, c.path, resp.StatusCode, err)
		}
	}
}

// The document is what the server serves, byte for byte.
func TestOpenAPIIsServed(t *testing.T) {
	f := newFixture(t, "s3cret")
	code, header, body := f.do("GET", "/api/openapi.yaml", "", "", false)
	if code != 200 || header.Get("Content-Type") != "application/yaml" || !bytes.Equal(body, api.OpenAPI) {
		t.Fatalf("GET /api/openapi.yaml without a token: %d %q, %d bytes (want %d)", code, header.Get("Content-Type"), len(body), len(api.OpenAPI))
	}
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
