package alarm

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

type failingLister struct{}

func (failingLister) List(context.Context) ([]state.Job, error) {
	return nil, errors.New("API server unreachable")
}

func TestJobGaugesFollowTheStoredState(t *testing.T) {
	jobs := &memJobs{}
	g := NewJobGauges(jobs)
	recovered := recoveredJob("hourly", since.Add(2*time.Hour))
	recovered.LastResultAt = since.Add(2 * time.Hour)
	// A CronJob of the same name is a job of its own.
	cronJob := failingJob("nightly", 1)
	cronJob.Kind = api.KindCronJob
	jobs.set(failingJob("nightly", 3), recovered, cronJob)
	want := `
# HELP batchlatch_job_consecutive_failures Failed runs in a row; 0 while the job is not failing.
# TYPE batchlatch_job_consecutive_failures gauge
batchlatch_job_consecutive_failures{job="hourly",kind="Workflow",namespace="ml"} 0
batchlatch_job_consecutive_failures{job="nightly",kind="CronJob",namespace="ml"} 1
batchlatch_job_consecutive_failures{job="nightly",kind="Workflow",namespace="ml"} 3
# HELP batchlatch_job_failing 1 while the job's latest run failed, else 0.
# TYPE batchlatch_job_failing gauge
batchlatch_job_failing{job="hourly",kind="Workflow",namespace="ml"} 0
batchlatch_job_failing{job="nightly",kind="CronJob",namespace="ml"} 1
batchlatch_job_failing{job="nightly",kind="Workflow",namespace="ml"} 1
# HELP batchlatch_job_failing_since_timestamp_seconds When the job's failure streak began (the first failed run's finish time), Unix seconds; 0 while it is not failing.
# TYPE batchlatch_job_failing_since_timestamp_seconds gauge
batchlatch_job_failing_since_timestamp_seconds{job="hourly",kind="Workflow",namespace="ml"} 0
batchlatch_job_failing_since_timestamp_seconds{job="nightly",kind="CronJob",namespace="ml"} ` + itoa(since.Unix()) + `
batchlatch_job_failing_since_timestamp_seconds{job="nightly",kind="Workflow",namespace="ml"} ` + itoa(since.Unix()) + `
# HELP batchlatch_job_last_result_timestamp_seconds When the job's latest known run finished, Unix seconds.
# TYPE batchlatch_job_last_result_timestamp_seconds gauge
batchlatch_job_last_result_timestamp_seconds{job="hourly",kind="Workflow",namespace="ml"} ` + itoa(since.Add(2*time.Hour).Unix()) + `
batchlatch_job_last_result_timestamp_seconds{job="nightly",kind="CronJob",namespace="ml"} ` + itoa(since.Unix()) + `
batchlatch_job_last_result_timestamp_seconds{job="nightly",kind="Workflow",namespace="ml"} ` + itoa(since.Unix()) + `
`
	if err := testutil.CollectAndCompare(g, strings.NewReader(want), MetricJobFailing, MetricJobFailingSince, MetricJobConsecutiveFailures, MetricJobLastResult); err != nil {
		t.Fatal(err)
	}
	// A forgotten job's series go.
	jobs.set(recovered)
	if n := testutil.CollectAndCount(g, MetricJobFailing); n != 1 {
		t.Fatalf("%d failing series after nightly was forgotten, want 1", n)
	}
	// The state cannot be read: no per-job series, one error counted.
	broken := NewJobGauges(failingLister{})
	if n := testutil.CollectAndCount(broken, MetricJobFailing); n != 0 {
		t.Fatalf("%d series from an unreadable state", n)
	}
	if n := testutil.ToFloat64(broken.errors); n != 1 {
		t.Fatalf("errors = %v, want 1", n)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
