package alarm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// Names of the per-job gauges: the Prometheus path's alert (a PromQL policy
// on Google Managed Prometheus) reads them.
const (
	MetricJobFailing             = "batchlatch_job_failing"
	MetricJobAlerting            = "batchlatch_job_alerting"
	MetricJobSilenced            = "batchlatch_job_silenced"
	MetricJobFailingSince        = "batchlatch_job_failing_since_timestamp_seconds"
	MetricJobConsecutiveFailures = "batchlatch_job_consecutive_failures"
	MetricJobLastResult          = "batchlatch_job_last_result_timestamp_seconds"
	MetricJobUnreadable          = "batchlatch_job_unreadable"
)

// JobGauges exports every stored job as gauges, labelled namespace, job and
// kind (LabelNamespace, LabelJob, LabelKind). They are read from the store
// each time they are written, not kept: so they are the stored state at
// start, every replica's agree with it (replicas share it; the ConfigMap
// store serves reads at most a second old), a recovered job's series stay,
// at 0, and a forgotten job's series go.
//
// They are written as text (WriteText), not collected by a registry: a
// registry (and expfmt) turns each series into a dto.Metric of its own and
// escapes its labels again for each, 700,000 series at 100,000 jobs, which
// took hundreds of MB per scrape and most of a build's CPU. WriteText
// escapes each job's labels once and appends the lines itself; the server
// shares what it writes between scrapes.
type JobGauges struct {
	jobs     Lister
	silences func(ctx context.Context) ([]api.Silence, error)
	now      func() time.Time
	timeout  time.Duration
	errors   prometheus.Counter
}

// NewJobGauges returns the gauges of the jobs in jobs, with the silences
// silences returns (nil: none). Register Errors with a registry.
func NewJobGauges(jobs Lister, silences func(ctx context.Context) ([]api.Silence, error)) *JobGauges {
	if silences == nil {
		silences = func(context.Context) ([]api.Silence, error) { return nil, nil }
	}
	return &JobGauges{
		jobs:     jobs,
		silences: silences,
		now:      time.Now,
		timeout:  30 * time.Second,
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "batchlatch_job_gauges_errors_total",
			Help: "Builds of the per-job gauges that left them out because the state could not be read.",
		}),
	}
}

// Errors counts the builds that left the per-job series out.
func (g *JobGauges) Errors() prometheus.Collector { return g.errors }

// jobFamily is one per-job gauge: its name, help and value for a job.
type jobFamily struct {
	name, help string
	value      func(j *state.Job, muted bool) float64
}

// jobFamilies are the per-job gauges but MetricJobUnreadable, in name order
// (the order a registry writes them in).
var jobFamilies = []jobFamily{
	{MetricJobAlerting, "1 while the job's failure streak has reached its failure threshold and no silence mutes it, else 0: what the alert reads.",
		func(j *state.Job, muted bool) float64 { return boolValue(j.Alerting() && !muted) }},
	{MetricJobConsecutiveFailures, "Failed runs in a row; 0 while the job is not failing.",
		func(j *state.Job, _ bool) float64 { return float64(j.ConsecutiveFailures) }},
	{MetricJobFailing, "1 while the job's latest run failed, else 0.",
		func(j *state.Job, _ bool) float64 { return boolValue(j.Failing()) }},
	{MetricJobFailingSince, "When the job's failure streak began (the first failed run's finish time), Unix seconds; 0 while it is not failing.",
		func(j *state.Job, _ bool) float64 {
			if !j.Failing() {
				return 0
			}
			return float64(j.FailingSince.Unix())
		}},
	{MetricJobLastResult, "When the job's latest known run finished, Unix seconds.",
		func(j *state.Job, _ bool) float64 { return float64(j.LastResultAt.Unix()) }},
	{MetricJobSilenced, "1 while a silence mutes the job, else 0.",
		func(_ *state.Job, muted bool) float64 { return boolValue(muted) }},
}

const unreadableHelp = "1 while the job's stored value cannot be read (fix or delete it); absent otherwise. The job's other series are its last readable copy's, absent when none is known."

// WriteText writes every job's series to w in the Prometheus text format.
// When the state cannot be read it writes none (a gap, which the shipped
// PromQL policy bridges), counts the error and returns it.
func (g *JobGauges) WriteText(ctx context.Context, w io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	jobs, err := g.jobs.List(ctx)
	var silences []api.Silence
	if err == nil {
		// Without the silences, alerting would be 1 for a muted job: leave
		// the series out rather than export that.
		silences, err = g.silences(ctx)
	}
	if err != nil {
		g.errors.Inc()
		return fmt.Errorf("per-job gauges: %w", err)
	}
	silences = state.InForce(silences, g.now())

	// Each job's labels, escaped once, for every family.
	var readable, unreadable []string
	var readableJobs []*state.Job
	var muted []bool
	for i := range jobs {
		j := &jobs[i]
		labels := `{` + LabelJob + `="` + labelEscaper.Replace(j.Name) + `",` + LabelKind + `="` + labelEscaper.Replace(j.Key().KindName()) + `",` + LabelNamespace + `="` + labelEscaper.Replace(j.Namespace) + `"} `
		if j.Unreadable != "" {
			unreadable = append(unreadable, labels)
			if j.LastResultAt.IsZero() {
				continue // no readable copy known: nothing else to say
			}
		}
		readable = append(readable, labels)
		readableJobs = append(readableJobs, j)
		muted = append(muted, state.SilenceOf(j.Key(), silences) != nil)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	line := make([]byte, 0, 256)
	family := func(name, help string, labels []string, value func(i int) float64) {
		if len(labels) == 0 {
			return // the text format has no empty family
		}
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s gauge\n", name, helpEscaper.Replace(help), name)
		for i, l := range labels {
			line = append(append(line[:0], name...), l...)
			line = append(strconv.AppendFloat(line, value(i), 'g', -1, 64), '\n')
			bw.Write(line) // an error stays in bw: Flush returns it
		}
	}
	for _, f := range jobFamilies {
		family(f.name, f.help, readable, func(i int) float64 { return f.value(readableJobs[i], muted[i]) })
	}
	family(MetricJobUnreadable, unreadableHelp, unreadable, func(int) float64 { return 1 })
	return bw.Flush()
}

// The text format's escapes (what expfmt writes): a label value's
// backslash, double quote and line feed; a help text's backslash and line
// feed.
var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
