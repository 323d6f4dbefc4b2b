// Package argowatch reads Argo's own objects to catch the runs that never
// report through the exit handler: missed ticks, CronWorkflows whose runs
// cannot be submitted, completed runs whose callback was lost, runs stuck
// past their maximum runtime, and deleted CronWorkflows. What it sees
// becomes results that go through the same transition as callbacks.
package argowatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"
	"unique"

	"github.com/argoproj/argo-workflows/v3/pkg/apis/workflow"
	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/pkg/client/clientset/versioned"
	"github.com/argoproj/argo-workflows/v3/pkg/client/informers/externalversions"
	wflisters "github.com/argoproj/argo-workflows/v3/pkg/client/listers/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/workflow/common"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/tools/cache"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/watch/cronrules"
	"github.com/batchlatch/batchlatch/watch/schedule"
)

// Annotations on a CronWorkflow that override the watcher's defaults for it.
const (
	AnnotationMissedGrace = "batchlatch.io/missed-grace"
	AnnotationMaxRuntime  = "batchlatch.io/max-runtime"
)

// Config holds the watcher's settings.
type Config struct {
	// Namespaces to watch; empty: all.
	Namespaces []string
	// MissedGrace: a tick with no run this long after it is missed.
	MissedGrace time.Duration
	// ReconcileInterval: how often completed runs are checked for lost
	// callbacks.
	ReconcileInterval time.Duration
	// MaxRuntime: a run still running this long is stuck; 0 is off.
	MaxRuntime time.Duration
	// ForgetAfter: a deleted CronWorkflow's job is forgotten this long after.
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
	// Forgot: a deleted CronWorkflow's job was forgotten: it is
	// kept until the alarm has closed its incident, which this may start.
	Forgot func(ctx context.Context, job state.Job, reason string)
}

// readsPerJob bounds the Workflows one drain reads in full for one job:
// a new install on a cluster with a long history of runs reads the latest
// few, and takes the rest from their metadata.
const readsPerJob = 4

// Watcher is the Argo source. Run it on one replica (the leader) or on all:
// every result it makes is deduplicated by what it is about (the tick, the
// run's uid), so running it twice counts nothing twice.
type Watcher struct {
	argo   versioned.Interface
	store  state.Store
	cfg    Config
	hooks  Hooks
	logger *slog.Logger

	crons []wflisters.CronWorkflowLister
	runs  []cache.SharedIndexInformer
	start []func(<-chan struct{})
	sync  []cache.InformerSynced

	mu      sync.Mutex
	deleted map[state.Key]time.Time       // CronWorkflows seen deleted, when
	handled map[string]wfv1.WorkflowPhase // uid → the outcome recorded of a finished run
	pending []queuedRun                   // finished runs not recorded yet
	// refusedCrons: CronWorkflows with a SpecError or SubmissionError
	// condition, changed since the last evaluateRefused.
	refusedCrons map[state.Key]bool
	warned       cronrules.Warned // bad annotations already logged
	specs        *specChecker     // Argo's validation of each CronWorkflow
	// usual is what each job whose max runtime is auto usually does, as
	// the latest pass or write read it from its history: its view says so
	// (Schedule) without reading the store. Only that is kept of the job.
	usual map[state.Key]cronrules.Usual

	started   time.Time     // when Run had synced (this machine's clock): runs last written before are history
	wake      chan struct{} // a finished run is pending
	refused   chan struct{} // the controller wrote a SpecError or SubmissionError condition
	firstPass chan struct{} // closed once Run has synced, recorded and evaluated
}

// queuedRun is a finished run whose result is not recorded yet, kept
// small: a start over a long history queues every run at once (20,000 in
// BenchmarkWatcherAtScale), and drain makes the results of one job at a
// time (pendingRun).
type queuedRun struct {
	namespace, cron string
	run             run
	gone            bool // deleted: its metadata is all there is
}

func (q queuedRun) key() state.Key {
	return state.KeyOf(api.Result{Namespace: q.namespace, CronWorkflow: q.cron})
}

// pendingRun is a queued run with its result, in drain.
type pendingRun struct {
	api.Result // from its metadata; read in full before it is recorded
	run        run
	gone       bool // deleted: its metadata is all there is
}

// byCron indexes Workflows by "<namespace>/<cronworkflow>".
const byCron = "cron"

