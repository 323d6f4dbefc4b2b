package alarm

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

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
// registry turns each series into a dto.Metric of its own for every scrape,
// 700,000 of them at 100,000 jobs (hundreds of MB), where WriteText builds
// one family's worth at a time and reuses it for the next. The server shares
// what it writes between scrapes.
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

	// One dto.Metric per job, its labels set once and its value rewritten
	// for each family.
	var readable, unreadable []*dto.Metric
	var readableJobs []*state.Job
	var muted []bool
	for i := range jobs {
		j := &jobs[i]
		labels := []*dto.LabelPair{
			{Name: proto.String(LabelJob), Value: proto.String(j.Name)},
			{Name: proto.String(LabelKind), Value: proto.String(j.Key().KindName())},
			{Name: proto.String(LabelNamespace), Value: proto.String(j.Namespace)},
		}
		if j.Unreadable != "" {
			unreadable = append(unreadable, &dto.Metric{Label: labels, Gauge: &dto.Gauge{Value: proto.Float64(1)}})
			if j.LastResultAt.IsZero() {
				continue // no readable copy known: nothing else to say
			}
		}
		readable = append(readable, &dto.Metric{Label: labels, Gauge: &dto.Gauge{Value: proto.Float64(0)}})
		readableJobs = append(readableJobs, j)
		muted = append(muted, state.SilenceOf(j.Key(), silences) != nil)
	}
	gauge := dto.MetricType_GAUGE
	write := func(name, help string, metrics []*dto.Metric) error {
		if len(metrics) == 0 {
			return nil // the text format has no empty family
		}
		_, err := expfmt.MetricFamilyToText(w, &dto.MetricFamily{Name: proto.String(name), Help: proto.String(help), Type: &gauge, Metric: metrics})
		return err
	}
	for _, f := range jobFamilies {
		for i, m := range readable {
			*m.Gauge.Value = f.value(readableJobs[i], muted[i])
		}
		if err := write(f.name, f.help, readable); err != nil {
			return err
		}
	}
	return write(MetricJobUnreadable, unreadableHelp, unreadable)
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
