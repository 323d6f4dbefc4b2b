package cronjobwatch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	batchv1client "k8s.io/client-go/kubernetes/typed/batch/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/batchlatch/batchlatch/internal/kubetest"
	"github.com/batchlatch/batchlatch/internal/procstat"
	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/configmapstore"
	"github.com/batchlatch/batchlatch/state/filestore"
)

// BenchmarkCronJobWatcherAtScale seeds the test API server with 2,000
// CronJobs and 20,000 finished Jobs (10 each, full pod templates, most
// Complete, some Failed, as the Job controller leaves them), then starts the
// watcher on an empty file store and reports its initial sync, what it read,
// its memory and its store writes, and what it reads per hour in steady
// state while Jobs keep finishing. In the same run it measures what
// kube-state-metrics' way reads and keeps: a list and watch of every Job
// and CronJob, full objects, no transform (plain client-go informers, in
// protobuf as kube-state-metrics asks for them and as client-go reads
// built-in types by default, the watcher included; one JSON LIST of each
// for what a JSON client reads). The watcher's transform shrinks what it
// keeps, not what it reads: the API server sends full objects either way.
// It also restarts the watcher on the store its first start filled and
// counts the writes of that restart.
//
//	go test ./watch/cronjob/ -run '^$' -bench CronJobWatcherAtScale -benchtime 1x -timeout 40m
//
// BATCHLATCH_BENCH_STEADY (a Go duration, default 30s) is the steady-state
// window the hourly figures are extrapolated from; BATCHLATCH_BENCH_SCALE
// (default 1) multiplies the object counts down for a quick try (0.1).
func BenchmarkCronJobWatcherAtScale(b *testing.B) {
	scale := 1.0
	if v := os.Getenv("BATCHLATCH_BENCH_SCALE"); v != "" {
		scale, _ = strconv.ParseFloat(v, 64)
	}
	steady := 30 * time.Second
	if v := os.Getenv("BATCHLATCH_BENCH_STEADY"); v != "" {
		steady, _ = time.ParseDuration(v)
	}
	crons, runsPerCron := max(int(2000*scale), 1), 10
	env := kubetest.Get(b)
	ctx := context.Background()
	admin := env.Clientset
	now := time.Now()

	// Seed: the CronJobs and their finished Jobs over 20 namespaces.
	namespaces := make([]string, 20)
	for i := range namespaces {
		namespaces[i] = env.NewNamespace(b)
	}
	var (
		latestFinishMu sync.Mutex
		latestFinish   time.Time
		failedJobs     atomic.Int64
	)
	seedStart := time.Now()
	work := make(chan int)
	var seeders sync.WaitGroup
	for range 32 {
		seeders.Go(func() {
			for i := range work {
				ns := namespaces[i%len(namespaces)]
				cj, err := admin.BatchV1().CronJobs(ns).Create(ctx, realisticCronJob(i), metav1.CreateOptions{})
				if err != nil {
					b.Error(err)
					continue
				}
				// Finished one after the other, each after it was created
				// (the API server sets creationTimestamp: it cannot be
				// set in the past).
				var finished time.Time
				for r := range runsPerCron {
					tick := now.Truncate(time.Hour).Add(-time.Duration(runsPerCron-r) * time.Hour)
					job, err := admin.BatchV1().Jobs(ns).Create(ctx, realisticJob(cj, tick), metav1.CreateOptions{})
					if err != nil {
						b.Error(err)
						continue
					}
					finished = latest(job.CreationTimestamp.Time, finished).Add(time.Second)
					fail := seededFails(i, r, runsPerCron)
					if fail {
						failedJobs.Add(1)
					}
					job.Status = finishedStatus(job.CreationTimestamp.Time, finished, fail)
					if _, err := admin.BatchV1().Jobs(ns).UpdateStatus(ctx, job, metav1.UpdateOptions{}); err != nil {
						b.Error(err)
					}
				}
				latestFinishMu.Lock()
				latestFinish = latest(latestFinish, finished)
				latestFinishMu.Unlock()
			}
		})
	}
	for i := range crons {
		work <- i
	}
	close(work)
	seeders.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.Logf("seeded %d CronJobs and %d Jobs (%d failed) in %s", crons, crons*runsPerCron, failedJobs.Load(), time.Since(seedStart).Round(time.Second))
	time.Sleep(time.Until(latestFinish.Add(time.Second))) // every Job finished in the past

	// The watcher, on a client that counts what it reads (as the service
	// builds it: client-go's default encoding, protobuf for built-in types,
	// and configmapstore.TuneClient's limits), and an empty store.
	var traffic kubetest.Traffic
	requests, bytesRead := &traffic.Requests, &traffic.Bytes
	kube, err := batchv1client.NewForConfig(countingConfig(env.RESTConfig(), "", &traffic))
	if err != nil {
		b.Fatal(err)
	}
	store := &storetest.CountingStore{Store: openFileStore(b)}
	rssBefore, heapBefore := memory()
	w := New(kube, store, Config{MissedGrace: 10 * time.Minute, ForgetAfter: 10 * time.Minute}, Hooks{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	b.ResetTimer()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	watcherDone := make(chan struct{})
	syncStart := time.Now()
	go func() { w.Run(runCtx); close(watcherDone) }()
	for !w.synced() {
		time.Sleep(10 * time.Millisecond)
	}
	syncTime := time.Since(syncStart)
	<-w.FirstPass()
	firstPass := time.Since(syncStart)
	syncRequests, syncBytes := requests.Load(), bytesRead.Load()
	writes, records := store.Writes.Load(), store.Records.Load()
	rssSynced, heapSynced := memory()
	jobs, err := store.List(ctx)
	if err != nil {
		b.Fatal(err)
	}
	failing := len(state.Failing(jobs))

	// kube-state-metrics' way, next to it: informers on every Job and
	// CronJob, full objects.
	var fullTraffic kubetest.Traffic
	fullRequests, fullBytes := &fullTraffic.Requests, &fullTraffic.Bytes
	fullKube, err := kubernetes.NewForConfig(countingConfig(env.RESTConfig(), "application/vnd.kubernetes.protobuf", &fullTraffic))
	if err != nil {
		b.Fatal(err)
	}
	fullStart := time.Now()
	factory := informers.NewSharedInformerFactory(fullKube, 0)
	fullJobs := factory.Batch().V1().Jobs().Informer()
	fullCrons := factory.Batch().V1().CronJobs().Informer()
	fullCtx, fullCancel := context.WithCancel(ctx)
	defer fullCancel()
	factory.Start(fullCtx.Done())
	if !cache.WaitForCacheSync(fullCtx.Done(), fullJobs.HasSynced, fullCrons.HasSynced) {
		b.Fatal("full informers did not sync")
	}
	fullSync := time.Since(fullStart)
	fullSyncRequests, fullSyncBytes := fullRequests.Load(), fullBytes.Load()
	rssFull, heapFull := memory()
	if n := len(fullJobs.GetStore().List()); n < crons*runsPerCron {
		b.Fatalf("the full informer holds %d Jobs", n)
	}
	// The same objects in JSON, the watcher's encoding: one LIST of each.
	var jsonTraffic kubetest.Traffic
	jsonBytes := &jsonTraffic.Bytes
	jsonKube, err := kubernetes.NewForConfig(countingConfig(env.RESTConfig(), "application/json", &jsonTraffic))
	if err != nil {
		b.Fatal(err)
	}
	if _, err := jsonKube.BatchV1().Jobs(metav1.NamespaceAll).List(ctx, metav1.ListOptions{}); err != nil {
		b.Fatal(err)
	}
	if _, err := jsonKube.BatchV1().CronJobs(metav1.NamespaceAll).List(ctx, metav1.ListOptions{}); err != nil {
		b.Fatal(err)
	}

	// Steady state: every CronJob runs hourly, so the window sees its share
	// of Jobs, each created, started and finished through the status
	// subresource as the Job controller does; both watch them.
	requests.Store(0)
	bytesRead.Store(0)
	fullRequests.Store(0)
	fullBytes.Store(0)
	store.Writes.Store(0)
	churn := max(int(float64(crons)*float64(steady)/float64(time.Hour)), 1)
	churnDone := make(chan struct{})
	go func() {
		defer close(churnDone)
		every := steady / time.Duration(churn)
		for i := range churn {
			time.Sleep(every)
			ns := namespaces[i%len(namespaces)]
			cj, err := admin.BatchV1().CronJobs(ns).Get(ctx, realisticCronJob(i).Name, metav1.GetOptions{})
			if err != nil {
				b.Error(err)
				return
			}
			tick := time.Now().Truncate(time.Minute)
			job, err := admin.BatchV1().Jobs(ns).Create(ctx, realisticJob(cj, tick), metav1.CreateOptions{})
			if err != nil {
				b.Error(err)
				return
			}
			started := job.CreationTimestamp
			job.Status = batchv1.JobStatus{StartTime: &started, Active: 1, Ready: ptr[int32](0), Terminating: ptr[int32](0)}
			if job, err = admin.BatchV1().Jobs(ns).UpdateStatus(ctx, job, metav1.UpdateOptions{}); err != nil {
				b.Error(err)
				return
			}
			job.Status.Ready = ptr[int32](1)
			if job, err = admin.BatchV1().Jobs(ns).UpdateStatus(ctx, job, metav1.UpdateOptions{}); err != nil {
				b.Error(err)
				return
			}
			job.Status = finishedStatus(started.Time, latest(time.Now(), started.Add(time.Second)).Truncate(time.Second), i%5 == 4)
			if _, err = admin.BatchV1().Jobs(ns).UpdateStatus(ctx, job, metav1.UpdateOptions{}); err != nil {
				b.Error(err)
				return
			}
		}
	}()
	time.Sleep(steady)
	<-churnDone
	time.Sleep(time.Second) // the last Job's result reaches the store
	perHour := float64(time.Hour) / float64(steady)
	steadyBytes := float64(bytesRead.Load()) * perHour
	steadyRequests := float64(requests.Load()) * perHour
	steadyWrites := store.Writes.Load()
	steadyReqN, steadyBytesN := requests.Load(), bytesRead.Load()
	fullSteadyBytes := float64(fullBytes.Load()) * perHour
	fullCancel()
	b.StopTimer()

	// A restart on the store the first start filled: nothing to write.
	cancel()
	<-watcherDone
	restarted := &storetest.CountingStore{Store: store.Store}
	w2 := New(kube, restarted, Config{MissedGrace: 10 * time.Minute, ForgetAfter: 10 * time.Minute}, Hooks{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	restartCtx, restartCancel := context.WithCancel(ctx)
	restartStart := time.Now()
	go w2.Run(restartCtx)
	<-w2.FirstPass()
	restartTime := time.Since(restartStart)
	restartCancel()

	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	b.ReportMetric(syncTime.Seconds(), "sync-s")
	b.ReportMetric(firstPass.Seconds(), "first-pass-s")
	b.ReportMetric(float64(syncRequests), "sync-requests")
	b.ReportMetric(mib(syncBytes), "sync-MiB")
	b.ReportMetric(mib(rssSynced), "rss-MiB")
	b.ReportMetric(mib(rssSynced-rssBefore), "rss-growth-MiB")
	b.ReportMetric(mib(heapSynced-heapBefore), "heap-growth-MiB")
	b.ReportMetric(float64(writes), "first-start-writes")
	b.ReportMetric(float64(churn), "jobs-in-window")
	b.ReportMetric(steadyRequests, "requests/h")
	b.ReportMetric(steadyBytes/(1<<20), "MiB/h")
	b.ReportMetric(mib(fullSyncBytes), "full-sync-MiB")
	b.ReportMetric(mib(jsonBytes.Load()), "full-json-list-MiB")
	b.ReportMetric(mib(rssFull-rssSynced), "full-rss-growth-MiB")
	b.ReportMetric(mib(heapFull-heapSynced), "full-heap-growth-MiB")
	b.ReportMetric(fullSteadyBytes/(1<<20), "full-MiB/h")

	table := [][2]string{
		{"objects", fmt.Sprintf("%d CronJobs, %d finished Jobs (%d failed), %d namespaces", crons, crons*runsPerCron, failedJobs.Load(), len(namespaces))},
		{"informers synced", syncTime.Round(time.Millisecond).String()},
		{"first pass done (Run start to FirstPass closed)", firstPass.Round(time.Millisecond).String()},
		{"requests during sync", strconv.FormatInt(syncRequests, 10)},
		{"bytes read during sync (protobuf)", fmt.Sprintf("%d (%.1f MiB)", syncBytes, mib(syncBytes))},
		{"RSS after sync", fmt.Sprintf("%.0f MiB (+%.0f MiB over %.0f MiB before the start)", mib(rssSynced), mib(rssSynced-rssBefore), mib(rssBefore))},
		{"Go heap in use, growth", fmt.Sprintf("%.1f MiB", mib(heapSynced-heapBefore))},
		{"store writes, first start on an empty store", fmt.Sprintf("%d (%d results recorded, %d jobs, %d failing)", writes, records, len(jobs), failing)},
		{"steady window", fmt.Sprintf("%s, %d Jobs finished (%d store writes)", steady, churn, steadyWrites)},
		{"steady: requests, bytes read", fmt.Sprintf("%d, %d", steadyReqN, steadyBytesN)},
		{"steady, per hour", fmt.Sprintf("%.0f requests, %.2f MiB", steadyRequests, steadyBytes/(1<<20))},
		{"restart on the filled store", fmt.Sprintf("first pass %s, %d store writes", restartTime.Round(time.Millisecond), restarted.Writes.Load())},
		{"FULL list+watch (kube-state-metrics' way):", ""},
		{"  informers synced", fullSync.Round(time.Millisecond).String()},
		{"  requests, bytes read during sync (protobuf)", fmt.Sprintf("%d, %d (%.1f MiB)", fullSyncRequests, fullSyncBytes, mib(fullSyncBytes))},
		{"  one LIST of Jobs and of CronJobs (JSON)", fmt.Sprintf("%d (%.1f MiB)", jsonBytes.Load(), mib(jsonBytes.Load()))},
		{"  RSS growth, Go heap growth", fmt.Sprintf("+%.0f MiB, +%.1f MiB", mib(rssFull-rssSynced), mib(heapFull-heapSynced))},
		{"  steady, per hour (protobuf)", fmt.Sprintf("%.2f MiB", fullSteadyBytes/(1<<20))},
	}
	types := append(append(traffic.ContentTypes(), fullTraffic.ContentTypes()...), jsonTraffic.ContentTypes()...)
	table = append(table, [2]string{"response content types seen", strings.Join(slices.Compact(slices.Sorted(slices.Values(types))), ", ")})
	var out strings.Builder
	fmt.Fprintln(&out, "\nCronJob watcher at scale")
	for _, row := range table {
		fmt.Fprintf(&out, "  %-50s %s\n", row[0], row[1])
	}
	fmt.Fprint(os.Stdout, out.String())
}

// seededFails says which seeded runs failed: most complete; every seventh
// run fails, and every tenth CronJob's last two runs fail (it is failing).
func seededFails(cron, run, runs int) bool {
	if cron%10 == 3 && run >= runs-2 {
		return true
	}
	return (cron+run)%7 == 0
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

// realisticTemplate is a batch job's pod template as teams write them.
func realisticTemplate(name string) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "etl", "team": "data"},
			Annotations: map[string]string{"cluster-autoscaler.kubernetes.io/safe-to-evict": "false"}},
		Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever, ServiceAccountName: "etl", AutomountServiceAccountToken: ptr(false),
			NodeSelector: map[string]string{"cloud.google.com/gke-nodepool": "batch"},
			Tolerations:  []corev1.Toleration{{Key: "batch", Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoSchedule}},
			Containers: []corev1.Container{{
				Name: "main", Image: "registry.example.com/data/etl:v2.14.3", Command: []string{"/bin/etl"},
				Args: []string{"--job", name, "--since", "{{ .Scheduled }}", "--output", "gs://example-data/etl/" + name + "/", "--parallelism", "8"},
				Env: []corev1.EnvVar{
					{Name: "JOB_NAME", Value: name}, {Name: "LOG_LEVEL", Value: "info"}, {Name: "GOOGLE_CLOUD_PROJECT", Value: "example-prod"},
					{Name: "DATABASE_URL", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "etl-db"}, Key: "url"}}},
					{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
					{Name: "EXTRA_CONFIG", Value: strings.Repeat("k=v;", 60)},
				},
				Resources: corev1.ResourceRequirements{
					Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("1Gi")},
					Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")},
				},
				VolumeMounts: []corev1.VolumeMount{{Name: "scratch", MountPath: "/scratch"}},
			}},
			Volumes: []corev1.Volume{{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}
}

