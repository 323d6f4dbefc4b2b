package argowatch

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/pkg/client/clientset/versioned"
	"github.com/argoproj/argo-workflows/v3/workflow/common"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/metadata"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/kubetest"
	"github.com/batchlatch/batchlatch/internal/procstat"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/configmapstore"
	"github.com/batchlatch/batchlatch/state/filestore"
)

// BenchmarkWatcherAtScale seeds the test API server with 2,000 CronWorkflows
// and 20,000 completed Workflows (20 nodes each), and 5,000 pods, then runs
// the watcher and reports its initial sync, its memory, and what it reads
// from the API server per hour in steady state, next to what the cron-script
// way (list every pod of the cluster once a minute) reads.
//
//	go test ./watch/argo/ -run '^$' -bench WatcherAtScale -benchtime 1x -timeout 30m
//
// BATCHLATCH_BENCH_STEADY (a Go duration, default 2m) is the steady-state
// window the hourly figures are extrapolated from; BATCHLATCH_BENCH_SCALE
// (default 1) multiplies the object counts down for a quick try (0.1);
// BATCHLATCH_BENCH_HEAPPROFILE names a file for a heap profile taken after
// sync.
func BenchmarkWatcherAtScale(b *testing.B) {
	scale := 1.0
	if v := os.Getenv("BATCHLATCH_BENCH_SCALE"); v != "" {
		scale, _ = strconv.ParseFloat(v, 64)
	}
	steady := 2 * time.Minute
	if v := os.Getenv("BATCHLATCH_BENCH_STEADY"); v != "" {
		steady, _ = time.ParseDuration(v)
	}
	crons, runsPerCron, pods := int(2000*scale), 10, int(5000*scale)
	env := kubetest.Get(b)
	env.InstallArgoCRDs(b)
	ctx := context.Background()
	admin, err := versioned.NewForConfig(env.RESTConfig())
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()

	// Seed: the CronWorkflows and their completed runs spread over 20
	// namespaces, stored with their status (no status subresource).
	namespaces := make([]string, 20)
	for i := range namespaces {
		namespaces[i] = env.NewNamespace(b)
	}
	var (
		resultsMu sync.Mutex
		results   []api.Result
	)
	seedStart := time.Now()
	work := make(chan int)
	var seeders sync.WaitGroup
	for range 32 {
		seeders.Go(func() {
			for i := range work {
				ns := namespaces[i%len(namespaces)]
				name := fmt.Sprintf("job-%05d", i)
				cwf, err := admin.ArgoprojV1alpha1().CronWorkflows(ns).Create(ctx, &wfv1.CronWorkflow{
					ObjectMeta: metav1.ObjectMeta{Name: name},
					Spec: wfv1.CronWorkflowSpec{Schedules: []string{"0 * * * *"}, WorkflowSpec: wfv1.WorkflowSpec{Entrypoint: "main",
						Templates: []wfv1.Template{{Name: "main", Container: &corev1.Container{Image: "registry.example.com/etl:v1", Command: []string{"/bin/run", "--all"}}}}}},
				}, metav1.CreateOptions{})
				if err != nil {
					b.Error(err)
					continue
				}
				for r := range runsPerCron {
					tick := now.Truncate(time.Hour).Add(-time.Duration(runsPerCron-r) * time.Hour)
					wf := realisticRun(cwf, tick)
					created, err := admin.ArgoprojV1alpha1().Workflows(ns).Create(ctx, wf, metav1.CreateOptions{})
					if err != nil {
						b.Error(err)
						continue
					}
					resultsMu.Lock()
					results = append(results, api.Result{Namespace: ns, CronWorkflow: name, WorkflowName: created.Name, UID: string(created.UID),
						Phase: api.Phase(created.Status.Phase), CreatedAt: tick.UTC().Format(time.RFC3339), DurationSeconds: 120})
					resultsMu.Unlock()
				}
			}
		})
	}
	for i := range crons {
		work <- i
	}
	close(work)
	seeders.Wait()
	// The callbacks came: the store knows every run, as in a cluster where
	// the exit handler works. The API server stamps each object with when
	// it was last written (now, not its tick's hour): the latest results
	// end after the seeding, as callbacks end after the Workflows they
	// report were last written.
	seeded := time.Now().Truncate(time.Second).Add(time.Second)
	for i := range results {
		if created, err := api.ParseTime(results[i].CreatedAt); err == nil && created.After(now.Add(-2*time.Hour)) {
			results[i].DurationSeconds = seeded.Sub(created).Seconds()
		}
	}
	store := seededStore(b, results, seeded)
	b.Logf("seeded %d CronWorkflows and %d Workflows in %s", crons, crons*runsPerCron, time.Since(seedStart).Round(time.Second))
	podBytes := seedPods(b, env, pods)

	// The watcher, on a client that counts what it reads.
	var traffic kubetest.Traffic
	requests, bytesRead := &traffic.Requests, &traffic.Bytes
	cfg := configmapstore.TuneClient(traffic.Count(env.RESTConfig())) // as the service's
	argo, err := versioned.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	meta, err := metadata.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	runtime.GC()
	debug.FreeOSMemory()
	rssBefore := procstat.SelfRSS()
	w := New(argo, meta, store, Config{MissedGrace: 10 * time.Minute, ReconcileInterval: 5 * time.Minute, ForgetAfter: 10 * time.Minute},
		Hooks{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.ResetTimer()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	syncStart := time.Now()
	go w.Run(runCtx)
	for !w.synced() {
		time.Sleep(10 * time.Millisecond)
	}
	syncTime := time.Since(syncStart)
	<-w.FirstPass()
	firstPass := time.Since(syncStart)
	initialRequests, initialBytes := requests.Load(), bytesRead.Load()
	runtime.GC()
	rssSynced := procstat.SelfRSS()
	resident, _ := procstat.Memory(os.Getpid())
	var heap runtime.MemStats
	runtime.ReadMemStats(&heap)
	writeHeapProfile(b)

	// Steady state: every CronWorkflow runs hourly, so the window sees its
	// share of runs, each created Running, updated, and completed as the
	// controller does, with its callback recorded.
	requests.Store(0)
	bytesRead.Store(0)
	churn := int(float64(crons) * float64(steady) / float64(time.Hour))
	churnDone := make(chan struct{})
	go func() {
		defer close(churnDone)
		every := steady / time.Duration(max(churn, 1))
		for i := range churn {
			time.Sleep(every)
			ns := namespaces[i%len(namespaces)]
			cwf, err := admin.ArgoprojV1alpha1().CronWorkflows(ns).Get(ctx, fmt.Sprintf("job-%05d", i), metav1.GetOptions{})
			if err != nil {
				b.Error(err)
				return
			}
			tick := now.Truncate(time.Hour).Add(time.Duration(i+1) * time.Second)
			done := realisticRun(cwf, tick)
			running := done.DeepCopy()
			running.Status = wfv1.WorkflowStatus{Phase: wfv1.WorkflowRunning, StartedAt: done.Status.StartedAt}
			running.Labels[common.LabelKeyPhase], running.Labels[common.LabelKeyCompleted] = string(wfv1.WorkflowRunning), "false"
			created, err := admin.ArgoprojV1alpha1().Workflows(ns).Create(ctx, running, metav1.CreateOptions{})
			if err != nil {
				b.Error(err)
				return
			}
			for _, step := range []int{10, 20} {
				created.Status.Nodes = wfv1.Nodes{}
				for id, node := range done.Status.Nodes {
					if len(created.Status.Nodes) < step {
						created.Status.Nodes[id] = node
					}
				}
				if step == 20 {
					// The exit handler's callback comes before the
					// controller marks the run completed: it is a node
					// of the run.
					store.Record(ctx, api.Result{Namespace: ns, CronWorkflow: cwf.Name, WorkflowName: created.Name, UID: string(created.UID),
						Phase: api.Phase(done.Status.Phase), CreatedAt: tick.UTC().Format(time.RFC3339), DurationSeconds: 120}, time.Now())
					created.Status = done.Status
					created.Labels = done.Labels
				}
				if created, err = admin.ArgoprojV1alpha1().Workflows(ns).Update(ctx, created, metav1.UpdateOptions{}); err != nil {
					b.Error(err)
					return
				}
			}
		}
	}()
	time.Sleep(steady)
	<-churnDone
	perHour := float64(time.Hour) / float64(steady)
	steadyBytes := float64(bytesRead.Load()) * perHour
	steadyRequests := float64(requests.Load()) * perHour
	scriptBytes := float64(podBytes) * 60
	b.StopTimer()

	b.ReportMetric(syncTime.Seconds(), "sync-s")
	b.ReportMetric(firstPass.Seconds(), "first-pass-s")
	b.ReportMetric(float64(initialRequests), "sync-requests")
	b.ReportMetric(float64(initialBytes)/(1<<20), "sync-MiB")
	b.ReportMetric(float64(rssSynced)/(1<<20), "rss-MiB")
	b.ReportMetric(float64(rssSynced-rssBefore)/(1<<20), "rss-growth-MiB")
	b.ReportMetric(float64(resident.Anon)/(1<<20), "rss-anon-MiB")
	b.ReportMetric(float64(resident.File)/(1<<20), "rss-file-MiB")
	b.ReportMetric(float64(heap.HeapInuse)/(1<<20), "heap-inuse-MiB")
	b.ReportMetric(float64(churn), "runs-in-window")
	b.ReportMetric(steadyRequests, "requests/h")
	b.ReportMetric(steadyBytes/(1<<20), "MiB/h")
	b.ReportMetric(scriptBytes/(1<<20), "script-MiB/h")
	if steadyBytes > 0 {
		b.ReportMetric(scriptBytes/steadyBytes, "x-fewer-bytes")
	}
}

// writeHeapProfile writes a heap profile of the synced watcher to the file
// BATCHLATCH_BENCH_HEAPPROFILE names, if any: go tool pprof -top FILE.
func writeHeapProfile(b *testing.B) {
	path := os.Getenv("BATCHLATCH_BENCH_HEAPPROFILE")
	if path == "" {
		return
	}
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		b.Fatal(err)
	}
}

// synced reports whether the informers have listed everything.
func (w *Watcher) synced() bool {
	for _, s := range w.sync {
		if !s() {
			return false
		}
	}
	return true
}

// realisticRun is a completed run of cwf's tick as Argo leaves it: 20
// nodes, one failed in every third run.
func realisticRun(cwf *wfv1.CronWorkflow, tick time.Time) *wfv1.Workflow {
	name := runName(cwf.Name, tick)
	phase := wfv1.WorkflowSucceeded
	if tick.Unix()/3600%3 == 0 {
		phase = wfv1.WorkflowFailed
	}
	nodes := wfv1.Nodes{}
	for n := range 20 {
		id := fmt.Sprintf("%s-%d", name, 1000000000+n*7919)
		nodePhase := wfv1.NodeSucceeded
		msg := ""
		if phase == wfv1.WorkflowFailed && n == 19 {
			nodePhase, msg = wfv1.NodeFailed, "Error (exit code 1): step "+strconv.Itoa(n)+" failed: connection reset by peer while loading partition 2026-11-24"
		}
		nodes[id] = wfv1.NodeStatus{
			ID: id, Name: fmt.Sprintf("%s[%d].step-%d", name, n/4, n), DisplayName: fmt.Sprintf("step-%d", n), Type: wfv1.NodeTypePod,
			TemplateName: "step", Phase: nodePhase, Message: msg, BoundaryID: name, HostNodeName: "gke-prod-pool-1-abcdef12-" + strconv.Itoa(n%7),
			StartedAt: metav1.NewTime(tick.Add(time.Duration(n) * 5 * time.Second)), FinishedAt: metav1.NewTime(tick.Add(time.Duration(n+1) * 5 * time.Second)),
			Progress: "1/1", ResourcesDuration: wfv1.ResourcesDuration{corev1.ResourceCPU: 3, corev1.ResourceMemory: 12},
			Outputs: &wfv1.Outputs{ExitCode: ptr("0"), Artifacts: wfv1.Artifacts{{Name: "main-logs", ArtifactLocation: wfv1.ArtifactLocation{
				S3: &wfv1.S3Artifact{Key: name + "/" + id + "/main.log"}}}}},
			Children: []string{fmt.Sprintf("%s-%d", name, 1000000000+(n+1)*7919)},
		}
	}
	return &wfv1.Workflow{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{common.LabelKeyCronWorkflow: cwf.Name, common.LabelKeyPhase: string(phase), common.LabelKeyCompleted: "true",
				"workflows.argoproj.io/workflow-archiving-status": "Archived"},
			Annotations:     map[string]string{common.AnnotationKeyCronWfScheduledTime: tick.UTC().Format(time.RFC3339)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "CronWorkflow", Name: cwf.Name, UID: cwf.UID, Controller: ptr(true)}},
		},
		Spec: cwf.Spec.WorkflowSpec,
		Status: wfv1.WorkflowStatus{Phase: phase, StartedAt: metav1.NewTime(tick), FinishedAt: metav1.NewTime(tick.Add(2 * time.Minute)),
			Progress: "20/20", Nodes: nodes, ResourcesDuration: wfv1.ResourcesDuration{corev1.ResourceCPU: 60, corev1.ResourceMemory: 240}},
	}
}