// New returns a watcher reading Argo's objects through argo (CronWorkflows,
// and a full Workflow only for a completed run whose result is unknown) and
// meta (Workflows' metadata only: their status can be megabytes).
func New(argo versioned.Interface, meta metadata.Interface, store state.Store, cfg Config, hooks Hooks, logger *slog.Logger) *Watcher {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.EvaluateEvery <= 0 {
		cfg.EvaluateEvery = min(max(cfg.MissedGrace/4, 100*time.Millisecond), 30*time.Second)
	}
	w := &Watcher{
		argo: argo, store: store, cfg: cfg, hooks: hooks,
		logger:    logger.With("component", "argo-watcher"),
		deleted:   map[state.Key]time.Time{},
		handled:   map[string]wfv1.WorkflowPhase{},
		usual:     map[state.Key]cronrules.Usual{},
		wake:      make(chan struct{}, 1),
		refused:   make(chan struct{}, 1),
		firstPass: make(chan struct{}),
		specs:     newSpecChecker(),
	}
	namespaces := cfg.Namespaces
	if len(namespaces) == 0 {
		namespaces = []string{metav1.NamespaceAll}
	}
	workflows := wfv1.SchemeGroupVersion.WithResource(workflow.WorkflowPlural)
	for _, ns := range namespaces {
		cronFactory := externalversions.NewSharedInformerFactoryWithOptions(argo, 0, externalversions.WithNamespace(ns))
		cronInformer := cronFactory.Argoproj().V1alpha1().CronWorkflows()
		cronInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { w.cronAdded(obj) },
			UpdateFunc: func(_, obj any) { w.cronUpdated(obj) },
			DeleteFunc: func(obj any) { w.cronDeleted(obj) },
		})
		w.crons = append(w.crons, cronInformer.Lister())
		w.sync = append(w.sync, cronInformer.Informer().HasSynced)
		// WorkflowTemplates, to validate the CronWorkflows that use them.
		templateInformer := cronFactory.Argoproj().V1alpha1().WorkflowTemplates()
		changed := func(obj any) {
			if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = tomb.Obj
			}
			if t, ok := obj.(*wfv1.WorkflowTemplate); ok {
				w.specs.templatesChanged(t.Namespace)
			}
		}
		templateInformer.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc: changed, UpdateFunc: func(_, obj any) { changed(obj) }, DeleteFunc: changed,
		})
		w.specs.templates = append(w.specs.templates, templateInformer.Lister())
		w.sync = append(w.sync, templateInformer.Informer().HasSynced)
		w.start = append(w.start, cronFactory.Start)

		// Only Workflows made by a CronWorkflow, and only their metadata.
		metaFactory := metadatainformer.NewFilteredSharedInformerFactory(meta, 0, ns, func(o *metav1.ListOptions) {
			o.LabelSelector = common.LabelKeyCronWorkflow
		})
		runInformer := metaFactory.ForResource(workflows).Informer()
		_ = runInformer.SetTransform(slimRun)
		_ = runInformer.AddIndexers(cache.Indexers{byCron: func(obj any) ([]string, error) {
			o, ok := obj.(*runObject)
			if !ok {
				return nil, nil
			}
			return []string{o.namespace + "/" + o.cron}, nil
		}})
		runHandler, _ := runInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { w.runSeen(obj, false) },
			UpdateFunc: func(_, obj any) { w.runSeen(obj, false) },
			DeleteFunc: func(obj any) { w.runSeen(obj, true) },
		})
		w.runs = append(w.runs, runInformer)
		// The handler's sync, not only the informer's: the first pass
		// records the finished runs the initial list delivered.
		w.sync = append(w.sync, runInformer.HasSynced, runHandler.HasSynced)
		w.start = append(w.start, metaFactory.Start)
	}
	return w
}

// FirstPass is closed once Run has listed everything, recorded the results
// of the finished runs and evaluated every CronWorkflow.
func (w *Watcher) FirstPass() <-chan struct{} { return w.firstPass }

// SetHooks replaces the hooks; call it before Run.
func (w *Watcher) SetHooks(hooks Hooks) { w.hooks = hooks }

// runObject is what the informer keeps of a Workflow made by a
// CronWorkflow (slimRun): the run as the decisions read it, and what
// client-go's cache keys and indexes it by. A Workflow's metadata as the API
// server sends it takes about 1.5 KiB in memory (its labels, annotations,
// owner references and managedFields), this about 250 bytes, and a cluster
// keeps thousands of runs (20,000 in BenchmarkWatcherAtScale).
type runObject struct {
	run
	namespace, cron string // interned: many runs share them
	resourceVersion string
	deleting        bool // deletionTimestamp set
}

