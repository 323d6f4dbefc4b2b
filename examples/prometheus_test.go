package examples_test

// The Prometheus path (examples/terraform/prometheus) evaluated with
// Prometheus's own PromQL engine over the series Managed Prometheus would
// hold for batchlatch's gauges, scenario by scenario: the incidents it opens
// per failure streak and their delays, as an alert policy with that query,
// duration and evaluation interval would.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/promqltest"
	"github.com/prometheus/prometheus/util/teststorage"
	"github.com/zclconf/go-cty/cty"

	"github.com/batchlatch/batchlatch/alarm"
	"github.com/batchlatch/batchlatch/api"
)

var promDir = filepath.Join(terraformDir, "prometheus")

// Managed Prometheus (FACTS.md): a series that stops being scraped is stale
// after 5 minutes; a scraped metric's labels that clash with the target's
// (namespace, job, …) are kept with the prefix "exported_".
const (
	promLookback = 5 * time.Minute
	promScrape   = 30 * time.Second
	// Scrapes happen this long after each evaluation: nothing lines them up.
	promScrapeOffset = 20 * time.Second
	// The metric batchlatch's alarm loop counts its passes in (alarm.Metrics).
	metricPasses = "batchlatch_alarm_passes_total"
)

var (
	labelJobNamespace = "exported_" + alarm.LabelNamespace
	labelJobName      = "exported_" + alarm.LabelJob
)

// promPod is a batchlatch replica scraped from minute from until minute to.
type promPod struct {
	name     string
	from, to int
}

// promScenario is a job's results (one per hour, say) and what happens to
// batchlatch's replicas and their scrapes meanwhile.
type promScenario struct {
	name    string
	results []result // minute, failed
	pods    []promPod
	// noScrape: minutes [from, to) with no scrape of any replica.
	noScrape [2]int
	// noGauges: minutes [from, to) in which the replicas are scraped but
	// export no per-job gauges (the state cannot be read).
	noGauges [2]int
	// noLeader: from this minute (when > 0), no replica runs the loop.
	noLeader int
	until    int
}

type result struct {
	minute int
	failed bool
}

func (s promScenario) failingAt(minute float64) (known, failing bool) {
	for _, r := range s.results {
		if float64(r.minute) <= minute {
			known, failing = true, r.failed
		}
	}
	return known, failing
}

// streaks are the failure streaks: from the first failed result to the next
// success (or the end).
func (s promScenario) streaks() [][2]int {
	var out [][2]int
	start := -1
	for _, r := range s.results {
		switch {
		case r.failed && start < 0:
			start = r.minute
		case !r.failed && start >= 0:
			out = append(out, [2]int{start, r.minute})
			start = -1
		}
	}
	if start >= 0 {
		out = append(out, [2]int{start, s.until})
	}
	return out
}

// seen is when a result at this minute is first scraped: the first scrape
// at or after it of a replica that exports the gauges.
func (s promScenario) seen(minute int) time.Duration {
	for step := 0; ; step++ {
		at := time.Duration(step)*promScrape + promScrapeOffset
		if at < time.Duration(minute)*time.Minute {
			continue
		}
		if at > time.Duration(s.until)*time.Minute {
			return at
		}
		m := at.Minutes()
		if in(s.noScrape, m) || in(s.noGauges, m) {
			continue
		}
		for _, p := range s.pods {
			if in([2]int{p.from, p.to}, m) {
				return at
			}
		}
	}
}

func in(span [2]int, minute float64) bool {
	return minute >= float64(span[0]) && minute < float64(span[1])
}

