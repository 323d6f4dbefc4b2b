package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
)

// history is the job's runs in short: phase/source/finished hour/duration.
func history(j Job) string {
	var parts []string
	for _, r := range j.Runs() {
		d := "?"
		if s, ok := r.Duration(); ok {
			d = fmt.Sprint(s.Seconds())
		}
		sched := ""
		if at, ok := r.ScheduledAt(); ok {
			sched = fmt.Sprintf("@%g", at.Sub(t0).Hours())
		}
		parts = append(parts, fmt.Sprintf("%s/%s/%g/%s%s", r.Phase(), r.Source().Name(), r.FinishedAt().Sub(t0).Hours(), d, sched))
	}
	return strings.Join(parts, " ")
}

func scheduled(r api.Result, hours int) api.Result {
	r.ScheduledTime = at(hours).Format(time.RFC3339)
	return r
}

func from(r api.Result, source api.RunSource) api.Result {
	r.Source = source
	return r
}

// record applies results in order to one job, each received a minute after
// it finished, and returns the job.
func record(t *testing.T, results ...api.Result) Job {
	t.Helper()
	var job Job
	existing := false
	for _, r := range results {
		received := r.FinishedAt(time.Time{}).Add(time.Minute)
		job, _ = Apply(job, existing, r, received)
		existing = true
	}
	return job
}

