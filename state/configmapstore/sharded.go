package configmapstore

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// Sharded keeps the jobs in n ConfigMaps, <name>-0 … <name>-<n-1>, each job
// in the shard its key hashes to (FNV-1a of Key.String, modulo n), one
// readable key per job as in a single Store. Each shard is a Store with its
// own group commit: updates of different shards go out in parallel, and each
// rewrites only its shard. The silences live in ConfigMaps of their own (see
// SilenceShards).
//
// Jobs' changes go through journals first, <name>-journal-0 … (one for
// every eight shards, journal i for the shards whose index modulo their
// count is i; see journalRole): a callback then rewrites a share of a small
// ConfigMap rather than of its 200 KiB shard, and the journal moves jobs
// into their shard many at a time.
//
// ConfigMap <name> itself (the whole state before there were shards) holds
// the layout, {"shards":n} under the key "_layout". A release that finds jobs
// there moves them into their shards before it serves (Ready reports
// state.ErrUnavailable meanwhile), and removes them from <name> only once
// every shard holds them; so a replica killed half-way, or two replicas
// moving at once, lose nothing and count nothing twice: a job found in both
// places is merged (state.Merge). It looks again every SweepEvery, for jobs an
// older release still running (a rolling upgrade) wrote there. The number of
// shards is fixed once the layout is written: a replica configured with
// another refuses to start, naming both.
//
// Methods are safe for concurrent use; Close stops every shard.
type Sharded struct {
	client   corev1client.ConfigMapInterface
	name     string
	shards   []*Store
	journals []*Store
	silences silenceShards
	logger   *slog.Logger
	sweep    time.Duration
	// readyWithin: see Options.ReadyWithin.
	readyWithin time.Duration

	prepared atomic.Bool
	failed   atomic.Pointer[error] // a layout this release must not touch
	cancel   context.CancelFunc
	done     sync.WaitGroup
}

// layoutKey holds the layout in ConfigMap <name>.
const layoutKey = "_layout"

// layout is what layoutKey holds.
type layout struct {
	Shards int `json:"shards"`
}

// DefaultSweepEvery is how often a Sharded store looks for jobs written to
// the old layout after it moved them.
const DefaultSweepEvery = time.Minute

// MaxShards bounds the shard count: each is a ConfigMap the Role names.
const MaxShards = 256

// ShardName is the name of shard i of the state ConfigMap name.
func ShardName(name string, i int) string { return name + "-" + strconv.Itoa(i) }

// NewSharded returns a store on n shards of ConfigMap name (see Sharded),
// each a Store with opts. It returns at once; the layout is read (and the
// jobs moved, once) in the background.
func NewSharded(client corev1client.ConfigMapInterface, name string, n int, opts Options, logger *slog.Logger) *Sharded {
	n = min(max(n, 1), MaxShards)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Sharded{
		client: client,
		name:   name,
		logger: logger.With("component", "configmap-store", "configmap", name, "shards", n),
		sweep:  DefaultSweepEvery,
		cancel: cancel,

		readyWithin: cmp.Or(opts.ReadyWithin, DefaultReadyWithin),
	}
	settled := make(chan struct{})
	for i := range n {
		s.shards = append(s.shards, newStore(client, ShardName(name, i), opts, logger, role{loadAfter: settled}))
	}
	journal := &journalRole{
		homes:        s.shards,
		compactAbove: cmp.Or(opts.CompactAbove, DefaultCompactAbove),
		compactAfter: cmp.Or(opts.CompactAfter, DefaultCompactAfter),
	}
	for i := range JournalCount(n) {
		s.journals = append(s.journals, newStore(client, JournalName(name, i), opts, logger, role{journal: journal, loadAfter: settled}))
	}
	for i := range SilenceShards {
		s.silences.stores = append(s.silences.stores, newStore(client, SilencesName(name, i), opts, logger, role{loadAfter: settled, maxSilences: SilencesPerShard}))
	}
	s.done.Go(func() { s.prepare(ctx, settled) })
	return s
}

// shardOf is the shard that holds key.
func (s *Sharded) shardOf(key state.Key) *Store { return s.shards[ShardIndex(key, len(s.shards))] }

