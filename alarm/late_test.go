package alarm

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/filestore"
)

// runLateLoop runs a loop on store that records Late runs, with ml/watched
// read by a watcher, until the test ends or stop is called.
func runLateLoop(t *testing.T, store state.Store, clk *clock) (sink *recordingSink, metrics *Metrics, stop func()) {
	sink = &recordingSink{}
	metrics = NewMetrics(prometheus.NewRegistry())
	next := clk.Now().Add(time.Hour)
	loop := NewLoop(store, sink, LoopConfig{
		Interval: 10 * time.Millisecond, RecoveryWindow: 30 * time.Minute, Now: clk.Now,
		MissedGrace: storetest.LateGrace, Record: store.Record,
		Schedules: func(_, _, name string, _ time.Time) *api.Schedule {
			if name != "watched" {
				return nil
			}
			return &api.Schedule{Kind: "CronWorkflow", Schedules: []string{"0 * * * *"}, NextTick: &next}
		},
	}, metrics, testLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { loop.Run(ctx); close(done) }()
	stop = func() { cancel(); <-done }
	t.Cleanup(stop)
	return sink, metrics, stop
}

// The leader's loop records a Late run for a job that asks for one and
// went silent: once, across its passes and a restart of the process; never
// for a job that did not ask (off by default) or that a watcher reads.
func TestLoopRecordsALateRunOnceAcrossRestarts(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	store, err := filestore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hourly", "plain", "watched"} {
		for _, r := range storetest.LateRuns() {
			r.CronWorkflow = name
			if name == "plain" {
				r.Annotations = nil
			}
			if _, err := store.Record(ctx, r, storetest.At(1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	clk := &clock{t: storetest.At(5)}
	sink, metrics, stop := runLateLoop(t, store, clk)
	var late Entry
	waitUntil(t, "the Late run's ERROR entry", func() bool {
		for _, e := range sink.take() {
			if e.Severity == SeverityError {
				late = e
				return true
			}
		}
		return false
	})
	if late.Payload.Job != "hourly" || late.Payload.LastPhase != api.PhaseLate || late.Payload.Expected == nil || !late.Payload.Expected.Late {
		t.Fatalf("ERROR entry %+v, expected %+v: want ml/hourly, Late", late.Payload.JobView, late.Payload.Expected)
	}
	passesAfter(t, metrics)
	passesAfter(t, metrics)
	wantLates(t, store, map[string]int{"hourly": 1, "plain": 0, "watched": 0})
	stop()
	store.Close()

	store, err = filestore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	clk.Set(storetest.At(50))
	_, metrics, _ = runLateLoop(t, store, clk)
	passesAfter(t, metrics)
	passesAfter(t, metrics)
	wantLates(t, store, map[string]int{"hourly": 1, "plain": 0, "watched": 0})
}

// wantLates checks how many Late runs each job of ml has, and that each is
// failing only through them.
func wantLates(t *testing.T, store state.Store, want map[string]int) {
	t.Helper()
	for name, n := range want {
		j, err := store.Get(context.Background(), state.Key{Namespace: "ml", Name: name})
		if err != nil {
			t.Fatal(err)
		}
		if got := storetest.LatesOf(j); got != n || j.ConsecutiveFailures != n {
			t.Errorf("ml/%s: %d Late runs, %d failed in a row; want %d: history %s", name, got, j.ConsecutiveFailures, n, storetest.HistoryOf(j))
		}
	}
}
