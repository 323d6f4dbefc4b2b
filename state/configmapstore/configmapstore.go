// Package configmapstore is the state.Store kept in a ConfigMap, shared by
// every replica through the API server.
package configmapstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/groupcommit"
	"github.com/batchlatch/batchlatch/state"
)

// MaxData is the API server's limit on the summed size of a
// ConfigMap's values.
const MaxData = 1 << 20

// Store keeps one key per job in one ConfigMap, each value the job's
// compact JSON.
//
// Writes go through a single committer goroutine that groups the operations
// queued while the previous update was in flight into one update (group
// commit); each caller still returns only after its own operation is in etcd.
// Every update carries the resourceVersion it was computed from; on a
// conflict (another replica wrote) the batch is re-applied to the fresh
// object. Reads are served from the last object seen, refreshed from the API
// server when older than RefreshAfter, so that the alarm loop keeps working
// from the last known state while the API server is away.
type Store struct {
	client       corev1client.ConfigMapInterface
	name         string
	logger       *slog.Logger
	maxBatch     int
	maxData      int
	maxSilences  int
	callTimeout  time.Duration
	refreshAfter time.Duration

	ops    chan *op
	cancel context.CancelFunc
	done   sync.WaitGroup

	mu      sync.Mutex             // guards the fields below
	cm      *corev1.ConfigMap      // last object seen; nil until loaded
	jobs    map[string]state.Job   // decoded cm.Data, without unreadable keys
	corrupt map[string]*unreadable // keys whose value cannot be decoded
	// inherited: last readable copies a journal handed over with an
	// unreadable value it moved here (see inherit).
	inherited map[string]*unreadable
	silences  []api.Silence // decoded cm.Data[silencesKey]
	size      int           // summed size of cm.Data's values
	loadedAt  time.Time

	// A journal's only (see journalRole): nil for a shard.
	journal   *journalRole
	deleted   map[string]bool // keys whose tombstone the journal holds
	marks     map[int]string  // decoded cm.Data[compactedKey]
	restoring sync.Mutex      // one write-back of a journal found gone at a time
	// compactFailing: the last compaction failed. Only the committer (and
	// Close, after it stopped) compacts, so it needs no lock.
	compactFailing bool
	lastMove       time.Time // the last compaction that worked (same access)
}

// Options tunes a Store; zero values take the defaults.
type Options struct {
	// MaxBatch bounds the operations in one update (default 512); 1 makes
	// one update per callback, the baseline the benchmark compares against.
	MaxBatch int
	// MaxData bounds the summed size of the values (default MaxData).
	MaxData int
	// CallTimeout bounds each API call (default 5s).
	CallTimeout time.Duration
	// RefreshAfter is how old the cached object may get before a read
	// fetches it again (default 1s).
	RefreshAfter time.Duration
	// ReadyWithin is how recent an answer of the API server a Sharded
	// store's Ready takes as its own (default DefaultReadyWithin).
	ReadyWithin time.Duration
	// CompactAbove and CompactAfter tune a Sharded store's journals
	// (defaults DefaultCompactAbove and DefaultCompactAfter).
	CompactAbove int
	CompactAfter time.Duration
}

type opKind int

const (
	opRecord opKind = iota
	opDelete
	opAddSilence
	opDeleteSilence
	// opMerge brings in copies of jobs and silences held elsewhere (moved
	// from another ConfigMap): state.Merge decides for each job held here
	// too; silences are joined by ID.
	opMerge
	// opCompact writes a journal's entries into their home shard.
	opCompact
	// opCompacted removes from a journal the entries its home shard now
	// holds.
	opCompacted
	// opRemoveUnchanged removes the entries whose values are still those
	// given (moved elsewhere meanwhile).
	opRemoveUnchanged
	// opEdit applies a state.Edit to a job.
	opEdit
)

// unreadable is a key whose value cannot be decoded (edited by hand?): it
// is left alone until someone fixes or deletes it, and meanwhile the job is
// listed from the last readable copy seen, so that it keeps alerting.
type unreadable struct {
	value  string     // what the ConfigMap holds
	reason string     // why it cannot be read, and where
	last   *state.Job // the last readable copy seen; nil: none (a restart)
}

// job is the job as listed: its last readable copy, or its identity only,
// marked unreadable.
func (u *unreadable) job(key string) state.Job {
	var j state.Job
	if u.last != nil {
		j = *u.last
	}
	k := state.ParseKey(key)
	j.Namespace, j.Name, j.Kind = k.Namespace, k.Name, k.Kind
	j.Unreadable = u.reason
	return j
}