// storage holds what Managed Prometheus would have scraped: per replica and
// scrape, the job's gauge (with the target's labels) and the passes counter
// (which only the leader, the first replica up, advances once a minute).
func (s promScenario) storage(t *testing.T) *teststorage.TestStorage {
	t.Helper()
	st := teststorage.New(t)
	app := st.Appender(context.Background())
	target := func(pod string, more ...string) labels.Labels {
		return labels.FromStrings(append([]string{
			"project_id", testProject, "location", "europe-west1", "cluster", "prod",
			"namespace", "batchlatch", "job", "batchlatch", "instance", pod + ":http",
		}, more...)...)
	}
	passes := map[string]float64{}
	for step := 0; time.Duration(step)*promScrape <= time.Duration(s.until)*time.Minute; step++ {
		at := time.Duration(step)*promScrape + promScrapeOffset
		minute := at.Minutes()
		leader := ""
		for _, p := range s.pods {
			if !in([2]int{p.from, p.to}, minute) {
				continue
			}
			if leader == "" && (s.noLeader == 0 || minute < float64(s.noLeader)) {
				leader = p.name
				if step%2 == 0 {
					passes[p.name]++
				}
			}
			if in(s.noScrape, minute) {
				continue
			}
			ms := at.Milliseconds()
			if _, err := app.Append(0, target(p.name, "__name__", metricPasses), ms, passes[p.name]); err != nil {
				t.Fatal(err)
			}
			if known, failing := s.failingAt(minute); known && !in(s.noGauges, minute) {
				v := 0.0
				if failing {
					v = 1
				}
				gauge := target(p.name, "__name__", alarm.MetricJobAlerting, labelJobNamespace, "ml", labelJobName, "nightly", alarm.LabelKind, api.KindWorkflow)
				if _, err := app.Append(0, gauge, ms, v); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	return st
}

// promIncident is one incident of an alert policy with a PromQL condition:
// it opens when a result series has been there for the duration, at an
// evaluation, and closes at the first evaluation without it.
type promIncident struct {
	labels         string
	opened, closed time.Duration // closed is 0 while open
}

func evaluatePromQL(t *testing.T, st *teststorage.TestStorage, query string, duration, every time.Duration, until int) []promIncident {
	t.Helper()
	engine := promqltest.NewTestEngineWithOpts(t, promql.EngineOpts{MaxSamples: 10_000_000, Timeout: time.Minute, LookbackDelta: promLookback})
	start, end := time.Unix(0, 0), time.Unix(0, 0).Add(time.Duration(until)*time.Minute)
	q, err := engine.NewRangeQuery(context.Background(), st, nil, query, start, end, every)
	if err != nil {
		t.Fatalf("query %q: %v", query, err)
	}
	defer q.Close()
	res := q.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("query %q: %v", query, res.Err)
	}
	matrix, err := res.Matrix()
	if err != nil {
		t.Fatal(err)
	}
	var out []promIncident
	for _, series := range matrix {
		present := map[int64]bool{}
		for _, p := range series.Floats {
			present[p.T] = true
		}
		var pendingSince time.Duration = -1
		var open *promIncident
		for at := time.Duration(0); at <= end.Sub(start); at += every {
			if !present[at.Milliseconds()] {
				pendingSince = -1
				if open != nil {
					open.closed = at
					out = append(out, *open)
					open = nil
				}
				continue
			}
			if pendingSince < 0 {
				pendingSince = at
			}
			if open == nil && at-pendingSince >= duration {
				open = &promIncident{labels: series.Metric.String(), opened: at}
			}
		}
		if open != nil {
			out = append(out, *open)
		}
	}
	slices.SortFunc(out, func(a, b promIncident) int { return int(a.opened - b.opened) })
	return out
}

type promCondition struct {
	query               string
	duration, evaluated time.Duration
}

// promPolicies evaluates examples/terraform/prometheus and returns the
// condition of each policy.
func promPolicies(t *testing.T) (failing, absent promCondition) {
	t.Helper()
	m := loadTerraformDir(t, promDir)
	e := m.eval(t, map[string]cty.Value{})
	get := func(name string) promCondition {
		p := e.get(t, policyType+"."+name)
		if len(p.blocks["conditions"]) != 1 {
			t.Fatalf("%s: %d conditions, want 1", name, len(p.blocks["conditions"]))
		}
		c := p.block("conditions").block("condition_prometheus_query_language")
		return promCondition{query: c.str("query"), duration: c.duration("duration"), evaluated: c.duration("evaluation_interval")}
	}
	return get("failing"), get("absent")
}

func promScenarios() []promScenario {
	hourly := []result{{0, true}, {60, true}, {120, true}, {180, false}}
	two := []promPod{{"a", 0, 1 << 20}, {"b", 0, 1 << 20}}
	return []promScenario{
		{name: "two replicas", results: hourly, pods: two, until: 240},
		{name: "no scrape for 55 min mid-streak", results: hourly, pods: two, noScrape: [2]int{70, 125}, until: 240},
		{name: "no scrape for 55 min across the success", results: hourly, pods: two, noScrape: [2]int{150, 205}, until: 260},
		{name: "state unreadable 20 min mid-streak", results: hourly, pods: two, noGauges: [2]int{70, 90}, until: 240},
		{name: "rollout: both replicas replaced mid-streak", results: hourly, pods: []promPod{{"a", 0, 90}, {"b", 0, 91}, {"c", 90, 1 << 20}, {"d", 91, 1 << 20}}, until: 240},
		{name: "a replica gone 1 min before the success", results: hourly, pods: []promPod{{"a", 0, 179}, {"b", 0, 1 << 20}}, until: 240},
		{name: "fails again 5 min after a recovery", results: []result{{0, true}, {60, false}, {65, true}, {120, false}}, pods: two, until: 180},
		{name: "fails once, recovers at the next run", results: []result{{0, true}, {60, false}}, pods: two, until: 120},
		{name: "no scrape for 2 h (longer than the bridge)", results: []result{{0, true}, {60, true}, {120, true}, {180, true}, {240, true}, {300, false}}, pods: two, noScrape: [2]int{70, 190}, until: 360},
	}
}

type promOutcome struct {
	incidentsPerStreak []int
	openDelay          time.Duration // the longest
	closeDelay         time.Duration // the longest
	stillOpen          bool
}

func runPromScenario(t *testing.T, c promCondition, s promScenario) promOutcome {
	t.Helper()
	incidents := evaluatePromQL(t, s.storage(t), c.query, c.duration, c.evaluated, s.until)
	want := labels.FromStrings("cluster", "prod", labelJobNamespace, "ml", labelJobName, "nightly", alarm.LabelKind, api.KindWorkflow).String()
	var o promOutcome
	streaks := s.streaks()
	for k, st := range streaks {
		next := time.Duration(s.until) * time.Minute
		if k+1 < len(streaks) {
			next = time.Duration(streaks[k+1][0]) * time.Minute
		}
		// Delays count from when the result is first scraped.
		from, to := s.seen(st[0]), s.seen(st[1])
		n := 0
		for _, inc := range incidents {
			if inc.labels != want {
				t.Errorf("%s: an incident for %s, want one per job: %s", s.name, inc.labels, want)
			}
			if inc.opened < time.Duration(st[0])*time.Minute || inc.opened >= next {
				continue
			}
			if n++; n == 1 {
				o.openDelay = max(o.openDelay, inc.opened-from)
			}
			switch {
			case inc.closed == 0 && to < time.Duration(s.until)*time.Minute:
				o.stillOpen = true
			case inc.closed >= to:
				o.closeDelay = max(o.closeDelay, inc.closed-to)
			}
		}
		o.incidentsPerStreak = append(o.incidentsPerStreak, n)
	}
	return o
}

func promTable(t *testing.T, c promCondition) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario (PromQL, %s duration, every %s) | incidents per streak | open delay | close delay |\n| --- | --- | --- | --- |\n", c.duration, c.evaluated)
	for _, s := range promScenarios() {
		o := runPromScenario(t, c, s)
		closeDelay := o.closeDelay.String()
		if o.stillOpen {
			closeDelay += " (one still open)"
		}
		fmt.Fprintf(&b, "| %s | %v | %s | %s |\n", s.name, o.incidentsPerStreak, o.openDelay, closeDelay)
	}
	return b.String()
}

// TestPrometheusPolicyOneIncidentPerStreak: with the shipped query, one
// incident per streak opened and closed within minutes, across scrape gaps
// up to the bridge, rollouts and an unreadable state; past the bridge the
// incident closes and opens again (documented).
func TestPrometheusPolicyOneIncidentPerStreak(t *testing.T) {
	failing, _ := promPolicies(t)
	for _, name := range []string{alarm.MetricJobAlerting, labelJobNamespace, labelJobName, alarm.LabelKind} {
		if !strings.Contains(failing.query, name) {
			t.Errorf("the query does not name %s:\n%s", name, failing.query)
		}
	}
	for _, s := range promScenarios() {
		o := runPromScenario(t, failing, s)
		wantSplit := strings.Contains(s.name, "longer than the bridge")
		for k, n := range o.incidentsPerStreak {
			if n != 1 && !(wantSplit && n == 2) {
				t.Errorf("%s: streak %d has %d incidents, want 1", s.name, k+1, n)
			}
		}
		// A replica that went away keeps its last value for the staleness
		// period: the close waits for it.
		closeWithin := 3 * time.Minute
		if strings.Contains(s.name, "replica gone") {
			closeWithin = promLookback + time.Minute
		}
		if o.openDelay > 3*time.Minute || o.closeDelay > closeWithin || o.stillOpen {
			t.Errorf("%s: open delay %s, close delay %s (want within %s), still open %v", s.name, o.openDelay, o.closeDelay, closeWithin, o.stillOpen)
		}
	}
	if os.Getenv("BATCHLATCH_POLICY_TABLE") != "" {
		t.Log("\n" + promTable(t, failing))
	}
}

// TestPrometheusTableIsTheModels keeps examples/README.md's table of the
// Prometheus path the engine's: BATCHLATCH_POLICY_TABLE=write rewrites it.
func TestPrometheusTableIsTheModels(t *testing.T) {
	failing, _ := promPolicies(t)
	const path = "README.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	begin, end := "<!-- promql:failing -->\n", "<!-- /promql:failing -->"
	before, rest, ok := strings.Cut(string(data), begin)
	got, after, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("%s lacks the %q … %q markers", path, begin, end)
	}
	want := promTable(t, failing)
	if os.Getenv("BATCHLATCH_POLICY_TABLE") == "write" {
		if err := os.WriteFile(path, []byte(before+begin+want+end+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got != want {
		t.Errorf("the PromQL table in %s is not the engine's; rerun with BATCHLATCH_POLICY_TABLE=write:\n%s", path, want)
	}
}

// TestPrometheusAbsentPolicy: the policy about batchlatch itself opens when
// no replica is scraped or none runs the loop, and stays quiet otherwise.
func TestPrometheusAbsentPolicy(t *testing.T) {
	_, absent := promPolicies(t)
	// The metric it reads is batchlatch's.
	reg := prometheus.NewRegistry()
	alarm.NewMetrics(reg)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	registered := false
	for _, f := range families {
		registered = registered || f.GetName() == metricPasses
	}
	if !registered {
		t.Fatalf("alarm.NewMetrics registers no %s", metricPasses)
	}
	if !strings.Contains(absent.query, metricPasses) {
		t.Errorf("the absent query does not read %s:\n%s", metricPasses, absent.query)
	}
	healthy := []result{{0, false}, {60, true}, {120, false}}
	two := []promPod{{"a", 0, 1 << 20}, {"b", 0, 1 << 20}}
	for _, tc := range []struct {
		s    promScenario
		from int // minute the trouble starts, or -1
	}{
		{promScenario{name: "running", results: healthy, pods: two, until: 180}, -1},
		{promScenario{name: "rollout", results: healthy, pods: []promPod{{"a", 0, 90}, {"b", 89, 1 << 20}}, until: 180}, -1},
		{promScenario{name: "not scraped", results: healthy, pods: two, noScrape: [2]int{100, 180}, until: 180}, 100},
		{promScenario{name: "no leader", results: healthy, pods: two, noLeader: 100, until: 180}, 100},
	} {
		incidents := evaluatePromQL(t, tc.s.storage(t), absent.query, absent.duration, absent.evaluated, tc.s.until)
		if tc.from < 0 {
			if len(incidents) != 0 {
				t.Errorf("%s: %d incidents, want none: %+v", tc.s.name, len(incidents), incidents)
			}
			continue
		}
		// Within the staleness (or the 10 minutes without a pass), the
		// duration and an evaluation.
		if len(incidents) != 1 || incidents[0].opened < time.Duration(tc.from)*time.Minute ||
			incidents[0].opened > time.Duration(tc.from)*time.Minute+10*time.Minute+absent.duration+absent.evaluated {
			t.Errorf("%s: incidents %+v, want one opened within %s of minute %d", tc.s.name, incidents, 10*time.Minute+absent.duration+absent.evaluated, tc.from)
		} else {
			t.Logf("%s: opened %s after", tc.s.name, incidents[0].opened-time.Duration(tc.from)*time.Minute)
		}
	}
}