// GetObjectMeta is what client-go's cache reads of the object (its key,
// through meta.Accessor).
func (o *runObject) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{Name: o.Name, Namespace: o.namespace, UID: types.UID(o.UID), ResourceVersion: o.resourceVersion}
}

// slimRun is the informer's transform: a Workflow's metadata becomes its
// runObject. client-go may hand it an object it already transformed.
func slimRun(obj any) (any, error) {
	m, ok := obj.(*metav1.PartialObjectMetadata)
	if !ok {
		return obj, nil
	}
	return &runObject{
		run:             runOf(m),
		namespace:       intern(m.Namespace),
		cron:            intern(m.Labels[common.LabelKeyCronWorkflow]),
		resourceVersion: m.ResourceVersion,
		deleting:        m.DeletionTimestamp != nil,
	}, nil
}

// intern is s, stored once however many objects hold it.
func intern(s string) string { return unique.Make(s).Value() }

// lastWritten is the latest time a field manager wrote the object.
func lastWritten(fields []metav1.ManagedFieldsEntry) time.Time {
	var latest time.Time
	for _, f := range fields {
		if f.Time != nil && f.Time.After(latest) {
			latest = f.Time.Time
		}
	}
	return latest
}

// Run watches until ctx is done: it records each run's result as the run
// finishes (before Argo's history limits can delete it), evaluates ticks and
// runtimes every EvaluateEvery, and looks again for finished runs whose
// result is unknown every ReconcileInterval.
func (w *Watcher) Run(ctx context.Context) {
	for _, start := range w.start {
		start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), w.sync...) {
		return
	}
	w.started = time.Now() // compared with the API server's times, not the configured clock
	w.logger.Info("watching", "namespaces", w.cfg.Namespaces, "missedGrace", w.cfg.MissedGrace.String(), "maxRuntime", w.cfg.MaxRuntime.String())
	// The initial list delivered every finished run that exists: the
	// results a stopped watcher did not see.
	w.drain(ctx)
	w.Evaluate(ctx)
	close(w.firstPass)
	evaluate := time.NewTicker(w.cfg.EvaluateEvery)
	defer evaluate.Stop()
	reconcile := time.NewTicker(w.cfg.ReconcileInterval)
	defer reconcile.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.refused:
			w.evaluateRefused(ctx)
		case <-w.wake:
			select {
			case <-w.refused:
				// The refused tick first: a later tick's run covers the
				// ticks before it, and the next good submission removes
				// the condition.
				w.evaluateRefused(ctx)
			default:
			}
			w.drain(ctx)
		case <-evaluate.C:
			w.drain(ctx) // retries what the store refused
			w.Evaluate(ctx)
		case <-reconcile.C:
			w.Reconcile(ctx)
		}
	}
}