// newer is the newer of two last readable copies (state.Merge), either
// may be nil.
func newer(a, b *state.Job) *state.Job {
	switch {
	case a == nil:
		return b
	case b == nil:
		return a
	}
	m := state.Merge(*a, *b)
	return &m
}

// silencesKey holds the silences, as a JSON array. No job's key can be it:
// a namespace does not start with '_'.
const silencesKey = "_silences"

type op struct {
	kind          opKind
	result        api.Result
	receivedAt    time.Time
	key           state.Key
	edit          state.Edit        // opEdit
	silence       api.Silence       // opAddSilence; opDeleteSilence: its ID
	now           time.Time         // silence operations: what has ended
	merge         []state.Job       // opMerge
	mergeSilences []api.Silence     // opMerge
	entries       map[string]string // opCompact, opCompacted: key -> journal value; opRemoveUnchanged: key -> value
	shard         int               // opCompacted: the home shard's index
	version       string            // opCompact: the journal's resourceVersion entries were read at; opCompacted: the shard's holding them
	// deadline is the caller's: conflicts are retried until it passes.
	deadline time.Time
	done     chan opDone
}

// defaultOpTimeout bounds an operation whose caller set no deadline.
const defaultOpTimeout = 30 * time.Second

type opDone struct {
	rec state.Recorded
	err error
}

// TuneClient sets what a Store's client needs: client-go's default of 5
// QPS would throttle a burst of callbacks, and each shard of a Sharded store
// commits on its own, so the limit must let every shard commit at once many
// times a second (the API server's priority and fairness still protects it).
func TuneClient(c *rest.Config) *rest.Config {
	c = rest.CopyConfig(c)
	c.QPS, c.Burst = 1000, 2000
	return c
}

// New returns a store on ConfigMap name, reached through client
// (a ConfigMapInterface of the service's own namespace). It returns at once:
// the ConfigMap is loaded, or created when missing, in the background, with
// retries, and Ready reports state.ErrUnavailable until then.
func New(client corev1client.ConfigMapInterface, name string, opts Options, logger *slog.Logger) *Store {
	return newStore(client, name, opts, logger, role{})
}

// role is what a Sharded store's part is besides a Store of its own.
type role struct {
	// journal makes it a journal of the shards (nil: not one).
	journal *journalRole
	// loadAfter, when not nil, holds the first load (which creates a
	// missing ConfigMap) until it is closed: the layout must be settled
	// before a shard is created.
	loadAfter <-chan struct{}
	// maxSilences bounds the silences in force it holds (default
	// state.MaxSilences).
	maxSilences int
}

// newStore is New, in a role.
func newStore(client corev1client.ConfigMapInterface, name string, opts Options, logger *slog.Logger, r role) *Store {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 512
	}
	if opts.MaxData <= 0 {
		opts.MaxData = MaxData
	}
	if opts.CallTimeout <= 0 {
		opts.CallTimeout = 5 * time.Second
	}
	if opts.RefreshAfter <= 0 {
		opts.RefreshAfter = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Store{
		client:       client,
		name:         name,
		logger:       logger.With("component", "configmap-store", "configmap", name),
		maxBatch:     opts.MaxBatch,
		maxData:      opts.MaxData,
		callTimeout:  opts.CallTimeout,
		refreshAfter: opts.RefreshAfter,
		ops:          make(chan *op, 4096),
		cancel:       cancel,
		jobs:         map[string]state.Job{},
		corrupt:      map[string]*unreadable{},
		inherited:    map[string]*unreadable{},
		journal:      r.journal,
		maxSilences:  cmp.Or(r.maxSilences, state.MaxSilences),
		deleted:      map[string]bool{},
		marks:        map[int]string{},
	}
	s.done.Go(func() {
		if r.loadAfter != nil {
			select {
			case <-r.loadAfter:
			case <-ctx.Done():
				return
			}
		}
		s.loadUntilDone(ctx)
	})
	s.done.Go(func() { s.commitLoop(ctx) })
	return s
}

// loadUntilDone loads the ConfigMap at start, retrying with backoff while the
// API server cannot be reached.
func (s *Store) loadUntilDone(ctx context.Context) {
	untilDone(ctx, s.logger, "load state", func() (bool, error) {
		err := s.refresh(ctx)
		return err == nil, err
	})
}

