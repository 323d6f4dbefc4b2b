package examples_test

// The shipped alerts on refused callbacks (examples/terraform/refused.tf and
// examples/terraform/prometheus/refused.tf) against what the server really
// logs and counts when it refuses a callback.

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/zclconf/go-cty/cty"

	"github.com/batchlatch/batchlatch/server"
	"github.com/batchlatch/batchlatch/state/filestore"
)

// lockedBuffer is the service's stderr.
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

// refusingServer is the real server with the log the binary writes (JSON,
// "message" and "severity" as cmd/batchlatch's newLogger names them, which
// the README's walk-through test checks), a registry, and a token.
func refusingServer(t *testing.T) (*httptest.Server, *lockedBuffer, *prometheus.Registry) {
	t.Helper()
	store, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	stderr := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
		switch {
		case len(groups) > 0:
		case a.Key == slog.LevelKey:
			a.Key = "severity"
		case a.Key == slog.MessageKey:
			a.Key = "message"
		}
		return a
	}}))
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(server.NewServer(logger, store, noKick{}, reg, server.NewMetrics(reg), server.Config{Token: "secret"}))
	t.Cleanup(srv.Close)
	return srv, stderr, reg
}

func postCallback(t *testing.T, srv *httptest.Server, body, token string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", srv.URL+"/api/v1/results", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// The log-based metric counts exactly the refusal lines of batchlatch's own
// log, as GKE's agent files them, with their namespace and reason.
func TestTerraformRefusalMetricMatchesTheLog(t *testing.T) {
	e := loadTerraform(t).eval(t, map[string]cty.Value{})
	metric := e.get(t, logMetricType+".refused")
	policy := e.get(t, policyType+".refused")

	srv, stderr, _ := refusingServer(t)
	for _, c := range []struct {
		body, token string
		status      int
	}{
		{`{"namespace":"ml","workflowName":"w","cronWorkflow":"nightly","phase":"Running"}`, "secret", 400},
		{`{"namespace":"Not Valid","workflowName":"w","phase":"Failed"}`, "secret", 400},
		{`{"namespace":"ml","workflowName":"w","phase":"Failed"}`, "stale-token", 401},
		// Recorded, with a warning: not a refusal.
		{`{"namespace":"ml","workflowName":"w","cronWorkflow":"nightly","phase":"Failed","annotations":{"batchlatch.io/failure-threshold":"abc"}}`, "secret", 200},
		{`{"namespace":"ml","workflowName":"w2","cronWorkflow":"nightly","phase":"Failed"}`, "secret", 200},
	} {
		if got := postCallback(t, srv, c.body, c.token); got != c.status {
			t.Fatalf("%s: %d, want %d", c.body, got, c.status)
		}
	}

	clauses := parseFilter(t, metric.str("filter"))
	extractors := metric.stringMap("label_extractors")
	var got [][2]string
	for l := range strings.Lines(stderr.String()) {
		var payload map[string]any
		if err := json.Unmarshal([]byte(l), &payload); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		entry := map[string]any{
			"logName":     "projects/" + testProject + "/logs/stderr",
			"jsonPayload": payload,
			"resource": map[string]any{"type": "k8s_container", "labels": map[string]any{
				"project_id": testProject, "namespace_name": "batchlatch", "container_name": "batchlatch", "pod_name": "batchlatch-abc",
			}},
		}
		refusal := payload["message"] == server.LogCallbackRefused
		if matches(entry, clauses) != refusal {
			t.Errorf("the filter matches = %v for %s", !refusal, l)
		}
		if !refusal {
			continue
		}
		if payload["severity"] != "WARN" {
			t.Errorf("a refusal logged at %v", payload["severity"])
		}
		var values [2]string
		for i, key := range []string{"namespace", "reason"} {
			m := extractRE.FindStringSubmatch(extractors[key])
			if m == nil {
				t.Fatalf("label_extractors[%q] = %q", key, extractors[key])
			}
			v, _ := lookup(entry, m[1])
			values[i], _ = v.(string)
		}
		got = append(got, values)
	}
	want := [][2]string{{"ml", "phase"}, {"", "namespace"}, {"", server.ReasonUnauthenticated}}
	if !slices.Equal(got, want) {
		t.Errorf("the metric counts (namespace, reason) %v, want %v", got, want)
	}
	if len(extractors) != 2 || len(metric.block("metric_descriptor").blocks["labels"]) != 2 {
		t.Errorf("label_extractors %v: want namespace and reason, declared in the descriptor", extractors)
	}

	// The policy: any refusal of a namespace and reason opens an incident.
	ct := policy.block("conditions").block("condition_threshold")
	if f := ct.str("filter"); !strings.Contains(f, `metric.type="logging.googleapis.com/user/`+metric.str("name")+`"`) {
		t.Errorf("the policy reads %q, not the refusal metric", f)
	}
	agg := ct.block("aggregations")
	if ct.str("comparison") != "COMPARISON_GT" || ct.num("threshold_value") != 0 || agg.str("cross_series_reducer") != "REDUCE_SUM" ||
		!slices.Equal(agg.strings("group_by_fields"), []string{"metric.label.namespace", "metric.label.reason"}) {
		t.Errorf("the policy's condition: %v %v, grouped by %v", ct.str("comparison"), ct.num("threshold_value"), agg.strings("group_by_fields"))
	}
	if !slices.Contains(policy.dependsOn, logMetricType+".refused") {
		t.Errorf("the policy does not depend on its metric: %v", policy.dependsOn)
	}
}

// The PromQL policy opens an incident for each namespace and reason with a
// refusal, the very first of a series included, and closes it once no more
// come: evaluated by Prometheus's engine over the counter as the server
// exports it and Managed Prometheus scrapes it.
func TestPrometheusRefusalPolicy(t *testing.T) {
	e := loadTerraformDir(t, promDir).eval(t, map[string]cty.Value{})
	c := e.get(t, policyType+".refused").block("conditions").block("condition_prometheus_query_language")
	query, duration, every := c.str("query"), c.duration("duration"), c.duration("evaluation_interval")
	if !strings.Contains(query, server.MetricCallbacksRefused) {
		t.Fatalf("the query does not read %s:\n%s", server.MetricCallbacksRefused, query)
	}

	// The server's counter and its labels, as scraped.
	srv, _, reg := refusingServer(t)
	postCallback(t, srv, `{"namespace":"ml","workflowName":"w","phase":"Running"}`, "secret")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var exported []string
	for _, f := range families {
		if f.GetName() != server.MetricCallbacksRefused {
			continue
		}
		for _, l := range f.GetMetric()[0].GetLabel() {
			name := l.GetName()
			if name == "namespace" || name == "job" {
				name = "exported_" + name // Managed Prometheus keeps the target's
			}
			exported = append(exported, name, l.GetValue())
		}
	}
	if !slices.Equal(exported, []string{"exported_namespace", "ml", "reason", "phase"}) {
		t.Fatalf("the server exports %v", exported)
	}

	// One replica scraped every 30 s for 2 hours. ml/phase: one refusal at
	// minute 30 (the series appears), three at minute 70. etl/job: the
	// first at minute 100.
	const until = 120
	st := teststorage.New(t)
	app := st.Appender(t.Context())
	series := func(namespace, reason string) labels.Labels {
		return labels.FromStrings("__name__", server.MetricCallbacksRefused, "project_id", testProject, "cluster", "prod",
			"namespace", "batchlatch", "job", "batchlatch", "instance", "a:http", "exported_namespace", namespace, "reason", reason)
	}
	for step := 0; time.Duration(step)*promScrape <= until*time.Minute; step++ {
		at := time.Duration(step)*promScrape + promScrapeOffset
		if at >= 30*time.Minute {
			v := 1.0
			if at >= 70*time.Minute {
				v = 4
			}
			if _, err := app.Append(0, series("ml", "phase"), at.Milliseconds(), v); err != nil {
				t.Fatal(err)
			}
		}
		if at >= 100*time.Minute {
			if _, err := app.Append(0, series("etl", "job"), at.Milliseconds(), 1); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	incidents := evaluatePromQL(t, st, query, duration, every, until)
	type span struct {
		namespace string
		from, to  int // minutes
	}
	want := []span{{"ml", 30, 40}, {"ml", 70, 80}, {"etl", 100, 110}}
	if len(incidents) != len(want) {
		t.Fatalf("%d incidents, want %d: %+v", len(incidents), len(want), incidents)
	}
	for i, in := range incidents {
		w := want[i]
		// Opened within a scrape and an evaluation of the refusal; closed
		// about 10 minutes after the last one.
		lag := promScrapeOffset + promScrape + every + duration
		opened, closed := in.opened-time.Duration(w.from)*time.Minute, in.closed-time.Duration(w.to)*time.Minute
		if !strings.Contains(in.labels, `exported_namespace="`+w.namespace+`"`) || opened < 0 || opened > lag || closed < -lag || closed > lag {
			t.Errorf("incident %d: %s opened %s after, closed %s after minute %d; want within %s", i, in.labels, opened, closed, w.to, lag)
		}
	}
}