// runSeen queues the result of a finished run of a CronWorkflow. On
// deletion the object is the run's final metadata (or the last the cache
// held, in a tombstone), so a run deleted the moment it finished still
// counts.
func (w *Watcher) runSeen(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	o, ok := obj.(*runObject)
	if !ok {
		return
	}
	cron, r := o.cron, o.run
	w.mu.Lock()
	defer w.mu.Unlock()
	seen := r.finished() && w.handled[r.UID] == r.Phase
	if deleted {
		delete(w.handled, r.UID)
	}
	if cron == "" || r.UID == "" || !r.finished() || seen {
		return
	}
	w.pending = append(w.pending, queuedRun{namespace: o.namespace, cron: cron, run: r, gone: deleted})
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// drain records the pending runs' results: each job's in the order its
// runs happened, skipping what the job knows already or what finished
// before its latest result, and what a later result makes moot
// (cronrules.Collapse). The latest few of a job's runs are read in full
// first (their failed steps and when they finished); the rest, on a first
// start over a long history, are taken from their metadata, ordered by
// when they began. A run that ended before the watcher started is
// recorded as received when it ended and kicks nothing: history is not
// news.
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
	byKey := map[state.Key][]queuedRun{}
	for _, q := range batch {
		byKey[q.key()] = append(byKey[q.key()], q)
	}
	now := w.cfg.Now()
	for key, queued := range byKey {
		delete(byKey, key)
		todo := make([]pendingRun, len(queued))
		for i, q := range queued {
			todo[i] = pendingRun{Result: metaResult(q.namespace, q.cron, q.run), run: q.run, gone: q.gone}
		}
		var job *state.Job
		if j, ok := jobs[key]; ok {
			job = &j
		}
		var fresh []pendingRun
		for _, p := range todo {
			// Known, or last written before the job's latest result (so
			// it ended before it, and cannot change the job): not read.
			if job != nil && (job.Knows(p.Result) || endedBefore(*job, p, now)) {
				w.markHandled(p)
				continue
			}
			fresh = append(fresh, p)
		}
		sort.SliceStable(fresh, func(i, k int) bool { return fresh[i].run.began().Before(fresh[k].run.began()) })
		tail := max(len(fresh)-readsPerJob, 0)
		for i := range fresh {
			if i >= tail {
				fresh[i].Result = w.readResult(ctx, fresh[i], now)
			} else {
				fresh[i].Result = beganResult(fresh[i].Result, fresh[i].run)
			}
			fresh[i].Result = notAfter(fresh[i].Result, now)
		}
		sort.SliceStable(fresh[tail:], func(i, k int) bool {
			return fresh[tail+i].FinishedAt(now).Before(fresh[tail+k].FinishedAt(now))
		})
		var known []pendingRun
		if job != nil {
			known = fresh[:0:0]
			for _, p := range fresh {
				if _, out := state.Apply(*job, true, p.Result, now); out.Stale {
					w.markHandled(p)
					continue
				}
				known = append(known, p)
			}
			fresh = known
		}
		if len(fresh) == 0 {
			continue
		}
		keep, moot := cronrules.Collapse(fresh, job != nil && job.Failing())
		for _, p := range moot {
			w.markHandled(p)
		}
		for i, p := range keep {
			received, news := now, true
			if !p.run.LastWritten.IsZero() && p.run.LastWritten.Before(w.started) {
				received, news = p.FinishedAt(now), false
				if received.After(now) {
					received = now
				}
			}
			if _, err := w.recordAs(ctx, p.Result, received, news); err != nil {
				var again []queuedRun // keep the job's order
				for _, p := range keep[i:] {
					again = append(again, queuedRun{namespace: p.Namespace, cron: p.CronWorkflow, run: p.run, gone: p.gone})
				}
				w.requeue(again)
				break
			}
			w.markHandled(p)
		}
	}
}

// endedBefore reports whether pending run p was last written before job's
// latest result, so that it ended before it and cannot change the job,
// unless it is the run a synthetic result stands for, or another outcome
// of a run the job knows (argo retry).
func endedBefore(job state.Job, p pendingRun, now time.Time) bool {
	if p.run.LastWritten.IsZero() || !p.run.LastWritten.Before(job.LastResultAt) {
		return false
	}
	_, out := state.Apply(job, true, p.Result, now)
	return !out.Supersedes && !out.Retry
}

// beganResult is a run's result from its metadata, ordered when the run
// began: a time no later than its end, in the order of its runs.
func beganResult(r api.Result, run run) api.Result {
	r.CreatedAt = run.began().UTC().Format(time.RFC3339)
	r.DurationSeconds = 0
	return r
}

// readResult is the full result of a pending run: the one its exit handler
// would have sent, read from the Workflow. A run deleted meanwhile (or one
// that cannot be read) keeps what its metadata says.
func (w *Watcher) readResult(ctx context.Context, p pendingRun, now time.Time) api.Result {
	if p.gone {
		return p.Result
	}
	wf, err := w.argo.ArgoprojV1alpha1().Workflows(p.Namespace).Get(ctx, p.WorkflowName, metav1.GetOptions{})
	if err != nil {
		if !apierrors.IsNotFound(err) {
			w.logger.Warn("read finished workflow; recording what its metadata says", "err", err, "namespace", p.Namespace, "workflow", p.WorkflowName)
		}
		return p.Result
	}
	if string(wf.UID) != p.UID || !wf.Status.Fulfilled() {
		return p.Result
	}
	r := resultOf(wf, now)
	r.CronWorkflow = p.CronWorkflow
	return r
}

// markHandled remembers that the result of a run still there is recorded,
// so that its next updates are not recorded again.
func (w *Watcher) markHandled(p pendingRun) {
	if p.gone {
		return
	}
	w.mu.Lock()
	w.handled[p.UID] = p.run.Phase
	w.mu.Unlock()
}

func (w *Watcher) requeue(todo []queuedRun) {
	w.mu.Lock()
	w.pending = append(w.pending, todo...)
	w.mu.Unlock()
}

func (w *Watcher) cronAdded(obj any) {
	if cwf, ok := obj.(*wfv1.CronWorkflow); ok {
		w.mu.Lock()
		delete(w.deleted, state.Key{Namespace: cwf.Namespace, Name: cwf.Name})
		w.mu.Unlock()
	}
}

