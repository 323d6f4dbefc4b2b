package alarm

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

type failingLister struct{}

func (failingLister) List(context.Context) ([]state.Job, error) {
	return nil, errors.New("API server unreachable")
}

func TestJobGaugesFollowTheStoredState(t *testing.T) {
	jobs := &memJobs{}
	g := NewJobGauges(jobs, nil)
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
	if err := compareText(t, g, want, MetricJobFailing, MetricJobFailingSince, MetricJobConsecutiveFailures, MetricJobLastResult); err != nil {
		t.Fatal(err)
	}
	// A job forgotten while failing reads 0 while the alarm closes its
	// incident (kept in the state), so that a PromQL alert resolves at once;
	// its series go once the alarm has removed it.
	forgotten := forgottenJob(failingJob("nightly", 3), since.Add(3*time.Hour))
	jobs.set(recovered, forgotten)
	wantForgotten := `
# HELP batchlatch_job_alerting 1 while the job's failure streak has reached its failure threshold and no silence mutes it, else 0: what the alert reads.
# TYPE batchlatch_job_alerting gauge
batchlatch_job_alerting{job="hourly",kind="Workflow",namespace="ml"} 0
batchlatch_job_alerting{job="nightly",kind="Workflow",namespace="ml"} 0
# HELP batchlatch_job_failing 1 while the job's latest run failed, else 0.
# TYPE batchlatch_job_failing gauge
batchlatch_job_failing{job="hourly",kind="Workflow",namespace="ml"} 0
batchlatch_job_failing{job="nightly",kind="Workflow",namespace="ml"} 0
`
	if err := compareText(t, g, wantForgotten, MetricJobFailing, MetricJobAlerting); err != nil {
		t.Fatal(err)
	}
	jobs.set(recovered)
	if n := countSeries(t, g, MetricJobFailing); n != 1 {
		t.Fatalf("%d failing series after nightly was removed, want 1", n)
	}
	// The state cannot be read: no per-job series, one error counted.
	broken := NewJobGauges(failingLister{}, nil)
	if n := countSeries(t, broken, MetricJobFailing); n != 0 {
		t.Fatalf("%d series from an unreadable state", n)
	}
	if n := testutil.ToFloat64(broken.errors); n != 1 {
		t.Fatalf("errors = %v, want 1", n)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// What the alert reads: alerting is 1 only for a failing job at or past its
// failure threshold that no silence in force mutes; silenced says which are
// muted, a whole namespace's silence included.
func TestJobGaugesAlertingAndSilenced(t *testing.T) {
	jobs := &memJobs{}
	belowThreshold := failingJob("weekly", 1)
	belowThreshold.FailureThreshold = 2
	jobs.set(failingJob("nightly", 3), belowThreshold, failingJob("hourly", 1))
	silences := []api.Silence{
		{ID: "a", Namespace: "ml", Job: "hourly", StartsAt: since, EndsAt: since.Add(time.Hour)},
		{ID: "b", Namespace: "ml", StartsAt: since.Add(2 * time.Hour), EndsAt: since.Add(3 * time.Hour)},
	}
	g := NewJobGauges(jobs, func(context.Context) ([]api.Silence, error) { return silences, nil })
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{since.Add(30 * time.Minute), `
batchlatch_job_alerting{job="hourly",kind="Workflow",namespace="ml"} 0
batchlatch_job_alerting{job="nightly",kind="Workflow",namespace="ml"} 1
batchlatch_job_alerting{job="weekly",kind="Workflow",namespace="ml"} 0
batchlatch_job_silenced{job="hourly",kind="Workflow",namespace="ml"} 1
batchlatch_job_silenced{job="nightly",kind="Workflow",namespace="ml"} 0
batchlatch_job_silenced{job="weekly",kind="Workflow",namespace="ml"} 0
`},
		{since.Add(90 * time.Minute), `
batchlatch_job_alerting{job="hourly",kind="Workflow",namespace="ml"} 1
batchlatch_job_alerting{job="nightly",kind="Workflow",namespace="ml"} 1
batchlatch_job_alerting{job="weekly",kind="Workflow",namespace="ml"} 0
batchlatch_job_silenced{job="hourly",kind="Workflow",namespace="ml"} 0
batchlatch_job_silenced{job="nightly",kind="Workflow",namespace="ml"} 0
batchlatch_job_silenced{job="weekly",kind="Workflow",namespace="ml"} 0
`},
		{since.Add(150 * time.Minute), `
batchlatch_job_alerting{job="hourly",kind="Workflow",namespace="ml"} 0
batchlatch_job_alerting{job="nightly",kind="Workflow",namespace="ml"} 0
batchlatch_job_alerting{job="weekly",kind="Workflow",namespace="ml"} 0
batchlatch_job_silenced{job="hourly",kind="Workflow",namespace="ml"} 1
batchlatch_job_silenced{job="nightly",kind="Workflow",namespace="ml"} 1
batchlatch_job_silenced{job="weekly",kind="Workflow",namespace="ml"} 1
`},
	} {
		g.now = func() time.Time { return tc.at }
		want := "# HELP batchlatch_job_alerting 1 while the job's failure streak has reached its failure threshold and no silence mutes it, else 0: what the alert reads.\n# TYPE batchlatch_job_alerting gauge" +
			strings.Join(strings.SplitAfter(tc.want, "\n")[:4], "") +
			"# HELP batchlatch_job_silenced 1 while a silence mutes the job, else 0.\n# TYPE batchlatch_job_silenced gauge\n" +
			strings.Join(strings.SplitAfter(tc.want, "\n")[4:], "")
		if err := compareText(t, g, want, MetricJobAlerting, MetricJobSilenced); err != nil {
			t.Errorf("at %s: %v", tc.at.Sub(since), err)
		}
	}
	// Silences that cannot be read: no per-job series rather than a muted
	// job alerting.
	broken := NewJobGauges(jobs, func(context.Context) ([]api.Silence, error) { return nil, errors.New("unreachable") })
	if n := countSeries(t, broken, MetricJobAlerting); n != 0 {
		t.Fatalf("%d alerting series without the silences, want 0", n)
	}
}

// A job whose stored value cannot be read says so in a gauge of its own,
// and keeps its last readable copy's series (so it keeps alerting); with no
// copy known it has that gauge only (no made-up times).
func TestJobGaugesUnreadable(t *testing.T) {
	jobs := &memJobs{}
	fromCopy := failingJob("nightly", 2)
	fromCopy.Unreadable = "stored job is unreadable: key ml.nightly: invalid character"
	identityOnly := state.Job{Namespace: "ml", Name: "lost", Unreadable: "stored job is unreadable: key ml.lost: unexpected end of JSON input"}
	jobs.set(identityOnly, fromCopy, failingJob("hourly", 1))
	g := NewJobGauges(jobs, nil)
	want := `
# HELP batchlatch_job_alerting 1 while the job's failure streak has reached its failure threshold and no silence mutes it, else 0: what the alert reads.
# TYPE batchlatch_job_alerting gauge
batchlatch_job_alerting{job="hourly",kind="Workflow",namespace="ml"} 1
batchlatch_job_alerting{job="nightly",kind="Workflow",namespace="ml"} 1
# HELP batchlatch_job_unreadable 1 while the job's stored value cannot be read (fix or delete it); absent otherwise. The job's other series are its last readable copy's, absent when none is known.
# TYPE batchlatch_job_unreadable gauge
batchlatch_job_unreadable{job="lost",kind="Workflow",namespace="ml"} 1
batchlatch_job_unreadable{job="nightly",kind="Workflow",namespace="ml"} 1
`
	if err := compareText(t, g, want, MetricJobAlerting, MetricJobUnreadable); err != nil {
		t.Fatal(err)
	}
	if n := countSeries(t, g, MetricJobLastResult); n != 2 {
		t.Fatalf("%d last-result series, want 2: none for a job of which nothing is known", n)
	}
}

// compareText returns an error unless the families names of what g writes
// are want's
// (the text format, values compared as numbers).
func compareText(t *testing.T, g *JobGauges, want string, names ...string) error {
	t.Helper()
	parse := func(text string) string {
		parser := expfmt.NewTextParser(model.UTF8Validation)
		families, err := parser.TextToMetricFamilies(strings.NewReader(text))
		if err != nil {
			t.Fatalf("%v\n%s", err, text)
		}
		var out strings.Builder
		slices.Sort(names)
		for _, name := range names {
			if f, ok := families[name]; ok {
				// In label order, as a registry writes them: memJobs lists
				// in no order.
				sortByString(f.Metric)
				if _, err := expfmt.MetricFamilyToText(&out, f); err != nil {
					t.Fatal(err)
				}
			}
		}
		return out.String()
	}
	if got, want := parse(writeText(t, g)), parse(want); got != want {
		return fmt.Errorf("got\n%s\nwant\n%s", got, want)
	}
	return nil
}

func sortByString[T fmt.Stringer](xs []T) {
	slices.SortFunc(xs, func(a, b T) int { return strings.Compare(a.String(), b.String()) })
}

// countSeries is how many series of name g writes.
func countSeries(t *testing.T, g *JobGauges, name string) int {
	t.Helper()
	return strings.Count(writeText(t, g), "\n"+name+"{")
}

func writeText(t *testing.T, g *JobGauges) string {
	t.Helper()
	var out strings.Builder
	out.WriteString("\n")
	_ = g.WriteText(context.Background(), &out) // an error writes nothing
	return out.String()
}

// Label values are escaped as the text format wants: what a parser reads
// back is the job's name.
func TestJobGaugesEscapeLabels(t *testing.T) {
	odd := failingJob("a\"b\\c\nd", 1)
	g := NewJobGauges(&memJobs{jobs: []state.Job{odd}}, nil)
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(writeText(t, g)))
	if err != nil {
		t.Fatal(err)
	}
	f := families[MetricJobFailing]
	if f == nil || len(f.Metric) != 1 {
		t.Fatalf("failing: %v", f)
	}
	for _, l := range f.Metric[0].Label {
		if l.GetName() == LabelJob && l.GetValue() != odd.Name {
			t.Fatalf("job label %q, want %q", l.GetValue(), odd.Name)
		}
	}
}
