package server

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// runsStore is a listStore that gets its jobs too (the job page).
type runsStore struct{ *listStore }

func (s runsStore) Get(ctx context.Context, key state.Key) (state.Job, error) {
	jobs, _ := s.List(ctx)
	for _, j := range jobs {
		if j.Key() == key {
			return j, nil
		}
	}
	return state.Job{}, state.ErrNotFound
}

// longHistoryJob is ml/hourly-etl after 30 hourly runs of 11 to 14
// minutes through the callback: failures, a tick the Argo watcher found
// missed, a run it found stuck, and the latest failing.
func longHistoryJob(t *testing.T) state.Job {
	t.Helper()
	var job state.Job
	start := now.Add(-30 * time.Hour).Truncate(time.Hour)
	for i := range 30 {
		tick := start.Add(time.Duration(i) * time.Hour)
		r := api.Result{Namespace: "ml", CronWorkflow: "hourly-etl", WorkflowName: fmt.Sprintf("hourly-etl-%d", tick.Unix()), UID: fmt.Sprint("u", i),
			Phase: api.PhaseSucceeded, ScheduledTime: tick.Format(time.RFC3339), CreatedAt: tick.Format(time.RFC3339),
			DurationSeconds: float64(660 + (i*137)%180)}
		switch i {
		case 14, 15, 27, 29:
			r.Phase = api.PhaseFailed
			r.Failures = []api.Failure{{DisplayName: "load", Message: "connection reset by peer"}}
		case 21:
			r.Phase, r.UID, r.DurationSeconds, r.Source = api.PhaseMissed, "", 300, api.SourceArgo
		case 24:
			r.Phase, r.DurationSeconds, r.Source = api.PhaseStuck, 3600, api.SourceArgo
		}
		received := tick.Add(time.Duration(r.DurationSeconds)*time.Second + time.Second)
		next, out := state.Apply(job, i > 0, r, received)
		if out.Duplicate || out.Stale {
			t.Fatalf("run %d: %+v", i, out)
		}
		job = next
	}
	if runs := job.Runs(); len(runs) != api.MaxRuns {
		t.Fatalf("%d runs kept, want %d", len(runs), api.MaxRuns)
	}
	return job
}

// shownRuns is what the browser laid out of a job's runs.
type shownRuns struct {
	Strips      []int    `json:"strips"` // marks in each card's strip
	Titles      []string `json:"titles"` // of the first strip's marks
	Classes     []string `json:"classes"`
	StripRight  int      `json:"stripRight"`
	Rows        int      `json:"rows"`
	Bars        int      `json:"bars"`
	Bands       int      `json:"bands"`
	Caption     string   `json:"caption"`
	Empty       string   `json:"empty"`
	ChartWidth  int      `json:"chartWidth"`
	ChartHeight int      `json:"chartHeight"`
	Scripts     int      `json:"scripts"`
	ScrollWidth int      `json:"scrollWidth"`
	InnerWidth  int      `json:"innerWidth"`
}

const readRuns = `(() => {
	const strips = [...document.querySelectorAll("li.job")].map(li => li.querySelectorAll(".strip .mark").length);
	const first = [...document.querySelectorAll(".strip")][0];
	const marks = first ? [...first.querySelectorAll(".mark")] : [];
	const svg = document.querySelector("#runs svg");
	const empty = document.querySelector("#runs .empty");
	const caption = document.querySelector("#runs figcaption");
	return {
		strips: strips,
		titles: marks.map(m => m.title),
		classes: marks.map(m => m.className),
		stripRight: first ? Math.ceil(first.getBoundingClientRect().right) : 0,
		rows: document.querySelectorAll("#runs tbody tr").length,
		bars: svg ? svg.querySelectorAll("rect.bar").length : 0,
		bands: svg ? svg.querySelectorAll("rect.band").length : 0,
		caption: caption ? caption.textContent : "",
		empty: empty ? empty.textContent : "",
		chartWidth: svg ? Math.ceil(svg.getBoundingClientRect().width) : 0,
		chartHeight: svg ? Math.ceil(svg.getBoundingClientRect().height) : 0,
		scripts: document.scripts.length,
		scrollWidth: document.documentElement.scrollWidth,
		innerWidth: window.innerWidth,
	};
})()`