// cronUpdated evaluates at once a CronWorkflow the controller refused:
// the condition it writes at a tick stands for that tick only until its
// next write (docs/watchers.md), so a refused tick is recorded before a
// pass every EvaluateEvery could miss it.
func (w *Watcher) cronUpdated(obj any) {
	cwf, ok := obj.(*wfv1.CronWorkflow)
	if !ok || !slices.ContainsFunc(cwf.Status.Conditions, func(c wfv1.Condition) bool {
		return c.Status == metav1.ConditionTrue && (c.Type == wfv1.ConditionTypeSpecError || c.Type == wfv1.ConditionTypeSubmissionError)
	}) {
		return
	}
	w.mu.Lock()
	if w.refusedCrons == nil {
		w.refusedCrons = map[state.Key]bool{}
	}
	w.refusedCrons[state.Key{Namespace: cwf.Namespace, Name: cwf.Name}] = true
	w.mu.Unlock()
	select {
	case w.refused <- struct{}{}:
	default:
	}
}

func (w *Watcher) cronDeleted(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	if cwf, ok := obj.(*wfv1.CronWorkflow); ok {
		w.mu.Lock()
		w.deleted[state.Key{Namespace: cwf.Namespace, Name: cwf.Name}] = w.cfg.Now()
		w.mu.Unlock()
	}
}

// Schedule is the schedule of a watched CronWorkflow at now, for the job's
// view (an api.ScheduleOf); nil for a job the watcher does not read.
func (w *Watcher) Schedule(kind, namespace, name string, now time.Time) *api.Schedule {
	if kind != api.KindWorkflow {
		return nil
	}
	for _, lister := range w.crons {
		if cwf, err := lister.CronWorkflows(namespace).Get(name); err == nil {
			c := w.cronOf(cwf)
			if c.MaxRuntime.Auto {
				w.mu.Lock()
				c.Usual, c.UsualKnown = w.usual[state.Key{Namespace: namespace, Name: name}]
				w.mu.Unlock()
			}
			return scheduleView(c, now)
		}
	}
	return nil
}

// watched is one CronWorkflow with its runs.
type watched struct {
	cron cron
	runs []run
}

func (w *Watcher) snapshot() []watched {
	var out []watched
	for i, lister := range w.crons {
		cwfs, err := lister.List(labels.Everything())
		if err != nil {
			continue
		}
		for _, cwf := range cwfs {
			out = append(out, w.watchedOf(i, cwf))
		}
	}
	return out
}

