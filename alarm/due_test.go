package alarm

import (
	"testing"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// scenario drives Due minute by minute over a job's results, as the loop
// does with a fake clock, and keeps every entry with the minute it was due.
type scenario struct {
	t         *testing.T
	start     time.Time
	job       state.Job
	exists    bool
	announced Announced
	written   []timedEntry
}

type timedEntry struct {
	minute int
	entry  Entry
}

func (s *scenario) at(minute int) time.Time { return s.start.Add(time.Duration(minute) * time.Minute) }

// result applies a result received at minute, then the kick it causes.
func (s *scenario) result(minute int, uid string, phase wfv1.WorkflowPhase) {
	r := api.Result{Namespace: "ml", CronWorkflow: "nightly", WorkflowName: "nightly-" + uid, UID: uid, Phase: phase,
		CreatedAt: s.at(minute).Add(-time.Minute).Format(time.RFC3339), DurationSeconds: 60}
	job, outcome := state.Apply(s.job, s.exists, r, s.at(minute))
	s.job, s.exists = job, true
	if t := outcome.Transition; t == state.StartedFailing || t == state.Recovered {
		s.pass(minute, true)
	}
}

func (s *scenario) pass(minute int, kicked bool) {
	entries, next := Due([]state.Job{s.job}, s.announced, s.at(minute), DueConfig{RecoveryWindow: 30 * time.Minute, Kicked: kicked})
	s.announced = next
	for _, e := range entries {
		s.written = append(s.written, timedEntry{minute, e})
	}
}

func TestDueEntryStreamOfAStreak(t *testing.T) {
	s := &scenario{t: t, start: time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)}
	// Failures at minutes 0, 60 and 120, the success at 180; a pass every
	// minute (--interval 60s) until minute 240.
	results := map[int]wfv1.WorkflowPhase{0: wfv1.WorkflowFailed, 60: wfv1.WorkflowFailed, 120: wfv1.WorkflowFailed, 180: wfv1.WorkflowSucceeded}
	for minute := 0; minute <= 240; minute++ {
		if phase, ok := results[minute]; ok {
			s.result(minute, "run-"+string(rune('a'+minute/60)), phase)
		}
		s.pass(minute, false)
	}

	failingMinutes := map[int]int{}
	healthyMinutes := map[int]int{}
	notices := 0
	for _, w := range s.written {
		switch {
		case w.entry.Severity == SeverityError && w.entry.Payload.Failing == 1:
			failingMinutes[w.minute]++
		case w.entry.Severity == SeverityNotice:
			notices++
			if w.minute != 180 || w.entry.Payload.LastStreak == nil || w.entry.Payload.LastStreak.Failures != 3 {
				t.Errorf("NOTICE at minute %d: %+v", w.minute, w.entry.Payload)
			}
		case w.entry.Severity == SeverityInfo && w.entry.Payload.Failing == 0:
			healthyMinutes[w.minute]++
		default:
			t.Errorf("unexpected entry at minute %d: %+v", w.minute, w.entry)
		}
	}
	// Every minute of the streak has a failing 1 entry: one per pass, and
	// the kick at its start adds one at once (the streak's first minute).
	for minute := 0; minute < 180; minute++ {
		if want := 1 + boolInt(minute == 0); failingMinutes[minute] != want {
			t.Errorf("minute %d of the streak: %d failing entries, want %d", minute, failingMinutes[minute], want)
		}
	}
	// …none after the success, which has exactly one NOTICE…
	for minute := 180; minute <= 240; minute++ {
		if failingMinutes[minute] != 0 {
			t.Errorf("minute %d after the success: a failing entry", minute)
		}
	}
	if notices != 1 {
		t.Errorf("%d NOTICEs for one streak, want 1", notices)
	}
	// …then failing 0 every minute of the 30-minute recovery window (the
	// NOTICE's own minute has the NOTICE), and nothing after it.
	for minute := 180; minute < 210; minute++ {
		if healthyMinutes[minute] != 1 {
			t.Errorf("minute %d of the recovery window: %d failing 0 entries, want 1", minute, healthyMinutes[minute])
		}
	}
	for minute := 211; minute <= 240; minute++ {
		if healthyMinutes[minute] != 0 {
			t.Errorf("minute %d, after the recovery window: an entry", minute)
		}
	}
}

// Due is pure: the announcement it is given is not changed.
func TestDueDoesNotChangeItsInput(t *testing.T) {
	since := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	job := state.Job{Namespace: "ml", Name: "nightly", FailingSince: &since, ConsecutiveFailures: 1, LastPhase: wfv1.WorkflowFailed}
	before := Announced{Failing: map[state.Key]time.Time{}, Recovery: map[state.Key]time.Time{}}
	entries, after := Due([]state.Job{job}, before, since.Add(time.Minute), DueConfig{})
	if len(entries) != 1 || len(before.Failing) != 0 || !after.Failing[job.Key()].Equal(since) {
		t.Fatalf("entries %d, before %v, after %v", len(entries), before, after)
	}
	// Kicked with the streak announced: nothing new is due.
	if entries, _ := Due([]state.Job{job}, after, since.Add(90*time.Second), DueConfig{Kicked: true}); len(entries) != 0 {
		t.Fatalf("a kick repeated the streak's entry: %+v", entries)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A new leader cannot know which NOTICE its predecessor wrote: it writes
// the same entry again (same timestamp, same insertId), which Cloud Logging
// shows once. Across a leader change there is still one NOTICE per streak.
func TestDueOneNoticePerStreakAcrossALeaderChange(t *testing.T) {
	s := &scenario{t: t, start: time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)}
	s.result(0, "a", wfv1.WorkflowFailed)
	s.result(60, "b", wfv1.WorkflowSucceeded) // the old leader's NOTICE, at once
	s.pass(61, false)
	s.announced = Announced{} // a new leader, from the stored state alone
	s.pass(62, false)
	s.pass(63, false)
	// A second streak and its recovery: a NOTICE of its own.
	s.result(100, "c", wfv1.WorkflowFailed)
	s.result(101, "d", wfv1.WorkflowSucceeded)

	type identity struct {
		at       time.Time
		insertID string
	}
	shown := map[identity]bool{}
	written := 0
	for _, w := range s.written {
		if w.entry.Severity != SeverityNotice {
			continue
		}
		written++
		if w.entry.InsertID == "" {
			t.Fatalf("NOTICE without an insertId: %+v", w.entry)
		}
		shown[identity{w.entry.Time, w.entry.InsertID}] = true
	}
	if written != 3 || len(shown) != 2 {
		t.Fatalf("%d NOTICEs written, %d shown; want 3 written (one again by the new leader) and 2 shown, one per streak", written, len(shown))
	}
}
