package server

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// BenchmarkStatusPage10k serves the status page at 10,000 jobs, as the
// issue measured it (9.6 MB before pages): the first page with every job
// failing (a message of about 200 bytes each), and the last page (healthy
// jobs) with one in ten failing. It reports
// the page's size, plain and gzip-compressed as a browser gets it
// (docs/performance.md).
//
//	go test -run '^$' -bench StatusPage10k -benchtime 20x ./server/
func BenchmarkStatusPage10k(b *testing.B) {
	for _, c := range []struct {
		failingEvery int
		path         string
	}{{1, "/"}, {10, "/?page=100"}} {
		b.Run(fmt.Sprintf("failing=1in%d,page=%s", c.failingEvery, strings.TrimPrefix(c.path, "/?page=")), func(b *testing.B) {
			failingEvery := c.failingEvery
			// Messages that differ as real ones do (a pod, a node, an
			// address), so that gzip is not flattered by repetition.
			rnd := rand.New(rand.NewPCG(1, 2))
			jobs := make([]state.Job, 0, 10000)
			for i := range 10000 {
				message := fmt.Sprintf("OOMKilled (exit code 137): container train of pod on node gke-pool-%08x exceeded its 8Gi memory limit at 0x%016x; last lines: %016x %016x %016x loss=%.4f step=%d",
					rnd.Uint32(), rnd.Uint64(), rnd.Uint64(), rnd.Uint64(), rnd.Uint64(), rnd.Float64(), rnd.IntN(100000))
				j := state.Job{Namespace: fmt.Sprintf("team-%02d", i%40), Name: fmt.Sprintf("nightly-report-%05d", i),
					LastResultAt: now.Add(-time.Hour), LastWorkflow: fmt.Sprintf("nightly-report-%05d-1795485600", i), LastPhase: api.PhaseSucceeded}
				if i%failingEvery == 0 {
					since := now.Add(-time.Duration(i) * time.Minute)
					j.FailingSince, j.ConsecutiveFailures, j.LastPhase = &since, 1+i%9, api.PhaseFailed
					j.LastFailures = []api.Failure{{DisplayName: "train", Message: message, PodName: j.LastWorkflow + "-train-1"}}
				}
				jobs = append(jobs, j)
			}
			srv := listServer(&testing.T{}, &listStore{jobs: jobs}, nil)
			defer srv.Close()
			fetch := func(encoding string) int {
				req, _ := http.NewRequest("GET", srv.URL+c.path, nil)
				req.Header.Set("Accept-Encoding", encoding)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				defer resp.Body.Close()
				data, err := io.ReadAll(resp.Body)
				if err != nil || resp.StatusCode != 200 {
					b.Fatalf("%d %v", resp.StatusCode, err)
				}
				if encoding == "gzip" {
					if _, err := gzip.NewReader(bytes.NewReader(data)); err != nil || resp.Header.Get("Content-Encoding") != "gzip" {
						b.Fatalf("not compressed: %v", err)
					}
				}
				return len(data)
			}
			plain, zipped := fetch("identity"), fetch("gzip")
			b.ResetTimer()
			for b.Loop() {
				fetch("gzip")
			}
			b.ReportMetric(float64(plain)/1024, "KiB/page")
			b.ReportMetric(float64(zipped)/1024, "gzipKiB/page")
		})
	}
}
