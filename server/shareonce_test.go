package server

import (
	"context"
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/internal/testwait"
)

// counted is a build that returns how many builds there have been, once
// gate (when not nil) is closed, and fails when its context has ended.
type counted struct {
	builds atomic.Int32
	gate   chan struct{}
}

func (c *counted) build(ctx context.Context) (int32, error) {
	n := c.builds.Add(1)
	if c.gate != nil {
		<-c.gate
	}
	return n, ctx.Err()
}

// waitingCtx counts the calls of Done: get calls it once it waits for a
// build, so that a test can tell when its callers are all waiting.
type waitingCtx struct {
	context.Context
	waiting *atomic.Int32
}

func (c waitingCtx) Done() <-chan struct{} {
	c.waiting.Add(1)
	return c.Context.Done()
}

// Callers that arrive while a build is under way wait for it and share its
// result: one build however many they are.
func TestSharedConcurrentCallersShareOneBuild(t *testing.T) {
	c := &counted{gate: make(chan struct{})}
	s := newShared(c.build, time.Hour, patience)
	var waiting atomic.Int32
	ctx := waitingCtx{t.Context(), &waiting}
	const callers = 16
	got := make([]int32, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			v, err := s.get(ctx)
			if err != nil {
				t.Error(err)
			}
			got[i] = v
		})
	}
	testwait.True(t, patience, "every caller to wait for a build", func() bool { return waiting.Load() == callers })
	close(c.gate)
	wg.Wait()
	if n := c.builds.Load(); n != 1 {
		t.Fatalf("%d concurrent callers built %d times, want once", callers, n)
	}
	for i, v := range got {
		if v != 1 {
			t.Errorf("caller %d got build %d, want 1", i, v)
		}
	}
}

// A result is shared while younger than maxAge, by the clock; then built
// again.
func TestSharedRebuildOnceMaxAgeOld(t *testing.T) {
	c := &counted{}
	s := newShared(c.build, 5*time.Second, patience)
	clock := time.Unix(0, 0)
	s.now = func() time.Time { return clock }
	for i, step := range []struct {
		advance time.Duration
		want    int32
	}{
		{0, 1},
		{5*time.Second - time.Nanosecond, 1}, // just under maxAge: shared
		{time.Nanosecond, 2},                 // maxAge old: built again
		{0, 2},
	} {
		clock = clock.Add(step.advance)
		if v, err := s.get(t.Context()); err != nil || v != step.want {
			t.Fatalf("step %d: build %d, %v; want build %d", i, v, err, step.want)
		}
	}
}

// After changed returns, no get returns a result built before: neither the
// last one nor the one under way, which it waits for and then builds anew.
func TestSharedChangedForcesRebuild(t *testing.T) {
	c := &counted{}
	s := newShared(c.build, time.Hour, patience)
	ctx := t.Context()
	get := func() int32 {
		t.Helper()
		v, err := s.get(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if v := get(); v != 1 {
		t.Fatalf("first get: build %d", v)
	}
	s.changed()
	if v := get(); v != 2 {
		t.Fatalf("after a change: build %d, want 2", v)
	}
	if v := get(); v != 2 {
		t.Fatalf("no change since: build %d, want 2 still", v)
	}

	// A build started before the change is under way.
	c.gate = make(chan struct{})
	s.changed()
	first := make(chan int32, 1)
	go func() {
		v, _ := s.get(ctx)
		first <- v
	}()
	testwait.True(t, patience, "a build to start", func() bool { return c.builds.Load() == 3 })
	s.changed()
	var waiting atomic.Int32
	second := make(chan int32, 1)
	go func() {
		v, _ := s.get(waitingCtx{ctx, &waiting})
		second <- v
	}()
	testwait.True(t, patience, "the get after the change to wait", func() bool { return waiting.Load() > 0 })
	close(c.gate)
	if v := within(t, first); v != 3 {
		t.Errorf("the get before the change: build %d, want 3", v)
	}
	if v := within(t, second); v != 4 {
		t.Errorf("the get after the change: build %d, want 4 (one started after the change)", v)
	}
}

// A caller whose context ends stops waiting at once; the build goes on, not
// canceled, for the callers still waiting, and is kept.
func TestSharedCanceledCallerLeavesBuildToOthers(t *testing.T) {
	c := &counted{gate: make(chan struct{})}
	s := newShared(c.build, time.Hour, patience)
	ctx, cancel := context.WithCancel(t.Context())
	canceled := make(chan error, 1)
	go func() {
		_, err := s.get(ctx) // starts the build
		canceled <- err
	}()
	testwait.True(t, patience, "a build to start", func() bool { return c.builds.Load() == 1 })
	var waiting atomic.Int32
	other := make(chan error, 1)
	go func() {
		v, err := s.get(waitingCtx{t.Context(), &waiting})
		if err == nil && v != 1 {
			t.Errorf("the other caller got build %d, want 1", v)
		}
		other <- err
	}()
	testwait.True(t, patience, "the other caller to wait for the build", func() bool { return waiting.Load() > 0 })
	cancel()
	if err := within(t, canceled); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled caller: %v, want context.Canceled (before the build ends)", err)
	}
	close(c.gate)
	if err := within(t, other); err != nil {
		t.Fatalf("the other caller: %v, want the build's result", err)
	}
	if v, err := s.get(t.Context()); err != nil || v != 1 || c.builds.Load() != 1 {
		t.Fatalf("after: build %d, %v, %d builds; want build 1 kept", v, err, c.builds.Load())
	}
}

// A build that panics fails its callers with an error and is not kept.
func TestSharedBuildPanicIsAnError(t *testing.T) {
	var builds atomic.Int32
	var failed atomic.Int32
	s := newShared(func(context.Context) (int32, error) {
		if builds.Add(1) == 1 {
			panic("unreadable")
		}
		return builds.Load(), nil
	}, time.Hour, patience)
	s.failed = func(error) { failed.Add(1) }
	if _, err := s.get(t.Context()); err == nil || !strings.Contains(err.Error(), "panic: unreadable") {
		t.Fatalf("a build that panics: %v, want the panic as an error", err)
	}
	if v, err := s.get(t.Context()); err != nil || v != 2 {
		t.Fatalf("after a failed build: build %d, %v; want build 2", v, err)
	}
	if n := failed.Load(); n != 1 {
		t.Errorf("failed told %d times, want once", n)
	}
}

// An idle shared holds no result once it is maxAge old.
func TestSharedForgetsWhenIdle(t *testing.T) {
	c := &counted{}
	s := newShared(c.build, 10*time.Millisecond, patience)
	if _, err := s.get(t.Context()); err != nil {
		t.Fatal(err)
	}
	testwait.True(t, patience, "the result to be forgotten", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.last == nil
	})
}

// A change drops the kept result at once, not maxAge later: no call can
// take it any more, and under a stream of writes it would be held beside
// the next build's.
func TestSharedChangeDropsTheKeptResult(t *testing.T) {
	c := &counted{}
	s := newShared(c.build, time.Hour, patience)
	if _, err := s.get(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.changed()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.last != nil {
		t.Fatal("the result built before the change is still kept")
	}
}

// within receives from ch, failing t when nothing comes within patience.
func within[T any](t *testing.T, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(patience):
		t.Fatalf("waited %s for a get to return", patience)
		panic("unreachable")
	}
}
