package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// sharedListMaxAge is how long the pages and REST reads may share one list
// of the store: the store's own staleness (a ConfigMap store sees other
// replicas' writes after configmapstore.Options.RefreshAfter, 1 s).
const sharedListMaxAge = time.Second

// sharedJobs is the store as the server reads it: the jobs are listed at
// most once per maxAge, and every page and REST read of that time shares
// the list, instead of each copying every job (32 MB at 100,000 jobs) to
// sort it. Then what pages in flight hold is one list, however many there
// are. A write made through it (a callback, a DELETE) drops the list, so a
// client always reads its own writes; others' (the alarm's, the watchers',
// another replica's) are seen within maxAge.
//
// The stores lend their jobs (state.Store.List), but a ConfigMap store
// still copies them for each List, and every page sorts the failing first:
// sharing one list and its order bounds both, whatever the store. Not
// x/sync/singleflight: it shares a build in progress but keeps no result.
type sharedJobs struct {
	state.Store
	maxAge time.Duration
	// writes counts the writes made through sharedJobs that have returned.
	writes atomic.Uint64

	mu sync.Mutex
	// cur is the last list built; nil before the first and once too old.
	cur *jobList
	// building is closed when the build under way ends; nil when none is.
	building chan struct{}
}

// jobList is one list of the store, never modified once made: the jobs
// that are not forgotten, by key, and in order of failing (made on first
// use).
type jobList struct {
	jobs []state.Job
	// writes is sharedJobs.writes before the store was listed: the list
	// holds every write counted in it.
	writes  uint64
	builtAt time.Time

	failingOnce sync.Once
	failing     []state.Job
}

func newSharedJobs(store state.Store, maxAge time.Duration) *sharedJobs {
	return &sharedJobs{Store: store, maxAge: maxAge}
}

// list returns a list that holds every write made through s before it was
// called and is at most maxAge old. Concurrent calls wait for one build.
// The jobs are shared: the caller must not modify them.
func (s *sharedJobs) list(ctx context.Context) (*jobList, error) {
	written := s.writes.Load()
	for {
		s.mu.Lock()
		if l := s.cur; l != nil && l.writes >= written && time.Since(l.builtAt) < s.maxAge {
			s.mu.Unlock()
			return l, nil
		}
		if wait := s.building; wait != nil {
			s.mu.Unlock()
			select {
			case <-wait:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		done := make(chan struct{})
		s.building = done
		s.mu.Unlock()

		l, err := s.build(ctx)
		s.mu.Lock()
		s.building = nil
		if err == nil {
			s.cur = l
		}
		s.mu.Unlock()
		close(done)
		if err == nil {
			// Not held past its age: an idle server keeps no copy.
			time.AfterFunc(s.maxAge, func() { s.drop(l) })
		}
		return l, err
	}
}

func (s *sharedJobs) build(ctx context.Context) (*jobList, error) {
	written := s.writes.Load()
	builtAt := time.Now()
	jobs, err := s.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	return &jobList{jobs: state.Remembered(jobs), writes: written, builtAt: builtAt}, nil
}

// drop forgets l if it is still the last list.
func (s *sharedJobs) drop(l *jobList) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == l {
		s.cur = nil
	}
}

// Failing is the list's failing jobs, longest-failing first (state.Failing).
func (l *jobList) Failing() []state.Job {
	l.failingOnce.Do(func() { l.failing = state.Failing(l.jobs) })
	return l.failing
}

// wrote counts a write that has returned, whatever its outcome: a failed
// one may have changed the store too (a write whose answer was lost).
func (s *sharedJobs) wrote() { s.writes.Add(1) }

func (s *sharedJobs) Record(ctx context.Context, r api.Result, receivedAt time.Time) (state.Recorded, error) {
	defer s.wrote()
	return s.Store.Record(ctx, r, receivedAt)
}

func (s *sharedJobs) Delete(ctx context.Context, key state.Key) error {
	defer s.wrote()
	return s.Store.Delete(ctx, key)
}

func (s *sharedJobs) Edit(ctx context.Context, key state.Key, edit state.Edit) error {
	defer s.wrote()
	return s.Store.Edit(ctx, key, edit)
}

func (s *sharedJobs) AddSilence(ctx context.Context, silence api.Silence, now time.Time) error {
	defer s.wrote()
	return s.Store.AddSilence(ctx, silence, now)
}

func (s *sharedJobs) DeleteSilence(ctx context.Context, id string, now time.Time) error {
	defer s.wrote()
	return s.Store.DeleteSilence(ctx, id, now)
}
