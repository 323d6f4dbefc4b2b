package server

import (
	"context"
	"sync"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// sharedListMaxAge is how long the pages and REST reads may share one list
// of the store: the store's own staleness (a ConfigMap store sees other
// replicas' writes after configmapstore.Options.RefreshAfter, 1 s).
const sharedListMaxAge = time.Second

// sharedListBuildTimeout bounds one list of the store shared by the pages
// and REST reads, which no single request's context may cut short: twice
// their default deadlines (DefaultWriteDeadlines).
const sharedListBuildTimeout = 30 * time.Second

// sharedJobs is the store as the server reads it: the jobs are listed at
// most once per maxAge, and every page and REST read of that time shares
// the list, instead of each copying every job (32 MB at 100,000 jobs) to
// sort it. A write made through it (a callback, a DELETE) outdates the
// list, and drops it, so a client always reads its own writes; others'
// (the alarm's, the watchers', another replica's) are seen within maxAge.
// So the reads between two writes share one list, however many there are;
// under a stream of callbacks nearly every read lists the store again, and
// what the reads in flight hold is bounded by their cap (--max-in-flight). The list is built and kept as
// shared says: a read that ends stops waiting but does not stop the list
// others wait for (sharedListBuildTimeout bounds it), and an idle server
// holds no list.
//
// The stores lend their jobs (state.Store.List), but a ConfigMap store
// still copies them for each List, and every page sorts the failing first:
// sharing one list and its order bounds both, whatever the store.
type sharedJobs struct {
	state.Store
	lists *shared[*jobList]
}

// jobList is one list of the store, never modified once made: the jobs
// that are not forgotten, by key, and in order of failing (made on first
// use).
type jobList struct {
	jobs []state.Job

	failingOnce sync.Once
	failing     []state.Job
}

func newSharedJobs(store state.Store, maxAge time.Duration) *sharedJobs {
	s := &sharedJobs{Store: store}
	s.lists = newShared(s.listStore, maxAge, sharedListBuildTimeout)
	return s
}

// list returns a list that holds every write made through s before it was
// called and is at most maxAge old, or else the one it waited for.
// Concurrent calls wait for one build.
// The jobs are shared: the caller must not modify them.
func (s *sharedJobs) list(ctx context.Context) (*jobList, error) {
	return s.lists.get(ctx)
}

func (s *sharedJobs) listStore(ctx context.Context) (*jobList, error) {
	jobs, err := s.Store.List(ctx)
	if err != nil {
		return nil, err
	}
	return &jobList{jobs: state.Remembered(jobs)}, nil
}

// Failing is the list's failing jobs, longest-failing first (state.Failing).
func (l *jobList) Failing() []state.Job {
	l.failingOnce.Do(func() { l.failing = state.Failing(l.jobs) })
	return l.failing
}

// wrote counts a write that has returned, whatever its outcome: a failed
// one may have changed the store too (a write whose answer was lost).
func (s *sharedJobs) wrote() { s.lists.changed() }

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