func realisticCronJob(i int) *batchv1.CronJob {
	name := fmt.Sprintf("etl-%05d", i)
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "Helm"},
			Annotations: map[string]string{"meta.helm.sh/release-name": "etl", "meta.helm.sh/release-namespace": "data"}},
		Spec: batchv1.CronJobSpec{
			Schedule: "0 * * * *", ConcurrencyPolicy: batchv1.ForbidConcurrent,
			SuccessfulJobsHistoryLimit: ptr[int32](10), FailedJobsHistoryLimit: ptr[int32](10),
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{BackoffLimit: ptr[int32](2), ActiveDeadlineSeconds: ptr[int64](3600),
				Template: realisticTemplate(name)}},
		},
	}
}

// realisticJob is the Job the CronJob controller makes for cj's tick.
func realisticJob(cj *batchv1.CronJob, tick time.Time) *batchv1.Job {
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name:            jobName(cj.Name, tick),
			Labels:          cj.Spec.JobTemplate.Labels,
			Annotations:     map[string]string{batchv1.CronJobScheduledTimestampAnnotation: tick.UTC().Format(time.RFC3339)},
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))},
		},
		Spec: cj.Spec.JobTemplate.Spec,
	}
}

// finishedStatus is a Job's status as the Job controller leaves it: started
// at start, Complete at finished, or Failed with BackoffLimitExceeded.
func finishedStatus(start, finished time.Time, fail bool) batchv1.JobStatus {
	at := metav1.NewTime(finished)
	s := batchv1.JobStatus{StartTime: &metav1.Time{Time: start}, Ready: ptr[int32](0), Terminating: ptr[int32](0),
		UncountedTerminatedPods: &batchv1.UncountedTerminatedPods{}}
	if fail {
		s.Failed = 3
		msg := "Job has reached the specified backoff limit"
		s.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, Message: msg, LastProbeTime: at, LastTransitionTime: at},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonBackoffLimitExceeded, Message: msg, LastProbeTime: at, LastTransitionTime: at},
		}
		return s
	}
	s.Succeeded = 1
	s.CompletionTime = &at
	s.Conditions = []batchv1.JobCondition{
		{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached, Message: "Reached expected number of succeeded pods", LastProbeTime: at, LastTransitionTime: at},
		{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, Reason: batchv1.JobReasonCompletionsReached, Message: "Reached expected number of succeeded pods", LastProbeTime: at, LastTransitionTime: at},
	}
	return s
}

func ptr[T any](v T) *T { return &v }

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func openFileStore(b *testing.B) state.Store {
	b.Helper()
	s, err := filestore.Open(filepath.Join(b.TempDir(), "state.json"))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// countingStore counts the results recorded and the writes they made.
// countingConfig is cfg with the service's client limits, reading
// contentType (client-go's default when empty), counting its traffic in t.
func countingConfig(cfg *rest.Config, contentType string, t *kubetest.Traffic) *rest.Config {
	cfg = configmapstore.TuneClient(t.Count(cfg))
	if contentType != "" {
		cfg.AcceptContentTypes = contentType
		cfg.ContentType = contentType
	}
	return cfg
}

// memory is the process's resident set size and the Go heap in use, after
// a collection.
func memory() (rss, heap int64) {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return procstat.SelfRSS(), int64(m.HeapInuse)
}
