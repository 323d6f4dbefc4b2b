// Package cronjobwatch latches plain Kubernetes batch/v1 CronJobs the way
// argowatch latches CronWorkflows: a Job of a CronJob reports its result
// when it reaches a terminal condition (even when it is deleted the moment
// it finishes), and missed ticks, stuck Jobs and deleted CronJobs become
// results that go through the same transition as callbacks.
package cronjobwatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
	"unique"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	batchv1client "k8s.io/client-go/kubernetes/typed/batch/v1"
	batchlisters "k8s.io/client-go/listers/batch/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/watch/cronrules"
	"github.com/batchlatch/batchlatch/watch/schedule"
)

// Annotations on a CronJob that override the watcher's defaults for it: the
// same as on a CronWorkflow.
const (
	AnnotationMissedGrace = "batchlatch.io/missed-grace"
	AnnotationMaxRuntime  = "batchlatch.io/max-runtime"
)

// ReasonReplaced is the failure of a Job that concurrencyPolicy Replace
// ended: the CronJob controller deletes a Job still running at the next
// tick, and the Job never gets a terminal condition of its own.
const ReasonReplaced = "Replaced"

// Config holds the watcher's settings.
type Config struct {
	// Namespaces to watch; empty: all.
	Namespaces []string
	// MissedGrace: a tick with no Job this long after it is missed.
	MissedGrace time.Duration
	// MaxRuntime: a Job still running this long is stuck; 0 is off.
	MaxRuntime time.Duration
	// ForgetAfter: a deleted CronJob's job is forgotten this long after.
	ForgetAfter time.Duration
	// EvaluateEvery: how often ticks and runtimes are checked (default a
	// quarter of MissedGrace, between 100ms and 30s).
	EvaluateEvery time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Hooks tell the rest of the service what the watcher did.
type Hooks struct {
	// Kick: a job started failing (its first entry should go out at once).
	Kick func()
	// Forgot: a deleted CronJob's job was forgotten: it is
	// kept until the alarm has closed its incident, which this may start.
	Forgot func(ctx context.Context, job state.Job, reason string)
}

// Watcher is the CronJob source. Run it on one replica (the leader) or on
// all: every result it makes is deduplicated by what it is about (the tick,
// the Job's uid), so running it twice counts nothing twice.
type Watcher struct {
	kube   batchv1client.BatchV1Interface
	store  state.Store
	cfg    Config
	hooks  Hooks
	logger *slog.Logger

	crons []batchlisters.CronJobLister
	runs  []cache.SharedIndexInformer
	start []func(<-chan struct{})
	sync  []cache.InformerSynced

	mu      sync.Mutex
	deleted map[state.Key]time.Time // CronJobs seen deleted, when
	handled map[string]api.Phase    // uid → the outcome recorded of a finished Job
	pending []pendingResult         // Job results not recorded yet
	warned  cronrules.Warned        // bad annotations already logged
	// usual is what each job whose max runtime is auto usually does, as
	// the latest pass or write read it from its history: its view says so
	// (Schedule) without reading the store. Only that is kept of the job.
	usual map[state.Key]cronrules.Usual

	listening atomic.Bool   // Run has synced: a Job seen finishing from now on is news
	wake      chan struct{} // a Job result is pending
	firstPass chan struct{} // closed once Run has synced, recorded and evaluated
}

// pendingResult is the result of a finished Job, not recorded yet.
type pendingResult struct {
	api.Result
	gone    bool // the Job was deleted: nothing is left to remember it by
	history bool // in the initial list: it ended before the watcher started
}

// byCron indexes Jobs by "<namespace>/<cronjob>".
const byCron = "cron"

// recordWorkers bounds how many jobs' results are recorded at once: one
// job's results go in order, different jobs' in parallel, so that a store
// that commits in groups (the ConfigMap store) batches them.
const recordWorkers = 8

// New returns a watcher reading CronJobs and Jobs through kube, both through
// informers that keep only what the decisions read.
func New(kube batchv1client.BatchV1Interface, store state.Store, cfg Config, hooks Hooks, logger *slog.Logger) *Watcher {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.EvaluateEvery <= 0 {
		cfg.EvaluateEvery = min(max(cfg.MissedGrace/4, 100*time.Millisecond), 30*time.Second)
	}
	w := &Watcher{
		kube: kube, store: store, cfg: cfg, hooks: hooks,
		logger:    logger.With("component", "cronjob-watch"),
		deleted:   map[state.Key]time.Time{},
		handled:   map[string]api.Phase{},
		usual:     map[state.Key]cronrules.Usual{},
		wake:      make(chan struct{}, 1),
		firstPass: make(chan struct{}),
	}
	namespaces := cfg.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	for _, ns := range namespaces {
		cronInformer := informer(&batchv1.CronJob{}, func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return kube.CronJobs(ns).List(ctx, opts)
		}, func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return kube.CronJobs(ns).Watch(ctx, opts)
		})
		_, _ = cronInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { w.cronAdded(obj) },
			DeleteFunc: func(obj any) { w.cronDeleted(obj) },
		})
		jobInformer := informer(&batchv1.Job{}, func(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
			return kube.Jobs(ns).List(ctx, opts)
		}, func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
			return kube.Jobs(ns).Watch(ctx, opts)
		})
		_ = jobInformer.AddIndexers(cache.Indexers{byCron: func(obj any) ([]string, error) {
			if o, ok := obj.(*jobObject); ok && o.cron != "" {
				return []string{o.namespace + "/" + o.cron}, nil
			}
			return nil, nil
		}})
		jobHandler, _ := jobInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { w.jobSeen(obj, false) },
			UpdateFunc: func(_, obj any) { w.jobSeen(obj, false) },
			DeleteFunc: func(obj any) { w.jobSeen(obj, true) },
		})
		w.crons = append(w.crons, batchlisters.NewCronJobLister(cronInformer.GetIndexer()))
		w.runs = append(w.runs, jobInformer)
		// The handler's sync, not only the informer's: the first pass
		// records the results of every Job the initial list delivered.
		w.sync = append(w.sync, cronInformer.HasSynced, jobInformer.HasSynced, jobHandler.HasSynced)
		w.start = append(w.start, func(stop <-chan struct{}) { go cronInformer.Run(stop) }, func(stop <-chan struct{}) { go jobInformer.Run(stop) })
	}
	return w
}

