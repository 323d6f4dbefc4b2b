package groupcommit

import (
	"fmt"
	"testing"
	"time"
)

func TestGather(t *testing.T) {
	queued := func(n int) chan int {
		ops := make(chan int, 100)
		for i := range n {
			ops <- i + 1
		}
		return ops
	}
	even := func(o int) bool { return o%2 == 0 }
	for _, tc := range []struct {
		name           string
		queued         int
		lastBatch, max int
		take           func(int) bool
		want           string
		atLeast        time.Duration
	}{
		{name: "what is queued", queued: 5, max: 100, want: "[0 1 2 3 4 5]"},
		{name: "up to the limit", queued: 5, max: 3, want: "[0 1 2]"},
		{name: "only what take takes", queued: 5, max: 100, take: even, want: "[0 2 4]"},
		{name: "no wait after a lone operation", max: 100, want: "[0]"},
		{name: "under load, waits for more", lastBatch: 8, max: 100, want: "[0]", atLeast: Linger},
		{name: "under load, no wait once as many", queued: 7, lastBatch: 8, max: 100, want: "[0 1 2 3 4 5 6 7]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			got := Gather(queued(tc.queued), 0, tc.lastBatch, tc.max, tc.take)
			took := time.Since(start)
			if fmt.Sprint(got) != tc.want {
				t.Errorf("batch %v, want %s", got, tc.want)
			}
			if took < tc.atLeast {
				t.Errorf("returned after %s, before lingering %s", took, tc.atLeast)
			}
		})
	}
	closed := queued(2)
	close(closed)
	if got := Gather(closed, 0, 8, 100, nil); fmt.Sprint(got) != "[0 1 2]" {
		t.Errorf("closed queue: %v", got)
	}
}