// untilDone calls try until it reports done, waiting after each failure
// (logged as what failed) from 200 ms, doubling up to 10 s; false when ctx
// ended first.
func untilDone(ctx context.Context, logger *slog.Logger, what string, try func() (bool, error)) bool {
	backoff := 200 * time.Millisecond
	for {
		done, err := try()
		if done {
			return true
		}
		logger.Warn(what+"; retrying", "err", err, "in", backoff)
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 10*time.Second)
	}
}

// refresh fetches the ConfigMap, creating it when missing, and adopts it.
func (s *Store) refresh(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.callTimeout)
	defer cancel()
	cm, err := s.client.Get(ctx, s.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		cm, err = s.client.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{
				Name:   s.name,
				Labels: stateLabels,
			},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			cm, err = s.client.Get(ctx, s.name, metav1.GetOptions{})
		}
	}
	if err != nil {
		return fmt.Errorf("%w: get configmap %s: %v", state.ErrUnavailable, s.name, err)
	}
	if s.journal != nil {
		if cm, err = s.replaced(ctx, cm); err != nil {
			return err
		}
	}
	s.adopt(cm)
	return nil
}

// adopt makes cm the last object seen, decoding only the values that changed.
// A response that is older than the object already seen (a read that was
// overtaken by an update) is ignored.
func (s *Store) adopt(cm *corev1.ConfigMap) {
	// Handed to the home shards once s.mu is released: a shard's lock is
	// never taken under a journal's.
	var handOver map[string]*unreadable
	defer func() {
		for key, u := range handOver {
			s.journal.homes[s.journal.shardOf(key)].inherit(key, u)
		}
	}()
	s.mu.Lock()
	defer s.mu.Unlock()
	var old map[string]string
	if s.cm != nil {
		if olderVersion(cm.ResourceVersion, s.cm.ResourceVersion) {
			return
		}
		old = s.cm.Data
	}
	for key := range s.jobs {
		if _, ok := cm.Data[key]; !ok {
			delete(s.jobs, key)
		}
	}
	for key, u := range s.corrupt {
		if _, ok := cm.Data[key]; !ok {
			delete(s.corrupt, key)
			if s.journal != nil && u.last != nil {
				// Moved into its shard (or removed by hand): the shard
				// goes on listing the copy this journal saw.
				if handOver == nil {
					handOver = map[string]*unreadable{}
				}
				handOver[key] = u
			}
		}
	}
	for key := range s.deleted {
		if _, ok := cm.Data[key]; !ok {
			delete(s.deleted, key)
		}
	}
	if s.journal != nil {
		s.marks = decodeMarks(cm.Data[compactedKey])
	}
	s.size = 0
	if value, ok := cm.Data[silencesKey]; !ok {
		s.silences = nil
	} else if prev, same := old[silencesKey]; !same || prev != value {
		silences, err := decodeSilences(value)
		if err != nil {
			s.logger.Error("stored silences are unreadable; leaving them alone until fixed", "err", err, "key", silencesKey)
		}
		s.silences = silences
	}
	for key, value := range cm.Data {
		s.size += len(value)
		if strings.HasPrefix(key, "_") { // silences, marks: not jobs
			continue
		}
		if prev, ok := old[key]; ok && prev == value {
			continue
		}
		if s.journal != nil && value == tombstone {
			s.deleted[key] = true
			delete(s.jobs, key)
			delete(s.corrupt, key)
			continue
		}
		delete(s.deleted, key)
		job, err := state.DecodeJob(key, value)
		if err != nil {
			s.unreadableValue(key, value, err)
			continue
		}
		delete(s.corrupt, key)
		delete(s.inherited, key)
		s.jobs[key] = job
	}
	s.cm = cm
	s.loadedAt = time.Now()
}

// unreadableValue notes that key's value cannot be decoded, keeping the
// last readable copy seen: the job's value before, or what a journal handed
// over with this value. s.mu is held.
func (s *Store) unreadableValue(key, value string, err error) {
	u := s.corrupt[key]
	if u == nil {
		u = &unreadable{}
		s.corrupt[key] = u
	}
	if prev, ok := s.jobs[key]; ok {
		u.last = newer(u.last, &prev)
		delete(s.jobs, key)
	}
	if h := s.inherited[key]; h != nil && h.value == value {
		u.last = newer(u.last, h.last)
		delete(s.inherited, key)
	}
	if u.value == value {
		return
	}
	u.value, u.reason = value, fmt.Sprintf("%v (in ConfigMap %s)", err, s.name)
	if u.last != nil {
		s.logger.Error("stored job is unreadable; it alerts from its last readable copy until its value is fixed or deleted", "err", err, "key", key, "lastResultAt", u.last.LastResultAt)
	} else {
		s.logger.Error("stored job is unreadable and no readable copy of it is known; leaving it alone until it is fixed or deleted", "err", err, "key", key)
	}
}

