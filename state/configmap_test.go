package state

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/batchlatch/batchlatch/internal/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newConfigMapStore opens a store in a fresh namespace and waits until it is ready.
func newConfigMapStore(t *testing.T, env *kubetest.Env, ns string, opts ConfigMapOptions) *ConfigMapStore {
	t.Helper()
	s := NewConfigMapStore(env.Clientset.CoreV1().ConfigMaps(ns), "batchlatch-state", opts, quietLogger())
	t.Cleanup(func() { s.Close() })
	waitReady(t, s, 30*time.Second)
	return s
}

func waitReady(t *testing.T, s Store, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var err error
	for time.Now().Before(deadline) {
		if err = s.Ready(context.Background()); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("store not ready within %s: %v", within, err)
}

func TestConfigMapStoreRestartFindsEveryJob(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	first := newConfigMapStore(t, env, ns, ConfigMapOptions{})
	for _, r := range applyInputs() {
		if _, err := first.Record(ctx, r, at(100)); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := first.List(ctx)
	first.Close()

	second := newConfigMapStore(t, env, ns, ConfigMapOptions{})
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

// recordConcurrently sends runsPerJob failures of each of jobs CronWorkflows,
// spread over stores, from clients goroutines; every run finishes at the same
// time so that none is stale and each must count exactly once.
func recordConcurrently(t *testing.T, stores []Store, jobs, runsPerJob, clients int) {
	t.Helper()
	type call struct{ job, run int }
	calls := make(chan call)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		store := stores[c%len(stores)]
		wg.Go(func() {
			for cl := range calls {
				r := run(fmt.Sprintf("job%d", cl.job), fmt.Sprintf("run%d-%d", cl.job, cl.run), wfv1.WorkflowFailed, 0)
				if _, err := store.Record(context.Background(), r, at(100)); err != nil {
					t.Errorf("record: %v", err)
				}
			}
		})
	}
	for r := 0; r < runsPerJob; r++ {
		for j := 0; j < jobs; j++ {
			calls <- call{job: j, run: r}
		}
	}
	close(calls)
	wg.Wait()
}

func wantCounts(t *testing.T, s Store, jobs, runsPerJob int) {
	t.Helper()
	all, err := s.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != jobs {
		t.Fatalf("%d jobs, want %d", len(all), jobs)
	}
	for _, j := range all {
		if j.ConsecutiveFailures != runsPerJob {
			t.Errorf("%s: %d consecutive failures, want %d", j.Key(), j.ConsecutiveFailures, runsPerJob)
		}
	}
}

func TestConfigMapStoreGroupCommitLosesNothing(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	s := newConfigMapStore(t, env, ns, ConfigMapOptions{})
	before := resourceVersion(t, env, ns)
	recordConcurrently(t, []Store{s}, 8, 40, 32)
	fresh := newConfigMapStore(t, env, ns, ConfigMapOptions{})
	wantCounts(t, fresh, 8, 40)
	// The etcd revision counts every write of the cluster (the API server's
	// own leases too): far fewer than one per callback means they were grouped.
	if writes := resourceVersion(t, env, ns) - before; writes > 8*40/4 {
		t.Errorf("%d writes for %d callbacks: not grouped", writes, 8*40)
	}
}

func resourceVersion(t *testing.T, env *kubetest.Env, ns string) uint64 {
	t.Helper()
	cm, err := env.Clientset.CoreV1().ConfigMaps(ns).Get(context.Background(), "batchlatch-state", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rv, err := strconv.ParseUint(cm.ResourceVersion, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return rv
}

func TestConfigMapStoreTwoReplicasEqualOne(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	a := newConfigMapStore(t, env, ns, ConfigMapOptions{})
	b := newConfigMapStore(t, env, ns, ConfigMapOptions{})
	recordConcurrently(t, []Store{a, b}, 6, 30, 16)
	fresh := newConfigMapStore(t, env, ns, ConfigMapOptions{})
	wantCounts(t, fresh, 6, 30)

	// A redelivery to the other replica is a duplicate there too.
	r := run("job0", "run0-29", wfv1.WorkflowFailed, 0)
	rec, err := b.Record(context.Background(), r, at(100))
	if err != nil || !rec.Outcome.Duplicate {
		t.Fatalf("redelivery: %+v, %v", rec.Outcome, err)
	}
}

func TestConfigMapStoreFullRejectsAndKeepsWhatIsStored(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	s := newConfigMapStore(t, env, ns, ConfigMapOptions{MaxData: 1500})
	var stored int
	var fullErr error
	for i := 0; i < 20; i++ {
		_, err := s.Record(ctx, run(fmt.Sprintf("job%d", i), "a", wfv1.WorkflowFailed, 0), at(1))
		if err != nil {
			fullErr = err
			break
		}
		stored++
	}
	if !errors.Is(fullErr, ErrFull) || !strings.Contains(fullErr.Error(), "limit") {
		t.Fatalf("err = %v, want ErrFull", fullErr)
	}
	if stored == 0 {
		t.Fatal("nothing fit")
	}
	// Stored jobs still change.
	if _, err := s.Record(ctx, run("job0", "b", wfv1.WorkflowFailed, 1), at(1)); err != nil {
		t.Fatalf("update of a stored job when full: %v", err)
	}
	fresh := newConfigMapStore(t, env, ns, ConfigMapOptions{MaxData: 1500})
	all, _ := fresh.List(ctx)
	if len(all) != stored {
		t.Fatalf("%d jobs stored, want %d", len(all), stored)
	}
	if j, _ := fresh.Get(ctx, Key{Namespace: "ml", Name: "job0"}); j.ConsecutiveFailures != 2 {
		t.Fatalf("job0: %+v", j)
	}
}

func TestConfigMapStoreRealLimitIsTheAPIServers(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	// Fill the ConfigMap close to 1 MiB by hand, then let the API server, not
	// our own bound, refuse the update that crosses it.
	s := newConfigMapStore(t, env, ns, ConfigMapOptions{MaxData: 4 << 20})
	if _, err := s.Record(ctx, run("nightly", "a", wfv1.WorkflowFailed, 0), at(1)); err != nil {
		t.Fatal(err)
	}
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	cm, _ := cms.Get(ctx, "batchlatch-state", metav1.GetOptions{})
	cm.Data["filler"] = strings.Repeat("x", MaxConfigMapData-len(cm.Data["ml.nightly"])-40)
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := s.Record(ctx, run("hourly", "a", wfv1.WorkflowFailed, 0), at(1))
	if !errors.Is(err, ErrFull) {
		t.Fatalf("err = %v, want ErrFull from the API server's limit", err)
	}
}

func TestConfigMapStoreLeavesGarbageAlone(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	s := newConfigMapStore(t, env, ns, ConfigMapOptions{RefreshAfter: time.Millisecond})
	for _, r := range applyInputs() {
		if _, err := s.Record(ctx, r, at(100)); err != nil {
			t.Fatal(err)
		}
	}
	cms := env.Clientset.CoreV1().ConfigMaps(ns)
	cm, _ := cms.Get(ctx, "batchlatch-state", metav1.GetOptions{})
	cm.Data["ml.nightly"] = "{ edited by hand"
	if _, err := cms.Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	all, err := s.List(ctx)
	if err != nil || len(all) != 1 || all[0].Name != "hourly" {
		t.Fatalf("List with a garbage key: %v, %v", all, err)
	}
	if _, err := s.Record(ctx, run("nightly", "c", wfv1.WorkflowFailed, 3), at(100)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Record on the garbage key: %v, want ErrCorrupt", err)
	}
	if _, err := s.Get(ctx, Key{Namespace: "ml", Name: "nightly"}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Get of the garbage key: %v, want ErrCorrupt", err)
	}
	if _, err := s.Record(ctx, run("hourly", "h2", wfv1.WorkflowFailed, 3), at(100)); err != nil {
		t.Fatalf("other jobs must keep working: %v", err)
	}
	cm, _ = cms.Get(ctx, "batchlatch-state", metav1.GetOptions{})
	if cm.Data["ml.nightly"] != "{ edited by hand" {
		t.Fatalf("garbage was overwritten: %q", cm.Data["ml.nightly"])
	}
	// Deleting the job is how an operator clears it.
	if err := s.Delete(ctx, Key{Namespace: "ml", Name: "nightly"}); err != nil {
		t.Fatalf("delete garbage key: %v", err)
	}
}

func TestConfigMapStoreAPIServerOutage(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := context.Background()
	s := newConfigMapStore(t, env, ns, ConfigMapOptions{CallTimeout: time.Second, RefreshAfter: time.Millisecond})
	if _, err := s.Record(ctx, run("nightly", "a", wfv1.WorkflowFailed, 0), at(1)); err != nil {
		t.Fatal(err)
	}

	env.StopAPIServer(t)
	if _, err := s.Record(ctx, run("nightly", "b", wfv1.WorkflowFailed, 1), at(1)); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Record while down: %v, want ErrUnavailable", err)
	}
	if err := s.Ready(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ready while down: %v", err)
	}
	// The alarm loop keeps the last known state.
	if all, err := s.List(ctx); err != nil || len(all) != 1 || !all[0].Failing() {
		t.Fatalf("List while down: %v, %v", all, err)
	}
	// A store started during the outage is not ready and keeps trying.
	late := NewConfigMapStore(env.Clientset.CoreV1().ConfigMaps(ns), "batchlatch-state", ConfigMapOptions{CallTimeout: time.Second}, quietLogger())
	defer late.Close()
	if _, err := late.List(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("List before the first load: %v", err)
	}

	env.StartAPIServer(t)
	waitReady(t, s, 30*time.Second)
	rec, err := s.Record(ctx, run("nightly", "b", wfv1.WorkflowFailed, 1), at(1))
	if err != nil || rec.Job.ConsecutiveFailures != 2 {
		t.Fatalf("after the outage: %+v, %v", rec.Job, err)
	}
	waitReady(t, late, 30*time.Second)
	if all, _ := late.List(ctx); len(all) != 1 || all[0].ConsecutiveFailures != 2 {
		t.Fatalf("late store: %v", all)
	}
}