// journalOf is the journal that key's changes go through.
func (s *Sharded) journalOf(key state.Key) *Store {
	return s.journals[ShardIndex(key, len(s.shards))%len(s.journals)]
}

// ShardIndex is the shard of n that holds key: FNV-1a of its stored form,
// stable across releases and replicas.
func ShardIndex(key state.Key, n int) int {
	return shardIndexOf(key.String(), n)
}

// prepare settles the layout (and only then lets the shards load, which
// creates those missing), moves jobs from the old layout, and then keeps
// sweeping it.
func (s *Sharded) prepare(ctx context.Context, settled chan struct{}) {
	prepared := untilDone(ctx, s.logger, "prepare state shards", func() (bool, error) {
		var err error
		select {
		case <-settled:
		default:
			if err = s.settleLayout(ctx); err == nil {
				close(settled)
			}
		}
		if err == nil {
			err = s.moveOldLayout(ctx)
		}
		if err == nil {
			err = s.moveShardSilences(ctx)
		}
		var refused refusedLayout
		if errors.As(err, &refused) { // not this release's to touch: stop
			s.failed.Store(&err)
			s.logger.Error("state layout", "err", err)
			return true, nil
		}
		return err == nil, err
	})
	if !prepared || s.failed.Load() != nil {
		return
	}
	s.prepared.Store(true)
	ticker := time.NewTicker(s.sweep)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			if err := s.moveOldLayout(ctx); err != nil {
				s.logger.Warn("sweep the old state layout", "err", err)
			}
			if err := s.moveShardSilences(ctx); err != nil {
				s.logger.Warn("sweep the silences out of shard 0", "err", err)
			}
		}
	}
}

// refusedLayout: the layout on the API server is not this store's.
type refusedLayout struct{ error }

// settleLayout makes ConfigMap <name> hold the layout, checking it against
// this store's when it is there. When it is not (a fresh install, one from
// before the shards, or a layout key removed by hand) the shards that
// exist tell: none, or as many as this store's, and the layout is written;
// another number is refused, so that a replica configured with another
// shard count never takes the state for a fresh install and serves only the
// jobs that hash alike. It runs before any shard is loaded (and created),
// and writes the layout before any job is moved from the old layout.
func (s *Sharded) settleLayout(ctx context.Context) error {
	want, _ := json.Marshal(layout{Shards: len(s.shards)})
	for {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cm, err := s.client.Get(callCtx, s.name, metav1.GetOptions{})
		cancel()
		if apierrors.IsNotFound(err) {
			cm, err = nil, nil
		}
		if err != nil {
			return fmt.Errorf("%w: get configmap %s: %v", state.ErrUnavailable, s.name, err)
		}
		if cm != nil {
			if v, ok := cm.Data[layoutKey]; ok {
				var l layout
				if err := json.Unmarshal([]byte(v), &l); err != nil || l.Shards != len(s.shards) {
					return refusedLayout{fmt.Errorf("ConfigMap %s says the state is in %s shards, this replica is configured for %d: set the shard count back (changing it is not supported yet)", s.name, v, len(s.shards))}
				}
				return nil
			}
		}
		found := 0
		if !holdsJobs(cm) {
			// (One that does is a state from before the shards whose move
			// into them was cut short: the shards hold part of it.)
			found, err = s.existingShards(ctx)
			var refused refusedLayout
			if found != 0 || errors.As(err, &refused) {
				// A replica writes the layout before it creates a shard or
				// a journal, so another one starting beside this one may
				// have written it, and begun creating its shards, since
				// the read above: look again before refusing.
				changed, rerr := s.changedSince(ctx, cm)
				if rerr != nil {
					return rerr
				}
				if changed {
					continue
				}
			}
			if err != nil {
				return err
			}
		}
		switch found {
		case 0:
		case len(s.shards):
			s.logger.Warn("the state's layout was missing (key "+layoutKey+" of ConfigMap "+s.name+"): the shards that exist say it, writing it back", "shards", found)
		default:
			return refusedLayout{fmt.Errorf("ConfigMap %s holds no layout (key %s), but %s: the state is in %d shards, this replica is configured for %d: set the shard count to %d (or write the layout back: %s: {\"shards\":%d})",
				s.name, layoutKey, describeShards(s.name, found), found, len(s.shards), found, layoutKey, found)}
		}
		callCtx, cancel = context.WithTimeout(ctx, 10*time.Second)
		if cm == nil {
			_, err = s.client.Create(callCtx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: s.name, Labels: stateLabels},
				Data:       map[string]string{layoutKey: string(want)},
			}, metav1.CreateOptions{})
		} else {
			next := cm.DeepCopy()
			if next.Data == nil {
				next.Data = map[string]string{}
			}
			next.Data[layoutKey] = string(want)
			_, err = s.client.Update(callCtx, next, metav1.UpdateOptions{})
		}
		cancel()
		switch {
		case apierrors.IsAlreadyExists(err), apierrors.IsConflict(err):
			continue // another replica wrote first: check what it wrote
		case err != nil:
			return fmt.Errorf("%w: write the layout into configmap %s: %v", state.ErrUnavailable, s.name, err)
		}
		return nil
	}
}