// inherit takes the last readable copy of a key whose unreadable value a
// journal moved here, for when this shard reads that value. (One this shard
// never reads, the value having been removed from the journal by hand,
// stays until the key's value here is readable: one job's copy.)
func (s *Store) inherit(key string, u *unreadable) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if held := s.corrupt[key]; held != nil && held.value == u.value {
		held.last = newer(held.last, u.last)
		return
	}
	s.inherited[key] = &unreadable{value: u.value, last: u.last}
}

// olderVersion reports whether resourceVersion a is older than b. Resource
// versions are opaque to clients in general, but etcd-backed API servers
// issue increasing integers; anything else is never called older.
func olderVersion(a, b string) bool {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	return errA == nil && errB == nil && x < y
}

// decodeSilences reads the stored silences.
func decodeSilences(value string) ([]api.Silence, error) {
	var silences []api.Silence
	if err := json.Unmarshal([]byte(value), &silences); err != nil {
		return nil, fmt.Errorf("%w: key %s: %v", state.ErrCorrupt, silencesKey, err)
	}
	return silences, nil
}

// AddSilence implements state.Store.
func (s *Store) AddSilence(ctx context.Context, silence api.Silence, now time.Time) error {
	_, err := s.submit(ctx, &op{kind: opAddSilence, silence: silence, now: now})
	return err
}

// DeleteSilence implements state.Store.
func (s *Store) DeleteSilence(ctx context.Context, id string, now time.Time) error {
	_, err := s.submit(ctx, &op{kind: opDeleteSilence, silence: api.Silence{ID: id}, now: now})
	return err
}

// Silences implements state.Store.
func (s *Store) Silences(ctx context.Context) ([]api.Silence, error) {
	if err := s.freshen(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.silences), nil
}

// merge brings in jobs and silences held elsewhere (see opMerge), durably;
// it fails with state.ErrFull when they do not fit.
func (s *Store) merge(ctx context.Context, jobs []state.Job, silences []api.Silence) error {
	_, err := s.submit(ctx, &op{kind: opMerge, merge: jobs, mergeSilences: silences})
	return err
}

// Record implements state.Store.
func (s *Store) Record(ctx context.Context, r api.Result, receivedAt time.Time) (state.Recorded, error) {
	return s.submit(ctx, &op{kind: opRecord, result: r, receivedAt: receivedAt, key: state.KeyOf(r)})
}

// Delete implements state.Store.
func (s *Store) Delete(ctx context.Context, key state.Key) error {
	_, err := s.submit(ctx, &op{kind: opDelete, key: key})
	return err
}

// Edit implements state.Store.
func (s *Store) Edit(ctx context.Context, key state.Key, edit state.Edit) error {
	_, err := s.submit(ctx, &op{kind: opEdit, key: key, edit: edit})
	return err
}

func (s *Store) submit(ctx context.Context, o *op) (state.Recorded, error) {
	o.done = make(chan opDone, 1)
	if deadline, ok := ctx.Deadline(); ok {
		o.deadline = deadline
	} else {
		o.deadline = time.Now().Add(defaultOpTimeout)
	}
	select {
	case s.ops <- o:
	case <-ctx.Done():
		return state.Recorded{}, fmt.Errorf("%w: %v", state.ErrUnavailable, ctx.Err())
	}
	select {
	case d := <-o.done:
		return d.rec, d.err
	case <-ctx.Done():
		// The operation may still be committed; a retried callback is then
		// answered as a duplicate.
		return state.Recorded{}, fmt.Errorf("%w: %v", state.ErrUnavailable, ctx.Err())
	}
}

