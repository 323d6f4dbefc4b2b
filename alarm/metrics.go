package alarm

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what the loop and the sinks do.
type Metrics struct {
	EntriesWritten *prometheus.CounterVec
	SinkErrors     *prometheus.CounterVec
	FailingJobs    prometheus.Gauge
	Passes         prometheus.Counter

	// sinkFailures is the total of SinkErrors, which the loop reads to
	// notice that writes failed and then resumed.
	sinkFailures atomic.Uint64
}

// sinkError counts a failed write of sink.
func (m *Metrics) sinkError(sink string) {
	m.SinkErrors.WithLabelValues(sink).Inc()
	m.sinkFailures.Add(1)
}

// SinkFailures is how many writes failed so far, all sinks together.
func (m *Metrics) SinkFailures() uint64 { return m.sinkFailures.Load() }

// NewMetrics registers the alarm metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		EntriesWritten: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "batchlatch_entries_written_total",
			Help: "Entries handed to the sink, by severity.",
		}, []string{"severity"}),
		SinkErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "batchlatch_sink_errors_total",
			Help: "Failed writes, by sink: an entry for stdout, a write request (one or more bundled entries) for cloudlogging.",
		}, []string{"sink"}),
		FailingJobs: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "batchlatch_failing_jobs",
			Help: "Jobs whose latest run failed, as of the last pass of the alarm loop.",
		}),
		Passes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "batchlatch_alarm_passes_total",
			Help: "Passes of the alarm loop.",
		}),
	}
	reg.MustRegister(m.EntriesWritten, m.SinkErrors, m.FailingJobs, m.Passes)
	return m
}