// changedSince reports whether ConfigMap <name> is no longer cm (nil: it
// did not exist): created, changed or deleted since.
func (s *Sharded) changedSince(ctx context.Context, cm *corev1.ConfigMap) (bool, error) {
	callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	now, err := s.client.Get(callCtx, s.name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return cm != nil, nil
	case err != nil:
		return false, fmt.Errorf("%w: get configmap %s: %v", state.ErrUnavailable, s.name, err)
	}
	return cm == nil || now.ResourceVersion != cm.ResourceVersion, nil
}

// holdsJobs reports whether cm (nil: none) holds jobs: it is a state from
// before the shards.
func holdsJobs(cm *corev1.ConfigMap) bool {
	if cm == nil {
		return false
	}
	for key := range cm.Data {
		if !strings.HasPrefix(key, "_") {
			return true
		}
	}
	return false
}

// existingShards counts the shards of the state that exist, <name>-0 on:
// 0 for a state that has none, and no journal either.
func (s *Sharded) existingShards(ctx context.Context) (int, error) {
	n := 0
	for ; n <= MaxShards; n++ {
		ok, err := s.exists(ctx, ShardName(s.name, n))
		if err != nil {
			return 0, err
		}
		if !ok {
			break
		}
	}
	if n == 0 {
		journal, err := s.exists(ctx, JournalName(s.name, 0))
		if err != nil {
			return 0, err
		}
		if journal {
			return 0, refusedLayout{fmt.Errorf("ConfigMap %s holds no layout (key %s) and there is no shard %s, but there is a journal %s: restore the layout or the shards",
				s.name, layoutKey, ShardName(s.name, 0), JournalName(s.name, 0))}
		}
	}
	return n, nil
}

// exists reports whether ConfigMap name exists. It asks with a dry-run
// create, which the API server answers AlreadyExists without creating
// anything: the Role lets the service read only its own shards by name, and
// create any.
func (s *Sharded) exists(ctx context.Context, name string) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := s.client.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name}},
		metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
	switch {
	case err == nil:
		return false, nil
	case apierrors.IsAlreadyExists(err):
		return true, nil
	}
	return false, fmt.Errorf("%w: look for configmap %s: %v", state.ErrUnavailable, name, err)
}

// describeShards names the n shards of name that exist.
func describeShards(name string, n int) string {
	if n == 1 {
		return "shard " + ShardName(name, 0) + " exists"
	}
	return "shards " + ShardName(name, 0) + " … " + ShardName(name, n-1) + " exist"
}

