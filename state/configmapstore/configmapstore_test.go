package configmapstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/kubetest"
	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/state"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// newConfigMapStore opens a store in a fresh namespace and waits until it is ready.
func newConfigMapStore(t *testing.T, env *kubetest.Env, ns string, opts Options) *Store {
	t.Helper()
	s := New(env.Clientset.CoreV1().ConfigMaps(ns), "batchlatch-state", opts, storetest.QuietLogger())
	t.Cleanup(func() { s.Close() })
	storetest.WaitReady(t, s, 30*time.Second)
	return s
}

func TestConfigMapStoreRestartFindsEveryJob(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	first := newConfigMapStore(t, env, ns, Options{})
	for _, r := range storetest.ApplyInputs() {
		if _, err := first.Record(ctx, r, storetest.At(100)); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := first.List(ctx)
	first.Close()

	second := newConfigMapStore(t, env, ns, Options{})
	got, err := second.List(ctx)
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 2 {
		t.Fatalf("after restart: %v (%v)\nwant %v", got, err, want)
	}

	// One readable key per job, compact JSON values.
	cm, err := env.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "batchlatch-state", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cm.Data) != 2 || !strings.HasPrefix(cm.Data["ml.nightly"], `{"failingSince":`) {
		t.Fatalf("ConfigMap data: %v", cm.Data)
	}
	if strings.Contains(cm.Data["ml.nightly"], "\n") {
		t.Error("values should be compact JSON")
	}
}

func TestConfigMapStoreGroupCommitLosesNothing(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	const jobs, runs, clients = 8, 40, 8
	gated := &gatedUpdates{ConfigMapInterface: env.Clientset.CoreV1().ConfigMaps(ns), t: t, clients: clients, total: jobs * runs}
	// No call may time out while its update is held.
	s := New(gated, "batchlatch-state", Options{CallTimeout: 2 * time.Minute}, storetest.QuietLogger())
	t.Cleanup(func() { s.Close() })
	gated.store = s
	storetest.WaitReady(t, s, 30*time.Second)
	storetest.RecordConcurrently(t, []state.Store{s}, jobs, runs, clients)
	fresh := newConfigMapStore(t, env, ns, Options{})
	storetest.WantCounts(t, fresh, jobs, runs)
	// Held until the other clients queued theirs, every update but the
	// first carries one callback of each client; without grouping there
	// would be one update per callback.
	if writes := gated.updates.Load(); writes > jobs*runs/4 {
		t.Errorf("%d updates for %d callbacks: not grouped", writes, jobs*runs)
	}
	t.Logf("%d callbacks in %d updates", jobs*runs, gated.updates.Load())
}

// gatedUpdates holds each update of store until every client that does not
// wait on it has queued its next callback, and counts the updates. How many
// callbacks group commit can put in one update then depends on the store
// alone, not on how fast this machine lets the clients send them.
type gatedUpdates struct {
	corev1client.ConfigMapInterface
	t              *testing.T
	store          *Store
	clients, total int // each client sends its callbacks one at a time, total in all
	updates        atomic.Int64
	stored         int // callbacks (failures) stored by the last update: only the committer updates
}

func (g *gatedUpdates) Update(ctx context.Context, cm *corev1.ConfigMap, opts metav1.UpdateOptions) (*corev1.ConfigMap, error) {
	failures := 0
	for key, value := range cm.Data {
		if job, err := state.DecodeJob(key, value); err == nil {
			failures += job.ConsecutiveFailures
		}
	}
	// The clients not waiting on this update, as long as callbacks remain.
	others := min(g.clients, g.total-g.stored) - (failures - g.stored)
	for deadline := time.Now().Add(time.Minute); len(g.store.ops) < others; {
		if time.Now().After(deadline) {
			g.t.Errorf("%d callbacks queued after a minute, want %d", len(g.store.ops), others)
			break
		}
		time.Sleep(time.Millisecond)
	}
	updated, err := g.ConfigMapInterface.Update(ctx, cm, opts)
	if err == nil {
		g.stored = failures
		g.updates.Add(1)
	}
	return updated, err
}

// Two replicas under load (32 clients on each) conflict all the time: every
// callback still succeeds and counts once.
func TestConfigMapStoreTwoReplicasEqualOne(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	a := newConfigMapStore(t, env, ns, Options{})
	b := newConfigMapStore(t, env, ns, Options{})
	storetest.RecordConcurrently(t, []state.Store{a, b}, 32, 25, 64)
	fresh := newConfigMapStore(t, env, ns, Options{})
	storetest.WantCounts(t, fresh, 32, 25)

	// A redelivery to the other replica is a duplicate there too.
	r := storetest.Run("job0", "run0-24", api.PhaseFailed, 0)
	rec, err := b.Record(context.Background(), r, storetest.At(100))
	if err != nil || !rec.Outcome.Duplicate {
		t.Fatalf("redelivery: %+v, %v", rec.Outcome, err)
	}
}

