package server

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/testwait"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/filestore"
)

// listCounting counts List calls; while gate is set, each waits for it.
type listCounting struct {
	state.Store
	lists atomic.Int32
	gate  chan struct{}
}

func (s *listCounting) List(ctx context.Context) ([]state.Job, error) {
	s.lists.Add(1)
	if s.gate != nil {
		<-s.gate
	}
	return s.Store.List(ctx)
}

func newListCounting(t *testing.T) *listCounting {
	t.Helper()
	store, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return &listCounting{Store: store}
}

// Concurrent reads wait for one list of the store and share it.
func TestSharedJobsListOncePerConcurrentReads(t *testing.T) {
	inner := newListCounting(t)
	inner.gate = make(chan struct{})
	shared := newSharedJobs(inner, time.Hour)
	const readers = 16
	lists := make([]*jobList, readers)
	var wg sync.WaitGroup
	for i := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := shared.list(context.Background())
			if err != nil {
				t.Error(err)
			}
			lists[i] = l
		}()
	}
	// Poll until one reader is listing, then let it finish.
	testwait.Poll(t.Context(), 2*time.Minute, func(context.Context) (bool, string, error) { return inner.lists.Load() > 0, "", nil })
	close(inner.gate)
	wg.Wait()
	if n := inner.lists.Load(); n != 1 {
		t.Errorf("%d reads listed the store %d times, want once", readers, n)
	}
	for _, l := range lists {
		if l != lists[0] {
			t.Fatal("reads got different lists")
		}
	}
}

// A write made through sharedJobs drops the list: the next read sees it.
func TestSharedJobsReadsItsOwnWrites(t *testing.T) {
	inner := newListCounting(t)
	shared := newSharedJobs(inner, time.Hour)
	ctx := context.Background()
	if l, err := shared.list(ctx); err != nil || len(l.jobs) != 0 {
		t.Fatalf("%v %v", l, err)
	}
	if _, err := shared.Record(ctx, sharedFailure(t), now); err != nil {
		t.Fatal(err)
	}
	l, err := shared.list(ctx)
	if err != nil || len(l.jobs) != 1 {
		t.Fatalf("after a write: %d jobs, %v; want 1", len(l.jobs), err)
	}
	if len(l.Failing()) != 1 {
		t.Errorf("failing: %d, want 1", len(l.Failing()))
	}
	if _, err := shared.list(ctx); err != nil || inner.lists.Load() != 2 {
		t.Errorf("listed %d times for two lists apart from a write, want 2", inner.lists.Load())
	}
}

// A write made around it (the alarm's, another replica's) is seen once
// the list is maxAge old.
func TestSharedJobsSeeOtherWritesWithinMaxAge(t *testing.T) {
	inner := newListCounting(t)
	shared := newSharedJobs(inner, 10*time.Millisecond)
	ctx := context.Background()
	if _, err := shared.list(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := inner.Record(ctx, sharedFailure(t), now); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, 2*time.Minute, "another's write to be seen", func(ctx context.Context) (bool, string, error) {
		l, err := shared.list(ctx)
		if err != nil {
			return false, "", err
		}
		return len(l.jobs) == 1, fmt.Sprintf("%d jobs", len(l.jobs)), nil
	})
}

func sharedFailure(t *testing.T) api.Result {
	t.Helper()
	r, err := api.DecodeResult([]byte(result("nightly", "u1", "Failed", now.Add(-time.Hour))), now)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
