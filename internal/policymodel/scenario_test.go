package policymodel

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"

	"github.com/batchlatch/batchlatch/alarm"
	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

var t0 = time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)

func minute(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

// scenario is one job's results over time and what happens to batchlatch
// and to the metric meanwhile.
type scenario struct {
	name    string
	results []result
	lag     time.Duration
	down    [2]int // batchlatch writes nothing in [down[0], down[1]) (minutes)
	leader  int    // the writer pod changes at this minute (0: never)
	until   int
}

type result struct {
	minute int
	failed bool
}

// streak is one failure streak: from the first failure to the success.
type streak struct{ from, to time.Time }

func (s scenario) streaks() []streak {
	var out []streak
	var start *time.Time
	for _, r := range s.results {
		at := minute(r.minute).Add(10 * time.Second)
		switch {
		case r.failed && start == nil:
			start = &at
		case !r.failed && start != nil:
			out = append(out, streak{*start, at})
			start = nil
		}
	}
	if start != nil {
		out = append(out, streak{*start, time.Time{}})
	}
	return out
}

// samples is the entry stream batchlatch writes for s: alarm.Due at a pass
// every minute (second 30) and at the kick of each transition (the result
// arrives at second 10).
func (s scenario) samples() []Sample {
	var (
		job       state.Job
		exists    bool
		announced alarm.Announced
		out       []Sample
	)
	pod := "batchlatch-a"
	up := func(m int) bool { return m < s.down[0] || m >= s.down[1] }
	pass := func(at time.Time, kicked bool) {
		entries, next := alarm.Due([]state.Job{job}, announced, at, alarm.DueConfig{RecoveryWindow: alarm.DefaultRecoveryWindow, Kicked: kicked})
		announced = next
		for _, e := range entries {
			out = append(out, Sample{Time: e.Time, Pod: pod, Group: "ml/nightly", Severity: string(e.Severity), Failing: float64(e.Payload.Failing)})
		}
	}
	results := map[int]result{}
	for _, r := range s.results {
		results[r.minute] = r
	}
	for m := 0; m <= s.until; m++ {
		if s.leader > 0 && m == s.leader {
			pod, announced = "batchlatch-b", alarm.Announced{}
		}
		if r, ok := results[m]; ok {
			phase := wfv1.WorkflowSucceeded
			if r.failed {
				phase = wfv1.WorkflowFailed
			}
			at := minute(m).Add(10 * time.Second)
			res := api.Result{Namespace: "ml", CronWorkflow: "nightly", WorkflowName: fmt.Sprintf("nightly-%d", m), UID: fmt.Sprint(m), Phase: phase}
			var outcome state.Outcome
			job, outcome = state.Apply(job, exists, res, at)
			exists = true
			if t := outcome.Transition; up(m) && (t == state.StartedFailing || t == state.Recovered) {
				pass(at, true)
			}
		}
		if exists && up(m) {
			pass(minute(m).Add(30*time.Second), false)
		}
	}
	return out
}

// outcome is what a policy made of a scenario: incidents per streak, and
// the worst open and close delays after the result was ingested.
type outcome struct {
	incidentsPerStreak []int
	openDelay          time.Duration
	closeDelay         time.Duration
	stillOpen          bool
}

func run(p Policy, s scenario) outcome {
	lag := func(time.Time) time.Duration { return s.lag }
	incidents := Evaluate(p, s.samples(), lag, t0, minute(s.until))
	streaks := s.streaks()
	var o outcome
	for k, st := range streaks {
		// An incident belongs to the streak during which it opened (until
		// the next streak starts): a streak with none was merged into the
		// previous incident, one with two was split.
		next := minute(s.until + 1)
		if k+1 < len(streaks) {
			next = streaks[k+1].from
		}
		n := 0
		for _, inc := range incidents {
			if inc.Opened.Before(st.from) || !inc.Opened.Before(next) {
				continue
			}
			n++
			if d := inc.Opened.Sub(st.from.Add(s.lag)); n == 1 && d > o.openDelay {
				o.openDelay = d
			}
			switch {
			case inc.Closed.IsZero():
				o.stillOpen = true
			case !st.to.IsZero() && inc.Closed.After(st.to):
				if d := inc.Closed.Sub(st.to.Add(s.lag)); d > o.closeDelay {
					o.closeDelay = d
				}
			}
		}
		o.incidentsPerStreak = append(o.incidentsPerStreak, n)
	}
	return o
}

func scenarios() []scenario {
	hourly := []result{{0, true}, {60, true}, {120, true}, {180, false}}
	long := []result{{0, true}, {60, true}, {120, true}, {180, true}, {240, true}, {300, true}, {360, true}, {420, true}, {480, false}}
	return []scenario{
		{name: "lag 0", results: hourly, until: 260},
		{name: "lag 5 min", results: hourly, lag: 5 * time.Minute, until: 260},
		{name: "lag 10 min", results: hourly, lag: 10 * time.Minute, until: 260},
		{name: "batchlatch down 30 min mid-streak", results: hourly, down: [2]int{70, 100}, until: 260},
		{name: "batchlatch down 6 h mid-streak", results: long, down: [2]int{70, 430}, until: 560},
		{name: "two writer pods, leader change", results: hourly, leader: 90, until: 260},
		{name: "fails again 5 min after a recovery", results: []result{{0, true}, {60, false}, {65, true}, {120, false}}, until: 200},
		{name: "fails once, recovers at the next run", results: []result{{0, true}, {60, false}}, until: 140},
	}
}

// Shipped is the policy examples/terraform ships today.
var Shipped = Policy{Name: "counter, ALIGN_DELTA 720 s, INACTIVE", Metric: Counter, Window: 720 * time.Second, Aligner: AlignDelta, Reducer: ReduceSum,
	Threshold: 0, Duration: time.Minute, MissingData: MissingInactive, AutoClose: 30 * time.Minute}

func table(p Policy) string {
	var b strings.Builder
	fmt.Fprintf(&b, "| scenario (%s) | incidents per streak | open delay | close delay |\n| --- | --- | --- | --- |\n", p.Name)
	for _, s := range scenarios() {
		o := run(p, s)
		closeDelay := o.closeDelay.String()
		if o.stillOpen {
			closeDelay += " (one still open)"
		}
		fmt.Fprintf(&b, "| %s | %v | %s | %s |\n", s.name, o.incidentsPerStreak, o.openDelay, closeDelay)
	}
	return b.String()
}

// TestShippedPolicy documents what the shipped policy does in each
// scenario; run with -v to print the table (BATCHLATCH_POLICY_TABLE=1).
func TestShippedPolicy(t *testing.T) {
	o := run(Shipped, scenarios()[0])
	// The model's sanity: one hourly streak with no lag is one incident,
	// opened within two minutes of the first failure, closed once the
	// window holds no ERROR entry.
	if len(o.incidentsPerStreak) != 1 || o.incidentsPerStreak[0] != 1 || o.openDelay > 3*time.Minute || o.closeDelay < Shipped.Window-2*time.Minute || o.closeDelay > Shipped.Window+2*time.Minute {
		t.Fatalf("lag 0: %+v", o)
	}
	// A 6-hour outage splits the streak under INACTIVE: the failure mode the
	// issue describes.
	if o := run(Shipped, scenarios()[4]); o.incidentsPerStreak[0] < 2 {
		t.Fatalf("6 h outage: %+v, the model misses the split", o)
	}
	if os.Getenv("BATCHLATCH_POLICY_TABLE") != "" {
		t.Log("\n" + table(Shipped))
	}
}

// The table in examples/README.md is the model's, so the two cannot drift:
// BATCHLATCH_POLICY_TABLE=write rewrites it.
func TestREADMETableIsTheModels(t *testing.T) {
	const path = "../../examples/README.md"
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const begin, end = "<!-- policymodel:shipped -->\n", "<!-- /policymodel:shipped -->"
	before, rest, ok := strings.Cut(string(data), begin)
	_, after, ok2 := strings.Cut(rest, end)
	if !ok || !ok2 {
		t.Fatalf("%s lacks the %q … %q markers", path, begin, end)
	}
	want := table(Shipped)
	if os.Getenv("BATCHLATCH_POLICY_TABLE") == "write" {
		if err := os.WriteFile(path, []byte(before+begin+want+end+after), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if got, _, _ := strings.Cut(rest, end); got != want {
		t.Errorf("the table in %s is not the model's; rerun with BATCHLATCH_POLICY_TABLE=write:\n%s", path, want)
	}
}
