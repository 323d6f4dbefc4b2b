package alarm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/testwait"
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

// recordingSink keeps what it is given: the jobs' entries, and the
// heartbeats apart.
type recordingSink struct {
	mu         sync.Mutex
	entries    []Entry
	heartbeats []Entry
}

func (s *recordingSink) Write(_ context.Context, e Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.Payload.Heartbeat {
		s.heartbeats = append(s.heartbeats, e)
		return nil
	}
	s.entries = append(s.entries, e)
	return nil
}

func (s *recordingSink) beats() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.heartbeats)
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

// patience bounds every wait for the loop to do something: generous, as it
// only matters when the loop fails to do it.
const patience = time.Minute

// waitFor takes the entries s got until there are at least n.
func waitFor(t *testing.T, s *recordingSink, n int) []Entry {
	t.Helper()
	var got []Entry
	testwait.Until(t, patience, fmt.Sprintf("%d entries", n), func(context.Context) (bool, string, error) {
		got = append(got, s.take()...)
		return len(got) >= n, fmt.Sprintf("%d entries: %+v", len(got), got), nil
	})
	return got
}

// waitUntil polls cond until it holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.True(t, patience, what, cond)
}

// passesAfter waits until the loop has run two more passes than it had
// when called: then at least one pass began and ended after the call, and
// saw everything set before it.
func passesAfter(t *testing.T, metrics *Metrics) {
	t.Helper()
	from := testutil.ToFloat64(metrics.Passes)
	waitUntil(t, "two more passes", func() bool { return testutil.ToFloat64(metrics.Passes) >= from+2 })
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

	got := waitFor(t, sink, 6) // the first pass and two ticks
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
	if failing, ok := p.FailingValue(); !ok || failing != 1 || p.Namespace != "ml" || p.LastWorkflow != "hourly-1" || p.LastUID != "uid-1" || p.LastPhase != "Failed" ||
		!p.JobView.Failing || p.ConsecutiveFailures != 1 || p.FailingSeconds != 7200 || !p.FailingSince.Equal(since) || len(p.LastFailures) != 1 {
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
	jobs := &countingJobs{}
	jobs.set(failingJob("nightly", 1))
	sink := &recordingSink{}
	loop := NewLoop(jobs, sink, LoopConfig{Interval: time.Hour, RecoveryWindow: 30 * time.Minute, Now: clk.Now, KickEvery: time.Millisecond},
		NewMetrics(prometheus.NewRegistry()), testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, sink, 1) // first pass

	jobs.set(failingJob("nightly", 1), failingJob("hourly", 1))
	loop.Kick()
	if got := waitFor(t, sink, 1); len(got) != 1 || got[0].Payload.Job != "hourly" || got[0].Severity != SeverityError {
		t.Fatalf("after kick: %+v, want one ERROR for hourly", got)
	}
	listed := jobs.lists.Load()
	loop.Kick() // nothing new
	waitUntil(t, "the kicked pass", func() bool { return jobs.lists.Load() > listed })
	// A kick with a new failure: the passes run one after the other, so its
	// entry comes after anything the passes before it wrote.
	jobs.set(failingJob("nightly", 1), failingJob("hourly", 1), failingJob("weekly", 1))
	loop.Kick()
	if got := waitFor(t, sink, 1); len(got) != 1 || got[0].Payload.Job != "weekly" {
		t.Fatalf("kicks with nothing new, then a new failure: %+v, want one ERROR for weekly", got)
	}
}

func TestLoopRecoveryNoticeThenHealthyEntriesUntilWindowEnds(t *testing.T) {
	recoveredAt := since.Add(3 * time.Hour)
	clk := &clock{t: recoveredAt.Add(time.Minute)}
	jobs := &memJobs{}
	jobs.set(failingJob("nightly", 3))
	loop, sink, metrics := startLoop(t, jobs, 30*time.Millisecond, clk)
	waitFor(t, sink, 1)

	jobs.set(recoveredJob("nightly", recoveredAt))
	loop.Kick()
	var notice, healthy int
	deadline := time.Now().Add(patience)
	for time.Now().Before(deadline) && healthy < 2 {
		for _, e := range sink.take() {
			switch e.Severity {
			case SeverityNotice:
				notice++
				if f, ok := e.Payload.FailingValue(); !ok || f != 0 || e.Payload.LastStreak == nil || e.Payload.LastStreak.Failures != 3 ||
					e.Payload.Message != "ml/nightly recovered after 3 failed runs, failing for 3h" {
					t.Errorf("notice %+v", e.Payload)
				}
			case SeverityInfo:
				if notice == 0 {
					t.Fatal("INFO before NOTICE")
				}
				healthy++
				if f, ok := e.Payload.FailingValue(); !ok || f != 0 {
					t.Errorf("healthy entry with failing %v", e.Payload.Failing)
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
	passesAfter(t, metrics)                    // a pass that read the clock before may still write
	sink.take()
	passesAfter(t, metrics)
	if got := sink.take(); len(got) != 0 {
		t.Fatalf("entries after the recovery window: %+v", got)
	}
}

// A forgotten job is removed from the state once the loop has written its
// closing (its recovery window), not before; a purge that fails is tried
// again at the next pass.
func TestLoopPurgesAForgottenJobOnceClosed(t *testing.T) {
	forgottenAt := since.Add(time.Hour)
	clk := &clock{t: forgottenAt}
	jobs := &memJobs{}
	forgotten, keep, err := state.ForgetAt(forgottenAt, "deleted through the API")(failingJob("nightly", 3))
	if err != nil || !keep {
		t.Fatal(keep, err)
	}
	jobs.set(forgotten)
	var purged atomic.Int32
	purge := func(_ context.Context, key state.Key, at time.Time) error {
		if key != forgotten.Key() || !at.Equal(forgottenAt) {
			t.Errorf("purge of %v forgotten at %s", key, at)
		}
		if purged.Add(1) == 1 {
			return state.ErrUnavailable
		}
		jobs.set()
		return nil
	}
	sink := &recordingSink{}
	metrics := NewMetrics(prometheus.NewRegistry())
	loop := NewLoop(jobs, sink, LoopConfig{Interval: 10 * time.Millisecond, RecoveryWindow: 30 * time.Minute, PolicyWindow: 12 * time.Minute, Now: clk.Now, Purge: purge},
		metrics, testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	entries := waitFor(t, sink, 1+14+1)
	if entries[0].Severity != SeverityNotice || !strings.Contains(entries[0].Payload.Message, "ml/nightly forgotten: deleted through the API (it was failing: 3 failed run(s)") {
		t.Fatalf("first entry %+v", entries[0])
	}
	for _, e := range entries[1:] {
		if f, ok := e.Payload.FailingValue(); e.Severity != SeverityInfo || !ok || f != 0 {
			t.Fatalf("entry %+v", e)
		}
	}
	clk.Set(forgottenAt.Add(29 * time.Minute))
	passesAfter(t, metrics)
	if purged.Load() != 0 {
		t.Fatal("purged within its recovery window")
	}
	clk.Set(forgottenAt.Add(31 * time.Minute))
	waitUntil(t, "the purge, tried again", func() bool { return purged.Load() >= 2 })
	passesAfter(t, metrics)
	sink.take()
	passesAfter(t, metrics)
	if got := sink.take(); len(got) != 0 || purged.Load() != 2 {
		t.Fatalf("after the purge: %d purges, entries %+v", purged.Load(), got)
	}
}

// A watched job's ERROR entries say when it should run.
func TestLoopFailingEntryCarriesTheSchedule(t *testing.T) {
	clk := &clock{t: since.Add(time.Hour)}
	jobs := &memJobs{}
	jobs.set(failingJob("nightly", 1), failingJob("manual", 1))
	next := since.Add(24 * time.Hour)
	sink := &recordingSink{}
	loop := NewLoop(jobs, sink, LoopConfig{Interval: time.Hour, Now: clk.Now, Schedules: func(_, ns, name string, _ time.Time) *api.Schedule {
		if name != "nightly" {
			return nil
		}
		return &api.Schedule{Kind: "CronWorkflow", Schedules: []string{"0 2 * * *"}, Timezone: "UTC", NextTick: &next}
	}}, NewMetrics(prometheus.NewRegistry()), testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go loop.Run(ctx)
	for _, e := range waitFor(t, sink, 2) {
		if got := e.Payload.Schedule; (e.Payload.Job == "nightly") != (got != nil && got.NextTick.Equal(next)) {
			t.Errorf("%s: schedule %+v", e.Payload.Job, got)
		}
	}
}

// Every pass writes one heartbeat, which the absence alert watches; a kick
// writes none (it is not a pass of the interval).
func TestLoopHeartbeatEveryPass(t *testing.T) {
	clk := &clock{t: since.Add(time.Hour)}
	jobs := &memJobs{}
	jobs.set(failingJob("nightly", 1), recoveredJob("old", since.Add(-24*time.Hour)))
	sink := &recordingSink{}
	metrics := NewMetrics(prometheus.NewRegistry())
	loop := NewLoop(jobs, sink, LoopConfig{Interval: time.Hour, RecoveryWindow: 30 * time.Minute, Now: clk.Now}, metrics, testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, sink, 1)
	// The kicked pass writes a new failure's entry; once the loop has
	// stopped, it wrote whatever else it would.
	jobs.set(failingJob("nightly", 1), recoveredJob("old", since.Add(-24*time.Hour)), failingJob("weekly", 1))
	loop.Kick()
	waitFor(t, sink, 1)
	cancel()
	<-done
	if n := sink.beats(); n != 1 || testutil.ToFloat64(metrics.Passes) != 1 {
		t.Fatalf("%d heartbeats after the first pass and a kick, %v passes; want 1 and 1", n, testutil.ToFloat64(metrics.Passes))
	}
	sink.mu.Lock()
	beat := sink.heartbeats[0]
	sink.mu.Unlock()
	if _, has := beat.Payload.FailingValue(); has || beat.Payload.JobView != nil || len(beat.Labels) != 0 || beat.Severity != SeverityInfo ||
		beat.Payload.Message != "batchlatch is writing: 2 job(s), 1 failing" {
		t.Fatalf("heartbeat %+v", beat)
	}
}

// flakySink fails every write while down is set, as a Cloud Logging outage
// does (counted in the metrics).
type flakySink struct {
	recordingSink
	metrics *Metrics
	down    atomic.Bool
}

func (s *flakySink) Write(ctx context.Context, e Entry) error {
	if s.down.Load() {
		s.metrics.sinkError("flaky")
		return errors.New("unavailable")
	}
	return s.recordingSink.Write(ctx, e)
}

// Writes that fail and then resume lose what was announced meanwhile: the
// loop announces everything again, as a new leader would, so that a job
// that recovered during the outage gets its failing 0 entries (and its
// incident closes) although its recovery window has passed.
func TestLoopAnnouncesAgainWhenWritesResume(t *testing.T) {
	recoveredAt := since.Add(3 * time.Hour)
	clk := &clock{t: recoveredAt.Add(-time.Minute)}
	jobs := &memJobs{}
	jobs.set(failingJob("nightly", 3))
	metrics := NewMetrics(prometheus.NewRegistry())
	sink := &flakySink{metrics: metrics}
	loop := NewLoop(jobs, sink, LoopConfig{Interval: 20 * time.Millisecond, RecoveryWindow: 30 * time.Minute, PolicyWindow: 240 * time.Millisecond, Now: clk.Now}, metrics, testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, &sink.recordingSink, 1)

	// The outage: the job recovers, and the writes fail past its recovery window.
	sink.down.Store(true)
	jobs.set(recoveredJob("nightly", recoveredAt.Add(-time.Minute)))
	clk.Set(recoveredAt.Add(time.Minute))
	passesAfter(t, metrics) // its NOTICE is lost
	clk.Set(recoveredAt.Add(2 * time.Hour))
	passesAfter(t, metrics)
	sink.take()
	sink.down.Store(false)

	got := waitFor(t, &sink.recordingSink, 2)
	if got[0].Severity != SeverityNotice || failingValue(got[1]) != 0 {
		t.Fatalf("after the outage: %+v, want the NOTICE again and failing 0 entries", got[:2])
	}
}

// countingJobs counts the lists: one per pass.
type countingJobs struct {
	memJobs
	lists atomic.Int64
}

func (c *countingJobs) List(ctx context.Context) ([]state.Job, error) {
	c.lists.Add(1)
	return c.memJobs.List(ctx)
}

// A burst of kicks (every callback of a mass failure kicks) runs one kicked
// pass per KickEvery, not one per kick: each lists and weighs every job.
func TestLoopKicksInABurstShareAPass(t *testing.T) {
	clk := &clock{t: since.Add(time.Hour)}
	jobs := &countingJobs{}
	jobs.set(failingJob("nightly", 1))
	sink := &recordingSink{}
	const every = 100 * time.Millisecond
	loop := NewLoop(jobs, sink, LoopConfig{Interval: time.Hour, RecoveryWindow: 30 * time.Minute, Now: clk.Now, KickEvery: every},
		NewMetrics(prometheus.NewRegistry()), testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, sink, 1) // the first pass

	// 200 kicks over 0.5 s: 5 kick intervals.
	start := time.Now()
	for range 200 {
		loop.Kick()
		time.Sleep(2500 * time.Microsecond)
	}
	waitUntil(t, "a kicked pass", func() bool { return jobs.lists.Load() > 1 })
	passes := jobs.lists.Load() - 1 // before the time they ran in
	elapsed := time.Since(start)
	t.Logf("%d kicked passes for 200 kicks in %s", passes, elapsed.Round(time.Millisecond))
	if most := int64(elapsed/every) + 1; passes < 1 || passes > most {
		t.Errorf("%d kicked passes for 200 kicks in %s, want 1 to %d", passes, elapsed.Round(time.Millisecond), most)
	}
	// A kick after a quiet spell still writes (at once: no kicked pass
	// ran within KickEvery).
	time.Sleep(every)
	jobs.set(failingJob("nightly", 1), failingJob("hourly", 1))
	loop.Kick()
	if got := waitFor(t, sink, 1); len(got) != 1 || got[0].Payload.Job != "hourly" {
		t.Errorf("after a quiet kick: %+v, want one ERROR for hourly", got)
	}
}