func TestConfigMapStoreFullRejectsAndKeepsWhatIsStored(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	s := newConfigMapStore(t, env, ns, Options{MaxData: 1500})
	var stored int
	var fullErr error
	for i := 0; i < 20; i++ {
		_, err := s.Record(ctx, storetest.Run(fmt.Sprintf("job%d", i), "a", api.PhaseFailed, 0), storetest.At(1))
		if err != nil {
			fullErr = err
			break
		}
		stored++
	}
	if !errors.Is(fullErr, state.ErrFull) || !strings.Contains(fullErr.Error(), "limit") {
		t.Fatalf("err = %v, want state.ErrFull", fullErr)
	}
	if stored == 0 {
		t.Fatal("nothing fit")
	}
	// Stored jobs still change.
	if _, err := s.Record(ctx, storetest.Run("job0", "b", api.PhaseFailed, 1), storetest.At(1)); err != nil {
		t.Fatalf("update of a stored job when full: %v", err)
	}
	fresh := newConfigMapStore(t, env, ns, Options{MaxData: 1500})
	all, _ := fresh.List(ctx)
	if len(all) != stored {
		t.Fatalf("%d jobs stored, want %d", len(all), stored)
	}
	if j, _ := fresh.Get(ctx, state.Key{Namespace: "ml", Name: "job0"}); j.ConsecutiveFailures != 2 {
		t.Fatalf("job0: %+v", j)
	}
}

func TestConfigMapStoreRealLimitIsTheAPIServers(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	// Fill the ConfigMap close to 1 MiB by hand, then let the API server, not
	// our own bound, refuse the update that crosses it.
	s := newConfigMapStore(t, env, ns, Options{MaxData: 4 << 20})
	if _, err := s.Record(ctx, storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.At(1)); err != nil {
		t.Fatal(err)
	}
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	cm, _ := cms.Get(ctx, "batchlatch-state", metav1.GetOptions{})
	cm.Data["filler"] = strings.Repeat("x", MaxData-len(cm.Data["ml.nightly"])-40)
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Record(ctx, storetest.Run("hourly", "a", api.PhaseFailed, 0), storetest.At(1))
	if !errors.Is(err, state.ErrFull) {
		t.Fatalf("err = %v, want state.ErrFull from the API server's limit", err)
	}
}

