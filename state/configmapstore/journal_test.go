package configmapstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/kubetest"
	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/state"
)

// neverByTime keeps the journals from moving their jobs on a timer.
const neverByTime = time.Hour

// Two replicas whose journals compact all the time (past 2 KiB) while 64
// clients send callbacks through both: every run counts once, and the
// shards hold jobs without the journals' timer.
func TestJournalCompactsUnderLoadAcrossReplicas(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	busy := Options{CompactAbove: 2 << 10, CompactAfter: neverByTime}
	a := newSharded(t, env, ns, testShards, busy)
	b := newSharded(t, env, ns, testShards, busy)
	storetest.RecordConcurrently(t, []state.Store{a, b}, 64, 8, 64)
	storetest.WantCounts(t, newSharded(t, env, ns, testShards, Options{CompactAfter: neverByTime}), 64, 8)
	inShards := 0
	for name, data := range stateData(t, env, ns) {
		if !strings.Contains(name, "-journal-") && name != "batchlatch-state" {
			inShards += len(data)
		}
	}
	if inShards == 0 {
		t.Fatal("no job reached a shard: the journals never compacted")
	}
}

// A replica that read a shard before another replica compacted a job into
// it must not build on its older copy: the journal's mark makes it read the
// shard again.
func TestJournalReadsTheShardAsNewAsItsLastCompaction(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	// b has read every shard, empty, and never compacts.
	b := newSharded(t, env, ns, 1, Options{CompactAfter: neverByTime})
	a := newSharded(t, env, ns, 1, Options{CompactAfter: 20 * time.Millisecond})
	if _, err := a.Record(ctx, storetest.Run("nightly", "first", api.PhaseFailed, 0), storetest.At(1)); err != nil {
		t.Fatal(err)
	}
	if data := waitCompacted(t, env, ns); data[ShardName("batchlatch-state", 0)]["ml.nightly"] == "" {
		t.Fatalf("the job is not in its shard after the compaction: %v", data)
	}
	rec, err := b.Record(ctx, storetest.Run("nightly", "second", api.PhaseFailed, 1), storetest.At(2))
	if err != nil {
		t.Fatal(err)
	}
	if rec.Job.ConsecutiveFailures != 2 {
		t.Fatalf("second failure counted as failure %d: built on the shard b read before the compaction", rec.Job.ConsecutiveFailures)
	}
}