// informer is a shared informer of kind, listed and watched by list and
// watchFn, its objects made small by slim. It is built on the typed batch/v1 client rather than
// client-go's informer factory and the whole clientset: those link the
// client, informer and lister of every API group, 27 MB of a 121 MB binary
// (docs/performance.md), and a binary's pages are memory every replica holds.
func informer(kind runtime.Object, list cache.ListWithContextFunc, watchFn cache.WatchFuncWithContext) cache.SharedIndexInformer {
	inf := cache.NewSharedIndexInformerWithOptions(&cache.ListWatch{ListWithContextFunc: list, WatchFuncWithContext: watchFn}, kind,
		cache.SharedIndexInformerOptions{Indexers: cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc}})
	_ = inf.SetTransform(slim)
	return inf
}

// FirstPass is closed once Run has listed everything, recorded the results
// of the finished Jobs and evaluated every CronJob.
func (w *Watcher) FirstPass() <-chan struct{} { return w.firstPass }

// SetHooks replaces the hooks; call it before Run.
func (w *Watcher) SetHooks(hooks Hooks) { w.hooks = hooks }

// slim keeps the informers' copies small. A Job becomes its jobObject. Of
// a CronJob, the job template is most of its size and managedFields most
// of the rest; the decisions read neither.
func slim(obj any) (any, error) {
	switch o := obj.(type) {
	case *batchv1.Job:
		return &jobObject{
			run:             runOf(o),
			namespace:       intern(o.Namespace),
			cron:            intern(cronOwner(o)),
			resourceVersion: o.ResourceVersion,
			deleting:        o.DeletionTimestamp != nil,
		}, nil
	case *batchv1.CronJob:
		// Only when the spec last changed is read of managedFields: keep
		// that as a single entry.
		changed := specChangedAt(o.ManagedFields)
		o.ManagedFields = nil
		if !changed.IsZero() {
			o.ManagedFields = []metav1.ManagedFieldsEntry{{Time: &metav1.Time{Time: changed}, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{}}`)}}}
		}
		o.Labels = nil
		o.Annotations = keepOnly(o.Annotations, AnnotationMissedGrace, AnnotationMaxRuntime, api.AnnotationFailureThreshold)
		o.Spec.JobTemplate = batchv1.JobTemplateSpec{}
		o.Status.Active = nil
	}
	return obj, nil
}

// jobObject is what the Job informer keeps of a Job (slim): the run as the
// decisions read it, its CronJob ("" for a Job no CronJob controls), and
// what client-go's cache keys it by. A batch/v1 Job takes about 1.5 KiB in
// memory even with its pod template cleared (the struct holds the
// template's fields inline), this about 250 bytes, and a cluster keeps
// thousands of finished Jobs (20,000 in BenchmarkCronJobWatcherAtScale).
type jobObject struct {
	run
	namespace, cron string // interned: many Jobs share them
	resourceVersion string
	deleting        bool // deletionTimestamp set
}

// GetObjectMeta is what client-go's cache reads of the object (its key,
// through meta.Accessor).
func (o *jobObject) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Name: o.Name, Namespace: o.namespace, UID: types.UID(o.UID), ResourceVersion: o.resourceVersion}
}

// intern is s, stored once however many objects hold it.
func intern(s string) string { return unique.Make(s).Value() }

func keepOnly(m map[string]string, keys ...string) map[string]string {
	var out map[string]string
	for _, k := range keys {
		if v, ok := m[k]; ok {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = v
		}
	}
	return out
}

// cronOwner is the name of the CronJob that controls job, "" when none does.
func cronOwner(job *batchv1.Job) string {
	if ref := metav1.GetControllerOfNoCopy(job); ref != nil && ref.Kind == "CronJob" && ref.APIVersion == batchv1.SchemeGroupVersion.String() {
		return ref.Name
	}
	return ""
}

// Run watches until ctx is done: it records each Job's result as the Job
// finishes (or is deleted finished), and evaluates ticks and runtimes every
// EvaluateEvery.
func (w *Watcher) Run(ctx context.Context) {
	for _, start := range w.start {
		start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), w.sync...) {
		return
	}
	w.listening.Store(true)
	w.logger.Info("watching", "namespaces", w.cfg.Namespaces, "missedGrace", w.cfg.MissedGrace.String(), "maxRuntime", w.cfg.MaxRuntime.String())
	// The initial list delivered every finished Job that exists: the
	// results a stopped watcher did not see.
	w.drain(ctx)
	w.Evaluate(ctx)
	close(w.firstPass)
	evaluate := time.NewTicker(w.cfg.EvaluateEvery)
	defer evaluate.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
			w.drain(ctx)
		case <-evaluate.C:
			w.drain(ctx) // retries what the store refused
			w.Evaluate(ctx)
		}
	}
}

func (w *Watcher) cronAdded(obj any) {
	if cj, ok := obj.(*batchv1.CronJob); ok {
		w.mu.Lock()
		delete(w.deleted, state.KeyFor(api.KindCronJob, cj.Namespace, cj.Name))
		w.mu.Unlock()
	}
}

func (w *Watcher) cronDeleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if cj, ok := obj.(*batchv1.CronJob); ok {
		w.mu.Lock()
		w.deleted[state.KeyFor(api.KindCronJob, cj.Namespace, cj.Name)] = w.cfg.Now()
		w.mu.Unlock()
	}
}

// jobSeen queues the result of a finished Job of a CronJob. On deletion
// the object is the Job's final state (or the last one the cache held,
// in a tombstone), so a Job deleted the moment it finished still counts.
func (w *Watcher) jobSeen(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	o, ok := obj.(*jobObject)
	if !ok || o.cron == "" {
		return
	}
	cron, r, uid := o.cron, o.run, o.UID
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := r.finished() && w.handled[uid] == r.Phase
	if deleted {
		delete(w.handled, uid)
		if !r.finished() && w.replaces(o.namespace, cron) {
			r = replaced(r, w.cfg.Now())
		}
	}
	if !r.finished() || seen {
		return
	}
	w.pending = append(w.pending, pendingResult{Result: resultOf(o.namespace, cron, r, w.cfg.Now()), gone: deleted, history: !w.listening.Load()})
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// replaces reports whether CronJob namespace/name, still there, replaces
// a Job running at its next tick (concurrencyPolicy Replace): then a Job of
// it deleted unfinished is one the CronJob controller replaced. A Job
// deleted with its CronJob (the garbage collector) or by hand under another
// policy is not a run that ended.
func (w *Watcher) replaces(namespace, name string) bool {
	cj := w.cronJob(namespace, name)
	return cj != nil && cj.DeletionTimestamp == nil && cj.Spec.ConcurrencyPolicy == batchv1.ReplaceConcurrent
}

// drain records the pending Job results: each job's in the order its Jobs
// finished, skipping what the store knows already, what finished before the
// job's latest result (it would change nothing), and what a later result
// makes moot (collapse).
func (w *Watcher) drain(ctx context.Context) {
	w.mu.Lock()
	batch := w.pending
	w.pending = nil
	w.mu.Unlock()
	if len(batch) == 0 {
		return
	}
	jobs, err := w.jobs(ctx)
	if err != nil {
		w.logger.Warn("list jobs; recording later", "err", err)
		w.requeue(batch)
		return
	}
	byKey := map[state.Key][]pendingResult{}
	for _, p := range batch {
		key := state.KeyOf(p.Result)
		byKey[key] = append(byKey[key], p)
	}
	work := make(chan []pendingResult)
	var wg sync.WaitGroup
	for range min(recordWorkers, len(byKey)) {
		wg.Go(func() {
			for todo := range work {
				for i, p := range todo {
					// A Job that ended before the watcher started is
					// history: recorded as received when it ended, and
					// no news to announce.
					received, news := w.cfg.Now(), true
					if p.history {
						received, news = p.FinishedAt(received), false
					}
					if err := w.recordAs(ctx, p.Result, received, news); err != nil {
						w.requeue(todo[i:]) // keep the job's order
						break
					}
					w.markHandled(p)
				}
			}
		})
	}
	for key, todo := range byKey {
		var job *state.Job
		if j, ok := jobs[key]; ok {
			job = &j
		}
		now := w.cfg.Now()
		var fresh []pendingResult
		for _, p := range todo {
			if job != nil {
				// Known, or older than the job's latest result: recording
				// it would only push a newer run out of the job's recent
				// runs (and, restart after restart, get that run counted
				// again).
				if _, out := state.Apply(*job, true, p.Result, now); out.Duplicate || out.Stale {
					w.markHandled(p)
					continue
				}
			}
			fresh = append(fresh, p)
		}
		if len(fresh) > 0 {
			keep, moot := cronrules.Collapse(byFinish(fresh), job != nil && job.Failing())
			for _, p := range moot {
				w.markHandled(p)
			}
			work <- keep
		}
	}
	close(work)
	wg.Wait()
}

// markHandled remembers that the result of a Job still there is recorded,
// so that its next updates are not recorded again.
func (w *Watcher) markHandled(p pendingResult) {
	if p.gone {
		return
	}
	w.mu.Lock()
	w.handled[p.UID] = p.Phase
	w.mu.Unlock()
}

func (w *Watcher) requeue(todo []pendingResult) {
	w.mu.Lock()
	w.pending = append(w.pending, todo...)
	w.mu.Unlock()
}

// Schedule is the schedule of a watched CronJob at now, for the job's view
// (an api.ScheduleOf); nil for a job the watcher does not read.
func (w *Watcher) Schedule(kind, namespace, name string, now time.Time) *api.Schedule {
	if kind != api.KindCronJob {
		return nil
	}
	for _, lister := range w.crons {
		if cj, err := lister.CronJobs(namespace).Get(name); err == nil {
			c := w.cronOf(cj)
			if c.MaxRuntime.Auto {
				w.mu.Lock()
				c.Usual, c.UsualKnown = w.usual[state.KeyFor(api.KindCronJob, namespace, name)]
				w.mu.Unlock()
			}
			return scheduleView(c, now)
		}
	}
	return nil
}

// watched is one CronJob with its Jobs.
type watched struct {
	cron cronJob
	runs []run
}

func (w *Watcher) snapshot() []watched {
	var out []watched
	for i, lister := range w.crons {
		cjs, err := lister.List(labels.Everything())
		if err != nil {
			continue
		}
		for _, cj := range cjs {
			objs, _ := w.runs[i].GetIndexer().ByIndex(byCron, cj.Namespace+"/"+cj.Name)
			var runs []run
			for _, obj := range objs {
				if o, ok := obj.(*jobObject); ok && !o.deleting {
					runs = append(runs, o.run)
				}
			}
			out = append(out, watched{cron: w.cronOf(cj), runs: runs})
		}
	}
	return out
}

// jobs reads every stored job once per pass, by key; a forgotten job is
// not there (a CronWorkflow or CronJob made again is a new job).
func (w *Watcher) jobs(ctx context.Context) (map[state.Key]state.Job, error) {
	list, err := w.store.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[state.Key]state.Job, len(list))
	for _, j := range state.Remembered(list) {
		out[j.Key()] = j
	}
	return out, nil
}

// Evaluate records what is due now: missed ticks, stuck Jobs, and forgets
// the jobs of CronJobs deleted long enough ago.
func (w *Watcher) Evaluate(ctx context.Context) {
	now := w.cfg.Now()
	jobs, err := w.jobs(ctx)
	if err != nil {
		w.logger.Warn("list jobs; evaluating later", "err", err)
		return
	}
	usual := map[state.Key]cronrules.Usual{}
	for _, cw := range w.snapshot() {
		key := state.KeyFor(api.KindCronJob, cw.cron.Namespace, cw.cron.Name)
		var job *state.Job
		if j, ok := jobs[key]; ok {
			job = &j
		}
		if cw.cron.MaxRuntime.Auto {
			// From the jobs this pass lists anyway: no read of its own.
			cw.cron.Usual, cw.cron.UsualKnown = cronrules.UsualOf(job), true
			usual[key] = cw.cron.Usual
		}
		for _, r := range cronrules.Pending(due(cw.cron, cw.runs, job, now), job, now) {
			if err := w.record(ctx, r, now); err != nil {
				break // in order: the rest are due again at the next evaluation
			}
		}
	}
	w.mu.Lock()
	w.usual = usual // the CronJobs no longer auto, or gone, drop out
	w.mu.Unlock()
	w.forget(ctx, jobs, now)
}

// record validates a result made from a watched object, as a callback's is,
// and applies it. It returns an error only when the store failed: a result
// that is invalid is logged and dropped.
func (w *Watcher) record(ctx context.Context, r api.Result, now time.Time) error {
	return w.recordAs(ctx, r, now, true)
}

// recordAs is record with the time the result counts as received, and
// whether a change it makes is news to announce at once (kick).
func (w *Watcher) recordAs(ctx context.Context, r api.Result, now time.Time, news bool) error {
	log := w.logger.With("namespace", r.Namespace, "job", r.JobName(), "kind", api.KindCronJob, "jobObject", r.WorkflowName, "phase", r.Phase)
	if cj := w.cronJob(r.Namespace, r.CronJob); cj != nil {
		var err error
		if r, err = cronrules.WithFailureThreshold(r, cj.Annotations); err != nil {
			if w.warned.First(string(cj.UID), cj.ResourceVersion, api.AnnotationFailureThreshold) {
				log.Warn("ignoring annotation", "err", err)
			}
		}
	}
	if err := r.ValidateObserved(now); err != nil {
		log.Warn("ignoring a watched object that no result can be made of", "err", err)
		return nil
	}
	r.Source = api.SourceCronJob // the job's history says who saw the run
	rec, err := w.store.Record(ctx, r, now)
	if err != nil {
		log.Warn("record", "err", err)
		return err
	}
	if rec.Outcome.Duplicate || rec.Outcome.Stale {
		return nil
	}
	log.Info("recorded", "transition", rec.Outcome.Transition, "consecutiveFailures", rec.Job.ConsecutiveFailures)
	w.mu.Lock()
	if _, auto := w.usual[rec.Job.Key()]; auto {
		w.usual[rec.Job.Key()] = cronrules.UsualOf(&rec.Job)
	}
	w.mu.Unlock()
	if news && rec.Outcome.Announces(rec.Job) && w.hooks.Kick != nil {
		w.hooks.Kick()
	}
	return nil
}

// cronJob is the watched CronJob namespace/name, nil when there is none.
func (w *Watcher) cronJob(namespace, name string) *batchv1.CronJob {
	if name == "" {
		return nil
	}
	for _, lister := range w.crons {
		if cj, err := lister.CronJobs(namespace).Get(name); err == nil {
			return cj
		}
	}
	return nil
}

func (w *Watcher) forget(ctx context.Context, jobs map[state.Key]state.Job, now time.Time) {
	owns := func(job state.Job) bool {
		return job.Kind == api.KindCronJob && cronrules.Watches(w.cfg.Namespaces, job.Namespace)
	}
	absent := cronrules.Absent(jobs, owns, func(key state.Key) bool { return w.cronJob(key.Namespace, key.Name) != nil })
	w.mu.Lock()
	for _, key := range absent {
		if _, noted := w.deleted[key]; !noted {
			w.deleted[key] = now // gone before this watcher could see it go
		}
	}
	var due []state.Key
	for key, at := range w.deleted {
		if now.Sub(at) >= w.cfg.ForgetAfter {
			due = append(due, key)
		}
	}
	w.mu.Unlock()
	for _, key := range due {
		job, ok := jobs[key]
		if ok {
			reason := fmt.Sprintf("its CronJob has been gone for more than %s", w.cfg.ForgetAfter)
			// Kept until its incident is closed (state.ForgetAt): the
			// Forgot hook makes the alarm start that at once.
			if err := state.Forget(ctx, w.store, key, now, reason); err != nil && !errors.Is(err, state.ErrNotFound) {
				w.logger.Warn("forget job", "err", err, "namespace", key.Namespace, "job", key.Name, "kind", api.KindCronJob)
				continue
			}
			w.logger.Info("forgot job", "namespace", key.Namespace, "job", key.Name, "kind", api.KindCronJob, "reason", reason)
			if w.hooks.Forgot != nil {
				w.hooks.Forgot(ctx, job, reason)
			}
		}
		w.mu.Lock()
		delete(w.deleted, key)
		w.mu.Unlock()
	}
}

// cronOf reads what the decisions need of a CronJob, with the annotations'
// overrides (a bad one is logged and the default kept).
func (w *Watcher) cronOf(cj *batchv1.CronJob) cronJob {
	tz := ""
	if cj.Spec.TimeZone != nil {
		tz = *cj.Spec.TimeZone
	}
	sched, err := schedule.Parse([]string{cj.Spec.Schedule}, tz)
	c := cronJob{
		Namespace:     cj.Namespace,
		Name:          cj.Name,
		Created:       cj.CreationTimestamp.Time,
		SpecChangedAt: specChangedAt(cj.ManagedFields),
		Expr:          cj.Spec.Schedule,
		Timezone:      tz,
		Schedule:      sched,
		ScheduleErr:   err,
		Suspended:     cj.Spec.Suspend != nil && *cj.Spec.Suspend,
		Forbid:        cj.Spec.ConcurrencyPolicy == batchv1.ForbidConcurrent,
		Grace:         w.annotatedDuration(cj, AnnotationMissedGrace, w.cfg.MissedGrace, cronrules.CheckMissedGrace),
		MaxRuntime:    w.annotatedMaxRuntime(cj),
	}
	if d := cj.Spec.StartingDeadlineSeconds; d != nil && *d > 0 {
		c.StartingDeadline = time.Duration(*d) * time.Second
	}
	if t := cj.Status.LastScheduleTime; t != nil {
		c.LastScheduled = t.Time
	}
	return c
}

func (w *Watcher) annotatedDuration(cj *batchv1.CronJob, key string, def time.Duration, check func(time.Duration) error) time.Duration {
	d, err := cronrules.AnnotatedDuration(cj.Annotations, key, def, check)
	// Once per version of the object, not at every evaluation.
	if err != nil && w.warned.First(string(cj.UID), cj.ResourceVersion, key) {
		w.logger.Warn("ignoring annotation; the flag's value holds", "namespace", cj.Namespace, "cronJob", cj.Name, "err", err)
	}
	return d
}

// annotatedMaxRuntime is cj's max runtime: its annotation's (a duration,
// or auto), else the flag's.
func (w *Watcher) annotatedMaxRuntime(cj *batchv1.CronJob) cronrules.MaxRuntime {
	m, err := cronrules.AnnotatedMaxRuntime(cj.Annotations, AnnotationMaxRuntime, w.cfg.MaxRuntime)
	if err != nil && w.warned.First(string(cj.UID), cj.ResourceVersion, AnnotationMaxRuntime) {
		w.logger.Warn("ignoring annotation; the flag's value holds", "namespace", cj.Namespace, "cronJob", cj.Name, "err", err)
	}
	return m
}

// specChangedAt is the latest time a field manager changed the spec.
func specChangedAt(fields []metav1.ManagedFieldsEntry) time.Time {
	var latest time.Time
	for _, f := range fields {
		if f.Time != nil && f.FieldsV1 != nil && bytes.Contains(f.FieldsV1.Raw, []byte(`"f:spec"`)) && f.Time.After(latest) {
			latest = f.Time.Time
		}
	}
	return latest
}

// runOf reads what the decisions need of a Job: its outcome is its terminal
// condition alone (pods that failed and were retried are not the Job's
// failure); SuccessCriteriaMet and FailureTarget tell the outcome before the
// Job's pods are gone and Complete or Failed is set.
func runOf(job *batchv1.Job) run {
	r := run{Name: job.Name, UID: string(job.UID), Created: job.CreationTimestamp.Time}
	if job.Status.StartTime != nil {
		r.Started = job.Status.StartTime.Time
	}
	if t, err := time.Parse(time.RFC3339, job.Annotations[batchv1.CronJobScheduledTimestampAnnotation]); err == nil {
		r.ScheduledAt = t
	}
	var target *batchv1.JobCondition
	for i := range job.Status.Conditions {
		c := &job.Status.Conditions[i]
		if c.Status != corev1.ConditionTrue {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete, batchv1.JobFailed:
			target = c
		case batchv1.JobSuccessCriteriaMet, batchv1.JobFailureTarget:
			if target == nil {
				target = c
			}
		}
	}
	if target == nil {
		return r
	}
	r.Phase = api.PhaseSucceeded
	r.FinishedAt = target.LastTransitionTime.Time
	if target.Type == batchv1.JobFailed || target.Type == batchv1.JobFailureTarget {
		r.Phase = api.PhaseFailed
		r.Reason, r.Message = target.Reason, target.Message
	} else if job.Status.CompletionTime != nil {
		r.FinishedAt = job.Status.CompletionTime.Time
	}
	return r
}
