package alarm

import (
	"context"
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
// kind (LabelNamespace, LabelJob, LabelKind). They are read from the store at each scrape,
// not kept: so they are the stored state at start, every replica's agree
// with it (replicas share it; the ConfigMap store serves reads at most a
// second old), a recovered job's series stay, at 0, and a forgotten job's
// series go.
type JobGauges struct {
	jobs     Lister
	silences func(ctx context.Context) ([]api.Silence, error)
	now      func() time.Time
	timeout  time.Duration
	errors   prometheus.Counter

	failing, alerting, silenced, failingSince, consecutive, lastResult, unreadable *prometheus.Desc
}

// NewJobGauges returns the gauges of the jobs in jobs, with the silences
// silences returns (nil: none); register them with
// prometheus.Registerer.MustRegister.
func NewJobGauges(jobs Lister, silences func(ctx context.Context) ([]api.Silence, error)) *JobGauges {
	labels := []string{LabelNamespace, LabelJob, LabelKind}
	if silences == nil {
		silences = func(context.Context) ([]api.Silence, error) { return nil, nil }
	}
	return &JobGauges{
		jobs:     jobs,
		silences: silences,
		now:      time.Now,
		timeout:  5 * time.Second,
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "batchlatch_job_gauges_errors_total",
			Help: "Scrapes whose per-job gauges were left out because the state could not be read.",
		}),
		failing:      prometheus.NewDesc(MetricJobFailing, "1 while the job's latest run failed, else 0.", labels, nil),
		alerting:     prometheus.NewDesc(MetricJobAlerting, "1 while the job's failure streak has reached its failure threshold and no silence mutes it, else 0: what the alert reads.", labels, nil),
		silenced:     prometheus.NewDesc(MetricJobSilenced, "1 while a silence mutes the job, else 0.", labels, nil),
		failingSince: prometheus.NewDesc(MetricJobFailingSince, "When the job's failure streak began (the first failed run's finish time), Unix seconds; 0 while it is not failing.", labels, nil),
		consecutive:  prometheus.NewDesc(MetricJobConsecutiveFailures, "Failed runs in a row; 0 while the job is not failing.", labels, nil),
		lastResult:   prometheus.NewDesc(MetricJobLastResult, "When the job's latest known run finished, Unix seconds.", labels, nil),
		unreadable:   prometheus.NewDesc(MetricJobUnreadable, "1 while the job's stored value cannot be read (fix or delete it); absent otherwise. The job's other series are its last readable copy's, absent when none is known.", labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (g *JobGauges) Describe(ch chan<- *prometheus.Desc) {
	ch <- g.failing
	ch <- g.alerting
	ch <- g.silenced
	ch <- g.failingSince
	ch <- g.consecutive
	ch <- g.lastResult
	ch <- g.unreadable
	g.errors.Describe(ch)
}

// Collect implements prometheus.Collector. When the state cannot be read
// the per-job series are left out of this scrape (a gap, which the shipped
// PromQL policy bridges) and the error is counted.
func (g *JobGauges) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), g.timeout)
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
		jobs = nil
	}
	silences = state.InForce(silences, g.now())
	for _, j := range jobs {
		labels := []string{j.Namespace, j.Name, j.Key().KindName()}
		if j.Unreadable != "" {
			ch <- prometheus.MustNewConstMetric(g.unreadable, prometheus.GaugeValue, 1, labels...)
			if j.LastResultAt.IsZero() {
				continue // no readable copy known: nothing else to say
			}
		}
		failing, since := 0.0, 0.0
		if j.Failing() {
			failing, since = 1, float64(j.FailingSince.Unix())
		}
		muted := state.SilenceOf(j.Key(), silences) != nil
		ch <- prometheus.MustNewConstMetric(g.failing, prometheus.GaugeValue, failing, labels...)
		ch <- prometheus.MustNewConstMetric(g.alerting, prometheus.GaugeValue, boolValue(j.Alerting() && !muted), labels...)
		ch <- prometheus.MustNewConstMetric(g.silenced, prometheus.GaugeValue, boolValue(muted), labels...)
		ch <- prometheus.MustNewConstMetric(g.failingSince, prometheus.GaugeValue, since, labels...)
		ch <- prometheus.MustNewConstMetric(g.consecutive, prometheus.GaugeValue, float64(j.ConsecutiveFailures), labels...)
		ch <- prometheus.MustNewConstMetric(g.lastResult, prometheus.GaugeValue, float64(j.LastResultAt.Unix()), labels...)
	}
	g.errors.Collect(ch)
}

var _ prometheus.Collector = (*JobGauges)(nil)

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
