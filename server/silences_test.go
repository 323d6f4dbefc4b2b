package server

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/batchlatch/batchlatch/api"
)

func TestSilenceLifecycle(t *testing.T) {
	f := newFixture(t, "s3cret")
	if code, data := f.post(result("nightly", "u1", "Failed", now.Add(-time.Hour))); code != 200 {
		t.Fatalf("%d %s", code, data)
	}
	if code, data := f.post(result("hourly", "h1", "Failed", now.Add(-time.Hour))); code != 200 {
		t.Fatalf("%d %s", code, data)
	}
	kicks := f.kicker.kicks.Load()

	// Without the token: 401, nothing stored.
	body := `{"namespace":"ml","job":"nightly","for":"2h","reason":"migrating the cluster","createdBy":"ana"}`
	if code, _, _ := f.do("POST", "/api/v1/silences", "application/json", body, false); code != 401 {
		t.Fatalf("unauthenticated silence: %d", code)
	}
	code, _, data := f.do("POST", "/api/v1/silences", "application/json", body, true)
	created := decode[api.Silence](t, data)
	if code != 201 || len(created.ID) != 16 || created.Namespace != "ml" || created.Job != "nightly" || created.Kind != api.KindWorkflow ||
		!created.StartsAt.Equal(now) || !created.EndsAt.Equal(now.Add(2*time.Hour)) || created.Reason != "migrating the cluster" || created.CreatedBy != "ana" {
		t.Fatalf("create: %d %s", code, data)
	}
	if f.kicker.kicks.Load() == kicks {
		t.Error("creating a silence did not wake the alarm loop")
	}

	// The silenced job says so and is not alerting; the other one is.
	_, _, data = f.do("GET", "/api/v1/jobs/ml/nightly", "", "", false)
	if j := decode[api.Job](t, data); !j.Failing || j.Alerting || j.Silenced == nil || j.Silenced.ID != created.ID {
		t.Errorf("silenced job: %s", data)
	}
	_, _, data = f.do("GET", "/api/v1/jobs/ml/hourly", "", "", false)
	if j := decode[api.Job](t, data); !j.Alerting || j.Silenced != nil {
		t.Errorf("other job: %s", data)
	}
	_, _, data = f.do("GET", "/api/v1/silences", "", "", false)
	if l := decode[api.SilenceList](t, data); len(l.Silences) != 1 || l.Silences[0].ID != created.ID {
		t.Errorf("list: %s", data)
	}

	// A namespace's silence mutes every job in it.
	code, _, data = f.do("POST", "/api/v1/silences", "application/json", `{"namespace":"ml","endsAt":"`+now.Add(time.Hour).Format(time.RFC3339)+`","reason":"maintenance"}`, true)
	if code != 201 {
		t.Fatalf("namespace silence: %d %s", code, data)
	}
	whole := decode[api.Silence](t, data)
	_, _, data = f.do("GET", "/api/v1/jobs/ml/hourly", "", "", false)
	if j := decode[api.Job](t, data); j.Alerting || j.Silenced == nil || j.Silenced.ID != whole.ID {
		t.Errorf("job under a namespace silence: %s", data)
	}

	// Deleting ends it; twice is a 404.
	if code, _, _ := f.do("DELETE", "/api/v1/silences/"+whole.ID, "", "", true); code != 204 {
		t.Fatalf("delete: %d", code)
	}
	if code, _, data := f.do("DELETE", "/api/v1/silences/"+whole.ID, "", "", true); code != 404 || !strings.Contains(string(data), "silence not found") {
		t.Errorf("second delete: %d %s", code, data)
	}
	_, _, data = f.do("GET", "/api/v1/jobs/ml/hourly", "", "", false)
	if j := decode[api.Job](t, data); !j.Alerting || j.Silenced != nil {
		t.Errorf("after the namespace silence was deleted: %s", data)
	}
}

func TestSilenceExpiresByItself(t *testing.T) {
	f := newFixture(t, "")
	clock := now
	f.srv.Config.Handler = NewServer(discardLogger(), f.store, f.kicker, newRegistry(), NewMetrics(newRegistry()), Config{Now: func() time.Time { return clock }})
	f.post(result("nightly", "u1", "Failed", now.Add(-time.Hour)))
	if code, _, data := f.do("POST", "/api/v1/silences", "application/json", `{"namespace":"ml","job":"nightly","for":"30m","reason":"r"}`, true); code != 201 {
		t.Fatalf("%d %s", code, data)
	}
	clock = now.Add(30 * time.Minute)
	_, _, data := f.do("GET", "/api/v1/jobs/ml/nightly", "", "", false)
	if j := decode[api.Job](t, data); !j.Alerting || j.Silenced != nil {
		t.Errorf("after its end: %s", data)
	}
	_, _, data = f.do("GET", "/api/v1/silences", "", "", false)
	if !strings.Contains(string(data), `"silences":[]`) {
		t.Errorf("ended silences are listed: %s", data)
	}
}

