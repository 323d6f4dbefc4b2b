package server

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/filestore"
)

// withUnreadable is a store that also lists jobs whose stored value cannot
// be read, as the ConfigMap store lists them (state.Job.Unreadable).
type withUnreadable struct {
	state.Store
	unreadable []state.Job
}

func (s withUnreadable) List(ctx context.Context) ([]state.Job, error) {
	jobs, err := s.Store.List(ctx)
	jobs = append(jobs, s.unreadable...)
	state.SortByKey(jobs)
	return jobs, err
}

// A job whose stored value cannot be read is shown, with why, wherever jobs
// are listed: from its last readable copy (failing, so among the failing
// jobs, where it keeps alerting) or, with no copy known, by its identity in
// a section of its own; never as healthy.
func TestUnreadableJobsAreShown(t *testing.T) {
	files, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	healthy := api.Result{Namespace: "etl", WorkflowName: "load-1", UID: "l1", CronWorkflow: "load", Phase: api.PhaseSucceeded, CreatedAt: "2026-11-24T04:00:00Z"}
	if _, err := files.Record(context.Background(), healthy, now); err != nil {
		t.Fatal(err)
	}
	since := now.Add(-2 * time.Hour)
	const why = "stored job is unreadable: key ml.nightly: invalid character 'e' (in ConfigMap batchlatch-state-3)"
	store := withUnreadable{Store: files, unreadable: []state.Job{
		{Namespace: "ml", Name: "nightly", FailingSince: &since, ConsecutiveFailures: 2, LastResultAt: since, LastWorkflow: "nightly-2", LastPhase: api.PhaseFailed, Unreadable: why},
		{Namespace: "ml", Name: "lost", Unreadable: "stored job is unreadable: key ml.lost: unexpected end of JSON input"},
	}}
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(NewServer(slog.New(slog.DiscardHandler), store, &countingKicker{}, reg, NewMetrics(reg), Config{Now: func() time.Time { return now }}))
	t.Cleanup(srv.Close)

	code, _, body := get(t, srv, "/")
	if code != 200 {
		t.Fatalf("status page: %d\n%s", code, body)
	}
	failing, unreadable, healthySection := section(body, "failing"), section(body, "unreadable"), section(body, "healthy")
	if !inOrder(failing, ">nightly<", `badge unreadable`, "invalid character") {
		t.Errorf("the failing section does not show nightly as unreadable, with why:\n%s", failing)
	}
	if !inOrder(unreadable, ">lost<", `badge unreadable">unreadable<`, "unexpected end of JSON input") || strings.Contains(unreadable, "Last success") {
		t.Errorf("the unreadable section does not show lost (by its identity, with why):\n%s", unreadable)
	}
	if strings.Contains(healthySection, "lost") || !strings.Contains(body, `<b>1</b> unreadable`) {
		t.Errorf("lost is shown as healthy, or the summary does not count it:\n%s", body)
	}

	code, _, body = get(t, srv, "/api/v1/failures")
	var failures api.FailureList
	if err := json.Unmarshal([]byte(body), &failures); code != 200 || err != nil || len(failures.Failures) != 1 || failures.Failures[0].Unreadable != why || !failures.Failures[0].Alerting {
		t.Fatalf("failures: %d %s", code, body)
	}
	code, _, body = get(t, srv, "/api/v1/jobs/ml")
	var jobs api.JobList
	if err := json.Unmarshal([]byte(body), &jobs); code != 200 || err != nil || len(jobs.Jobs) != 2 || jobs.Jobs[0].Job != "lost" || jobs.Jobs[0].Unreadable == "" || jobs.Jobs[0].LastPhase != "" {
		t.Fatalf("jobs of ml: %d %s", code, body)
	}
}
