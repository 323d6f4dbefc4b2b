package alarm

import (
	"strings"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// A 99-second streak is "1m 39s" in the entries, as on the pages (both
// api.FormatDuration), and failingSeconds counts whole seconds.
func TestEntriesShowDurationsAsThePagesDo(t *testing.T) {
	start := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	failed := api.Result{Namespace: "ml", WorkflowName: "n-1", UID: "1", CronWorkflow: "n", Phase: api.PhaseFailed, CreatedAt: start.Format(time.RFC3339)}
	j, _ := state.Apply(state.Job{}, false, failed, start)

	now := start.Add(99*time.Second + 123456789*time.Nanosecond)
	e := failingEntry(j, nil, now)
	if !strings.Contains(e.Payload.Message, "failing for 1m 39s;") || e.Payload.FailingSeconds != 99 {
		t.Errorf("ERROR entry %q, failingSeconds %v; want 1m 39s and 99", e.Payload.Message, e.Payload.FailingSeconds)
	}
	succeeded := api.Result{Namespace: "ml", WorkflowName: "n-2", UID: "2", CronWorkflow: "n", Phase: api.PhaseSucceeded, CreatedAt: start.Add(99 * time.Second).Format(time.RFC3339)}
	j, _ = state.Apply(j, true, succeeded, now)
	if n := recoveredEntry(j, now); !strings.HasSuffix(n.Payload.Message, "failing for "+api.FormatDuration(99*time.Second)) || api.FormatDuration(99*time.Second) != "1m 39s" {
		t.Errorf("NOTICE %q", n.Payload.Message)
	}
}

// The ERROR entry says how many more steps failed than the job keeps, and
// carries the count in its payload.
func TestFailingEntrySaysHowManyMoreStepsFailed(t *testing.T) {
	start := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	r := api.Result{Namespace: "ml", WorkflowName: "n-1", UID: "1", CronWorkflow: "n", Phase: api.PhaseFailed, CreatedAt: start.Format(time.RFC3339),
		Failures: []api.Failure{{DisplayName: "train", Message: "OOMKilled"}, {DisplayName: "eval"}, {DisplayName: "a"}, {DisplayName: "b"}, {DisplayName: "c"}}}
	j, _ := state.Apply(state.Job{}, false, r, start)
	e := failingEntry(j, nil, start.Add(time.Minute))
	if !strings.HasSuffix(e.Payload.Message, "(train: OOMKilled; and 4 more failed steps)") || e.Payload.LastFailuresOmitted != 3 {
		t.Errorf("ERROR entry %q, lastFailuresOmitted %d", e.Payload.Message, e.Payload.LastFailuresOmitted)
	}
	r.Failures = r.Failures[:1]
	j, _ = state.Apply(state.Job{}, false, r, start)
	if e := failingEntry(j, nil, start); !strings.HasSuffix(e.Payload.Message, "(train: OOMKilled)") {
		t.Errorf("ERROR entry %q", e.Payload.Message)
	}
}