// watchedOf is what the decisions need of cwf, watched by the i-th informers.
func (w *Watcher) watchedOf(i int, cwf *wfv1.CronWorkflow) watched {
	c := w.cronOf(cwf)
	objs, _ := w.runs[i].GetIndexer().ByIndex(byCron, cwf.Namespace+"/"+cwf.Name)
	var runs []run
	for _, obj := range objs {
		if o, ok := obj.(*runObject); ok && !o.deleting {
			runs = append(runs, o.run)
		}
	}
	if c.SpecErr == "" && !scheduledSince(cwf, runs, c.rules().From) {
		c.SpecErr = w.specs.check(cwf)
	}
	if c.Condition != nil && c.Condition.Phase == api.PhaseSpecError {
		c.Condition.StillRefused = w.specs.check(cwf) != ""
	}
	return watched{cron: c, runs: runs}
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

// jobOf is c's stored job, nil when there is none.
func jobOf(jobs map[state.Key]state.Job, c cron) *state.Job {
	if j, ok := jobs[state.Key{Namespace: c.Namespace, Name: c.Name}]; ok {
		return &j
	}
	return nil
}

// Evaluate records what is due now: missed and unsubmittable ticks, stuck
// runs, and forgets the jobs of CronWorkflows deleted long enough ago.
func (w *Watcher) Evaluate(ctx context.Context) {
	now := w.cfg.Now()
	jobs, err := w.jobs(ctx)
	if err != nil {
		w.logger.Warn("list jobs; evaluating later", "err", err)
		return
	}
	usual := map[state.Key]cronrules.Usual{}
	for _, cw := range w.snapshot() {
		if u, auto := w.recordDue(ctx, cw, jobOf(jobs, cw.cron), now); auto {
			usual[state.Key{Namespace: cw.cron.Namespace, Name: cw.cron.Name}] = u
		}
	}
	w.mu.Lock()
	w.usual = usual // the CronWorkflows no longer auto, or gone, drop out
	w.mu.Unlock()
	w.forget(ctx, jobs, now)
}

// recordDue records what is due now for cw, whose stored job is job (nil
// when there is none).
//
// With max-runtime auto it returns what the job usually does, read from
// job (no read of its own), and true.
func (w *Watcher) recordDue(ctx context.Context, cw watched, job *state.Job, now time.Time) (cronrules.Usual, bool) {
	if cw.cron.MaxRuntime.Auto {
		cw.cron.Usual, cw.cron.UsualKnown = cronrules.UsualOf(job), true
	}
	for _, r := range cronrules.Pending(due(cw.cron, cw.runs, job, now), job, now) {
		recorded, err := w.record(ctx, r, now)
		if err != nil {
			break // in order: the rest are due again at the next evaluation
		}
		if recorded != nil {
			job = recorded // the next result is ordered after this one
		}
	}
	return cw.cron.Usual, cw.cron.MaxRuntime.Auto
}

// evaluateRefused records what is due for the CronWorkflows the
// controller refused since the last call: only those, so that a cluster
// of refused CronWorkflows, each written at every tick, costs a read of
// each one's job rather than a pass over every job.
func (w *Watcher) evaluateRefused(ctx context.Context) {
	w.mu.Lock()
	keys := w.refusedCrons
	w.refusedCrons = nil
	w.mu.Unlock()
	now := w.cfg.Now()
	for key := range keys {
		for i, lister := range w.crons {
			cwf, err := lister.CronWorkflows(key.Namespace).Get(key.Name)
			if err != nil {
				continue
			}
			var job *state.Job
			switch j, err := w.store.Get(ctx, key); {
			case err == nil && !j.Forgotten():
				job = &j
			case err != nil && !errors.Is(err, state.ErrNotFound):
				w.logger.Warn("read job; evaluating later", "namespace", key.Namespace, "cronWorkflow", key.Name, "err", err)
				continue // the periodic pass
			}
			w.recordDue(ctx, w.watchedOf(i, cwf), job, now)
		}
	}
}

// Reconcile queues the finished runs whose result is not recorded (an
// event missed, a store that refused) and records them.
func (w *Watcher) Reconcile(ctx context.Context) {
	for _, informer := range w.runs {
		for _, obj := range informer.GetStore().List() {
			w.runSeen(obj, false)
		}
	}
	w.drain(ctx)
}

// record validates a result made from a watched object, as a callback's is,
// and applies it. It returns the job after it (nil when the result was
// invalid: logged and dropped), and an error only when the store failed.
func (w *Watcher) record(ctx context.Context, r api.Result, now time.Time) (*state.Job, error) {
	return w.recordAs(ctx, r, now, true)
}

// recordAs is record with the time the result counts as received, and
// whether a change it makes is news to announce at once (kick).
func (w *Watcher) recordAs(ctx context.Context, r api.Result, now time.Time, news bool) (*state.Job, error) {
	log := w.logger.With("namespace", r.Namespace, "job", r.JobName(), "workflow", r.WorkflowName, "phase", r.Phase)
	if cwf := w.cronWorkflow(r.Namespace, r.CronWorkflow); cwf != nil {
		var err error
		if r, err = cronrules.WithFailureThreshold(r, thresholdAnnotations(cwf)); err != nil {
			if w.warned.First(string(cwf.UID), cwf.ResourceVersion, api.AnnotationFailureThreshold) {
				log.Warn("ignoring annotation", "err", err)
			}
		}
	}
	if err := r.ValidateObserved(now); err != nil {
		log.Warn("ignoring a watched object that no result can be made of", "err", err)
		return nil, nil
	}
	r.Source = api.SourceArgo // the job's history says who saw the run
	rec, err := w.store.Record(ctx, r, now)
	if err != nil {
		log.Warn("record", "err", err)
		return nil, err
	}
	if rec.Outcome.Duplicate || rec.Outcome.Stale {
		return &rec.Job, nil
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
	return &rec.Job, nil
}

// thresholdAnnotations are where a CronWorkflow's failure threshold is
// annotated: its own metadata, else its workflowMetadata (which is how the
// callback gets it), so that either place works for both paths.
func thresholdAnnotations(cwf *wfv1.CronWorkflow) map[string]string {
	if _, ok := cwf.Annotations[api.AnnotationFailureThreshold]; ok || cwf.Spec.WorkflowMetadata == nil {
		return cwf.Annotations
	}
	return cwf.Spec.WorkflowMetadata.Annotations
}

// cronWorkflow is the watched CronWorkflow namespace/name, nil when there
// is none.
func (w *Watcher) cronWorkflow(namespace, name string) *wfv1.CronWorkflow {
	if name == "" {
		return nil
	}
	for _, lister := range w.crons {
		if cwf, err := lister.CronWorkflows(namespace).Get(name); err == nil {
			return cwf
		}
	}
	return nil
}

func (w *Watcher) forget(ctx context.Context, jobs map[state.Key]state.Job, now time.Time) {
	absent := cronrules.Absent(jobs, w.owns, func(key state.Key) bool { return w.cronWorkflow(key.Namespace, key.Name) != nil })
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
			reason := fmt.Sprintf("its CronWorkflow has been gone for more than %s", w.cfg.ForgetAfter)
			// Kept until its incident is closed (state.ForgetAt): the
			// Forgot hook makes the alarm start that at once.
			if err := state.Forget(ctx, w.store, key, now, reason); err != nil && !errors.Is(err, state.ErrNotFound) {
				w.logger.Warn("forget job", "err", err, "namespace", key.Namespace, "job", key.Name)
				continue
			}
			w.logger.Info("forgot job", "namespace", key.Namespace, "job", key.Name, "reason", reason)
			if w.hooks.Forgot != nil {
				w.hooks.Forgot(ctx, job, reason)
			}
		}
		w.mu.Lock()
		delete(w.deleted, key)
		w.mu.Unlock()
	}
}