func TestConfigMapStoreLeavesGarbageAlone(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	// Every read goes to the API server (a millisecond is no bound: the edit
	// below can take less), so that the store sees the edit.
	s := newConfigMapStore(t, env, ns, Options{RefreshAfter: time.Nanosecond})
	for _, r := range storetest.ApplyInputs() {
		if _, err := s.Record(ctx, r, storetest.At(100)); err != nil {
			t.Fatal(err)
		}
	}
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	cm, _ := cms.Get(ctx, "batchlatch-state", metav1.GetOptions{})
	cm.Data["ml.nightly"] = "{ edited by hand"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	// Listed from the last readable copy, so that it keeps alerting, and
	// marked unreadable.
	all, err := s.List(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "hourly" || all[0].Unreadable != "" {
		t.Fatalf("List with a garbage key: %v, %v", all, err)
	}
	if j := all[1]; j.Name != "nightly" || !j.Failing() || j.ConsecutiveFailures != 2 || !strings.Contains(j.Unreadable, "ml.nightly") {
		t.Fatalf("the garbage key is listed as %+v, want its last readable copy (2 failures), marked unreadable", j)
	}
	// A restart knows no readable copy: the key is listed by its identity.
	restarted := newConfigMapStore(t, env, ns, Options{})
	all, err = restarted.List(ctx)
	if err != nil || len(all) != 2 || all[1].Key() != (state.Key{Namespace: "ml", Name: "nightly"}) || all[1].Unreadable == "" || all[1].Failing() {
		t.Fatalf("List after a restart: %+v, %v; want the garbage key by its identity, marked unreadable", all, err)
	}
	if _, err := s.Record(ctx, storetest.Run("nightly", "c", api.PhaseFailed, 3), storetest.At(100)); !errors.Is(err, state.ErrCorrupt) {
		t.Fatalf("Record on the garbage key: %v, want state.ErrCorrupt", err)
	}
	if _, err := s.Get(ctx, state.Key{Namespace: "ml", Name: "nightly"}); !errors.Is(err, state.ErrCorrupt) {
		t.Fatalf("Get of the garbage key: %v, want state.ErrCorrupt", err)
	}
	if _, err := s.Record(ctx, storetest.Run("hourly", "h2", api.PhaseFailed, 3), storetest.At(100)); err != nil {
		t.Fatalf("other jobs must keep working: %v", err)
	}
	cm, _ = cms.Get(ctx, "batchlatch-state", metav1.GetOptions{})
	if cm.Data["ml.nightly"] != "{ edited by hand" {
		t.Fatalf("garbage was overwritten: %q", cm.Data["ml.nightly"])
	}
	// Deleting the job is how an operator clears it.
	if err := s.Delete(ctx, state.Key{Namespace: "ml", Name: "nightly"}); err != nil {
		t.Fatalf("delete garbage key: %v", err)
	}
	if all, err := s.List(ctx); err != nil || len(all) != 1 {
		t.Fatalf("List after the delete: %v, %v", all, err)
	}
}

func TestConfigMapStoreAPIServerOutage(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	s := newConfigMapStore(t, env, ns, Options{CallTimeout: time.Second, RefreshAfter: time.Millisecond})
	if _, err := s.Record(ctx, storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.At(1)); err != nil {
		t.Fatal(err)
	}

	env.StopAPIServer(t)
	if _, err := s.Record(ctx, storetest.Run("nightly", "b", api.PhaseFailed, 1), storetest.At(1)); !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("Record while down: %v, want state.ErrUnavailable", err)
	}
	if err := s.Ready(ctx); !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("Ready while down: %v", err)
	}
	// The alarm loop keeps the last known state.
	if all, err := s.List(ctx); err != nil || len(all) != 1 || !all[0].Failing() {
		t.Fatalf("List while down: %v, %v", all, err)
	}
	// A store started during the outage is not ready and keeps trying (its
	// reads fetch again at once: it may have loaded before the Record below).
	late := New(env.Clientset.CoreV1().ConfigMaps(ns), "batchlatch-state", Options{CallTimeout: time.Second, RefreshAfter: time.Millisecond}, storetest.QuietLogger())
	defer late.Close()
	if _, err := late.List(ctx); !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("List before the first load: %v", err)
	}

	env.StartAPIServer(t)
	storetest.WaitReady(t, s, 30*time.Second)
	rec, err := s.Record(ctx, storetest.Run("nightly", "b", api.PhaseFailed, 1), storetest.At(1))
	if err != nil || rec.Job.ConsecutiveFailures != 2 {
		t.Fatalf("after the outage: %+v, %v", rec.Job, err)
	}
	storetest.WaitReady(t, late, 30*time.Second)
	// The late store may have loaded the ConfigMap before the write above
	// and answers from that copy for up to RefreshAfter: it must catch up.
	storetest.WaitList(t, late, 30*time.Second, "the late store to see the second failure", func(all []state.Job) bool {
		return len(all) == 1 && all[0].ConsecutiveFailures == 2
	})
}

// One operation that the ConfigMap cannot hold never fails the others that
// share its update: keys over 253 characters, sent straight to the store
// (the API refuses them earlier), among concurrent valid callbacks.
func TestConfigMapStoreBadKeyFailsAlone(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	s := newConfigMapStore(t, env, ns, Options{})
	const jobs, runs, clients = 16, 10, 32
	badErrs := make(chan error, 40)
	var bad sync.WaitGroup
	for i := range cap(badErrs) {
		bad.Go(func() {
			r := storetest.Run(strings.Repeat("j", 251), fmt.Sprintf("long-%d", i), api.PhaseFailed, 0)
			_, err := s.Record(context.Background(), r, storetest.At(100))
			badErrs <- err
		})
	}
	storetest.RecordConcurrently(t, []state.Store{s}, jobs, runs, clients)
	bad.Wait()
	close(badErrs)
	for err := range badErrs {
		var fe *api.FieldError
		if !errors.As(err, &fe) || fe.Field != "job" {
			t.Errorf("over-long key: %v, want a FieldError naming the job", err)
		}
	}
	fresh := newConfigMapStore(t, env, ns, Options{})
	storetest.WantCounts(t, fresh, jobs, runs)
}