// moveOldLayout makes ConfigMap <name> hold the layout and nothing else
// readable: its jobs and silences are merged into the shards first.
func (s *Sharded) moveOldLayout(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		old, err := s.client.Get(callCtx, s.name, metav1.GetOptions{})
		cancel()
		want, _ := json.Marshal(layout{Shards: len(s.shards)})
		if apierrors.IsNotFound(err) {
			callCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err = s.client.Create(callCtx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: s.name, Labels: stateLabels},
				Data:       map[string]string{layoutKey: string(want)},
			}, metav1.CreateOptions{})
			cancel()
			if apierrors.IsAlreadyExists(err) {
				continue
			}
			if err != nil {
				return fmt.Errorf("%w: create configmap %s: %v", state.ErrUnavailable, s.name, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: get configmap %s: %v", state.ErrUnavailable, s.name, err)
		}
		if v, ok := old.Data[layoutKey]; ok {
			var l layout
			if err := json.Unmarshal([]byte(v), &l); err != nil || l.Shards != len(s.shards) {
				return refusedLayout{fmt.Errorf("ConfigMap %s says the state is in %s shards, this replica is configured for %d: set the shard count back (changing it is not supported yet)", s.name, v, len(s.shards))}
			}
		}
		jobs, silences, kept := s.readOldLayout(old)
		if len(jobs) == 0 && len(silences) == 0 && old.Data[layoutKey] == string(want) {
			return nil
		}
		start := time.Now()
		if err := s.mergeIntoShards(ctx, jobs, silences); err != nil {
			return err
		}
		// Only now that every shard holds them: the precondition makes a
		// write by an older release in between start this over.
		next := old.DeepCopy()
		kept[layoutKey] = string(want)
		next.Data = kept
		callCtx, cancel = context.WithTimeout(ctx, 10*time.Second)
		_, err = s.client.Update(callCtx, next, metav1.UpdateOptions{})
		cancel()
		if apierrors.IsConflict(err) && attempt < 10 {
			continue
		}
		if err != nil {
			return fmt.Errorf("%w: update configmap %s: %v", state.ErrUnavailable, s.name, err)
		}
		if len(jobs) > 0 || len(silences) > 0 {
			s.logger.Info("moved the state into its shards", "jobs", len(jobs), "silences", len(silences), "took", time.Since(start))
		}
		return nil
	}
}

// stateLabels mark the state's ConfigMaps.
var stateLabels = map[string]string{"app.kubernetes.io/name": "batchlatch", "app.kubernetes.io/component": "state"}

// readOldLayout returns the jobs and silences ConfigMap old holds, and the
// data to keep there: unreadable values stay where an operator can fix them.
func (s *Sharded) readOldLayout(old *corev1.ConfigMap) (jobs []state.Job, silences []api.Silence, kept map[string]string) {
	kept = map[string]string{}
	for key, value := range old.Data {
		switch {
		case key == layoutKey:
		case key == silencesKey:
			var err error
			if silences, err = decodeSilences(value); err != nil {
				s.logger.Error("silences in the old layout are unreadable; leaving them", "err", err)
				kept[key] = value
			}
		case strings.HasPrefix(key, "_"):
			kept[key] = value
		default:
			job, err := state.DecodeJob(key, value)
			if err != nil {
				s.logger.Error("a job in the old layout is unreadable; leaving it", "err", err, "key", key)
				kept[key] = value
				continue
			}
			jobs = append(jobs, job)
		}
	}
	return jobs, silences, kept
}

// moveShardSilences moves the silences that shard 0 holds (where releases
// before the silence shards kept them, and one still running during a
// rolling upgrade may add more) into the silence shards, then removes them
// from shard 0 unless they changed meanwhile. Unreadable ones stay, logged.
func (s *Sharded) moveShardSilences(ctx context.Context) error {
	shard := s.shards[0]
	if err := shard.refresh(ctx); err != nil {
		return err
	}
	value, ok := shard.value(silencesKey)
	if !ok {
		return nil
	}
	silences, err := decodeSilences(value)
	if err != nil {
		s.logger.Error("silences in shard 0 are unreadable; leaving them", "err", err)
		return nil
	}
	if err := s.silences.merge(ctx, silences); err != nil {
		return err
	}
	// Only now that the silence shards hold them.
	if _, err := shard.submit(ctx, &op{kind: opRemoveUnchanged, entries: map[string]string{silencesKey: value}}); err != nil {
		return err
	}
	s.logger.Info("moved the silences out of shard 0 into their own ConfigMaps", "silences", len(silences))
	return nil
}