func TestSilenceOfAnUnknownJobWarns(t *testing.T) {
	f := newFixture(t, "")
	watched := func(kind, namespace, name string, _ time.Time) *api.Schedule {
		if kind == api.KindWorkflow && namespace == "ml" && name == "hourly" {
			return &api.Schedule{Kind: "CronWorkflow", Schedules: []string{"0 * * * *"}}
		}
		return nil
	}
	f.srv.Config.Handler = NewServer(discardLogger(), f.store, f.kicker, newRegistry(), NewMetrics(newRegistry()), Config{Now: func() time.Time { return now }, Schedules: watched})
	f.post(result("nightly", "u1", "Failed", now.Add(-time.Hour)))
	for _, tc := range []struct {
		body string
		want string // in the one warning; "": none
	}{
		{`{"namespace":"ml","job":"nightly","for":"1h","reason":"r"}`, ""},
		{`{"namespace":"ml","for":"1h","reason":"r"}`, ""},
		// A watched CronWorkflow that has not run yet is known.
		{`{"namespace":"ml","job":"hourly","for":"1h","reason":"r"}`, ""},
		{`{"namespace":"ml","job":"nightlly","for":"1h","reason":"r"}`, `job "nightlly" (Workflow) of namespace "ml"`},
		{`{"namespace":"ml","job":"nightly","kind":"CronJob","for":"1h","reason":"r"}`, `job "nightly" (CronJob) of namespace "ml"`},
		{`{"namespace":"mll","for":"1h","reason":"r"}`, `a job of namespace "mll"`},
	} {
		code, _, data := f.do("POST", "/api/v1/silences", "application/json", tc.body, true)
		created := decode[api.SilenceCreated](t, data)
		if code != 201 || created.ID == "" {
			t.Errorf("%s: %d %s", tc.body, code, data)
			continue
		}
		switch {
		case tc.want == "" && created.Warnings != nil:
			t.Errorf("%s: warnings %q, want none", tc.body, created.Warnings)
		case tc.want != "" && (len(created.Warnings) != 1 || !strings.Contains(created.Warnings[0], tc.want)):
			t.Errorf("%s: warnings %q, want one naming %s", tc.body, created.Warnings, tc.want)
		}
	}
	// Silenced all the same: a silence may precede its job.
	if s, _ := f.store.Silences(t.Context()); len(s) != 6 {
		t.Errorf("stored %d silences, want 6", len(s))
	}
}

func TestSilenceForTakesDays(t *testing.T) {
	f := newFixture(t, "")
	for _, tc := range []struct {
		for_ string
		want time.Duration
	}{
		{"1d", 24 * time.Hour},
		{"2d12h", 60 * time.Hour},
		{"1w", 7 * 24 * time.Hour},
		{"30d", api.MaxSilence},
		{"90m", 90 * time.Minute},
		{"1.5h", 90 * time.Minute},
		{"1h30m", 90 * time.Minute},
	} {
		code, _, data := f.do("POST", "/api/v1/silences", "application/json", `{"namespace":"ml","for":"`+tc.for_+`","reason":"r"}`, true)
		if s := decode[api.Silence](t, data); code != 201 || !s.EndsAt.Equal(now.Add(tc.want)) {
			t.Errorf("for %s: %d %s, want it to end at %s", tc.for_, code, data, now.Add(tc.want).Format(time.RFC3339))
		}
	}
	for _, for_ := range []string{"31d", "30d1s", "1y", "1d-1h", "-1d", "1h1d", "d", "0d"} {
		code, _, data := f.do("POST", "/api/v1/silences", "application/json", `{"namespace":"ml","for":"`+for_+`","reason":"r"}`, true)
		if got := decode[api.ErrorBody](t, data); code != 400 || got.Error.Field != "for" {
			t.Errorf("for %s: %d %s, want 400 naming for", for_, code, data)
		}
	}
}

