package server

import (
	"context"
	"encoding/json"
	"io"
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

const lateGrace = 10 * time.Minute

// lateServer serves, at now, three jobs of namespace ops that ran hourly
// from now-30h: "export" (asks for Late runs: expected-every 1h) and "sync"
// (asks nothing) fell silent at now-20h, "fresh" (asks nothing) reported an
// hour ago. The Late run of export is recorded, as the alarm loop would.
// "watched", silent like sync but read by a watcher, is never late: its
// missed ticks say so.
func lateServer(t *testing.T) *httptest.Server {
	t.Helper()
	store, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	ctx := context.Background()
	for _, job := range []struct {
		name, every string
		runs        int
	}{{"export", "1h", 10}, {"sync", "", 10}, {"fresh", "", 29}, {"watched", "1h", 10}} {
		for i := range job.runs {
			created := now.Add(time.Duration(i-30) * time.Hour)
			r := api.Result{Namespace: "ops", CronWorkflow: job.name, WorkflowName: job.name + "-" + created.Format("0102t15"), Phase: api.PhaseSucceeded,
				CreatedAt: created.Format(time.RFC3339), DurationSeconds: 60}
			if job.every != "" {
				r.Annotations = map[string]string{api.AnnotationExpectedEvery: job.every}
			}
			if _, err := store.Record(ctx, r, created.Add(time.Minute)); err != nil {
				t.Fatal(err)
			}
		}
	}
	export, err := store.Get(ctx, state.Key{Namespace: "ops", Name: "export"})
	if err != nil {
		t.Fatal(err)
	}
	late, ok := state.LateResult(export, now, lateGrace)
	if !ok {
		t.Fatal("no Late run for ops/export")
	}
	if _, err := store.Record(ctx, late, now); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv := httptest.NewServer(NewServer(logger, store, &countingKicker{}, reg, NewMetrics(reg),
		Config{Now: func() time.Time { return now }, MissedGrace: lateGrace, Schedules: func(_, _, name string, _ time.Time) *api.Schedule {
			if name != "watched" {
				return nil
			}
			return &api.Schedule{Kind: "CronWorkflow", Schedules: []string{"0 * * * *"}, Timezone: "UTC"}
		}}))
	t.Cleanup(srv.Close)
	return srv
}

// A late job shows it on the status page, its own page and in REST: with
// its Late run when it asked for one, for the reader only when it did not.
func TestPagesShowLateJobs(t *testing.T) {
	srv := lateServer(t)
	_, _, status := get(t, srv, "/")
	card := func(name string) string {
		_, rest, _ := strings.Cut(status, `href="/jobs/ops/`+name+`"`)
		c, _, _ := strings.Cut(rest, "</li>")
		return c
	}
	export, sync, fresh := card("export"), card("sync"), card("fresh")
	if !strings.Contains(section(status, "failing"), `href="/jobs/ops/export"`) || !strings.Contains(export, `<span class="badge late">late</span>`) ||
		!strings.Contains(export, `no result since <span class="rel">20h 59m ago</span>`) || !strings.Contains(export, "late since") || !strings.Contains(export, "expected every 1h") || strings.Contains(export, "shown only") {
		t.Errorf("ops/export, failing with its Late run:\n%s", export)
	}
	if !strings.Contains(section(status, "healthy"), `href="/jobs/ops/sync"`) || !strings.Contains(sync, `<span class="badge late">late</span>`) ||
		!strings.Contains(sync, "usually every 1h") || !strings.Contains(sync, "shown only") {
		t.Errorf("ops/sync, late for the reader only:\n%s", sync)
	}
	if fresh == "" || strings.Contains(fresh, "badge late") || strings.Contains(fresh, "<dt>Late") || strings.Contains(fresh, "<dt>Expected") {
		t.Errorf("ops/fresh is on time and asks nothing:\n%s", fresh)
	}
	_, _, page := get(t, srv, "/jobs/ops/sync")
	if !strings.Contains(page, `<span class="badge late">late</span></h1>`) || !strings.Contains(page, "<dt>Late</dt>") {
		t.Errorf("the job page of ops/sync:\n%s", page)
	}

	for name, want := range map[string]api.Expected{"export": {OptedIn: true, Late: true}, "sync": {Auto: true, Late: true}} {
		_, _, body := get(t, srv, "/api/v1/jobs/ops/"+name)
		var got api.JobDetail
		if err := json.Unmarshal([]byte(body), &got); err != nil {
			t.Fatal(err)
		}
		e := got.Expected
		if e == nil || e.OptedIn != want.OptedIn || e.Auto != want.Auto || e.Late != want.Late || e.EverySeconds == nil || *e.EverySeconds != 3600 {
			t.Errorf("REST ops/%s: expected %+v, want %+v every 3600 s:\n%s", name, e, want, body)
		}
	}
	for _, name := range []string{"fresh", "watched"} {
		if _, _, body := get(t, srv, "/api/v1/jobs/ops/"+name); strings.Contains(body, `"expected"`) {
			t.Errorf("REST ops/%s: %s", name, body)
		}
	}
	if watched := card("watched"); watched == "" || strings.Contains(watched, "badge late") {
		t.Errorf("ops/watched, read by a watcher:\n%s", watched)
	}
}
