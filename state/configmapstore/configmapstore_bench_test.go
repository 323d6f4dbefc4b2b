package configmapstore_test

// Benchmarks of the ConfigMap store against the real kube-apiserver (and
// etcd) that internal/kubetest starts; the package's TestMain is in
// configmap_test.go.
//
//	go test ./state/ -run TestConfigMapCapacity -bench Callbacks -benchtime=2000x -count=1 -v
//	go test ./state/ -run '^$' -bench StartToReady -benchtime=3s -count=1
//
// Every update rewrites the whole ConfigMap in etcd (about 0.4 MiB here, up
// to 1 MiB): a few thousand of them put gigabytes into etcd's WAL and
// database, which is why hack/kube-env.sh raises etcd's quota and compacts
// every minute.

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/batchlatch/batchlatch/internal/kubetest"
	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/server"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/configmapstore"
)

const (
	benchConfigMap = "batchlatch-state"
	// benchJobs is how many jobs the ConfigMap holds before timing callbacks.
	benchJobs = 1000
)

func benchLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

type noopKicker struct{}

func (noopKicker) Kick() {}

// outliving is the sub-benchmark for everything but Cleanup, which it defers
// to the end of the top-level benchmark: a sub-benchmark's function runs once
// per round (b.N = 1, then larger), and its fixture is built on the first.
type outliving struct {
	testing.TB
	top testing.TB
}

func (o outliving) Cleanup(f func()) { o.top.Cleanup(f) }

// countingConfigMaps counts the store's updates and times them.
type countingConfigMaps struct {
	corev1client.ConfigMapInterface
	updates     atomic.Int64
	updateNanos atomic.Int64
	failed      atomic.Int64
}

func (c *countingConfigMaps) Update(ctx context.Context, cm *corev1.ConfigMap, opts metav1.UpdateOptions) (*corev1.ConfigMap, error) {
	start := time.Now()
	out, err := c.ConfigMapInterface.Update(ctx, cm, opts)
	c.updateNanos.Add(int64(time.Since(start)))
	c.updates.Add(1)
	if err != nil {
		c.failed.Add(1)
	}
	return out, err
}

func waitStoreReady(tb testing.TB, s state.Store) {
	tb.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = s.Ready(context.Background()); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	tb.Fatalf("store not ready: %v", err)
}