// owns reports whether job is the job of a CronWorkflow the watcher reads:
// one of a namespace it watches whose latest run is named after a tick of
// a CronWorkflow of the job's name (a job of a WorkflowTemplate, or of a
// namespace as a whole, is not).
func (w *Watcher) owns(job state.Job) bool {
	if job.Kind != "" || job.Name == "" || !cronrules.Watches(w.cfg.Namespaces, job.Namespace) {
		return false
	}
	_, named := scheduledTick(job.Name, job.LastWorkflow)
	return named
}

// cronOf reads what the decisions need of a CronWorkflow, with the
// annotations' overrides (a bad one is logged and the default kept).
func (w *Watcher) cronOf(cwf *wfv1.CronWorkflow) cron {
	exprs := cwf.Spec.Schedules
	if cwf.Spec.Schedule != "" {
		exprs = []string{cwf.Spec.Schedule}
	}
	sched, err := schedule.Parse(exprs, cwf.Spec.Timezone)
	c := cron{
		Namespace:     cwf.Namespace,
		Name:          cwf.Name,
		Exprs:         exprs,
		Timezone:      cwf.Spec.Timezone,
		Created:       cwf.CreationTimestamp.Time,
		SpecChangedAt: specChangedAt(cwf.ManagedFields),
		Schedule:      sched,
		ScheduleErr:   err,
		Suspended:     cwf.Spec.Suspend,
		Stopped:       cwf.Status.Phase == wfv1.StoppedPhase,
		When:          cwf.Spec.When,
		Forbid:        cwf.Spec.ConcurrencyPolicy == wfv1.ForbidConcurrent,
		ScheduleUsed:  !cwf.IsUsingNewSchedule(),
		Grace:         w.annotatedDuration(cwf, AnnotationMissedGrace, w.cfg.MissedGrace, cronrules.CheckMissedGrace),
		MaxRuntime:    w.annotatedMaxRuntime(cwf),
	}
	if err != nil {
		c.SpecErr = err.Error()
	}
	written := statusWrittenAt(cwf.ManagedFields)
	for _, cond := range cwf.Status.Conditions {
		if cond.Status != metav1.ConditionTrue {
			continue
		}
		switch cond.Type {
		case wfv1.ConditionTypeSpecError:
			c.Condition = &condition{Phase: api.PhaseSpecError, Message: cond.Message, WrittenAt: written}
		case wfv1.ConditionTypeSubmissionError:
			c.Condition = &condition{Phase: api.PhaseSubmissionError, Message: cond.Message, WrittenAt: written}
		}
	}
	return c
}

// scheduledSince reports whether Argo's controller scheduled cwf since
// from (its spec's last change): it made a run, or says it did. Such a
// CronWorkflow was valid to the controller, which would write a SpecError
// condition at its next tick if it became invalid; only one it never
// scheduled needs validating here (validation is the costliest part of a
// pass, and most CronWorkflows run).
func scheduledSince(cwf *wfv1.CronWorkflow, runs []run, from time.Time) bool {
	if t := cwf.Status.LastScheduledTime; t != nil && !t.Time.Before(from) {
		return true
	}
	for _, r := range runs {
		if !r.Created.Before(from) {
			return true
		}
	}
	return false
}