// commitLoop takes every operation queued while the previous update was in
// flight and commits them together.
func (s *Store) commitLoop(ctx context.Context) {
	lastBatch := 0
	// A journal moves everything it holds after a compactAfter in which it
	// moved nothing (a steady trickle would otherwise keep jobs in it until
	// it fills; under load its size moves them), also before its first
	// update: it may have been loaded holding jobs.
	var moveAll <-chan time.Time
	if s.journal != nil {
		ticker := time.NewTicker(s.journal.compactAfter)
		defer ticker.Stop()
		moveAll = ticker.C
	}
	for {
		var first *op
		select {
		case <-ctx.Done():
			return
		case <-moveAll:
			if s.holdsJobs() && time.Since(s.lastMove) >= s.journal.compactAfter {
				s.compactAll(ctx)
			}
			continue
		case first = <-s.ops:
		}
		batch := groupcommit.Gather(s.ops, first, lastBatch, s.maxBatch, nil)
		lastBatch = len(batch)
		s.commit(ctx, batch)
		if s.journal != nil {
			s.compactOver(ctx)
		}
	}
}

// Backoff between re-applications of a batch after a conflict: another
// replica wrote first, and both committers re-reading at once would collide
// again.
const (
	conflictBackoffMin = 4 * time.Millisecond
	conflictBackoffMax = 250 * time.Millisecond
)

// commit applies batch to the latest object and updates it; every operation
// is answered.
//
// A conflict (another replica wrote first) is re-applied to a fresh read,
// after a jittered backoff, for as long as the operations' deadlines allow;
// an operation whose deadline passes is answered state.ErrUnavailable and leaves
// the batch. An update that the API server refuses for what it would hold
// (too large, invalid) is retried in halves, so that only the operation at
// fault fails: one item's failure never fails the others in its batch.
func (s *Store) commit(ctx context.Context, batch []*op) {
	backoff := conflictBackoffMin
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if batch = dropExpired(batch, time.Now()); len(batch) == 0 {
				return
			}
		}
		s.mu.Lock()
		base := s.cm
		s.mu.Unlock()
		if base == nil || attempt > 0 {
			if err := s.refresh(ctx); err != nil {
				answerAll(batch, opDone{err: err})
				return
			}
			s.mu.Lock()
			base = s.cm
			s.mu.Unlock()
		}
		next, answers := s.applyBatch(ctx, base, batch)
		if next == nil { // nothing to write
			answer(batch, answers)
			return
		}
		if len(next.ManagedFields) > 0 {
			// batchlatch is the state's only writer: tracking each of its
			// hundreds of keys' owner would cost the API server a third of
			// every update. One entry, empty, clears them, and the API
			// server tracks no fields of an object that has none.
			next.ManagedFields = []metav1.ManagedFieldsEntry{{}}
		}
		callCtx, cancel := context.WithTimeout(ctx, s.callTimeout)
		updated, err := s.client.Update(callCtx, next, metav1.UpdateOptions{})
		cancel()
		switch {
		case err == nil:
			s.adopt(updated)
			answer(batch, answers)
			return
		case apierrors.IsConflict(err) || apierrors.IsNotFound(err):
			// Another replica wrote first, or the object was deleted under
			// us (the refresh recreates it): re-apply to a fresh read.
			if attempt > 0 {
				wait := backoff/2 + rand.N(backoff/2)
				backoff = min(2*backoff, conflictBackoffMax)
				select {
				case <-ctx.Done():
					answerAll(batch, opDone{err: fmt.Errorf("%w: store closed", state.ErrUnavailable)})
					return
				case <-time.After(wait):
				}
			}
			continue
		case refusedContent(err) && len(batch) > 1:
			half := len(batch) / 2
			s.commit(ctx, batch[:half])
			s.commit(ctx, batch[half:])
			return
		case refusedContent(err) && tooLarge(err):
			err = fmt.Errorf("%w: update configmap %s: %v", state.ErrFull, s.name, err)
		case refusedContent(err):
			err = fmt.Errorf("update configmap %s: the API server refused it: %v", s.name, err)
		default:
			err = fmt.Errorf("%w: update configmap %s: %v", state.ErrUnavailable, s.name, err)
		}
		answerAll(batch, opDone{err: err})
		return
	}
}

// dropExpired answers the operations whose deadline has passed and returns
// the others.
func dropExpired(batch []*op, now time.Time) []*op {
	kept := batch[:0:0]
	for _, o := range batch {
		if now.After(o.deadline) {
			o.done <- opDone{err: fmt.Errorf("%w: deadline passed while other writers kept the ConfigMap busy", state.ErrUnavailable)}
			continue
		}
		kept = append(kept, o)
	}
	return kept
}