// prefill records one failed run of each of jobs CronWorkflows through a
// group-commit store of its own, then closes it.
func prefill(tb testing.TB, cms corev1client.ConfigMapInterface, jobs int) {
	tb.Helper()
	s := configmapstore.New(cms, benchConfigMap, configmapstore.Options{}, benchLogger())
	defer s.Close()
	waitStoreReady(tb, s)
	var next atomic.Int64
	var failures atomic.Int64
	var wg sync.WaitGroup
	for range 64 {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < jobs; i = int(next.Add(1)) - 1 {
				if _, err := s.Record(context.Background(), storetest.FailedRun(storetest.CronName(i)), storetest.BenchCreated); err != nil {
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := failures.Load(); n > 0 {
		tb.Fatalf("prefill: %d records failed", n)
	}
}

// storedState reads the state's ConfigMaps (one, or the shards and their
// journals) as the API server has them: the summed consecutive failures, the
// number of jobs and the largest ConfigMap's (not journal's) summed size of
// values.
func storedState(tb testing.TB, cms corev1client.ConfigMapInterface) (failures, jobs, size int) {
	tb.Helper()
	list, err := cms.List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=state"})
	if err != nil {
		tb.Fatalf("read ConfigMaps: %v", err)
	}
	// A journal's value is newer than its shard's: read the shards first.
	slices.SortStableFunc(list.Items, func(a, b corev1.ConfigMap) int {
		return cmp.Compare(journalRank(a.Name), journalRank(b.Name))
	})
	values := map[string]string{}
	for _, cm := range list.Items {
		cmSize := 0
		for key, value := range cm.Data {
			cmSize += len(value)
			switch {
			case strings.HasPrefix(key, "_"):
			case value == "deleted" && journalRank(cm.Name) == 1:
				delete(values, key)
			default:
				values[key] = value
			}
		}
		if journalRank(cm.Name) == 0 {
			size = max(size, cmSize)
		}
	}
	for key, value := range values {
		var j state.Job
		if err := json.Unmarshal([]byte(value), &j); err != nil {
			tb.Fatalf("key %s: %v", key, err)
		}
		failures += j.ConsecutiveFailures
		jobs++
	}
	return failures, jobs, size
}

// journalRank orders a sharded store's journals after its shards.
func journalRank(name string) int {
	if strings.Contains(name, "-journal-") {
		return 1
	}
	return 0
}

// cpuClock reads the CPU time (user + system) of the benchmark's own process
// and of the cluster's kube-apiserver and etcd, from /proc; ok is false where
// that is not possible (not Linux, or a cluster this process did not start).
type cpuClock struct {
	pids map[string]string // "self", "apiserver", "etcd" -> pid
}

func newCPUClock(env *kubetest.Env) cpuClock {
	c := cpuClock{pids: map[string]string{"self": "self"}}
	// DIR/env, written by hack/kube-env.sh, records the servers' pids; only
	// those two lines are read.
	raw, err := os.ReadFile(filepath.Join(env.Dir, "env"))
	if err != nil {
		return c
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if pid, ok := strings.CutPrefix(line, "APISERVER_PID="); ok {
			c.pids["apiserver"] = pid
		}
		if pid, ok := strings.CutPrefix(line, "ETCD_PID="); ok {
			c.pids["etcd"] = pid
		}
	}
	return c
}

// read returns each process's CPU time so far.
func (c cpuClock) read() map[string]time.Duration {
	out := map[string]time.Duration{}
	for name, pid := range c.pids {
		raw, err := os.ReadFile("/proc/" + pid + "/stat")
		if err != nil {
			continue
		}
		// Fields after the command (which may hold spaces) in parentheses;
		// utime and stime are fields 14 and 15, in clock ticks of 1/100 s.
		rest := string(raw[bytes.LastIndexByte(raw, ')')+1:])
		f := strings.Fields(rest)
		if len(f) < 13 {
			continue
		}
		utime, err1 := strconv.ParseInt(f[11], 10, 64)
		stime, err2 := strconv.ParseInt(f[12], 10, 64)
		if err1 == nil && err2 == nil {
			out[name] = time.Duration(utime+stime) * 10 * time.Millisecond
		}
	}
	return out
}

// callbackFixture is one sub-benchmark's service: a store on a ConfigMap that
// already holds benchJobs jobs, behind the real HTTP server.
type callbackFixture struct {
	jobs   int                             // stored before the callbacks
	cms    corev1client.ConfigMapInterface // admin view, to check durability
	counts *countingConfigMaps             // the store's own client
	cpu    cpuClock
	url    string
	client *http.Client
}

func newCallbackFixture(tb testing.TB, opts configmapstore.Options) *callbackFixture {
	tb.Helper()
	env := kubetest.Get(tb)
	ns := env.NewNamespace(tb)
	cms := tunedClient(tb, env).CoreV1().ConfigMaps(ns)
	prefill(tb, cms, benchJobs)
	if _, jobs, _ := storedState(tb, cms); jobs != benchJobs {
		tb.Fatalf("prefill stored %d jobs, want %d", jobs, benchJobs)
	}

	counts := &countingConfigMaps{ConfigMapInterface: cms}
	store := configmapstore.New(counts, benchConfigMap, opts, benchLogger())
	return serveCallbacks(tb, env, cms, counts, store, benchJobs)
}

// serveCallbacks puts store, which writes through counts and holds jobs
// jobs, behind the real HTTP server, once it is ready, and returns the
// fixture that sends it callbacks.
func serveCallbacks(tb testing.TB, env *kubetest.Env, cms corev1client.ConfigMapInterface, counts *countingConfigMaps, store state.Store, jobs int) *callbackFixture {
	tb.Helper()
	tb.Cleanup(func() { store.Close() })
	waitStoreReady(tb, store)
	reg := prometheus.NewRegistry()
	srv := httptest.NewServer(server.NewServer(benchLogger(), store, noopKicker{}, reg, server.NewMetrics(reg), server.Config{}))
	tb.Cleanup(srv.Close)
	transport := &http.Transport{Proxy: nil, MaxIdleConns: 256, MaxIdleConnsPerHost: 128, IdleConnTimeout: 90 * time.Second}
	tb.Cleanup(transport.CloseIdleConnections)
	return &callbackFixture{
		jobs:   jobs,
		cms:    cms,
		counts: counts,
		cpu:    newCPUClock(env),
		url:    srv.URL + "/api/v1/results",
		client: &http.Client{Transport: transport, Timeout: 30 * time.Second},
	}
}

// post sends one callback and returns its status and body.
func (f *callbackFixture) post(body []byte) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, f.url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	return resp.StatusCode, data, err
}

// BenchmarkCallbacks measures durable callbacks per second and their latency
// through HTTP, with benchJobs jobs stored, for the group-commit store and for
// the one-update-per-callback baseline, at 1, 16 and 64 concurrent clients.
// b.N is the number of callbacks, split over the clients. Each callback adds a
// uid to its job's recent runs, so the ConfigMap grows with b.N (until every
// job holds 16): run it with a fixed count (-benchtime=2000x) so that every
// sub-benchmark sees the same sizes; cm-KiB reports the size at the end.
func BenchmarkCallbacks(b *testing.B) {
	kubetest.Get(b) // start the cluster outside any sub-benchmark
	top := b
	stores := []struct {
		name string
		opts configmapstore.Options
	}{
		{"groupcommit", configmapstore.Options{}},
		{"baseline", configmapstore.Options{MaxBatch: 1}},
	}
	// Interleaved, so that both stores see the same cluster history.
	for _, clients := range []int{1, 16, 64} {
		for _, st := range stores {
			var fx *callbackFixture
			b.Run(fmt.Sprintf("store=%s/clients=%d", st.name, clients), func(b *testing.B) {
				if fx == nil {
					fx = newCallbackFixture(outliving{TB: b, top: top}, st.opts)
				}
				runCallbacks(b, fx, clients)
			})
		}
	}
}

func runCallbacks(b *testing.B, fx *callbackFixture, clients int) {
	beforeFailures, _, _ := storedState(b, fx.cms)
	bodies := make([][]byte, b.N)
	for i := range bodies {
		body, err := json.Marshal(storetest.FailedRun(storetest.CronName(i % fx.jobs)))
		if err != nil {
			b.Fatal(err)
		}
		bodies[i] = body
	}
	updates0, updateNanos0, failedUpdates0 := fx.counts.updates.Load(), fx.counts.updateNanos.Load(), fx.counts.failed.Load()

	cpu0 := fx.cpu.read()
	latencies := make([]time.Duration, b.N)
	var next, ok, errs atomic.Int64
	var firstErr sync.Once
	var firstErrMsg string
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= b.N || errs.Load() > 0 {
					return
				}
				t0 := time.Now()
				status, body, err := fx.post(bodies[i])
				latencies[i] = time.Since(t0)
				switch {
				case err != nil:
					errs.Add(1)
					firstErr.Do(func() { firstErrMsg = err.Error() })
				case status != http.StatusOK:
					errs.Add(1)
					firstErr.Do(func() { firstErrMsg = fmt.Sprintf("status %d: %s", status, body) })
				case !bytes.Contains(body, []byte(`"duplicate":false,"stale":false`)):
					errs.Add(1)
					firstErr.Do(func() { firstErrMsg = fmt.Sprintf("not counted as a new failure: %s", body) })
				default:
					ok.Add(1)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	cpu1 := fx.cpu.read()

	done := min(int(next.Load()), b.N)
	sorted := slices.Clone(latencies[:done])
	slices.Sort(sorted)
	b.ReportMetric(float64(ok.Load())/elapsed.Seconds(), "callbacks/s")
	b.ReportMetric(ms(storetest.Percentile(sorted, 0.50)), "p50-ms")
	b.ReportMetric(ms(storetest.Percentile(sorted, 0.99)), "p99-ms")
	b.ReportMetric(float64(errs.Load()), "errors")
	updates := fx.counts.updates.Load() - updates0
	if updates > 0 {
		b.ReportMetric(float64(ok.Load())/float64(updates), "callbacks/update")
		b.ReportMetric(ms(time.Duration((fx.counts.updateNanos.Load()-updateNanos0)/updates)), "update-ms")
		// Where the CPU went, per update: this process (load generator,
		// HTTP server and store), kube-apiserver and etcd; and how many of
		// the machine's cores all three kept busy.
		var busy time.Duration
		for _, name := range []string{"self", "apiserver", "etcd"} {
			before, ok0 := cpu0[name]
			after, ok1 := cpu1[name]
			if !ok0 || !ok1 {
				continue
			}
			busy += after - before
			b.ReportMetric(ms((after-before)/time.Duration(updates)), name+"-cpu-ms/update")
		}
		b.ReportMetric(busy.Seconds()/elapsed.Seconds(), "cores-busy")
	}
	if n := errs.Load(); n > 0 {
		b.Fatalf("%d of %d callbacks failed; first: %s", n, done, firstErrMsg)
	}
	if n := fx.counts.failed.Load() - failedUpdates0; n > 0 {
		b.Logf("%d updates were retried (conflicts)", n)
	}

	// Durability: every 200 answer is a failure counted in etcd.
	afterFailures, jobs, size := storedState(b, fx.cms)
	if got, want := afterFailures-beforeFailures, int(ok.Load()); got != want || jobs != fx.jobs {
		b.Fatalf("ConfigMaps: consecutive failures rose by %d, want %d (200 answers); %d jobs, want %d", got, want, jobs, fx.jobs)
	}
	b.ReportMetric(float64(size)/1024, "cm-KiB")
}

// encodeJobs is the ConfigMap data of jobs 0..n-1 of a shape, as the store
// encodes it, and the summed size of the values.
func encodeJobs(tb testing.TB, n int, shape func(int) state.Job) (map[string]string, int) {
	tb.Helper()
	data := make(map[string]string, n)
	size := 0
	for i := range n {
		j := shape(i)
		value, err := json.Marshal(j)
		if err != nil {
			tb.Fatal(err)
		}
		data[j.Key().String()] = string(value)
		size += len(value)
	}
	return data, size
}

// valueSize is the encoded size of one job of a shape; it fails unless every
// job of the shape up to n has that size.
func valueSize(tb testing.TB, shape func(int) state.Job, n int) int {
	tb.Helper()
	first := -1
	for _, i := range []int{0, 1, n / 2, n - 1, n} {
		value, err := json.Marshal(shape(i))
		if err != nil {
			tb.Fatal(err)
		}
		if first >= 0 && len(value) != first {
			tb.Fatalf("job %d is %d bytes, job 0 is %d: sizes must not depend on the index", i, len(value), first)
		}
		first = len(value)
	}
	return first
}

func createConfigMap(cms corev1client.ConfigMapInterface, name string, data map[string]string) error {
	_, err := cms.Create(context.Background(), &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Data:       data,
	}, metav1.CreateOptions{})
	return err
}

// TestConfigMapCapacity computes how many jobs one ConfigMap holds with the
// store's encoding, and checks the figure against the real API server.
func TestConfigMapCapacity(t *testing.T) {
	failing := func(i int) state.Job { return storetest.RealisticJob(i, true) }
	healthy := func(i int) state.Job { return storetest.RealisticJob(i, false) }

	perFailing := valueSize(t, failing, 10000)
	capFailing := configmapstore.MaxData / perFailing
	perHealthy := valueSize(t, healthy, 10000)
	capHealthy := configmapstore.MaxData / perHealthy
	t.Logf("realistic failing job: %d bytes -> %d jobs fit in %d bytes", perFailing, capFailing, configmapstore.MaxData)
	t.Logf("realistic healthy job: %d bytes -> %d jobs fit", perHealthy, capHealthy)
	perMinHealthy := valueSize(t, storetest.MinimalHealthyJob, 5000)
	perMinFailing := valueSize(t, storetest.MinimalFailingJob, 5000)
	t.Logf("smallest healthy job (short names, no uid): %d bytes -> %d jobs; smallest failing job with a uid: %d bytes -> %d jobs (5,000 jobs need <= %d bytes each)",
		perMinHealthy, configmapstore.MaxData/perMinHealthy, perMinFailing, configmapstore.MaxData/perMinFailing, configmapstore.MaxData/5000)
	sample, _ := json.Marshal(failing(0))
	t.Logf("a failing job's value: %s", sample)

	env := kubetest.Get(t)
	cms := env.Clientset.CoreV1().ConfigMaps(env.NewNamespace(t))
	data, size := encodeJobs(t, capFailing, failing)
	if size > configmapstore.MaxData {
		t.Fatalf("%d jobs are %d bytes, over %d", capFailing, size, configmapstore.MaxData)
	}
	if err := createConfigMap(cms, "fits", data); err != nil {
		t.Fatalf("the API server refused %d failing jobs (%d bytes): %v", capFailing, size, err)
	}
	// The stored object reads back through the store.
	s := configmapstore.New(cms, "fits", configmapstore.Options{}, benchLogger())
	defer s.Close()
	waitStoreReady(t, s)
	if jobs, err := s.List(context.Background()); err != nil || len(jobs) != capFailing {
		t.Fatalf("store lists %d jobs (%v), want %d", len(jobs), err, capFailing)
	}

	over, overSize := encodeJobs(t, capFailing+1, failing)
	if overSize <= configmapstore.MaxData {
		t.Fatalf("%d jobs are only %d bytes", capFailing+1, overSize)
	}
	err := createConfigMap(cms, "over", over)
	switch {
	case err == nil:
		t.Errorf("the API server accepted %d failing jobs (%d bytes > MaxConfigMapData %d): the real limit is not ours", capFailing+1, overSize, configmapstore.MaxData)
	case apierrors.IsInvalid(err) || apierrors.IsRequestEntityTooLargeError(err):
		t.Logf("one more job (%d bytes) is refused: %v", overSize, err)
	default:
		t.Fatalf("create %d jobs: unexpected error %v", capFailing+1, err)
	}
}

// BenchmarkStartToReady5000Jobs times a store from NewConfigMapStore until
// Ready returns nil and List returns every job.
//
// 5,000 realistic jobs cannot be stored in one ConfigMap (see
// TestConfigMapCapacity): the benchmark first shows the API server's refusal,
// then times 5,000 of the smallest jobs a callback can leave (which do fit),
// and a ConfigMap filled to the limit with realistic failing jobs.
func BenchmarkStartToReady5000Jobs(b *testing.B) {
	env := kubetest.Get(b)
	top := b
	failing := func(i int) state.Job { return storetest.RealisticJob(i, true) }
	capFailing := configmapstore.MaxData / valueSize(b, failing, 10000)

	cms := env.Clientset.CoreV1().ConfigMaps(env.NewNamespace(b))
	data, size := encodeJobs(b, 5000, failing)
	err := createConfigMap(cms, benchConfigMap, data)
	if err == nil {
		b.Fatalf("the API server stored 5000 realistic failing jobs (%d bytes); MaxConfigMapData (%d) is wrong", size, configmapstore.MaxData)
	}
	b.Logf("5000 realistic failing jobs (%d bytes each, %d in all) cannot be stored: %v", size/5000, size, err)

	cases := []struct {
		name  string
		jobs  int
		shape func(int) state.Job
	}{
		{"jobs=5000/shape=minimal-healthy", 5000, storetest.MinimalHealthyJob},
		{fmt.Sprintf("jobs=%d/shape=realistic-failing-full", capFailing), capFailing, failing},
	}
	for _, c := range cases {
		var cms corev1client.ConfigMapInterface
		b.Run(c.name, func(b *testing.B) {
			if cms == nil {
				cms = env.Clientset.CoreV1().ConfigMaps(env.NewNamespace(outliving{TB: b, top: top}))
				data, size := encodeJobs(b, c.jobs, c.shape)
				if err := createConfigMap(cms, benchConfigMap, data); err != nil {
					b.Fatalf("store %d jobs (%d bytes): %v", c.jobs, size, err)
				}
				b.Logf("%d jobs, %d bytes of values", c.jobs, size)
			}
			startToReady(b, c.jobs, func() state.Store {
				return configmapstore.New(cms, benchConfigMap, configmapstore.Options{}, benchLogger())
			})
		})
	}
}

// startToReady times stores that open returns, from open until Ready
// returns nil and List returns want jobs, and reports the store's live heap
// once ready.
func startToReady(b *testing.B, want int, open func() state.Store) {
	ctx := context.Background()
	var total time.Duration
	var heap uint64
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		start := time.Now()
		s := open()
		for s.Ready(ctx) != nil {
			if time.Since(start) > 30*time.Second {
				b.Fatal("store not ready within 30s")
			}
			time.Sleep(time.Millisecond)
		}
		jobs, err := s.List(ctx)
		total += time.Since(start)
		b.StopTimer()
		if err != nil || len(jobs) != want {
			b.Fatalf("List: %d jobs (%v), want %d", len(jobs), err, want)
		}
		jobs = nil
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		heap = max(heap, after.HeapInuse-min(before.HeapInuse, after.HeapInuse))
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total)/float64(b.N)/float64(time.Millisecond), "ms-to-ready")
	b.ReportMetric(float64(heap)/(1<<20), "store-heap-MiB")
}

