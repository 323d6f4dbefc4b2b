package server

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// shared is one result of build, shared by every caller of get for up to
// maxAge. Its contract:
//
//   - get returns the result of a build that started at most maxAge before
//     (by now) and after every call of changed that returned before get was
//     called, or else the result of the build it waited for.
//   - At most one build runs at a time, and concurrent calls wait for it
//     rather than start their own. A call that needs a build started after
//     a change waits for the one under way to end, then starts the next.
//   - A build runs in a goroutine of its own, with a context that has the
//     values of the call that started it but not its cancellation, bounded
//     by buildTimeout: a call whose ctx ends returns ctx.Err() at once, and
//     the build goes on for the others and is kept for the calls to come.
//   - A build that fails, or panics (an error then: no caller's recovery
//     reaches its goroutine), fails the calls that waited for it and is not
//     kept: the next call builds again.
//   - A result is forgotten maxAge after its build ended (when now, too,
//     says it is maxAge old), or at the first change after it: an idle
//     server holds none, and a busy one no result no call can take.
//
// All its methods are safe for concurrent use; its fields are set before
// the first get, and build must not call get.
// Hand-written: x/sync/singleflight shares a build in progress but keeps no
// result, and knows no changes.
type shared[T any] struct {
	build        func(ctx context.Context) (T, error)
	maxAge       time.Duration
	buildTimeout time.Duration
	// now is the clock of maxAge; time.Now but in tests.
	now func() time.Time
	// failed, when set, is told of each build that fails, once.
	failed func(error)

	// changes counts the calls of changed that have returned.
	changes atomic.Uint64

	mu sync.Mutex
	// last is the last build that succeeded; nil before the first and once
	// forgotten.
	last *sharedBuild[T]
	// pending is the build under way; nil when none is.
	pending *sharedBuild[T]
}

// sharedBuild is one build: value and err are set before done is closed
// and never modified after.
type sharedBuild[T any] struct {
	done chan struct{}
	// changes is shared.changes when the build started: the result holds
	// every change counted in it.
	changes uint64
	started time.Time
	value   T
	err     error
}

func newShared[T any](build func(ctx context.Context) (T, error), maxAge, buildTimeout time.Duration) *shared[T] {
	return &shared[T]{build: build, maxAge: maxAge, buildTimeout: buildTimeout, now: time.Now}
}

// changed tells s that what build reads has changed: no get called after
// changed returns gets a result built before it was called.
//
// It drops the kept result at once: no call can take it any more, and
// under a steady stream of writes (callbacks) it would otherwise stay held
// beside the next build's for as long as that build takes.
func (s *shared[T]) changed() {
	s.changes.Add(1)
	s.mu.Lock()
	s.last = nil
	s.mu.Unlock()
}

// get returns a result as the contract of shared says, or ctx.Err() when
// ctx ends first.
func (s *shared[T]) get(ctx context.Context) (T, error) {
	changes := s.changes.Load()
	for {
		s.mu.Lock()
		if b := s.last; b != nil && b.changes >= changes && s.now().Sub(b.started) < s.maxAge {
			s.mu.Unlock()
			return b.value, nil
		}
		b := s.pending
		if b == nil {
			b = &sharedBuild[T]{done: make(chan struct{}), changes: s.changes.Load(), started: s.now()}
			s.pending = b
			go s.run(ctx, b)
		}
		s.mu.Unlock()
		select {
		case <-b.done:
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		}
		if b.changes >= changes {
			return b.value, b.err
		}
		// Started before a change this call must see: the next build.
	}
}

func (s *shared[T]) run(ctx context.Context, b *sharedBuild[T]) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.buildTimeout)
	defer cancel()
	b.value, b.err = s.buildRecovered(ctx)
	if b.err != nil && s.failed != nil {
		s.failed(b.err)
	}
	s.mu.Lock()
	s.pending = nil
	if b.err == nil {
		s.last = b
		time.AfterFunc(s.maxAge, func() { s.forget(b) })
	}
	s.mu.Unlock()
	close(b.done)
}

func (s *shared[T]) buildRecovered(ctx context.Context) (value T, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return s.build(ctx)
}

// forget drops b if it is still the last build and maxAge old by now (a
// test's clock may not have moved).
func (s *shared[T]) forget(b *sharedBuild[T]) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last == b && s.now().Sub(b.started) >= s.maxAge {
		s.last = nil
	}
}
