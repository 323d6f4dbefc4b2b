package alarm

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// memJobs is a Lister whose jobs the test changes as it goes.
type memJobs struct {
	mu   sync.Mutex
	jobs []state.Job
}

func (m *memJobs) set(jobs ...state.Job) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs = jobs
}

func (m *memJobs) List(context.Context) ([]state.Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]state.Job(nil), m.jobs...), nil
}

// recordingSink keeps what it is given.
type recordingSink struct {
	mu      sync.Mutex
	entries []Entry
}

func (s *recordingSink) Write(_ context.Context, e Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.entries = append(s.entries, e)
	return nil
}

func (s *recordingSink) Close(context.Context) error { return nil }

func (s *recordingSink) take() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries
	s.entries = nil
	return e
}

// clock is a settable clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func testLogger() *slog.Logger   { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func ptr[T any](v T) *T          { return &v }
func waitFor(t *testing.T, s *recordingSink, n int, within time.Duration) []Entry {
	t.Helper()
	deadline := time.Now().Add(within)
	var got []Entry
	for time.Now().Before(deadline) {
		got = append(got, s.take()...)
		if len(got) >= n {
			return got
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("got %d entries within %s, want %d: %+v", len(got), within, n, got)
	return nil
}

var since = time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)

func failingJob(name string, failures int) state.Job {
	return state.Job{
		Namespace: "ml", Name: name, FailingSince: ptr(since), ConsecutiveFailures: failures,
		LastWorkflow: name + "-1", LastUID: "uid-1", LastPhase: "Failed", LastResultAt: since,
		LastFailures: []api.Failure{{DisplayName: "train", Message: "OOMKilled"}},
	}
}

func recoveredJob(name string, until time.Time) state.Job {
	return state.Job{
		Namespace: "ml", Name: name, LastWorkflow: name + "-2", LastPhase: "Succeeded", LastResultAt: until,
		LastStreak:  &api.Streak{Since: since, Until: until, Seconds: until.Sub(since).Seconds(), Failures: 3},
		RecoveredAt: ptr(until.Add(time.Minute)),
	}
}

func startLoop(t *testing.T, jobs *memJobs, interval time.Duration, clk *clock) (*Loop, *recordingSink, *Metrics) {
	sink := &recordingSink{}
	metrics := NewMetrics(prometheus.NewRegistry())
	loop := NewLoop(jobs, sink, LoopConfig{Interval: interval, RecoveryWindow: 30 * time.Minute, Now: clk.Now}, metrics, testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return loop, sink, metrics
}

func TestLoopWritesOneErrorPerFailingJobEveryInterval(t *testing.T) {
	clk := &clock{t: since.Add(2 * time.Hour)}
	jobs := &memJobs{}
	jobs.set(failingJob("nightly", 3), failingJob("hourly", 1), recoveredJob("old", since.Add(-24*time.Hour)))
	_, sink, metrics := startLoop(t, jobs, 30*time.Millisecond, clk)

	got := waitFor(t, sink, 6, 2*time.Second) // the first pass and two ticks
	perJob := map[string]int{}
	for _, e := range got {
		if e.Severity != SeverityError {
			t.Fatalf("severity %s: %+v", e.Severity, e)
		}
		perJob[e.Payload.Job]++
	}
	if perJob["old"] != 0 || perJob["nightly"] < 2 || perJob["hourly"] < 2 {
		t.Fatalf("entries per job: %v", perJob)
	}
	e := got[0]
	if e.Payload.Job != "hourly" { // List order: by key
		e = got[1]
	}
	p := e.Payload
	if p.Failing != 1 || p.Namespace != "ml" || p.Workflow != "hourly-1" || p.UID != "uid-1" || p.Phase != "Failed" ||
		p.ConsecutiveFailures != 1 || p.FailingSeconds != 7200 || !p.FailingSince.Equal(since) || len(p.Failures) != 1 {
		t.Errorf("payload %+v", p)
	}
	if e.Labels[LabelNamespace] != "ml" || e.Labels[LabelJob] != "hourly" {
		t.Errorf("labels %v", e.Labels)
	}
	if testutil.ToFloat64(metrics.FailingJobs) != 2 {
		t.Errorf("failing jobs gauge = %v", testutil.ToFloat64(metrics.FailingJobs))
	}
}

func TestLoopKickWritesNewFailureAtOnceWithoutRepeatingOthers(t *testing.T) {
	clk := &clock{t: since.Add(time.Hour)}
	jobs := &memJobs{}
	jobs.set(failingJob("nightly", 1))
	loop, sink, _ := startLoop(t, jobs, time.Hour, clk)
	waitFor(t, sink, 1, time.Second) // first pass

	jobs.set(failingJob("nightly", 1), failingJob("hourly", 1))
	loop.Kick()
	got := waitFor(t, sink, 1, time.Second)
	time.Sleep(50 * time.Millisecond)
	got = append(got, sink.take()...)
	if len(got) != 1 || got[0].Payload.Job != "hourly" || got[0].Severity != SeverityError {
		t.Fatalf("after kick: %+v, want one ERROR for hourly", got)
	}
	loop.Kick() // nothing new
	time.Sleep(50 * time.Millisecond)
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("kick with nothing new wrote %+v", got)
	}
}

func TestLoopRecoveryNoticeThenHealthyEntriesUntilWindowEnds(t *testing.T) {
	recoveredAt := since.Add(3 * time.Hour)
	clk := &clock{t: recoveredAt.Add(time.Minute)}
	jobs := &memJobs{}
	jobs.set(failingJob("nightly", 3))
	loop, sink, _ := startLoop(t, jobs, 30*time.Millisecond, clk)
	waitFor(t, sink, 1, time.Second)

	jobs.set(recoveredJob("nightly", recoveredAt))
	loop.Kick()
	var notice, healthy int
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) && healthy < 2 {
		for _, e := range sink.take() {
			switch e.Severity {
			case SeverityNotice:
				notice++
				if e.Payload.Failing != 0 || e.Payload.LastStreak == nil || e.Payload.LastStreak.Failures != 3 ||
					e.Payload.Message != "ml/nightly recovered after 3 failed runs, failing for 3h0m0s" {
					t.Errorf("notice %+v", e.Payload)
				}
			case SeverityInfo:
				if notice == 0 {
					t.Fatal("INFO before NOTICE")
				}
				healthy++
				if e.Payload.Failing != 0 {
					t.Errorf("healthy entry with failing %d", e.Payload.Failing)
				}
			case SeverityError:
				if notice > 0 {
					t.Fatalf("ERROR after the recovery: %+v", e)
				}
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	if notice != 1 || healthy < 2 {
		t.Fatalf("notice %d, healthy %d; want 1 and at least 2", notice, healthy)
	}

	clk.Set(recoveredAt.Add(31 * time.Minute)) // past the recovery window
	time.Sleep(40 * time.Millisecond)
	sink.take()
	time.Sleep(100 * time.Millisecond)
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("entries after the recovery window: %+v", got)
	}
}

// A job forgotten while failing (its CronWorkflow was deleted) gets one
// NOTICE with failing 0 that says why, and no ERROR entries after it.
func TestLoopForgottenJobGetsOneNotice(t *testing.T) {
	clk := &clock{t: since.Add(time.Hour)}
	jobs := &memJobs{}
	loop, sink, _ := startLoop(t, jobs, time.Hour, clk)
	job := failingJob("nightly", 3)
	loop.Forgotten(context.Background(), job, "its CronWorkflow was deleted more than 10m0s ago")
	entries := sink.take()
	if len(entries) != 1 {
		t.Fatalf("entries %+v", entries)
	}
	e := entries[0]
	if e.Severity != SeverityNotice || e.Payload.Failing != 0 || e.Labels[LabelJob] != "nightly" ||
		!strings.Contains(e.Payload.Message, "ml/nightly forgotten: its CronWorkflow was deleted") || !strings.Contains(e.Payload.Message, "3 failed run(s)") {
		t.Fatalf("entry %+v", e)
	}
}

// A watched job's ERROR entries say when it should run.
func TestLoopFailingEntryCarriesTheSchedule(t *testing.T) {
	clk := &clock{t: since.Add(time.Hour)}
	jobs := &memJobs{}
	jobs.set(failingJob("nightly", 1), failingJob("manual", 1))
	next := since.Add(24 * time.Hour)
	sink := &recordingSink{}
	loop := NewLoop(jobs, sink, LoopConfig{Interval: time.Hour, Now: clk.Now, Schedules: func(ns, name string, _ time.Time) *api.Schedule {
		if name != "nightly" {
			return nil
		}
		return &api.Schedule{Kind: "CronWorkflow", Schedules: []string{"0 2 * * *"}, Timezone: "UTC", NextTick: &next}
	}}, NewMetrics(prometheus.NewRegistry()), testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go loop.Run(ctx)
	for _, e := range waitFor(t, sink, 2, 5*time.Second) {
		if got := e.Payload.Schedule; (e.Payload.Job == "nightly") != (got != nil && got.NextTick.Equal(next)) {
			t.Errorf("%s: schedule %+v", e.Payload.Job, got)
		}
	}
}