// tunedClient is a client configured as the service configures its own.
func tunedClient(tb testing.TB, env *kubetest.Env) kubernetes.Interface {
	cs, err := kubernetes.NewForConfig(configmapstore.TuneClient(env.RESTConfig()))
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

// BenchmarkUpdateCost is what one update of a ConfigMap of realistic-size
// values costs the API server, etcd and this process, by size, with the
// managedFields the API server keeps by default and with none (as the
// store writes): why the journals are small and the store drops them.
// Run it with -benchtime 1x: each sub-benchmark sends 300 updates.
func BenchmarkUpdateCost(b *testing.B) {
	env := kubetest.Get(b)
	cms := tunedClient(b, env).CoreV1().ConfigMaps(env.NewNamespace(b))
	cpu := newCPUClock(env)
	for _, kib := range []int{2, 16, 64, 200} {
		for _, managed := range []bool{true, false} {
			b.Run(fmt.Sprintf("KiB=%d/managedFields=%t", kib, managed), func(b *testing.B) {
				data := map[string]string{"counter": "0"}
				for i := range kib * 1024 / 689 {
					data[fmt.Sprintf("ml.job-%05d", i)] = strings.Repeat("x", 689)
				}
				cm, err := cms.Create(context.Background(), &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cost-%d-%t", kib, managed)}, Data: data}, metav1.CreateOptions{})
				if err != nil {
					b.Fatal(err)
				}
				if !managed {
					cm.ManagedFields = []metav1.ManagedFieldsEntry{{}}
				}
				const updates = 300
				before := cpu.read()
				start := time.Now()
				for i := range updates {
					cm.Data["counter"] = strconv.Itoa(i)
					if cm, err = cms.Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
						b.Fatal(err)
					}
				}
				elapsed := time.Since(start)
				after := cpu.read()
				if managed == (len(cm.ManagedFields) == 0) {
					b.Fatalf("%d managedFields entries after the updates", len(cm.ManagedFields))
				}
				for _, name := range []string{"apiserver", "etcd", "self"} {
					if d, ok := after[name]; ok {
						b.ReportMetric(ms((d-before[name])/updates), name+"-cpu-ms/update")
					}
				}
				b.ReportMetric(ms(elapsed/updates), "update-ms")
			})
		}
	}
}

// ms is d in milliseconds, for ReportMetric.
func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
