package state

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
)

// UsualP90 tells the same p90 and count of successful runs as UsualOf, the
// job's view, on histories of every size and mix of outcomes.
func TestUsualP90IsUsualOfs(t *testing.T) {
	rng := rand.New(rand.NewPCG(23, 5))
	phases := []api.Phase{api.PhaseSucceeded, api.PhaseSucceeded, api.PhaseFailed, api.PhaseStuck, api.PhaseMissed}
	applied := 0
	for n := range 600 {
		var runs Runs
		for i := range n % (api.MaxRuns + 1) {
			duration := time.Duration(1+rng.IntN(3600)) * time.Second
			if rng.IntN(4) == 0 {
				duration = 0 // not known
			}
			runs = append(runs, NewRun(phases[rng.IntN(len(phases))], api.SourceArgo, at(100-i), time.Time{}, duration))
		}
		p90, successful := runs.UsualP90()
		var views []api.Run
		for _, r := range runs {
			views = append(views, r.View())
		}
		u := UsualOf(views)
		if successful != u.SuccessfulRuns {
			t.Fatalf("%d runs: %d successful, UsualOf says %d", len(runs), successful, u.SuccessfulRuns)
		}
		switch {
		case u.P90Seconds == nil && p90 != 0:
			t.Fatalf("%d successful runs: p90 %s, UsualOf tells none", successful, p90)
		case u.P90Seconds != nil:
			applied++
			if p90 != time.Duration(*u.P90Seconds*float64(time.Second)) {
				t.Fatalf("p90 %s, UsualOf says %gs", p90, *u.P90Seconds)
			}
		}
	}
	if applied < 100 {
		t.Fatalf("only %d histories had a p90", applied)
	}
}

// BenchmarkUsualP90 is what a watcher's pass spends on one job whose max
// runtime is auto: its full history, mostly successful runs; beside it,
// the same p90 through the job's view.
func BenchmarkUsualP90(b *testing.B) {
	runs := fullHistory()
	b.ReportAllocs()
	for b.Loop() {
		if p90, _ := runs.UsualP90(); p90 == 0 {
			b.Fatal("no p90")
		}
	}
}

func BenchmarkUsualOfViews(b *testing.B) {
	job := Job{History: fullHistory()}
	b.ReportAllocs()
	for b.Loop() {
		if UsualOf(job.RunViews()).P90Seconds == nil {
			b.Fatal("no p90")
		}
	}
}

func fullHistory() Runs {
	var runs Runs
	for i := range api.MaxRuns {
		phase := api.PhaseSucceeded
		if i%4 == 3 {
			phase = api.PhaseFailed
		}
		runs = append(runs, NewRun(phase, api.SourceArgo, at(100-i), time.Time{}, time.Duration(600+37*i)*time.Second))
	}
	return runs
}