// refusedContent reports whether the API server refused an update for what
// the object would hold, rather than for when or how it was sent.
func refusedContent(err error) bool {
	return apierrors.IsInvalid(err) || apierrors.IsRequestEntityTooLargeError(err)
}

// tooLarge reports whether a refused update was too large.
func tooLarge(err error) bool {
	if apierrors.IsRequestEntityTooLargeError(err) {
		return true
	}
	var status apierrors.APIStatus
	if errors.As(err, &status) && status.Status().Details != nil {
		for _, cause := range status.Status().Details.Causes {
			if cause.Type == metav1.CauseTypeTooLong {
				return true
			}
		}
	}
	return false
}

func answer(batch []*op, answers []opDone) {
	for i, o := range batch {
		o.done <- answers[i]
	}
}

func answerAll(batch []*op, d opDone) {
	for _, o := range batch {
		o.done <- d
	}
}

// loaded reports whether the ConfigMap was read at least once.
func (s *Store) loaded() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cm != nil
}

// recentlyLoaded reports whether the API server answered for the ConfigMap
// within refreshAfter.
func (s *Store) recentlyLoaded() bool { return s.loadedWithin(s.refreshAfter) }

// loadedWithin reports whether the object was loaded (read or written)
// within d.
func (s *Store) loadedWithin(d time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cm != nil && time.Since(s.loadedAt) <= d
}

// freshen refreshes the cached object when it is older than refreshAfter.
// When the API server cannot be reached the last known object serves;
// before anything was loaded it returns state.ErrUnavailable.
func (s *Store) freshen(ctx context.Context) error {
	if !s.recentlyLoaded() {
		if err := s.refresh(ctx); err != nil {
			s.logger.Debug("refresh state; serving the last known", "err", err)
		}
	}
	if !s.loaded() {
		return fmt.Errorf("%w: configmap %s not loaded yet", state.ErrUnavailable, s.name)
	}
	return nil
}

// lookup finds key in the last object seen: found is false when it holds
// no value for it; a journal's tombstone is found, as state.ErrNotFound, and
// an unreadable value as state.ErrCorrupt.
func (s *Store) lookup(key string) (job state.Job, found bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, bad := s.corrupt[key]; bad {
		return state.Job{}, true, fmt.Errorf("%w: key %s", state.ErrCorrupt, key)
	}
	if s.deleted[key] {
		return state.Job{}, true, state.ErrNotFound
	}
	job, found = s.jobs[key]
	return job, found, nil
}

// Get implements state.Store.
func (s *Store) Get(ctx context.Context, key state.Key) (state.Job, error) {
	if err := s.freshen(ctx); err != nil {
		return state.Job{}, err
	}
	job, found, err := s.lookup(key.String())
	if !found {
		return state.Job{}, state.ErrNotFound
	}
	return job, err
}

// List implements state.Store. An unreadable key is listed from its last
// readable copy, marked (state.Job.Unreadable).
func (s *Store) List(ctx context.Context) ([]state.Job, error) {
	if err := s.freshen(ctx); err != nil {
		return nil, err
	}
	s.mu.Lock()
	out := make([]state.Job, 0, len(s.jobs)+len(s.corrupt))
	for _, j := range s.jobs {
		out = append(out, j)
	}
	for key, u := range s.corrupt {
		out = append(out, u.job(key))
	}
	s.mu.Unlock()
	state.SortByKey(out)
	return out, nil
}

// Ready implements Store: the API server answered for the ConfigMap within
// the last RefreshAfter, or answers now.
func (s *Store) Ready(ctx context.Context) error {
	if s.recentlyLoaded() {
		return nil
	}
	return s.refresh(ctx)
}

// Close implements Store: it stops the background goroutines. Operations
// still queued are answered with state.ErrUnavailable; a journal then moves
// its jobs into their shards.
func (s *Store) Close() error {
	s.cancel()
	s.done.Wait()
	for {
		select {
		case o := <-s.ops:
			o.done <- opDone{err: fmt.Errorf("%w: store closed", state.ErrUnavailable)}
		default:
			s.finalCompaction()
			return nil
		}
	}
}

// finalCompaction leaves a closing journal's jobs in their shards, so that
// the shards alone show the state (to kubectl, and to a release without
// journals), within CallTimeout: what it cannot move stays in the journal,
// where the next replica finds it.
func (s *Store) finalCompaction() {
	if s.journal == nil || !s.holdsJobs() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.callTimeout)
	defer cancel()
	s.compactAll(ctx)
}
