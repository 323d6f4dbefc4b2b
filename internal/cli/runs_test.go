package cli

import (
	"strings"
	"testing"

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
