package configmapstore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/kubetest"
	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/state"
)

const testShards = 8

// newSharded opens a sharded store in ns and waits until it is ready.
func newSharded(t *testing.T, env *kubetest.Env, ns string, shards int, opts Options) *Sharded {
	t.Helper()
	s := NewSharded(env.Clientset.CoreV1().ConfigMaps(ns), "batchlatch-state", shards, opts, storetest.QuietLogger())
	t.Cleanup(func() { s.Close() })
	storetest.WaitReady(t, s, 30*time.Second)
	return s
}

// stateData reads the state's ConfigMaps straight from the API server: the
// keys of each, by name.
func stateData(t *testing.T, env *kubetest.Env, ns string) map[string]map[string]string {
	t.Helper()
	list, err := env.Clientset.CoreV1().ConfigMaps(ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/component=state"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]string{}
	for _, cm := range list.Items {
		out[cm.Name] = cm.Data
	}
	return out
}

// waitCompacted waits until no journal in ns holds a job, and returns the
// state's ConfigMaps then.
func waitCompacted(t *testing.T, env *kubetest.Env, ns string) map[string]map[string]string {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		data := stateData(t, env, ns)
		held := 0
		for name, d := range data {
			if strings.Contains(name, "-journal-") {
				for key := range d {
					if !strings.HasPrefix(key, "_") {
						held++
					}
				}
			}
		}
		if held == 0 {
			return data
		}
		if time.Now().After(deadline) {
			t.Fatalf("the journals still hold %d jobs", held)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Jobs spread over the shards, each in the one its key hashes to, one
// readable key per job, once the journals are compacted; the old name holds
// the layout only; concurrent callbacks through two replicas count exactly,
// and a restart finds them.
func TestShardedSpreadsJobsAndLosesNothing(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	soon := Options{CompactAfter: 50 * time.Millisecond}
	a := newSharded(t, env, ns, testShards, soon)
	b := newSharded(t, env, ns, testShards, soon)
	storetest.RecordConcurrently(t, []state.Store{a, b}, 64, 5, 32)
	storetest.WantCounts(t, newSharded(t, env, ns, testShards, Options{}), 64, 5)

	data := waitCompacted(t, env, ns)
	if got := data["batchlatch-state"]; len(got) != 1 || got[layoutKey] != `{"shards":8}` {
		t.Fatalf("batchlatch-state holds %v, want the layout only", got)
	}
	seen := map[string]bool{}
	for i := range testShards {
		name := ShardName("batchlatch-state", i)
		shard, ok := data[name]
		if !ok {
			t.Fatalf("no ConfigMap %s", name)
		}
		if len(shard) == 0 {
			t.Errorf("%s holds no job of 64: the hash does not spread them", name)
		}
		for key, value := range shard {
			if key == compactedFromKey {
				continue
			}
			job, err := state.DecodeJob(key, value)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if ShardIndex(job.Key(), testShards) != i {
				t.Errorf("job %s in %s, not in the shard its key hashes to", key, name)
			}
			if seen[key] {
				t.Errorf("job %s in two shards", key)
			}
			seen[key] = true
			if !strings.Contains(value, `"failedRuns":5`) {
				t.Errorf("%s: %s, want a readable value with 5 failed runs", key, value)
			}
		}
	}
	if len(seen) != 64 {
		t.Fatalf("%d jobs in the shards, want 64", len(seen))
	}
}

func TestShardedForget(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	storetest.Forget(t, func() state.Store { return newSharded(t, env, ns, testShards, Options{}) })
}

func TestShardedSilences(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	storetest.Silences(t, func() state.Store { return newSharded(t, env, ns, testShards, Options{}) })
}

// oldLayout writes jobs and a silence the way a release before shards did:
// one Store on ConfigMap batchlatch-state.
func oldLayout(t *testing.T, env *kubetest.Env, ns string, jobs, runs int) {
	t.Helper()
	old := newConfigMapStore(t, env, ns, Options{})
	storetest.RecordConcurrently(t, []state.Store{old}, jobs, runs, 16)
	if err := old.AddSilence(context.Background(), storetest.SilenceAt("s1", "job1", 0, 1_000_000), storetest.At(0)); err != nil {
		t.Fatal(err)
	}
	old.Close()
}

// An install with the single ConfigMap of earlier releases moves to shards
// by itself on the first start, losing nothing: jobs, counts and silences;
// afterwards the old ConfigMap holds only the layout.
func TestShardedMovesTheOldLayout(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	oldLayout(t, env, ns, 300, 2)
	s := newSharded(t, env, ns, testShards, Options{})
	storetest.WantCounts(t, s, 300, 2)
	if silences, err := s.Silences(context.Background()); err != nil || len(silences) != 1 || silences[0].ID != "s1" {
		t.Fatalf("silences after the move: %v, %v", silences, err)
	}
	if got := stateData(t, env, ns)["batchlatch-state"]; len(got) != 1 || got[layoutKey] == "" {
		t.Fatalf("batchlatch-state after the move holds %d keys, want the layout only", len(got))
	}
	// A restart has nothing to move.
	storetest.WantCounts(t, newSharded(t, env, ns, testShards, Options{}), 300, 2)
}

// Two replicas that start at once both move the old layout: nothing lost,
// nothing counted twice, each job in one shard.
func TestShardedTwoReplicasMoveAtOnce(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	oldLayout(t, env, ns, 300, 2)
	var wg sync.WaitGroup
	stores := make([]*Sharded, 2)
	for i := range stores {
		wg.Go(func() { stores[i] = newSharded(t, env, ns, testShards, Options{}) })
	}
	wg.Wait()
	// Both serve: callbacks through both count once.
	var calls sync.WaitGroup
	for j := range 300 {
		calls.Go(func() {
			r := storetest.Run(fmt.Sprintf("job%d", j), fmt.Sprintf("third-%d", j), api.PhaseFailed, 0)
			if _, err := stores[j%2].Record(context.Background(), r, storetest.At(100)); err != nil {
				t.Errorf("record: %v", err)
			}
		})
	}
	calls.Wait()
	// Read by a fresh replica: the others' caches may be a second behind.
	storetest.WantCounts(t, newSharded(t, env, ns, testShards, Options{}), 300, 3)
	// Each job under one key (a journal's and a shard's copy are one key).
	data := stateData(t, env, ns)
	keys := map[string]bool{}
	for name, d := range data {
		for key := range d {
			if name != "batchlatch-state" && !strings.HasPrefix(key, "_") {
				keys[key] = true
			}
		}
	}
	silences := 0
	for i := range SilenceShards {
		if data[SilencesName("batchlatch-state", i)][silencesKey] != "" {
			silences++
		}
	}
	if len(keys) != 300 || silences != 1 {
		t.Fatalf("%d jobs in the shards and journals, want 300; %d silence shards hold silences, want 1", len(keys), silences)
	}
}

// A replica killed half-way leaves some shards holding their jobs while
// the old ConfigMap still holds them all, and the callbacks that came after
// (through a replica that finished) are in the shards only. The next start
// keeps the newer copy of every job and loses nothing.
func TestShardedMoveCutShortLosesNothing(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	oldLayout(t, env, ns, 100, 2)
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	ctx := context.Background()
	legacy, err := cms.Get(ctx, "batchlatch-state", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// What the killed replica got done: every other shard holds its jobs,
	// and each of those jobs got another failure since, through a replica
	// that finished the move.
	jobs := map[int][]state.Job{}
	for key, value := range legacy.Data {
		if j, err := state.DecodeJob(key, value); err == nil {
			i := ShardIndex(j.Key(), testShards)
			jobs[i] = append(jobs[i], j)
		}
	}
	moved := map[state.Key]bool{}
	for i := 0; i < testShards; i += 2 {
		shard := New(cms, ShardName("batchlatch-state", i), Options{}, storetest.QuietLogger())
		if err := shard.merge(ctx, jobs[i], nil); err != nil {
			t.Fatal(err)
		}
		for _, j := range jobs[i] {
			if _, err := shard.Record(ctx, storetest.Run(j.Name, "after-"+j.Name, api.PhaseFailed, 0), storetest.At(100)); err != nil {
				t.Fatal(err)
			}
			moved[j.Key()] = true
		}
		shard.Close()
	}
	if len(moved) == 0 || len(moved) == 100 {
		t.Fatalf("%d of 100 jobs moved: not half-way", len(moved))
	}

	next := newSharded(t, env, ns, testShards, Options{})
	all, err := next.List(ctx)
	if err != nil || len(all) != 100 {
		t.Fatalf("%d jobs after the move (%v), want 100", len(all), err)
	}
	for _, j := range all {
		want := 2
		if moved[j.Key()] {
			want = 3
		}
		if j.ConsecutiveFailures != want {
			t.Errorf("%s: %d failures, want %d", j.Key(), j.ConsecutiveFailures, want)
		}
	}
}

// A release from before the shards, still running during a rolling
// upgrade, may write to the old ConfigMap after the move: the sweep brings
// those writes into the shards.
func TestShardedSweepsWritesOfAnOlderRelease(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	s := NewSharded(env.Clientset.CoreV1().ConfigMaps(ns), "batchlatch-state", testShards, Options{}, storetest.QuietLogger())
	s.sweep = 100 * time.Millisecond
	t.Cleanup(func() { s.Close() })
	storetest.WaitReady(t, s, 30*time.Second)
	if _, err := s.Record(ctx, storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.At(1)); err != nil {
		t.Fatal(err)
	}
	// The older release: its store on the old name, knowing the job from
	// before the move.
	old := newConfigMapStore(t, env, ns, Options{})
	if _, err := old.Record(ctx, storetest.Run("hourly", "h", api.PhaseFailed, 1), storetest.At(1)); err != nil {
		t.Fatal(err)
	}
	// The sweep merges the job into the shards, and only then takes it
	// out of the old ConfigMap: wait for both.
	deadline := time.Now().Add(time.Minute)
	for {
		j, err := s.Get(ctx, state.Key{Namespace: "ml", Name: "hourly"})
		old := stateData(t, env, ns)["batchlatch-state"]
		if err == nil && j.Failing() && len(old) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the older release's write never reached the shards (%v), or batchlatch-state still holds %v, want the layout only", err, old)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The shard count is fixed once written: a replica configured with another
// is never ready and says why.
func TestShardedRefusesAnotherShardCount(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	newSharded(t, env, ns, testShards, Options{})
	other := NewSharded(env.Clientset.CoreV1().ConfigMaps(ns), "batchlatch-state", 4, Options{}, storetest.QuietLogger())
	defer other.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		err := other.Ready(context.Background())
		if err != nil && strings.Contains(err.Error(), `{"shards":8}`) && strings.Contains(err.Error(), "configured for 4") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Ready = %v, want an error naming both shard counts", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := other.Record(context.Background(), storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.At(1)); !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("Record = %v, want ErrUnavailable", err)
	}
}

// waitRefused waits until a store on shards shards of the state in ns is
// never ready, saying why: the state is in 8 shards.
func waitRefused(t *testing.T, env *kubetest.Env, ns string, shards int) {
	t.Helper()
	other := NewSharded(env.Clientset.CoreV1().ConfigMaps(ns), "batchlatch-state", shards, Options{}, storetest.QuietLogger())
	defer other.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := other.Ready(context.Background())
		if err != nil && strings.Contains(err.Error(), "in 8 shards") && strings.Contains(err.Error(), fmt.Sprintf("configured for %d", shards)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d shards: Ready = %v, want an error naming both shard counts", shards, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// The layout removed by hand (its key, or the whole ConfigMap): a replica
// configured with another shard count does not take the state for a fresh
// install (and serve only the jobs that hash alike) but is never ready,
// saying why, and creates nothing; one with the state's count infers the
// layout from the shards that exist, writes it back and serves every job.
func TestShardedInfersALayoutRemovedByHand(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	seed := newSharded(t, env, ns, testShards, Options{})
	storetest.RecordConcurrently(t, []state.Store{seed}, 40, 1, 8)
	seed.Close()
	for _, remove := range []string{"the key", "the ConfigMap"} {
		cm, err := cms.Get(ctx, "batchlatch-state", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if remove == "the key" {
			delete(cm.Data, layoutKey)
			_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
		} else {
			err = cms.Delete(ctx, "batchlatch-state", metav1.DeleteOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		for _, shards := range []int{4, 32} {
			waitRefused(t, env, ns, shards)
		}
		data := stateData(t, env, ns)
		if _, ok := data[ShardName("batchlatch-state", testShards)]; ok || data["batchlatch-state"][layoutKey] != "" {
			t.Fatalf("with %s removed, a refused replica created shards or a layout: %v", remove, slices.Sorted(maps.Keys(data)))
		}
		same := newSharded(t, env, ns, testShards, Options{})
		storetest.WantCounts(t, same, 40, 1)
		if got := stateData(t, env, ns)["batchlatch-state"][layoutKey]; got != `{"shards":8}` {
			t.Fatalf("with %s removed, the layout written back is %q", remove, got)
		}
		same.Close()
	}
}

// staleFirstRead answers the first read of ConfigMap name as it was before
// another replica wrote: it lets that replica write (before) and then
// answers NotFound, as a read that raced the other replica's writes does.
type staleFirstRead struct {
	corev1client.ConfigMapInterface
	name   string
	before func()
	once   sync.Once
}

func (c *staleFirstRead) Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.ConfigMap, error) {
	stale := false
	if name == c.name {
		c.once.Do(func() { c.before(); stale = true })
	}
	if stale {
		return nil, apierrors.NewNotFound(corev1.Resource("configmaps"), name)
	}
	return c.ConfigMapInterface.Get(ctx, name, opts)
}

// Two replicas started at once on a fresh install: one reads no state,
// and by the time it looks for shards the other has written the layout
// and created some of its shards (or a journal before shard 0). The late
// one takes the layout the other wrote and serves, instead of refusing the
// state as one whose layout was removed by hand (which left it unready
// for good: seen in CI, as a replica that answered /readyz 503 for 3
// minutes).
func TestShardedStartingBesideAnotherReplicaCreatingTheShards(t *testing.T) {
	env := kubetest.Get(t)
	ctx := context.Background()
	for _, created := range [][]string{
		{ShardName("batchlatch-state", 0), ShardName("batchlatch-state", 1), ShardName("batchlatch-state", 2)},
		{JournalName("batchlatch-state", 0)},
	} {
		t.Run(strings.Join(created, ","), func(t *testing.T) {
			cms := env.Clientset.CoreV1().ConfigMaps(env.NewNamespace(t))
			other := func() {
				if _, err := cms.Create(ctx, &corev1.ConfigMap{
					ObjectMeta: metav1.ObjectMeta{Name: "batchlatch-state", Labels: stateLabels},
					Data:       map[string]string{layoutKey: fmt.Sprintf(`{"shards":%d}`, testShards)},
				}, metav1.CreateOptions{}); err != nil {
					t.Error(err)
				}
				for _, name := range created {
					if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: stateLabels}}, metav1.CreateOptions{}); err != nil {
						t.Error(err)
					}
				}
			}
			s := NewSharded(&staleFirstRead{ConfigMapInterface: cms, name: "batchlatch-state", before: other}, "batchlatch-state", testShards, Options{}, storetest.QuietLogger())
			defer s.Close()
			storetest.WaitReady(t, s, 30*time.Second)
			if _, err := s.Record(ctx, storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.At(1)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// The API server down and back: the shards keep the last known state for
// reads, refuse writes, and take them again after.
func TestShardedAPIServerOutage(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	s := newSharded(t, env, ns, testShards, Options{CallTimeout: time.Second, RefreshAfter: time.Millisecond})
	if _, err := s.Record(ctx, storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.At(1)); err != nil {
		t.Fatal(err)
	}
	env.StopAPIServer(t)
	if _, err := s.Record(ctx, storetest.Run("nightly", "b", api.PhaseFailed, 1), storetest.At(1)); !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("Record while down: %v, want ErrUnavailable", err)
	}
	if all, err := s.List(ctx); err != nil || len(all) != 1 || !all[0].Failing() {
		t.Fatalf("List while down: %v, %v", all, err)
	}
	env.StartAPIServer(t)
	storetest.WaitReady(t, s, 30*time.Second)
	if rec, err := s.Record(ctx, storetest.Run("nightly", "b", api.PhaseFailed, 1), storetest.At(1)); err != nil || rec.Job.ConsecutiveFailures != 2 {
		t.Fatalf("after the outage: %+v, %v", rec.Job, err)
	}
}

// countingGets counts the reads of ConfigMaps.
type countingGets struct {
	corev1client.ConfigMapInterface
	gets atomic.Int64
}

func (c *countingGets) Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.ConfigMap, error) {
	c.gets.Add(1)
	return c.ConfigMapInterface.Get(ctx, name, opts)
}

// A readiness probe of a sharded store asks the API server once, not once
// per shard: the shards share it.
func TestShardedReadyAsksOnce(t *testing.T) {
	env := kubetest.Get(t)
	counting := &countingGets{ConfigMapInterface: env.Clientset.CoreV1().ConfigMaps(env.NewNamespace(t))}
	// Every shard's last read is always stale.
	s := NewSharded(counting, "batchlatch-state", testShards, Options{RefreshAfter: time.Nanosecond, ReadyWithin: time.Nanosecond}, storetest.QuietLogger())
	defer s.Close()
	storetest.WaitReady(t, s, 30*time.Second)
	before := counting.gets.Load()
	if err := s.Ready(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := counting.gets.Load() - before; n != 1 {
		t.Fatalf("Ready read %d ConfigMaps, want 1", n)
	}
}

// Readiness asked every second or more often (each replica's leader
// election asks it every second) reads a shard at most once every
// ReadyWithin while the store is idle, not at each question: each read is
// a whole shard, up to 1 MiB.
func TestShardedReadyReadsAtMostOncePerReadyWithin(t *testing.T) {
	env := kubetest.Get(t)
	counting := &countingGets{ConfigMapInterface: env.Clientset.CoreV1().ConfigMaps(env.NewNamespace(t))}
	s := NewSharded(counting, "batchlatch-state", testShards, Options{}, storetest.QuietLogger())
	defer s.Close()
	storetest.WaitReady(t, s, 30*time.Second)
	before := counting.gets.Load()
	start := time.Now()
	asked := 0
	for time.Since(start) < 6*time.Second {
		if err := s.Ready(context.Background()); err != nil {
			t.Fatal(err)
		}
		asked++
		time.Sleep(50 * time.Millisecond)
	}
	// However slow the machine, 6 s hold at most two ends of a 5 s window.
	if n := counting.gets.Load() - before; n > 2 {
		t.Fatalf("Ready asked %d times in %s read %d ConfigMaps, want at most 2 (one per %s)", asked, time.Since(start).Round(time.Millisecond), n, DefaultReadyWithin)
	}
}

// countingUpdates counts the writes of ConfigMaps.
type countingUpdates struct {
	corev1client.ConfigMapInterface
	updates atomic.Int64
}

func (c *countingUpdates) Update(ctx context.Context, cm *corev1.ConfigMap, opts metav1.UpdateOptions) (*corev1.ConfigMap, error) {
	c.updates.Add(1)
	return c.ConfigMapInterface.Update(ctx, cm, opts)
}

// Merging what a shard already holds (a move started again) writes nothing.
func TestMergeOfWhatIsHeldWritesNothing(t *testing.T) {
	env := kubetest.Get(t)
	counting := &countingUpdates{ConfigMapInterface: env.Clientset.CoreV1().ConfigMaps(env.NewNamespace(t))}
	s := New(counting, "shard", Options{}, storetest.QuietLogger())
	defer s.Close()
	storetest.WaitReady(t, s, 30*time.Second)
	ctx := context.Background()
	rec, err := s.Record(ctx, storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.At(1))
	if err != nil {
		t.Fatal(err)
	}
	silence := storetest.SilenceAt("s1", "", 0, 1_000_000)
	if err := s.AddSilence(ctx, silence, storetest.At(0)); err != nil {
		t.Fatal(err)
	}
	before := counting.updates.Load()
	if err := s.merge(ctx, []state.Job{rec.Job}, []api.Silence{silence}); err != nil {
		t.Fatal(err)
	}
	if n := counting.updates.Load() - before; n != 0 {
		t.Fatalf("%d updates for a merge of what is held, want 0", n)
	}
}

// TestShardedHistory: a job's runs outlast a restart (the journals moved
// into the shards on close) and a replica's write, which its tiny
// compaction threshold moves into the shard at once.
func TestShardedHistory(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	storetest.History(t, func() state.Store { return newSharded(t, env, ns, testShards, Options{}) },
		func() state.Store { return newSharded(t, env, ns, testShards, Options{CompactAbove: 1}) })
}

// TestShardedLate: a job's Late run is counted once across a restart and
// from a replica, whose own result then takes its place.
func TestShardedLate(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	storetest.Late(t, func() state.Store { return newSharded(t, env, ns, testShards, Options{}) },
		func() state.Store { return newSharded(t, env, ns, testShards, Options{CompactAbove: 1}) })
}

// TestShardedHistoryMigration: a job a release before histories wrote in
// its shard reads with a history seeded from its state, and keeps it.
func TestShardedHistoryMigration(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	storetest.Migration(t, func() state.Store { return newSharded(t, env, ns, testShards, Options{}) }, func(key, value string) {
		labels := map[string]string{"app.kubernetes.io/name": "batchlatch", "app.kubernetes.io/component": "state"}
		for name, data := range map[string]map[string]string{
			"batchlatch-state": {"_layout": fmt.Sprintf(`{"shards":%d}`, testShards)},
			ShardName("batchlatch-state", ShardIndex(state.ParseKey(key), testShards)): {key: value},
		} {
			if _, err := cms.Create(context.Background(), &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}, Data: data}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	})
}