// mergeIntoShards merges jobs into the state through their journals, a
// few at a time so that each journal compacts in between, and silences into
// the silence shards; all at once.
func (s *Sharded) mergeIntoShards(ctx context.Context, jobs []state.Job, silences []api.Silence) error {
	perJournal := make([][]state.Job, len(s.journals))
	for _, j := range jobs {
		i := ShardIndex(j.Key(), len(s.shards)) % len(s.journals)
		perJournal[i] = append(perJournal[i], j)
	}
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	errs := make([]error, len(s.journals)+1)
	var wg sync.WaitGroup
	for i, journal := range s.journals {
		wg.Go(func() {
			for chunk := range slices.Chunk(perJournal[i], mergeChunk) {
				if errs[i] = journal.merge(ctx, chunk, nil); errs[i] != nil {
					return
				}
			}
		})
	}
	if len(silences) > 0 {
		wg.Go(func() { errs[len(s.journals)] = s.silences.merge(ctx, silences) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// mergeChunk is how many jobs one journal update of a move carries: about
// 45 KiB of realistic failing jobs, under DefaultCompactAbove.
const mergeChunk = 64

// notPrepared is the error of every call before the layout is ready.
func (s *Sharded) notPrepared() error {
	if err := s.failed.Load(); err != nil {
		return fmt.Errorf("%w: %v", state.ErrUnavailable, *err)
	}
	if !s.prepared.Load() {
		return fmt.Errorf("%w: state shards of %s not prepared yet", state.ErrUnavailable, s.name)
	}
	return nil
}

// Record implements state.Store.
func (s *Sharded) Record(ctx context.Context, r api.Result, receivedAt time.Time) (state.Recorded, error) {
	if err := s.notPrepared(); err != nil {
		return state.Recorded{}, err
	}
	return s.journalOf(state.KeyOf(r)).Record(ctx, r, receivedAt)
}

// Get implements state.Store.
func (s *Sharded) Get(ctx context.Context, key state.Key) (state.Job, error) {
	if err := s.notPrepared(); err != nil {
		return state.Job{}, err
	}
	journal := s.journalOf(key)
	if err := journal.freshen(ctx); err != nil {
		return state.Job{}, err
	}
	if job, found, err := journal.lookup(key.String()); found {
		return job, err
	}
	shard := ShardIndex(key, len(s.shards))
	if err := s.shards[shard].atLeast(ctx, journal.mark(shard)); err != nil {
		return state.Job{}, err
	}
	return s.shards[shard].Get(ctx, key)
}

// List implements state.Store: every shard's jobs as their journals have
// them, or an error when any cannot be read (a partial list would read as
// jobs gone).
func (s *Sharded) List(ctx context.Context) ([]state.Job, error) {
	if err := s.notPrepared(); err != nil {
		return nil, err
	}
	// The journals first: their marks say how new each shard must be.
	if err := eachAtOnce(s.journals, func(_ int, j *Store) error { return j.freshen(ctx) }); err != nil {
		return nil, err
	}
	err := eachAtOnce(s.shards, func(i int, shard *Store) error {
		if err := shard.freshen(ctx); err != nil {
			return err
		}
		return shard.atLeast(ctx, s.journals[i%len(s.journals)].mark(i))
	})
	if err != nil {
		return nil, err
	}
	// The journals' jobs, and the keys each answers for (a job, a
	// tombstone or an unreadable value), which hide the shards' copies.
	size := 0
	for _, st := range append(slices.Clone(s.journals), s.shards...) {
		st.mu.Lock()
		size += len(st.jobs)
		st.mu.Unlock()
	}
	out := make([]state.Job, 0, size) // one allocation: a Job is large
	held := make([]map[string]bool, len(s.journals))
	var broken map[string]unreadable // unreadable in a journal
	for i, j := range s.journals {
		j.mu.Lock()
		held[i] = make(map[string]bool, len(j.jobs)+len(j.deleted)+len(j.corrupt))
		for key, job := range j.jobs {
			held[i][key] = true
			out = append(out, job)
		}
		for key := range j.deleted {
			held[i][key] = true
		}
		for key, u := range j.corrupt {
			held[i][key] = true
			if broken == nil {
				broken = map[string]unreadable{}
			}
			broken[key] = *u
		}
		j.mu.Unlock()
	}
	for i, shard := range s.shards {
		hidden := held[i%len(s.journals)]
		shard.mu.Lock()
		for key, job := range shard.jobs {
			if !hidden[key] {
				out = append(out, job)
			} else if u, ok := broken[key]; ok {
				// The shard's older copy is a readable copy too.
				u.last = newer(u.last, &job)
				broken[key] = u
			}
		}
		for key, u := range shard.corrupt {
			if !hidden[key] {
				out = append(out, u.job(key))
			} else if b, ok := broken[key]; ok {
				b.last = newer(b.last, u.last)
				broken[key] = b
			}
		}
		shard.mu.Unlock()
	}
	for key, u := range broken {
		out = append(out, u.job(key))
	}
	state.SortByKey(out)
	return out, nil
}

// eachAtOnce calls f for every store at once and joins their errors.
func eachAtOnce(stores []*Store, f func(int, *Store) error) error {
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i, st := range stores {
		wg.Go(func() { errs[i] = f(i, st) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Delete implements state.Store.
func (s *Sharded) Delete(ctx context.Context, key state.Key) error {
	if err := s.notPrepared(); err != nil {
		return err
	}
	return s.journalOf(key).Delete(ctx, key)
}

// Edit implements state.Store.
func (s *Sharded) Edit(ctx context.Context, key state.Key, edit state.Edit) error {
	if err := s.notPrepared(); err != nil {
		return err
	}
	return s.journalOf(key).Edit(ctx, key, edit)
}

// AddSilence implements state.Store.
func (s *Sharded) AddSilence(ctx context.Context, silence api.Silence, now time.Time) error {
	if err := s.notPrepared(); err != nil {
		return err
	}
	return s.silences.add(ctx, silence, now)
}

// DeleteSilence implements state.Store.
func (s *Sharded) DeleteSilence(ctx context.Context, id string, now time.Time) error {
	if err := s.notPrepared(); err != nil {
		return err
	}
	return s.silences.remove(ctx, id, now)
}

// Silences implements state.Store.
func (s *Sharded) Silences(ctx context.Context) ([]api.Silence, error) {
	if err := s.notPrepared(); err != nil {
		return nil, err
	}
	return s.silences.all(ctx)
}

// DefaultReadyWithin is how recent an answer of the API server Ready takes
// as its own. Ready is asked often (each replica's leader election checks it
// every second, the kubelet every 5 s) and an answer costs a GET of a whole
// shard, up to 1 MiB, when the shards are otherwise idle: within 5 s, a
// follower reads a shard at most every 5 s, not every second. 5 s is the
// chart's readiness probe period, so the kubelet sees a lost API server no
// later than it would have.
const DefaultReadyWithin = 5 * time.Second

// Ready implements state.Store: the layout is prepared, every shard has
// been loaded, and the API server answered within Options.ReadyWithin, or
// answers now. The shards share the API
// server: one answer speaks for all of them, so a readiness probe costs at
// most one request, not one per shard.
func (s *Sharded) Ready(ctx context.Context) error {
	if err := s.notPrepared(); err != nil {
		return err
	}
	for _, shard := range slices.Concat(s.journals, s.shards, s.silences.stores) {
		if !shard.loaded() {
			return fmt.Errorf("%w: configmap %s not loaded yet", state.ErrUnavailable, shard.name)
		}
	}
	for _, shard := range slices.Concat(s.shards, s.journals) {
		if shard.loadedWithin(s.readyWithin) {
			return nil
		}
	}
	return s.shards[0].refresh(ctx)
}

// Close implements state.Store.
func (s *Sharded) Close() error {
	s.cancel()
	s.done.Wait()
	// The journals first, all at once (each moves its jobs into their
	// shards, within CallTimeout): a compaction waits on a shard.
	_ = eachAtOnce(s.journals, func(_ int, j *Store) error { return j.Close() })
	for _, shard := range slices.Concat(s.shards, s.silences.stores) {
		shard.Close()
	}
	return nil
}

var _ state.Store = (*Sharded)(nil)
