package filestore_test

// Benchmarks of the file store at scale: durable callbacks per second and
// their latency with 1,000 and 10,000 realistic failing jobs stored (the
// 858-byte shape of TestConfigMapCapacity), 1, 16 and 64 concurrent clients,
// while a reader lists and gets jobs, and what the process's memory does
// meanwhile. Each sub-benchmark records for -filebench.duration (b.N is not
// used: a round is one timed run); ns/op is reported per callback.
//
//	go test ./state/ -run '^$' -bench FileStoreCallbacks -benchtime=1x -count=1 -filebench.duration=5s
//
// The store works on a file in a fresh directory under the system's temporary
// directory (TMPDIR): its figures are the figures of that file system.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/procstat"
	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/filestore"
)

var fileBenchDuration = flag.Duration("filebench.duration", 5*time.Second, "how long each BenchmarkFileStoreCallbacks sub-benchmark sends callbacks")

// writeStateFile writes n realistic failing jobs in the store's file format,
// as a store would leave them, so that the benchmark starts at scale without
// n slow callbacks.
func writeStateFile(tb testing.TB, path string, n int) {
	tb.Helper()
	jobs := make(map[string]state.Job, n)
	for i := range n {
		j := storetest.RealisticJob(i, true)
		jobs[j.Key().String()] = j
	}
	data, err := json.Marshal(map[string]any{"format": "batchlatch-state", "version": 1, "jobs": jobs})
	if err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// realisticFailedRun is a new failed run of CronWorkflow cron with one
// failed node, as storetest.Replay's runs have: the job it updates keeps its size.
func realisticFailedRun(cron string) api.Result {
	r := storetest.FailedRun(cron)
	r.DurationSeconds = 754.218377
	r.Failures = []api.Failure{storetest.RealisticFailure(r.WorkflowName, r.CreatedAt)}
	return r
}

// storedFailures sums the consecutive failures of the jobs in the file, read
// through a store of its own: what survives a restart.
func storedFailures(tb testing.TB, path string) (failures, jobs int) {
	tb.Helper()
	s, err := filestore.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	all, err := s.List(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	for _, j := range all {
		failures += j.ConsecutiveFailures
	}
	return failures, len(all)
}

// memSampler records the highest RSS and HeapInuse seen while it runs.
type memSampler struct {
	stop              chan struct{}
	done              sync.WaitGroup
	peakRSS, peakHeap uint64
}

func startMemSampler(every time.Duration) *memSampler {
	m := &memSampler{stop: make(chan struct{})}
	sample := func() {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		m.peakHeap = max(m.peakHeap, ms.HeapInuse)
		m.peakRSS = max(m.peakRSS, uint64(procstat.SelfRSS()))
	}
	sample()
	m.done.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-m.stop:
				sample()
				return
			case <-t.C:
				sample()
			}
		}
	})
	return m
}

func (m *memSampler) finish() {
	close(m.stop)
	m.done.Wait()
}

// BenchmarkFileStoreCallbacks measures the file store under concurrent
// callbacks. Every callback is a new failed run of one of the stored jobs, so
// each must add exactly one consecutive failure; the file is reopened at the
// end to check that every acknowledged callback is in it.
//
// Metrics: callbacks/s (acknowledged), callbacks/write, p50-ms and p99-ms of
// Record; read-p99-ms (and read-max-ms, list-p99-ms, get-p99-ms) of List and
// Get called alternately in a loop (a pause of readPause between reads) by
// one reader meanwhile; and memory: heap-MB and rss-MB at the start
// (after a GC that returns memory to the OS), heap-peak-MB and rss-peak-MB
// sampled every 20 ms during the run, and rss-growth-MB (peak minus start).
// file-MB is the file's size at the end.
func BenchmarkFileStoreCallbacks(b *testing.B) {
	for _, jobs := range []int{1000, 10000} {
		for _, clients := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("jobs=%d/clients=%d", jobs, clients), func(b *testing.B) {
				runFileCallbacks(b, jobs, clients, *fileBenchDuration)
			})
		}
	}
}

// readPause is the reader's pause between two reads: a status page or API
// client polling hard, not a busy loop competing for the CPU.
const readPause = 5 * time.Millisecond