func TestHistory(t *testing.T) {
	a := scheduled(withDuration(run("nightly", "a", api.PhaseFailed, 0), 600), 0)
	b := scheduled(withDuration(run("nightly", "b", api.PhaseError, 1), 60), 1)
	c := scheduled(withDuration(run("nightly", "c", api.PhaseSucceeded, 2), 1800), 2)
	for _, tc := range []struct {
		name    string
		results []api.Result
		want    string
	}{
		{"fail, fail, success; newest first", []api.Result{a, b, c},
			"Succeeded/callback/2.5/1800@2 Error/callback/1.0166666666666666/60@1 Failed/callback/0.16666666666666666/600@0"},
		{"the watchers say they saw it", []api.Result{from(a, api.SourceArgo), from(run("nightly", "x", api.PhaseSucceeded, 1), api.SourceCronJob)},
			"Succeeded/cronjob/1/? Failed/argo/0.16666666666666666/600@0"},
		{"a duplicate is one run, re-rendered or not", []api.Result{a, a, withDuration(a, 601), from(a, api.SourceArgo)},
			"Failed/callback/0.16666666666666666/600@0"},
		{"a late run goes into its place", []api.Result{a, c, b},
			"Succeeded/callback/2.5/1800@2 Error/callback/1.0166666666666666/60@1 Failed/callback/0.16666666666666666/600@0"},
		{"argo retry is another run, ordered after the failure", []api.Result{a, withDuration(named(run("nightly", "a", api.PhaseSucceeded, 0), a.WorkflowName), 30)},
			"Succeeded/callback/0.16666666666666666/30 Failed/callback/0.16666666666666666/600@0"},
		{"the run a Missed tick stood for takes its place", []api.Result{
			from(scheduled(named(missed("nightly", 0), "nightly-tick-0"), 0), api.SourceArgo),
			scheduled(withDuration(named(run("nightly", "late", api.PhaseSucceeded, 0), "nightly-tick-0"), 3600), 0)},
			"Succeeded/callback/1/3600@0"},
		{"a stuck run's own end takes its place", []api.Result{from(stuck(run("nightly", "s", api.PhaseFailed, 0)), api.SourceArgo), withDuration(run("nightly", "s", api.PhaseFailed, 0), 7200)},
			"Failed/callback/2/7200"},
		{"a stale synthetic failure is not a run", []api.Result{c, from(missed("nightly", 1), api.SourceArgo)},
			"Succeeded/callback/2.5/1800@2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := history(record(t, tc.results...)); got != tc.want {
				t.Errorf("history\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// TestHistoryKeepsTheLast: the last api.MaxRuns runs; a late copy of one
// the recent runs no longer remember is not a second entry, and a late run
// older than all of a full history is left out.
func TestHistoryKeepsTheLast(t *testing.T) {
	var results []api.Result
	for h := range 30 {
		results = append(results, scheduled(withDuration(run("hourly", fmt.Sprint("u", h), api.PhaseSucceeded, h), 60), h))
	}
	job := record(t, results...)
	runs := job.Runs()
	if len(runs) != api.MaxRuns || runs[0].FinishedAt() != at(29).Add(time.Minute) || runs[api.MaxRuns-1].FinishedAt() != at(10).Add(time.Minute) {
		t.Fatalf("history %s", history(job))
	}
	before := history(job)
	for _, late := range []api.Result{results[15], withDuration(results[12], 61), results[3]} {
		next, out := Apply(job, true, late, at(40))
		if !out.Stale || history(next) != before {
			t.Errorf("late %s: %+v, history\n got %s\nwant %s", late.UID, out, history(next), before)
		}
	}
	// A late run the history lacks (another uid, another tick) goes in.
	other := scheduled(withDuration(run("hourly", "other", api.PhaseFailed, 20), 1), 20)
	other.CreatedAt = at(20).Add(30 * time.Minute).Format(time.RFC3339)
	next, _ := Apply(job, true, other, at(40))
	if got := next.Runs(); len(got) != api.MaxRuns || got[9].Phase() != api.PhaseFailed || got[api.MaxRuns-1].FinishedAt() != at(11).Add(time.Minute) {
		t.Errorf("with a late run: %s", history(next))
	}
	if history(job) != before {
		t.Error("Apply changed the job it was given")
	}
}

// TestHistoryEncoding: the stored form reads back as written, whatever is
// known of each run, and a value that is not one is unreadable.
func TestHistoryEncoding(t *testing.T) {
	end := time.Date(2026, 11, 24, 4, 12, 34, 0, time.UTC)
	runs := Runs{
		NewRun(api.PhaseFailed, api.SourceCallback, end, end.Add(-754*time.Second), 754*time.Second),
		NewRun(api.PhaseMissed, api.SourceArgo, end.Add(-time.Hour), end.Add(-time.Hour-5*time.Minute), 0),
		NewRun(api.PhaseStuck, api.SourceCronJob, end.Add(-time.Hour), time.Time{}, time.Hour),
		NewRun(api.PhaseSucceeded, api.SourceUnknown, end.Add(-3*time.Hour), end.Add(-2*time.Hour), 0), // a tick after its end: a skewed clock
		NewRun(api.PhaseSpecError, api.SourceArgo, end.Add(-4*time.Hour), time.Time{}, 0),
		NewRun(api.PhaseSubmissionError, api.SourceArgo, end.Add(-5*time.Hour), time.Time{}, 0),
		NewRun(api.PhaseError, api.SourceCallback, end.Add(-6*time.Hour), end.Add(-6*time.Hour), 500*time.Millisecond),
		NewRun(api.PhaseLate, api.SourceCallback, end.Add(-7*time.Hour), time.Time{}, 0),
	}
	b, err := json.Marshal(Job{History: runs, LastResultAt: end})
	if err != nil {
		t.Fatal(err)
	}
	back, err := DecodeJob("ml.nightly", string(b))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(back.History) != fmt.Sprint(runs) {
		t.Errorf("read back\n got %v\nwant %v\nfrom %s", back.History, runs, b)
	}
	for _, phase := range []api.Phase{api.PhaseFailed, api.PhaseMissed, api.PhaseStuck, api.PhaseSucceeded, api.PhaseSpecError, api.PhaseSubmissionError, api.PhaseError, api.PhaseLate} {
		if !strings.Contains(fmt.Sprint(back.RunViews()), string(phase)) {
			t.Errorf("no %s run in %+v", phase, back.RunViews())
		}
	}
	if v := back.RunViews()[0]; v.Source != "callback" || *v.DurationSeconds != 754 || !v.ScheduledAt.Equal(end.Add(-754*time.Second)) {
		t.Errorf("view %+v", v)
	}
	if j, err := DecodeJob("ml.nightly", `{"lastAt":"2026-11-24T04:12:34Z","phase":"Failed","h":null}`); err != nil || len(j.History) != 0 || len(j.Runs()) != 1 {
		t.Errorf("a null history: %v, %+v", err, j.Runs())
	}
	for _, bad := range []string{`"h":5`, `"h":"F"`, `"h":"Zc1"`, `"h":"F+"`, `"h":"Fc1.x!"`, `"h":"Fc1 S"`, `"h":"Fc1~%"`, `"h":"Fc1.-2"`, `"h":"f1~2"`, `"h":"F#1"`, `"h":"F1  F1"`} {
		if _, err := DecodeJob("ml.nightly", `{"lastAt":"2026-11-24T04:12:34Z",`+bad+`}`); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v, want ErrCorrupt", bad, err)
		}
	}
}

// TestHistoryMigration: a job stored before jobs kept a history (today's
// value) is seeded with the runs its state knows, and the next result adds
// to them.
func TestHistoryMigration(t *testing.T) {
	stored := `{"failingSince":"2026-11-24T02:00:12Z","failedRuns":3,"lastAt":"2026-11-24T04:00:12Z","workflow":"nightly-1795492800","uid":"u3","phase":"Error",` +
		`"lastStreak":{"since":"2026-11-23T20:00:00Z","until":"2026-11-23T23:00:00Z","seconds":10800,"failures":2},` +
		`"streaks":[{"since":"2026-11-22T20:00:00Z","until":"2026-11-22T21:00:00Z","seconds":3600,"failures":1}],"runs":["YP7ZBQxc"]}`
	job, err := DecodeJob("ml.nightly", stored)
	if err != nil {
		t.Fatal(err)
	}
	want := "Error/unknown/2.0033333333333334/? Failed/unknown/0.0033333333333333335/? Succeeded/unknown/-3/? Failed/unknown/-6/? Succeeded/unknown/-29/? Failed/unknown/-30/?"
	if got := history(job); got != want {
		t.Fatalf("seeded\n got %s\nwant %s", got, want)
	}
	next, _ := Apply(job, true, withDuration(run("nightly", "u4", api.PhaseSucceeded, 3), 5), at(4))
	if got := history(next); got != "Succeeded/callback/3.001388888888889/5 "+want {
		t.Errorf("after a run\n got %s", got)
	}
	b, _ := json.Marshal(next)
	again, err := DecodeJob("ml.nightly", string(b))
	if err != nil || history(again) != history(next) {
		t.Errorf("stored and read back: %v\n got %s\nwant %s", err, history(again), history(next))
	}
	// A fresh job has no history to seed.
	if runs := (Job{Namespace: "ml"}).Runs(); runs != nil {
		t.Errorf("fresh job: %v", runs)
	}
}

func TestUsualOf(t *testing.T) {
	var runs []api.Run
	tick := t0
	add := func(phase api.Phase, seconds int) {
		runs = append(runs, NewRun(phase, api.SourceCallback, tick.Add(time.Duration(seconds)*time.Second), tick, time.Duration(seconds)*time.Second).View())
		tick = tick.Add(time.Hour)
	}
	show := func(u api.Usual) string {
		f := func(p *float64) string {
			if p == nil {
				return "-"
			}
			return fmt.Sprint(*p)
		}
		return fmt.Sprintf("median %s p90 %s of %d, every %s; %s", f(u.MedianSeconds), f(u.P90Seconds), u.SuccessfulRuns, f(u.IntervalSeconds), u.Note)
	}
	for _, s := range []int{100, 300, 200} {
		add(api.PhaseSucceeded, s)
	}
	add(api.PhaseFailed, 9000) // a failure says nothing of how long it usually takes
	add(api.PhaseSucceeded, 0) // nor does a run of unknown duration
	if got, want := show(UsualOf(runs)), "median - p90 - of 3, every 3600; the usual duration needs 5 successful runs of known duration, 3 known"; got != want {
		t.Errorf("5 runs, 3 successful ones timed:\n got %s\nwant %s", got, want)
	}
	if got, want := show(UsualOf(runs[:3])), "median - p90 - of 3, every -; the usual duration needs 5 successful runs of known duration, 3 known; the usual interval needs 5 runs, 3 known"; got != want {
		t.Errorf("3 runs:\n got %s\nwant %s", got, want)
	}
	for _, s := range []int{400, 500, 600, 700, 800, 900, 1000} {
		add(api.PhaseSucceeded, s)
	}
	// A missed tick counts as a run; a retry of a tick is not another
	// interval (its duration counts).
	missed := NewRun(api.PhaseMissed, api.SourceArgo, tick.Add(time.Minute), tick, 0).View()
	retried := runs[2]
	retried.FinishedAt = retried.FinishedAt.Add(time.Minute)
	runs = append(runs, missed, retried)
	if got, want := show(UsualOf(runs)), "median 500 p90 900 of 11, every 3600; "; got != want {
		t.Errorf("14 runs, 10 successful ones timed:\n got %s\nwant %s", got, want)
	}
}