// The runs in Chromium, on a desktop and a phone: the status page's strip
// of a long history (20 marks, oldest on the left, each saying its run on
// hover), none for a job with no run, the job page's table and chart with
// the usual range shaded, and a job with no run saying so. Nothing wider
// than the screen, no script.
func TestRunsInChromium(t *testing.T) {
	ctx := browser(t)
	long := longHistoryJob(t)
	never := state.Job{Namespace: "ml", Name: "never-ran"}
	srv := listServer(t, runsStore{&listStore{jobs: []state.Job{long, never}}}, nil)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	console := listenConsole(t, ctx)

	inEachViewport(t, ctx, func(viewport viewport) {
		shoot := func(name string) {
			t.Helper()
			shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			writeArtifact(t, "runs-"+name+"-"+viewport.name+".png", shot)
		}
		read := func(path string) shownRuns {
			t.Helper()
			if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+path)); err != nil {
				t.Fatal(err)
			}
			shown, err := chromedp.Run(ctx, chromedp.Evaluate[shownRuns](readRuns))
			if err != nil {
				t.Fatal(err)
			}
			if shown.Scripts != 0 || shown.InnerWidth != viewport.width || shown.ScrollWidth > shown.InnerWidth || shown.StripRight > shown.InnerWidth {
				t.Errorf("%s %s: %d scripts, page %d px (strip to %d px) in a %d px viewport", viewport.name, path, shown.Scripts, shown.ScrollWidth, shown.StripRight, shown.InnerWidth)
			}
			return shown
		}

		// The status page: the failing job's strip, the other without one.
		status := read("/")
		if fmt.Sprint(status.Strips) != "[20 0]" || len(status.Titles) != api.MaxRuns {
			t.Fatalf("%s: marks per card %v, want [20 0]", viewport.name, status.Strips)
		}
		oldest, newest := status.Titles[0], status.Titles[api.MaxRuns-1]
		if !strings.HasPrefix(oldest, "Succeeded · ") || !strings.Contains(oldest, "took 1") || !strings.Contains(oldest, "from callback") ||
			!strings.HasPrefix(newest, "Failed · 2026-11-24 04:") || !strings.Contains(newest, "(") {
			t.Errorf("%s: oldest mark %q, newest %q", viewport.name, oldest, newest)
		}
		missed := status.Titles[11] // run 21 of 30, the 12th of the last 20
		if !strings.HasPrefix(missed, "Missed · ") || strings.Contains(missed, "took") || !strings.Contains(missed, "from argo") {
			t.Errorf("%s: the missed tick's mark says %q", viewport.name, missed)
		}
		if got := strings.Join(status.Classes[9:], ","); got != "mark succeeded,mark succeeded,mark synthetic,mark succeeded,mark succeeded,mark synthetic,mark succeeded,mark succeeded,mark failed,mark succeeded,mark failed" {
			t.Errorf("%s: the last marks' classes %s", viewport.name, got)
		}
		shoot("status")

		// The long history's page: 20 rows, 20 bars, the usual range.
		page := read("/jobs/ml/hourly-etl")
		if page.Rows != api.MaxRuns || page.Bars != api.MaxRuns || page.Bands != 1 || !strings.Contains(page.Caption, "Shaded: the usual range, 1") ||
			!strings.Contains(page.Caption, "It usually runs every 1h.") || !strings.Contains(page.Caption, "up to 1h (bars cut at 41m") {
			t.Errorf("%s: job page %+v", viewport.name, page)
		}
		if page.ChartWidth > viewport.width-20 || page.ChartHeight < 60 {
			t.Errorf("%s: chart %dx%d px", viewport.name, page.ChartWidth, page.ChartHeight)
		}
		shoot("long")
		if err := chromedp.Do(ctx, chromedp.ScrollIntoView("#runs")); err != nil {
			t.Fatal(err)
		}
		if shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot()); err != nil {
			t.Fatal(err)
		} else {
			writeArtifact(t, "runs-long-"+viewport.name+"-screen.png", shot)
		}

		// A job with no run.
		none := read("/jobs/ml/never-ran")
		if none.Rows != 0 || none.Bars != 0 || none.Empty != "No run recorded yet." {
			t.Errorf("%s: the job with no run: %+v", viewport.name, none)
		}
		shoot("none")
	})
	if problems := console.problems(); len(problems) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(problems, "\n"))
	}
}
