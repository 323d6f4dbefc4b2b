package configmapstore_test

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/batchlatch/batchlatch/internal/kubetest"
	"github.com/batchlatch/batchlatch/internal/procstat"
	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/configmapstore"
)

// benchShards is the shard count the benchmarks use: the service's default,
// or -shards to compare others.
var benchShards = flag.Int("shards", 32, "shards of the sharded store's benchmarks")

// benchCompactAbove is the journals' compaction threshold the callback
// benchmark uses: the default, or -compact-above to compare others.
var benchCompactAbove = flag.Int("compact-above", configmapstore.DefaultCompactAbove, "journal size past which the sharded store's journals compact, in bytes")

// prefillShards writes jobs 0..n-1 of a shape straight into the shards of
// the state, as a sharded store would have written them, and the layout.
func prefillShards(tb testing.TB, cms corev1client.ConfigMapInterface, n, shards int, shape func(int) state.Job) {
	tb.Helper()
	data := make([]map[string]string, shards)
	for i := range data {
		data[i] = map[string]string{}
	}
	for i := range n {
		j := shape(i)
		value, err := json.Marshal(j)
		if err != nil {
			tb.Fatal(err)
		}
		data[configmapstore.ShardIndex(j.Key(), shards)][j.Key().String()] = string(value)
	}
	labels := map[string]string{"app.kubernetes.io/name": "batchlatch", "app.kubernetes.io/component": "state"}
	create := func(name string, d map[string]string) {
		if _, err := cms.Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Data: d}, metav1.CreateOptions{}); err != nil {
			tb.Fatalf("create %s: %v", name, err)
		}
	}
	create(benchConfigMap, map[string]string{"_layout": fmt.Sprintf(`{"shards":%d}`, shards)})
	var wg sync.WaitGroup
	for i, d := range data {
		wg.Go(func() { create(configmapstore.ShardName(benchConfigMap, i), d) })
	}
	wg.Wait()
}

// newShardedFixture is the service with a sharded store of jobs realistic
// failing jobs, behind the real HTTP server.
func newShardedFixture(tb testing.TB, jobs int) *callbackFixture {
	tb.Helper()
	env := kubetest.Get(tb)
	ns := env.NewNamespace(tb)
	cms := tunedClient(tb, env).CoreV1().ConfigMaps(ns)
	prefillShards(tb, cms, jobs, *benchShards, func(i int) state.Job { return storetest.RealisticJob(i, true) })
	counts := &countingConfigMaps{ConfigMapInterface: cms}
	store := configmapstore.NewSharded(counts, benchConfigMap, *benchShards, configmapstore.Options{CompactAbove: *benchCompactAbove}, benchLogger())
	fx := serveCallbacks(tb, env, cms, counts, store, jobs)
	if _, stored, _ := storedState(tb, cms); stored != jobs {
		tb.Fatalf("prefill stored %d jobs, want %d", stored, jobs)
	}
	return fx
}

// BenchmarkShardedCallbacks is BenchmarkCallbacks on the sharded store of
// the service's default 32 shards, with 1,000 and 10,000 realistic failing
// jobs stored (858 bytes each, the capacity test's kind). Run it with a fixed
// count: -benchtime=4000x. cm-KiB is the largest shard at the end; rss-MiB
// and heap-MiB are this process's (the store, the HTTP server and the load
// generator) after the run.
func BenchmarkShardedCallbacks(b *testing.B) {
	kubetest.Get(b)
	top := b
	for _, jobs := range []int{1000, 10000} {
		var fx *callbackFixture
		for _, clients := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("jobs=%d/clients=%d", jobs, clients), func(b *testing.B) {
				if fx == nil {
					fx = newShardedFixture(outliving{TB: b, top: top}, jobs)
				}
				runCallbacks(b, fx, clients)
				reportMemory(b)
			})
		}
	}
}

