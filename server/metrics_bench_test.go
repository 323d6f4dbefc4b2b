package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// BenchmarkMetricsBuild is one build of the shared /metrics body with the
// per-job series of 100,000 jobs (7 series each, about 65 MiB of text, as
// alarm.JobGauges writes them): what a scrape waits for when the body is
// older than its maximum age. The text is made once, beforehand: the
// figure is the body's assembly and compression
// (go test ./server -run '^$' -bench MetricsBuild -benchtime 5x).
func BenchmarkMetricsBuild(b *testing.B) {
	const jobs = 100_000
	families := []string{"batchlatch_job_failing", "batchlatch_job_alerting", "batchlatch_job_consecutive_failures", "batchlatch_job_failing_since_seconds",
		"batchlatch_job_last_result_timestamp_seconds", "batchlatch_job_silenced", "batchlatch_job_threshold"}
	var text []byte
	{
		var buf bytesWriter
		w := bufio.NewWriter(&buf)
		for _, f := range families {
			fmt.Fprintf(w, "# HELP %s A per-job gauge.\n# TYPE %s gauge\n", f, f)
			for i := range jobs {
				fmt.Fprintf(w, "%s{job=\"cron-%06d-nightly\",kind=\"Workflow\",namespace=\"team-%03d\"} %d\n", f, i, i%300, 1795485600+i)
			}
		}
		w.Flush()
		text = buf
	}
	series := func(_ context.Context, w io.Writer) error {
		_, err := w.Write(text)
		return err
	}
	shared := newSharedMetrics(discardLogger(), prometheus.NewRegistry(), Config{JobSeries: series, MetricsMaxAge: time.Nanosecond})
	var size int
	cpuBefore := cpuSeconds()
	for b.Loop() {
		body, err := shared.get(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		size = len(body.gzipped)
	}
	// CPU, not wall time: the machine may be shared.
	b.ReportMetric((cpuSeconds()-cpuBefore)/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(len(text))/(1<<20), "text-MiB")
	b.ReportMetric(float64(size)/(1<<20), "gzip-MiB")
}

// cpuSeconds is the user and system CPU time of the process so far.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

type bytesWriter []byte

func (w *bytesWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }
