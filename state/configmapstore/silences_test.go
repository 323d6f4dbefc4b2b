package configmapstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
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

// largestSilence is the largest silence the API accepts, with id: the
// longest job key, an end with nanoseconds, and a reason and a createdBy as
// long as allowed, of control characters, which encoding/json writes as six
// bytes each (as it does '<', '>' and '&').
func largestSilence(id string, now time.Time) api.Silence {
	namespace := strings.Repeat("n", api.MaxNamespaceLength)
	return api.Silence{
		ID: id, Namespace: namespace, Job: strings.Repeat("j", api.MaxKeyLength-len(namespace)-1), Kind: api.KindWorkflow,
		StartsAt: now.Truncate(time.Second), EndsAt: now.Add(api.MaxSilence - time.Nanosecond),
		Reason: strings.Repeat("\x01", api.MaxSilenceReason), CreatedBy: strings.Repeat("\x01", api.MaxSilenceCreatedBy),
	}
}

// A silence shard holds its share of state.MaxSilences at their largest,
// as the JSON array the store writes, within what a ConfigMap holds.
func TestSilencesFitAtTheirLargest(t *testing.T) {
	if SilenceShards*SilencesPerShard < state.MaxSilences {
		t.Fatalf("%d shards of %d silences hold fewer than %d", SilenceShards, SilencesPerShard, state.MaxSilences)
	}
	share := make([]api.Silence, SilencesPerShard)
	for i := range share {
		share[i] = largestSilence(fmt.Sprintf("%016x", i), storetest.T0)
	}
	encoded, err := json.Marshal(share)
	if err != nil {
		t.Fatal(err)
	}
	if len(encoded) > MaxData {
		t.Fatalf("%d of the largest silences take %d bytes, over the %d a ConfigMap holds", SilencesPerShard, len(encoded), MaxData)
	}
	t.Logf("%d of the largest silences (%d bytes each) take %d bytes", SilencesPerShard, len(encoded)/SilencesPerShard, len(encoded))
}

// The documented number of silences, at their largest, are stored on the
// real API server, one more is refused as full, and none of it costs a job
// its failure: jobs of every shard, shard 0's included, are still recorded.
func TestShardedSilencesHaveABudgetOfTheirOwn(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	s := newSharded(t, env, ns, testShards, Options{})
	now := storetest.At(0)
	ids := make(chan int)
	errs := make(chan error, state.MaxSilences)
	var wg sync.WaitGroup
	for range 128 { // at once, as an operator's script would: they share updates
		wg.Go(func() {
			for i := range ids {
				errs <- s.AddSilence(ctx, largestSilence(fmt.Sprintf("%016x", i), now), now)
			}
		})
	}
	for i := range state.MaxSilences {
		ids <- i
	}
	close(ids)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("silence refused: %v", err)
		}
	}
	if err := s.AddSilence(ctx, largestSilence("ffffffffffffffff", now), now); !errors.Is(err, state.ErrFull) || !strings.Contains(err.Error(), "1000") {
		t.Fatalf("silence %d: %v, want ErrFull saying 1000", state.MaxSilences+1, err)
	}
	if all, err := s.Silences(ctx); err != nil || len(all) != state.MaxSilences {
		t.Fatalf("%d silences stored (%v), want %d", len(all), err, state.MaxSilences)
	}
	// Jobs hashing to every shard, shard 0 among them.
	inShard0 := 0
	for i := range 4 * testShards {
		name := fmt.Sprint("job", i)
		if ShardIndex(state.Key{Namespace: "ml", Name: name}, testShards) == 0 {
			inShard0++
		}
		if _, err := s.Record(ctx, storetest.Run(name, "a", api.PhaseFailed, 0), now); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if inShard0 == 0 {
		t.Fatal("no job of shard 0 was recorded")
	}
	// An ended silence makes room again, in whichever shard it was.
	if err := s.DeleteSilence(ctx, fmt.Sprintf("%016x", 17), now); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSilence(ctx, largestSilence("eeeeeeeeeeeeeeee", now), now); err != nil {
		t.Fatalf("a silence after one ended: %v", err)
	}
	if _, ok := stateData(t, env, ns)[ShardName("batchlatch-state", 0)][silencesKey]; ok {
		t.Fatal("shard 0 holds silences")
	}
}

// Releases before the silence shards kept the silences in shard 0: they
// are moved out at start, and again by the sweep when an older release
// still running adds one there; nothing is lost, nothing doubled.
func TestShardedMovesSilencesOutOfShard0(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	encode := func(silences ...api.Silence) string {
		v, err := json.Marshal(silences)
		if err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	a1, b2, c3 := storetest.SilenceAt("a1", "nightly", 0, 200), storetest.SilenceAt("b2", "", 0, 300), storetest.SilenceAt("c3", "hourly", 0, 400)
	for name, data := range map[string]map[string]string{
		"batchlatch-state":                  {layoutKey: `{"shards":8}`},
		ShardName("batchlatch-state", 0):    {silencesKey: encode(a1, b2)},
		SilencesName("batchlatch-state", 3): {silencesKey: encode(b2)}, // a move cut short
	} {
		if _, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: stateLabels}, Data: data}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	s := NewSharded(cms, "batchlatch-state", testShards, Options{}, storetest.QuietLogger())
	s.sweep = 100 * time.Millisecond
	t.Cleanup(func() { s.Close() })
	storetest.WaitReady(t, s, 30*time.Second)
	if got := silenceIDs(t, s); got != "[a1 b2]" {
		t.Fatalf("silences after the start: %s, want [a1 b2]", got)
	}
	if _, ok := stateData(t, env, ns)[ShardName("batchlatch-state", 0)][silencesKey]; ok {
		t.Fatal("shard 0 still holds the silences")
	}
	// An older release adds one to shard 0.
	shard0 := New(cms, ShardName("batchlatch-state", 0), Options{}, storetest.QuietLogger())
	defer shard0.Close()
	if err := shard0.AddSilence(ctx, c3, storetest.At(100)); err != nil {
		t.Fatal(err)
	}
	// Generous: the sweep runs on its own timer, which a loaded machine
	// delays; only a failure waits this long.
	deadline := time.Now().Add(2 * time.Minute)
	for silenceIDs(t, s) != "[a1 b2 c3]" {
		if time.Now().After(deadline) {
			t.Fatalf("the sweep did not move c3 within 2 minutes: %s", silenceIDs(t, s))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := s.DeleteSilence(ctx, "b2", storetest.At(100)); err != nil {
		t.Fatal(err)
	}
	if got := silenceIDs(t, newSharded(t, env, ns, testShards, Options{})); got != "[a1 c3]" {
		t.Fatalf("silences after a restart: %s, want [a1 c3]", got)
	}
}

func silenceIDs(t *testing.T, s state.Store) string {
	t.Helper()
	silences, err := s.Silences(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range silences {
		ids = append(ids, x.ID)
	}
	return fmt.Sprint(ids)
}