// A delete writes a tombstone, which hides the shard's copy at once and
// leaves both places at the next compaction; a new run starts afresh.
func TestJournalDeleteOfAJobInItsShard(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	s := newSharded(t, env, ns, 1, Options{CompactAfter: 20 * time.Millisecond})
	key := state.Key{Namespace: "ml", Name: "nightly"}
	for i := range 2 {
		if _, err := s.Record(ctx, storetest.Run("nightly", fmt.Sprint("r", i), api.PhaseFailed, i), storetest.At(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitCompacted(t, env, ns)
	if err := s.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, key); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("get after delete: %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, key); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	if list, err := s.List(ctx); err != nil || len(list) != 0 {
		t.Fatalf("list after delete: %v, %v", list, err)
	}
	data := waitCompacted(t, env, ns)
	if v, ok := data[ShardName("batchlatch-state", 0)]["ml.nightly"]; ok {
		t.Fatalf("the shard still holds the deleted job: %s", v)
	}
	rec, err := s.Record(ctx, storetest.Run("nightly", "r9", api.PhaseFailed, 9), storetest.At(9))
	if err != nil || rec.Job.ConsecutiveFailures != 1 {
		t.Fatalf("a run after the delete: %d failures (%v), want 1", rec.Job.ConsecutiveFailures, err)
	}
}

// A value edited by hand into something unreadable, in the journal or in
// the shard, fails only its own job, and a delete clears it.
func TestJournalLeavesGarbageAlone(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	for name, key := range map[string]string{ShardName("batchlatch-state", 0): "ml.inshard", JournalName("batchlatch-state", 0): "ml.injournal"} {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: stateLabels},
			Data: map[string]string{key: "{not json"}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s := newSharded(t, env, ns, 1, Options{CompactAfter: neverByTime})
	for _, job := range []string{"inshard", "injournal"} {
		key := state.Key{Namespace: "ml", Name: job}
		if _, err := s.Get(ctx, key); !errors.Is(err, state.ErrCorrupt) {
			t.Fatalf("get %s: %v, want ErrCorrupt", job, err)
		}
		if _, err := s.Record(ctx, storetest.Run(job, "a", api.PhaseFailed, 0), storetest.At(1)); !errors.Is(err, state.ErrCorrupt) {
			t.Fatalf("record %s: %v, want ErrCorrupt", job, err)
		}
		if err := s.Delete(ctx, key); err != nil {
			t.Fatalf("delete %s: %v", job, err)
		}
		if rec, err := s.Record(ctx, storetest.Run(job, "b", api.PhaseFailed, 1), storetest.At(1)); err != nil || rec.Job.ConsecutiveFailures != 1 {
			t.Fatalf("record %s after the delete: %+v, %v", job, rec.Job, err)
		}
	}
	if _, err := s.Record(ctx, storetest.Run("healthy", "a", api.PhaseSucceeded, 0), storetest.At(1)); err != nil {
		t.Fatal(err)
	}
}

// editByHand sets key of ConfigMap name to value, as kubectl edit would.
func editByHand(t *testing.T, env *kubetest.Env, ns, name, key, value string) {
	t.Helper()
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	cm, err := cms.Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cm.Data[key] = value
	if _, err := cms.Update(context.Background(), cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// listed returns key's job in s's List.
func listed(t *testing.T, s state.Store, key state.Key) (state.Job, bool) {
	t.Helper()
	all, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range all {
		if j.Key() == key {
			return j, true
		}
	}
	return state.Job{}, false
}

// A job whose value is edited by hand into something unreadable stays
// listed, marked unreadable, from the last readable copy the replica saw,
// so that it keeps alerting: whether the value is in the journal (the
// shard's older copy counts too), in the shard, or was moved from the
// journal into the shard. A restarted replica that knows no readable copy
// lists the key by its identity (or from a readable copy the shard still
// holds). A delete clears it.
func TestShardedUnreadableJobKeepsItsLastReadableCopy(t *testing.T) {
	for _, tc := range []struct {
		where        string
		afterRestart int // failures listed by a restarted replica
	}{{"journal", 1}, {"shard", 0}, {"moved", 0}} {
		t.Run(tc.where, func(t *testing.T) {
			env := kubetest.Get(t)
			ns := env.NewNamespace(t)
			ctx := context.Background()
			s := newSharded(t, env, ns, 1, Options{CompactAfter: neverByTime, RefreshAfter: time.Millisecond})
			key := state.Key{Namespace: "ml", Name: "nightly"}
			for i := range 2 {
				if _, err := s.Record(ctx, storetest.Run("nightly", fmt.Sprint("r", i), api.PhaseFailed, i), storetest.At(i)); err != nil {
					t.Fatal(err)
				}
				if i == 0 || tc.where == "shard" {
					s.journals[0].compactAll(ctx) // the shard holds this run
				}
			}
			if _, err := s.Record(ctx, storetest.Run("hourly", "h", api.PhaseSucceeded, 1), storetest.At(1)); err != nil {
				t.Fatal(err)
			}
			in := JournalName("batchlatch-state", 0)
			if tc.where == "shard" {
				in = ShardName("batchlatch-state", 0)
			}
			editByHand(t, env, ns, in, "ml.nightly", "{ edited by hand")
			if tc.where == "moved" {
				listed(t, s, key) // the journal reads the edit
				s.journals[0].compactAll(ctx)
				data := stateData(t, env, ns)
				if _, inJournal := data[in]["ml.nightly"]; inJournal || data[ShardName("batchlatch-state", 0)]["ml.nightly"] != "{ edited by hand" {
					t.Fatalf("the edit was not moved into the shard: %v", data)
				}
			}

			j, ok := listed(t, s, key)
			if !ok || !j.Failing() || j.ConsecutiveFailures != 2 || !strings.Contains(j.Unreadable, "ml.nightly") {
				t.Fatalf("listed as %+v (%v), want the last readable copy (2 failures) marked unreadable", j, ok)
			}
			if h, _ := listed(t, s, state.Key{Namespace: "ml", Name: "hourly"}); h.Unreadable != "" || h.LastPhase != api.PhaseSucceeded {
				t.Fatalf("hourly: %+v", h)
			}
			if _, err := s.Get(ctx, key); !errors.Is(err, state.ErrCorrupt) {
				t.Fatalf("get: %v, want ErrCorrupt", err)
			}
			if _, err := s.Record(ctx, storetest.Run("nightly", "r9", api.PhaseFailed, 9), storetest.At(9)); !errors.Is(err, state.ErrCorrupt) {
				t.Fatalf("record: %v, want ErrCorrupt", err)
			}

			restarted := newSharded(t, env, ns, 1, Options{CompactAfter: neverByTime})
			j, ok = listed(t, restarted, key)
			if !ok || j.Unreadable == "" || j.ConsecutiveFailures != tc.afterRestart {
				t.Fatalf("after a restart: listed as %+v (%v), want it marked unreadable with %d failures", j, ok, tc.afterRestart)
			}

			if err := s.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
			if j, ok := listed(t, s, key); ok {
				t.Fatalf("listed after the delete: %+v", j)
			}
		})
	}
}

// A journal ConfigMap deleted by hand takes acknowledged runs with it: each
// replica that finds it gone writes back what it saw in it that the shards
// do not hold, and logs an error. A replica whose view of the journal is
// older than the shards' (they got newer runs since) writes back none of it.
func TestJournalDeletedByHandIsWrittenBack(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	logs := &levelCounter{counts: map[slog.Level]int{}}
	opts := Options{CompactAfter: neverByTime, RefreshAfter: time.Millisecond}
	a := NewSharded(cms, "batchlatch-state", testShards, opts, slog.New(logs))
	t.Cleanup(func() { a.Close() })
	storetest.WaitReady(t, a, 30*time.Second)
	b := newSharded(t, env, ns, testShards, opts)
	record := func(s *Sharded, job, run int) {
		t.Helper()
		r := storetest.Run(fmt.Sprint("job", job), fmt.Sprintf("run%d-%d", job, run), api.PhaseFailed, 0)
		if _, err := s.Record(ctx, r, storetest.At(100)); err != nil {
			t.Fatal(err)
		}
	}
	// 20 jobs: two runs in the shards, a third in the journal, which b
	// reads and reads no more.
	storetest.RecordConcurrently(t, []state.Store{a, b}, 20, 2, 8)
	a.journals[0].compactAll(ctx)
	for j := range 20 {
		record([]*Sharded{a, b}[j%2], j, 2)
	}
	if all, err := b.List(ctx); err != nil || len(all) != 20 {
		t.Fatalf("%d jobs (%v), want 20", len(all), err)
	}
	// Then half of them get a fourth run, and all are moved into the
	// shards; job20 gets two runs, only in the journal, which a reads.
	for j := range 10 {
		record(a, j, 3)
	}
	a.journals[0].compactAll(ctx)
	record(a, 20, 0)
	record(a, 20, 1)

	if err := cms.Delete(ctx, JournalName("batchlatch-state", 0), metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Sharded{b, a} {
		if _, err := s.List(ctx); err != nil {
			t.Fatal(err)
		}
	}
	fresh := newSharded(t, env, ns, testShards, Options{CompactAfter: neverByTime})
	all, err := fresh.List(ctx)
	if err != nil || len(all) != 21 {
		t.Fatalf("%d jobs after the journal was deleted (%v), want 21", len(all), err)
	}
	for _, j := range all {
		want := 3 // job10 … job19
		switch n := strings.TrimPrefix(j.Name, "job"); {
		case n == "20":
			want = 2
		case len(n) == 1: // job0 … job9
			want = 4
		}
		if j.ConsecutiveFailures != want {
			t.Errorf("%s: %d failures, want %d", j.Key(), j.ConsecutiveFailures, want)
		}
	}
	if logs.count(slog.LevelError) == 0 {
		t.Error("no error logged for the deleted journal")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// The limit that matters is the shard's: a journal refuses a job that would
// bring its shard past it once compacted, naming the shard, and keeps
// everything stored.
func TestJournalRefusesWhatItsShardCannotHold(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	s := newSharded(t, env, ns, 1, Options{MaxData: 1500, CompactAbove: 400, CompactAfter: 20 * time.Millisecond})
	stored := 0
	var full error
	for i := range 20 {
		if _, err := s.Record(ctx, storetest.Run(fmt.Sprint("job", i), "a", api.PhaseFailed, 0), storetest.At(1)); err != nil {
			full = err
			break
		}
		stored++
	}
	if !errors.Is(full, state.ErrFull) || !strings.Contains(full.Error(), ShardName("batchlatch-state", 0)) {
		t.Fatalf("err = %v, want state.ErrFull naming the shard", full)
	}
	if stored == 0 {
		t.Fatal("nothing fit")
	}
	data := waitCompacted(t, env, ns)
	size := 0
	for _, v := range data[ShardName("batchlatch-state", 0)] {
		size += len(v)
	}
	if size > 1500 {
		t.Fatalf("the shard holds %d bytes, over its limit of 1500", size)
	}
	storetest.WantCounts(t, s, stored, 1)
}

// A replica killed between a compaction's two updates leaves a job in both
// the shard and the journal, and may leave a newer run in the journal than
// it compacted: the journal's copy counts, once, and the next compaction
// finishes the move.
func TestJournalCompactionCutShort(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	seed := newSharded(t, env, ns, 1, Options{CompactAfter: neverByTime})
	for i := range 3 {
		if _, err := seed.Record(ctx, storetest.Run("nightly", fmt.Sprint("r", i), api.PhaseFailed, i), storetest.At(i)); err != nil {
			t.Fatal(err)
		}
		if i == 1 { // the killed replica compacted the first two runs
			if _, err := seed.Record(ctx, storetest.Run("hourly", "h", api.PhaseFailed, 0), storetest.At(1)); err != nil {
				t.Fatal(err)
			}
			journal, err := cms.Get(ctx, JournalName("batchlatch-state", 0), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			shard, err := cms.Get(ctx, ShardName("batchlatch-state", 0), metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			shard.Data = map[string]string{"ml.nightly": journal.Data["ml.nightly"], "ml.hourly": journal.Data["ml.hourly"]}
			if _, err := cms.Update(ctx, shard, metav1.UpdateOptions{}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// The seeding replica stays, idle, as a killed one would: closing it
	// would finish the move this test starts from (a closing journal
	// moves its jobs into their shards).

	s := newSharded(t, env, ns, 1, Options{CompactAfter: neverByTime})
	for _, want := range []struct {
		job  string
		runs int
	}{{"nightly", 3}, {"hourly", 1}} {
		j, err := s.Get(ctx, state.Key{Namespace: "ml", Name: want.job})
		if err != nil || j.ConsecutiveFailures != want.runs {
			t.Fatalf("%s: %d failures (%v), want %d", want.job, j.ConsecutiveFailures, err, want.runs)
		}
	}
	rec, err := s.Record(ctx, storetest.Run("nightly", "r3", api.PhaseFailed, 3), storetest.At(3))
	if err != nil || rec.Job.ConsecutiveFailures != 4 {
		t.Fatalf("the next run: %d failures (%v), want 4", rec.Job.ConsecutiveFailures, err)
	}
	s.Close()
	newSharded(t, env, ns, 1, Options{CompactAfter: 20 * time.Millisecond})
	data := waitCompacted(t, env, ns)
	if v := data[ShardName("batchlatch-state", 0)]["ml.nightly"]; !strings.Contains(v, `"failedRuns":4`) {
		t.Fatalf("the shard holds %s after the compaction, want 4 failed runs", v)
	}
}

// A replica that compacts from a journal it read before another replica's
// compaction would write its older copies over the newer ones: the shard
// refuses them.
func TestJournalRefusesAStaleCompaction(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	a := newSharded(t, env, ns, 1, Options{CompactAfter: neverByTime})
	b := newSharded(t, env, ns, 1, Options{CompactAfter: neverByTime})
	if _, err := a.Record(ctx, storetest.Run("nightly", "r0", api.PhaseFailed, 0), storetest.At(0)); err != nil {
		t.Fatal(err)
	}
	// b's write conflicts with a's and reads the journal: b now holds a
	// copy with nightly's first run.
	if _, err := b.Record(ctx, storetest.Run("hourly", "h", api.PhaseFailed, 0), storetest.At(0)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Record(ctx, storetest.Run("nightly", "r1", api.PhaseFailed, 1), storetest.At(1)); err != nil {
		t.Fatal(err)
	}
	newSharded(t, env, ns, 1, Options{CompactAfter: 20 * time.Millisecond}).Close()
	waitCompacted(t, env, ns)
	b.journals[0].compactAll(ctx) // from its copy, read before that compaction
	j, err := newSharded(t, env, ns, 1, Options{CompactAfter: neverByTime}).Get(ctx, state.Key{Namespace: "ml", Name: "nightly"})
	if err != nil || j.ConsecutiveFailures != 2 {
		t.Fatalf("nightly: %d failures (%v), want 2: a stale compaction undid the second", j.ConsecutiveFailures, err)
	}
}

// A replica that stops leaves its journal's jobs in their shards: the
// shards alone show the state.
func TestJournalClosingLeavesItsJobsInTheShards(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	s := newSharded(t, env, ns, testShards, Options{CompactAfter: neverByTime})
	storetest.RecordConcurrently(t, []state.Store{s}, 20, 2, 8)
	s.Close()
	inShards := 0
	for name, data := range stateData(t, env, ns) {
		for key := range data {
			if strings.HasPrefix(key, "_") {
				continue
			}
			if strings.Contains(name, "-journal-") {
				t.Errorf("%s still holds %s", name, key)
			} else if name != "batchlatch-state" {
				inShards++
			}
		}
	}
	if inShards != 20 {
		t.Fatalf("%d jobs in the shards, want 20", inShards)
	}
	storetest.WantCounts(t, newSharded(t, env, ns, testShards, Options{CompactAfter: neverByTime}), 20, 2)
}

// levelCounter counts the records logged at each level.
type levelCounter struct {
	mu     sync.Mutex
	counts map[slog.Level]int
}

func (c *levelCounter) Enabled(context.Context, slog.Level) bool { return true }
func (c *levelCounter) Handle(_ context.Context, r slog.Record) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.counts[r.Level]++
	return nil
}
func (c *levelCounter) WithAttrs([]slog.Attr) slog.Handler { return c }
func (c *levelCounter) count(l slog.Level) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.counts[l]
}
func (c *levelCounter) WithGroup(string) slog.Handler { return c }

// An outage fails a compaction every few seconds: one warning, then debug
// lines until one works again, which is said once.
func TestJournalWarnsOnceWhileCompactionsFail(t *testing.T) {
	counter := &levelCounter{counts: map[slog.Level]int{}}
	s := &Store{logger: slog.New(counter), journal: &journalRole{}}
	outage := fmt.Errorf("%w: connection refused", state.ErrUnavailable)
	for range 3 {
		s.compactFailed(context.Background(), outage)
	}
	s.compactWorks()
	s.compactWorks()
	s.compactFailed(context.Background(), outage)
	want := map[slog.Level]int{slog.LevelWarn: 2, slog.LevelDebug: 2, slog.LevelInfo: 1}
	if fmt.Sprint(counter.counts) != fmt.Sprint(want) {
		t.Fatalf("logged %v, want %v", counter.counts, want)
	}
}

// A steady trickle of callbacks, too little to fill a journal and too
// frequent to leave it idle, still sees each job in its shard soon: the
// trickle goes on (over 30 jobs, so that the journal stays small) until the
// first job is in its shard, which it never is if the callbacks keep the
// journal from moving its jobs.
func TestJournalMovesJobsUnderATrickle(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	s := newSharded(t, env, ns, 1, Options{CompactAfter: 200 * time.Millisecond})
	deadline := time.Now().Add(time.Minute)
	for i := 0; ; i++ {
		if _, err := s.Record(ctx, storetest.Run(fmt.Sprint("job", i%30), fmt.Sprint("r", i), api.PhaseFailed, 0), storetest.At(1)); err != nil {
			t.Fatal(err)
		}
		if i >= 30 { // every job recorded once
			if _, ok := stateData(t, env, ns)[ShardName("batchlatch-state", 0)]["ml.job0"]; ok {
				t.Logf("the first job reached its shard after %d callbacks", i+1)
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("after a minute of a trickle (%d callbacks every 50 ms) the first job is still only in the journal", i+1)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A journal that cannot move its jobs fills up: that is an outage of its
// moves, answered as unavailable (retry later), not as a full store.
func TestJournalFullIsUnavailableNotFull(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	// The journal and the shard share MaxData; the journal never moves.
	s := newSharded(t, env, ns, 1, Options{MaxData: 2000, CompactAbove: 1 << 20, CompactAfter: neverByTime})
	var err error
	for i := 0; err == nil && i < 20; i++ {
		_, err = s.Record(ctx, storetest.Run(fmt.Sprint("job", i), "a", api.PhaseFailed, 0), storetest.At(1))
	}
	if !errors.Is(err, state.ErrUnavailable) || errors.Is(err, state.ErrFull) || !strings.Contains(err.Error(), JournalName("batchlatch-state", 0)) {
		t.Fatalf("err = %v, want state.ErrUnavailable naming the journal", err)
	}
}
