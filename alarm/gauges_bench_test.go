package alarm

import (
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/batchlatch/batchlatch/internal/storetest"
)

// BenchmarkJobGaugesWriteText writes the per-job series of failing jobs,
// gzipped as the server keeps them: the work of one /metrics build.
func BenchmarkJobGaugesWriteText(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("jobs=%d", n), func(b *testing.B) {
			jobs := &memJobs{}
			template := storetest.RealisticJob(0, true)
			for i := range n {
				job := template
				job.Name = storetest.CronName(i)
				jobs.jobs = append(jobs.jobs, job)
			}
			g := NewJobGauges(jobs, nil)
			var text, gzipped countingWriter
			for b.Loop() {
				text, gzipped = 0, 0
				gz, _ := gzip.NewWriterLevel(&gzipped, gzip.BestSpeed)
				if err := g.WriteText(context.Background(), io.MultiWriter(&text, gz)); err != nil {
					b.Fatal(err)
				}
				gz.Close()
			}
			b.ReportMetric(float64(text)/(1<<20), "text-MiB")
			b.ReportMetric(float64(gzipped)/(1<<20), "gzip-MiB")
		})
	}
}

type countingWriter int64

func (w *countingWriter) Write(p []byte) (int, error) {
	*w += countingWriter(len(p))
	return len(p), nil
}
