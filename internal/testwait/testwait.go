// Package testwait is how the project's tests wait: for a condition, with a
// deadline, polling. Never for a fixed time: a machine busy with other work
// may make a test slower, never make it fail.
package testwait

import (
	"context"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// backoff: prompt for what comes at once, light on a busy machine for what
// takes long (a condition may call the API server).
var backoff = wait.Backoff{Duration: 10 * time.Millisecond, Factor: 1.5, Steps: 9, Cap: 250 * time.Millisecond}

// Poll calls cond until it reports true, within passes or ctx ends, and
// returns whether it did and cond's last description of what it saw. An
// error from cond is not the end: what it waits for may not be there yet;
// the error is what it saw.
func Poll(ctx context.Context, within time.Duration, cond func(ctx context.Context) (ok bool, seen string, err error)) (bool, string) {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	var last string
	err := backoff.DelayFunc().Until(ctx, true, false, func(ctx context.Context) (bool, error) {
		ok, seen, err := cond(ctx)
		switch {
		case err == nil:
			last = seen
		case ctx.Err() == nil: // else keep what was seen before the deadline cut it
			last = err.Error()
		}
		return ok && err == nil, nil
	})
	return err == nil, last
}

// Until is Poll in a test: it fails tb, naming what it waited for and
// what cond saw last, when cond does not hold within.
func Until(tb testing.TB, within time.Duration, what string, cond func(ctx context.Context) (ok bool, seen string, err error)) {
	tb.Helper()
	if ok, seen := Poll(tb.Context(), within, cond); !ok {
		tb.Fatalf("waited %s for %s; last seen: %s", within, what, seen)
	}
}

// True is Until for a condition with nothing to tell.
func True(tb testing.TB, within time.Duration, what string, cond func() bool) {
	tb.Helper()
	Until(tb, within, what, func(context.Context) (bool, string, error) { return cond(), "", nil })
}