// An update the API server refuses for its size is retried in halves, so
// that every operation that fits is stored and only the others fail.
func TestConfigMapStoreRefusedBatchFailsOnlyWhatDoesNotFit(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	// Our own bound off (4 MiB), so that the API server's limit refuses.
	s := newConfigMapStore(t, env, ns, Options{MaxData: 4 << 20, RefreshAfter: time.Nanosecond})
	if _, err := s.Record(ctx, storetest.Run("seed", "a", api.PhaseFailed, 0), storetest.At(1)); err != nil {
		t.Fatal(err)
	}
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	cm, _ := cms.Get(ctx, "batchlatch-state", metav1.GetOptions{})
	jobSize := len(cm.Data["ml.seed"]) // every job below has this size
	const fit = 5
	cm.Data["filler"] = strings.Repeat("x", MaxData-(1+fit)*jobSize-jobSize/2)
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	s.List(ctx) // adopt the filler

	// Sixteen new jobs at once, so that they share updates.
	errs := make([]error, 16)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range errs {
		wg.Go(func() {
			<-start
			_, errs[i] = s.Record(ctx, storetest.Run(fmt.Sprintf("jb%02d", i), "a", api.PhaseFailed, 0), storetest.At(1))
		})
	}
	close(start)
	wg.Wait()

	acknowledged := 0
	for i, err := range errs {
		switch {
		case err == nil:
			acknowledged++
		case !errors.Is(err, state.ErrFull):
			t.Errorf("jb%02d: %v, want success or state.ErrFull", i, err)
		}
	}
	cm, _ = cms.Get(ctx, "batchlatch-state", metav1.GetOptions{})
	stored := len(cm.Data) - 2 // seed and filler
	if acknowledged != fit || stored != fit {
		t.Fatalf("%d acknowledged and %d stored, want the %d that fit", acknowledged, stored, fit)
	}
}

// Another writer that keeps the ConfigMap busy makes every update conflict
// for a while: the store re-applies on fresh reads until the caller's
// deadline, rather than giving up after a fixed number of tries.
func TestConfigMapStoreRetriesConflictsUntilTheDeadline(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	s := newConfigMapStore(t, env, ns, Options{})
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	busy, stopBusy := context.WithCancel(context.Background())
	defer stopBusy()
	var writers sync.WaitGroup
	var writes atomic.Int64
	for i := range 8 {
		writers.Go(func() {
			// A merge patch carries no resourceVersion: it never conflicts
			// itself, and each one moves the object on.
			for n := 0; busy.Err() == nil; n++ {
				patch := fmt.Sprintf(`{"data":{"other-writer":"%d-%d"}}`, i, n)
				if _, err := cms.Patch(busy, "batchlatch-state", types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err == nil {
					writes.Add(1)
				}
			}
		})
	}
	// Wait until the other writer is busy.
	for deadline := time.Now().Add(time.Minute); writes.Load() < 8; {
		if time.Now().After(deadline) {
			t.Fatalf("the other writer made %d writes in a minute", writes.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}

	// A caller whose deadline passes meanwhile is answered, as unavailable,
	// once it passes: not after the other writer stops (it runs until the
	// end of this test) nor after the store's own 30 s per operation.
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	began := time.Now()
	if _, err := s.Record(short, storetest.Run("hourly", "a", api.PhaseFailed, 0), storetest.At(1)); err != nil && !errors.Is(err, state.ErrUnavailable) {
		t.Errorf("Record past its deadline: %v, want state.ErrUnavailable", err)
	}
	if took := time.Since(began); took > 10*time.Second {
		t.Errorf("Record with a 200ms deadline took %s", took)
	}

	// A generous deadline: the store keeps re-applying until the other
	// writer stops, well within it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	recorded := make(chan error, 1)
	go func() {
		_, err := s.Record(ctx, storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.At(1))
		recorded <- err
	}()
	var err error
	select {
	case err = <-recorded:
		t.Logf("recorded while the other writer ran (%d writes so far)", writes.Load())
	case <-time.After(2 * time.Second):
		t.Logf("the other writer stops after %d writes", writes.Load())
		stopBusy()
		err = <-recorded
	}
	stopBusy()
	writers.Wait()
	if err != nil {
		t.Fatalf("Record: %v", err)
	}
	if j, err := s.Get(context.Background(), state.Key{Namespace: "ml", Name: "nightly"}); err != nil || j.ConsecutiveFailures != 1 {
		t.Fatalf("stored: %+v, %v", j, err)
	}
}

func TestConfigMapStoreSilences(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	storetest.Silences(t, func() state.Store { return newConfigMapStore(t, env, ns, Options{}) })
}