// reportMemory reports this process's resident set and live heap.
func reportMemory(b *testing.B) {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	b.ReportMetric(float64(m.HeapInuse)/(1<<20), "heap-MiB")
	if rss := procstat.SelfRSS(); rss > 0 {
		b.ReportMetric(float64(rss)/(1<<20), "rss-MiB")
	}
}

// BenchmarkShardedStartToReady times a sharded store from NewSharded until
// Ready returns nil and List returns every job, with 10,000 realistic
// failing jobs in 32 shards; heap-MiB is the store's live heap once ready.
func BenchmarkShardedStartToReady10000Jobs(b *testing.B) {
	env := kubetest.Get(b)
	ns := env.NewNamespace(b)
	cms := tunedClient(b, env).CoreV1().ConfigMaps(ns)
	const jobs = 10000
	prefillShards(b, cms, jobs, *benchShards, func(i int) state.Job { return storetest.RealisticJob(i, true) })
	_, _, largest := storedState(b, cms)
	startToReady(b, jobs, func() state.Store {
		// A new client, as a starting process has: client-go's rate limit
		// is per client, and the earlier rounds' requests are not this one's.
		fresh := tunedClient(b, env).CoreV1().ConfigMaps(ns)
		return configmapstore.NewSharded(fresh, benchConfigMap, *benchShards, configmapstore.Options{}, benchLogger())
	})
	b.ReportMetric(float64(largest)/1024, "largest-shard-KiB")
}

// TestShardedCapacity stores 10,000 realistic failing jobs in the default
// shards on the real API server, reads them back through the store, and
// reports the largest shard and the capacity that leaves.
func TestShardedCapacity(t *testing.T) {
	env := kubetest.Get(t)
	cms := tunedClient(t, env).CoreV1().ConfigMaps(env.NewNamespace(t))
	const jobs = 10000
	failing := func(i int) state.Job { return storetest.RealisticJob(i, true) }
	prefillShards(t, cms, jobs, *benchShards, failing)
	s := configmapstore.NewSharded(cms, benchConfigMap, *benchShards, configmapstore.Options{}, benchLogger())
	defer s.Close()
	waitStoreReady(t, s)
	if list, err := s.List(context.Background()); err != nil || len(list) != jobs {
		t.Fatalf("store lists %d jobs (%v), want %d", len(list), err, jobs)
	}
	_, stored, largest := storedState(t, cms)
	if stored != jobs {
		t.Fatalf("%d jobs stored, want %d", stored, jobs)
	}
	per := valueSize(t, failing, jobs)
	mean := float64(jobs*per) / float64(*benchShards)
	// The fullest shard fills first: capacity is the shards' room scaled by
	// how much fuller than the mean it is.
	capacity := int(float64(*benchShards*configmapstore.MaxData/per) * mean / float64(largest))
	t.Logf("%d realistic failing jobs (%d bytes each) in %d shards: largest shard %d KiB (mean %.0f KiB); about %d such jobs fit",
		jobs, per, *benchShards, largest/1024, mean/1024, capacity)
}

// BenchmarkShardedList is what the alarm loop's List costs with 10,000
// realistic failing jobs in 32 shards, from the store's cache.
func BenchmarkShardedList10000Jobs(b *testing.B) {
	env := kubetest.Get(b)
	cms := tunedClient(b, env).CoreV1().ConfigMaps(env.NewNamespace(b))
	const jobs = 10000
	prefillShards(b, cms, jobs, *benchShards, func(i int) state.Job { return storetest.RealisticJob(i, true) })
	s := configmapstore.NewSharded(cms, benchConfigMap, *benchShards, configmapstore.Options{RefreshAfter: time.Hour}, benchLogger())
	defer s.Close()
	waitStoreReady(b, s)
	b.ReportAllocs()
	for b.Loop() {
		if list, err := s.List(context.Background()); err != nil || len(list) != jobs {
			b.Fatalf("%d jobs (%v), want %d", len(list), err, jobs)
		}
	}
}