func ptr[T any](v T) *T { return &v }

// seedPods stores n pods as a batch cluster holds them, and returns the bytes
// one list of every pod reads (the cron script's minute).
func seedPods(b *testing.B, env *kubetest.Env, n int) int64 {
	b.Helper()
	ctx := context.Background()
	ns := env.NewNamespace(b)
	// No controllers: the ServiceAccount admission needs the account.
	if _, err := env.Clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}, metav1.CreateOptions{}); err != nil {
		b.Fatal(err)
	}
	work := make(chan int)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for i := range work {
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("etl-%05d-1795485600-step-%d", i/5, i%5), Labels: map[string]string{
						"workflows.argoproj.io/workflow": fmt.Sprintf("etl-%05d-1795485600", i/5), "workflows.argoproj.io/completed": "true", "app": "etl"},
						Annotations: map[string]string{"workflows.argoproj.io/node-name": fmt.Sprintf("etl-%05d-1795485600[0].step-%d", i/5, i%5)}},
					Spec: corev1.PodSpec{
						AutomountServiceAccountToken: ptr(false), RestartPolicy: corev1.RestartPolicyNever,
						Containers: []corev1.Container{
							{Name: "main", Image: "registry.example.com/etl:v1", Command: []string{"/bin/run", "--partition", strconv.Itoa(i)},
								Env:       []corev1.EnvVar{{Name: "ARGO_TEMPLATE", Value: strings.Repeat("x", 600)}, {Name: "ARGO_NODE_ID", Value: "etl-" + strconv.Itoa(i)}},
								Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("1Gi")}}},
							{Name: "wait", Image: "quay.io/argoproj/argoexec:v3.7.18", Command: []string{"argoexec", "wait", "--loglevel", "info"}},
						},
						InitContainers: []corev1.Container{{Name: "init", Image: "quay.io/argoproj/argoexec:v3.7.18", Command: []string{"argoexec", "init"}}},
					},
				}
				if _, err := env.Clientset.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
					b.Error(err)
				}
			}
		})
	}
	for i := range n {
		work <- i
	}
	close(work)
	wg.Wait()
	var traffic kubetest.Traffic
	bytes := &traffic.Bytes
	cfg := traffic.Count(env.RESTConfig())
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	list, err := cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("the script's list: %d pods, %d bytes", len(list.Items), bytes.Load())
	return bytes.Load()
}

// seededStore is a file store holding results, written at once.
func seededStore(b *testing.B, results []api.Result, now time.Time) state.Store {
	b.Helper()
	sort.Slice(results, func(i, k int) bool { return results[i].CreatedAt < results[k].CreatedAt })
	jobs := map[string]state.Job{}
	for _, r := range results {
		key := state.KeyOf(r).String()
		old, ok := jobs[key]
		jobs[key], _ = state.Apply(old, ok, r, now)
	}
	data, err := json.Marshal(map[string]any{"format": "batchlatch-state", "version": 1, "jobs": jobs})
	if err != nil {
		b.Fatal(err)
	}
	path := b.TempDir() + "/state.json"
	if err := os.WriteFile(path, data, 0o644); err != nil {
		b.Fatal(err)
	}
	store, err := filestore.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	return store
}