// statusWrittenAt is the latest time a field manager changed the status.
func statusWrittenAt(fields []metav1.ManagedFieldsEntry) time.Time {
	var latest time.Time
	for _, f := range fields {
		if f.Time != nil && f.FieldsV1 != nil && bytes.Contains(f.FieldsV1.Raw, []byte(`"f:status"`)) && f.Time.After(latest) {
			latest = f.Time.Time
		}
	}
	return latest
}

func (w *Watcher) annotatedDuration(cwf *wfv1.CronWorkflow, key string, def time.Duration, check func(time.Duration) error) time.Duration {
	d, err := cronrules.AnnotatedDuration(cwf.Annotations, key, def, check)
	// Once per version of the object, not at every evaluation.
	if err != nil && w.warned.First(string(cwf.UID), cwf.ResourceVersion, key) {
		w.logger.Warn("ignoring annotation; the flag's value holds", "namespace", cwf.Namespace, "cronWorkflow", cwf.Name, "err", err)
	}
	return d
}

// annotatedMaxRuntime is cwf's max runtime: its annotation's (a duration,
// or auto), else the flag's.
func (w *Watcher) annotatedMaxRuntime(cwf *wfv1.CronWorkflow) cronrules.MaxRuntime {
	m, err := cronrules.AnnotatedMaxRuntime(cwf.Annotations, AnnotationMaxRuntime, w.cfg.MaxRuntime)
	if err != nil && w.warned.First(string(cwf.UID), cwf.ResourceVersion, AnnotationMaxRuntime) {
		w.logger.Warn("ignoring annotation; the flag's value holds", "namespace", cwf.Namespace, "cronWorkflow", cwf.Name, "err", err)
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

func runOf(m *metav1.PartialObjectMetadata) run {
	r := run{
		Name:        m.Name,
		UID:         string(m.UID),
		Phase:       wfv1.WorkflowPhase(m.Labels[common.LabelKeyPhase]),
		Created:     m.CreationTimestamp.Time,
		Completed:   m.Labels[common.LabelKeyCompleted] == "true",
		LastWritten: lastWritten(m.ManagedFields),
	}
	if t, err := time.Parse(time.RFC3339, m.Annotations[common.AnnotationKeyCronWfScheduledTime]); err == nil {
		r.ScheduledAt = t
	}
	return r
}

// resultOf is the result a completed Workflow's exit handler would have
// sent, with its failed nodes as Argo's {{workflow.failures}} lists them.
func resultOf(wf *wfv1.Workflow, now time.Time) api.Result {
	r := api.Result{
		Namespace:     wf.Namespace,
		WorkflowName:  wf.Name,
		UID:           string(wf.UID),
		CronWorkflow:  wf.Labels[common.LabelKeyCronWorkflow],
		Phase:         api.Phase(wf.Status.Phase),
		ScheduledTime: wf.Annotations[common.AnnotationKeyCronWfScheduledTime],
	}
	// Measured from its start, as {{workflow.duration}} is.
	started := wf.Status.StartedAt.Time
	if started.IsZero() {
		started = wf.CreationTimestamp.Time
	}
	started = started.Truncate(time.Second)
	r.CreatedAt = started.UTC().Format(time.RFC3339)
	finished := wf.Status.FinishedAt.Time
	if finished.IsZero() {
		finished = now // a later one is drain's to bound (notAfter)
	}
	r.DurationSeconds = max(finished.Sub(started).Seconds(), 0)
	for _, node := range wf.Status.Nodes {
		if node.Phase == wfv1.NodeFailed || node.Phase == wfv1.NodeError {
			r.Failures = append(r.Failures, api.Failure{
				DisplayName: node.DisplayName, Message: node.Message, TemplateName: node.TemplateName,
				Phase: string(node.Phase), FinishedAt: node.FinishedAt.UTC().Format(time.RFC3339),
			})
		}
	}
	sort.Slice(r.Failures, func(i, k int) bool { return r.Failures[i].FinishedAt < r.Failures[k].FinishedAt })
	if len(r.Failures) == 0 && r.Phase != api.PhaseSucceeded && wf.Status.Message != "" {
		r.Failures = []api.Failure{{DisplayName: wf.Name, Message: wf.Status.Message, Phase: string(wf.Status.Phase)}}
	}
	return r
}