func TestSilenceRequestsAreValidated(t *testing.T) {
	f := newFixture(t, "")
	in := func(d time.Duration) string { return now.Add(d).Format(time.RFC3339) }
	for _, tc := range []struct{ body, field string }{
		{`{"job":"nightly","for":"1h","reason":"r"}`, "namespace"},
		{`{"namespace":"ML","for":"1h","reason":"r"}`, "namespace"},
		{`{"namespace":"ml","job":"Bad_Name","for":"1h","reason":"r"}`, "job"},
		{`{"namespace":"ml","kind":"CronJob","for":"1h","reason":"r"}`, "kind"},
		{`{"namespace":"ml","job":"a","kind":"Pod","for":"1h","reason":"r"}`, "kind"},
		{`{"namespace":"ml","reason":"r"}`, "endsAt"},
		{`{"namespace":"ml","for":"1h","endsAt":"` + in(time.Hour) + `","reason":"r"}`, "for"},
		{`{"namespace":"ml","for":"soon","reason":"r"}`, "for"},
		{`{"namespace":"ml","for":"-1h","reason":"r"}`, "for"},
		{`{"namespace":"ml","for":"721h","reason":"r"}`, "for"},
		{`{"namespace":"ml","endsAt":"` + in(31*24*time.Hour) + `","reason":"r"}`, "endsAt"},
		{`{"namespace":"ml","endsAt":"` + in(-time.Minute) + `","reason":"r"}`, "endsAt"},
		{`{"namespace":"ml","endsAt":"tomorrow","reason":"r"}`, "endsAt"},
		{`{"namespace":"ml","for":"1h"}`, "reason"},
		{`{"namespace":"ml","for":"1h","reason":"  "}`, "reason"},
		{`{"namespace":"ml","for":"1h","reason":"` + strings.Repeat("x", 1025) + `"}`, "reason"},
		{`{"namespace":"ml","for":"1h","reason":"r","ends":"x"}`, "ends"},
		{`{"namespace":"ml","for":1,"reason":"r"}`, "for"},
		// Decoded as strictly as a callback: what two JSON readers could
		// read differently is refused.
		{`{"namespace":"ml","namespace":"ml-b","for":"1h","reason":"r"}`, "namespace"},
		{`{"namespace":"ml","NAMESPACE":"ml-b","for":"1h","reason":"r"}`, "NAMESPACE"},
		{`{"Namespace":"ml","for":"1h","reason":"r"}`, "Namespace"},
		{`{"namespace":"ml","for":"1h","reason":"r"} {"namespace":"ml-b"}`, ""},
		{`[{"namespace":"ml","for":"1h","reason":"r"}]`, ""},
		// RFC 3339 has no offset beyond 23:59 (Go's time.Parse takes it).
		{`{"namespace":"ml","endsAt":"` + now.Add(25*time.Hour).UTC().Format("2006-01-02T15:04:05") + `+24:00","reason":"r"}`, "endsAt"},
	} {
		code, _, data := f.do("POST", "/api/v1/silences", "application/json", tc.body, true)
		if got := decode[api.ErrorBody](t, data); code != 400 || got.Error.Field != tc.field {
			t.Errorf("%.80s: %d %s, want 400 naming %s", tc.body, code, data, tc.field)
		}
	}
	if code, _, data := f.do("DELETE", "/api/v1/silences/nothex", "", "", true); code != 400 {
		t.Errorf("bad id: %d %s", code, data)
	}
	// Nothing was stored.
	if s, _ := f.store.Silences(t.Context()); len(s) != 0 {
		t.Errorf("stored %v", s)
	}
}

func TestReadTokenGuardsReads(t *testing.T) {
	f := newFixture(t, "writer")
	f.srv.Config.Handler = NewServer(discardLogger(), f.store, f.kicker, newRegistry(), NewMetrics(newRegistry()), Config{Token: "writer", ReadToken: "reader", Now: func() time.Time { return now }})
	get := func(path string, set func(*http.Request)) int {
		req, _ := http.NewRequest("GET", f.srv.URL+path, nil)
		set(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, path := range []string{"/api/v1/failures", "/api/v1/jobs", "/api/v1/jobs/ml", "/api/v1/silences"} {
		for name, tc := range map[string]struct {
			set  func(*http.Request)
			want int
		}{
			"none":         {func(*http.Request) {}, 401},
			"wrong":        {func(r *http.Request) { r.Header.Set("Authorization", "Bearer nope") }, 401},
			"read bearer":  {func(r *http.Request) { r.Header.Set("Authorization", "Bearer reader") }, 200},
			"write bearer": {func(r *http.Request) { r.Header.Set("Authorization", "Bearer writer") }, 200},
			"lower case":   {func(r *http.Request) { r.Header.Set("Authorization", "bearer reader") }, 200},
			"upper case":   {func(r *http.Request) { r.Header.Set("Authorization", "BEARER writer") }, 200},
			"basic lower":  {func(r *http.Request) { r.Header.Set("Authorization", "basic YW55b25lOnJlYWRlcg==") }, 200},
			"other scheme": {func(r *http.Request) { r.Header.Set("Authorization", "Token reader") }, 401},
			"basic":        {func(r *http.Request) { r.SetBasicAuth("anyone", "reader") }, 200},
			"basic wrong":  {func(r *http.Request) { r.SetBasicAuth("reader", "x") }, 401},
			// The way through the API server's service proxy.
			"header read":  {func(r *http.Request) { r.Header.Set(api.TokenHeader, "reader") }, 200},
			"header write": {func(r *http.Request) { r.Header.Set(api.TokenHeader, "writer") }, 200},
			"header wrong": {func(r *http.Request) { r.Header.Set(api.TokenHeader, "Bearer reader") }, 401},
		} {
			if got := get(path, tc.set); got != tc.want {
				t.Errorf("GET %s with %s: %d, want %d", path, name, got, tc.want)
			}
		}
	}
	// Health and metrics stay open: probes and scrapers carry no token.
	for _, path := range []string{"/healthz", "/metrics"} {
		if got := get(path, func(*http.Request) {}); got != 200 {
			t.Errorf("GET %s: %d", path, got)
		}
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newRegistry() *prometheus.Registry { return prometheus.NewRegistry() }