func runFileCallbacks(b *testing.B, jobs, clients int, duration time.Duration) {
	path := filepath.Join(b.TempDir(), "state.json")
	writeStateFile(b, path, jobs)
	beforeFailures, _ := storedFailures(b, path)
	s, err := filestore.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var writes atomic.Int64
	filestore.OnFileWrite(s, func() { writes.Add(1) })

	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	heap0, rss0 := ms.HeapInuse, uint64(procstat.SelfRSS())
	mem := startMemSampler(20 * time.Millisecond)

	type sample struct{ latencies []time.Duration }
	perClient := make([]sample, clients)
	var next, errs atomic.Int64
	var firstErr atomic.Value
	stopReads := make(chan struct{})
	var reads, lists, gets []time.Duration
	var readErrs int
	var reader sync.WaitGroup
	reader.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-stopReads:
				return
			case <-time.After(readPause):
			}
			t0 := time.Now()
			var err error
			if i%2 == 0 {
				var all []state.Job
				all, err = s.List(ctx)
				if err == nil && len(all) != jobs {
					err = fmt.Errorf("List: %d jobs, want %d", len(all), jobs)
				}
			} else {
				_, err = s.Get(ctx, state.Key{Namespace: storetest.BenchNamespace, Name: storetest.CronName(i % jobs)})
			}
			d := time.Since(t0)
			reads = append(reads, d)
			if i%2 == 0 {
				lists = append(lists, d)
			} else {
				gets = append(gets, d)
			}
			if err != nil {
				readErrs++
			}
		}
	})

	b.ResetTimer()
	start := time.Now()
	deadline := start.Add(duration)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for time.Now().Before(deadline) {
				i := int(next.Add(1)) - 1
				t0 := time.Now()
				rec, err := s.Record(ctx, realisticFailedRun(storetest.CronName(i%jobs)), storetest.BenchCreated)
				perClient[c].latencies = append(perClient[c].latencies, time.Since(t0))
				if err == nil && (rec.Outcome.Duplicate || rec.Outcome.Stale) {
					err = fmt.Errorf("not counted as a new failure: %+v", rec.Outcome)
				}
				if err != nil {
					errs.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(stopReads)
	reader.Wait()
	mem.finish()

	var latencies []time.Duration
	for _, c := range perClient {
		latencies = append(latencies, c.latencies...)
	}
	ok := len(latencies) - int(errs.Load())
	slices.Sort(latencies)
	slices.Sort(reads)
	slices.Sort(lists)
	slices.Sort(gets)
	msOf := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	mb := func(n uint64) float64 { return float64(n) / (1 << 20) }
	if ok > 0 {
		b.ReportMetric(float64(elapsed.Nanoseconds())/float64(ok), "ns/op")
	}
	b.ReportMetric(float64(ok)/elapsed.Seconds(), "callbacks/s")
	if n := writes.Load(); n > 0 {
		b.ReportMetric(float64(ok)/float64(n), "callbacks/write")
	}
	b.ReportMetric(msOf(storetest.Percentile(latencies, 0.50)), "p50-ms")
	b.ReportMetric(msOf(storetest.Percentile(latencies, 0.99)), "p99-ms")
	b.ReportMetric(msOf(storetest.Percentile(reads, 0.99)), "read-p99-ms")
	b.ReportMetric(msOf(reads[len(reads)-1]), "read-max-ms")
	b.ReportMetric(msOf(storetest.Percentile(lists, 0.99)), "list-p99-ms")
	b.ReportMetric(msOf(storetest.Percentile(gets, 0.99)), "get-p99-ms")
	b.ReportMetric(float64(len(reads)), "reads")
	b.ReportMetric(mb(heap0), "heap-MB")
	b.ReportMetric(mb(mem.peakHeap), "heap-peak-MB")
	b.ReportMetric(mb(rss0), "rss-MB")
	b.ReportMetric(mb(mem.peakRSS), "rss-peak-MB")
	b.ReportMetric(mb(mem.peakRSS)-mb(rss0), "rss-growth-MB")
	if info, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(info.Size())/(1<<20), "file-MB")
	}
	if n := errs.Load(); n > 0 {
		b.Fatalf("%d of %d callbacks failed; first: %v", n, len(latencies), firstErr.Load())
	}
	if readErrs > 0 {
		b.Fatalf("%d of %d reads failed", readErrs, len(reads))
	}

	// Durability: every acknowledged callback is a failure in the file.
	afterFailures, stored := storedFailures(b, path)
	if got := afterFailures - beforeFailures; got != ok || stored != jobs {
		b.Fatalf("file: consecutive failures rose by %d, want %d (acknowledged callbacks); %d jobs, want %d", got, ok, stored, jobs)
	}
}
