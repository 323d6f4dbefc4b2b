package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
)

// What a watcher notes of a job (why its ticks are not checked, what
// max-runtime auto makes of it) shows below its row, on one line, escaped.
func TestPrintRunsShowsTheScheduleNote(t *testing.T) {
	var out strings.Builder
	job := api.JobDetail{Job: api.Job{Schedule: &api.Schedule{Note: "the controller never runs it: bad\x1b[2J\nline; max-runtime auto: no limit applies yet"}}}
	if err := printRuns(&out, job); err != nil {
		t.Fatal(err)
	}
	want := "\nSchedule note:   the controller never runs it: bad\\x1b[2J line; max-runtime auto: no limit applies yet\nNo run recorded yet.\n"
	if out.String() != want {
		t.Errorf("printed %q, want %q", out.String(), want)
	}
}

// A late job says so below its row, opted in or not, with since when; one
// that asked shows its interval and when it will be late.
func TestPrintRunsShowsLateness(t *testing.T) {
	hour := time.Hour.Seconds()
	silent := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	lateAt := silent.Add(2*time.Hour + 10*time.Minute)
	for _, c := range []struct {
		name     string
		expected api.Expected
		want     string
	}{
		{"late, not asked", api.Expected{Auto: true, EverySeconds: &hour, SilentSince: silent, LateAt: &lateAt, Late: true},
			"Expected every:   1h, its usual interval (not asked: shown only)\nLate:             since 2026-12-06T10:10:00Z, no result since 2026-12-06T08:00:00Z\n"},
		{"asked, on time", api.Expected{OptedIn: true, EverySeconds: &hour, SilentSince: silent, LateAt: &lateAt},
			"Expected every:   1h (asked: a Late run when late)\nLate at:          2026-12-06T10:10:00Z without a result\n"},
		{"auto, not known yet", api.Expected{OptedIn: true, Auto: true, SilentSince: silent, Note: "the usual interval needs 5 runs, 2 known"},
			"Expected every:   - (asked: a Late run when late)\nExpected note:    the usual interval needs 5 runs, 2 known\n"},
	} {
		var out strings.Builder
		expected := c.expected
		if err := printRuns(&out, api.JobDetail{Job: api.Job{Expected: &expected}}); err != nil {
			t.Fatal(err)
		}
		if want := "\n" + c.want + "No run recorded yet.\n"; out.String() != want {
			t.Errorf("%s: printed %q, want %q", c.name, out.String(), want)
		}
	}
}
