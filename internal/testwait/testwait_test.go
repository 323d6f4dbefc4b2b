package testwait

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestPollHoldsOnceCondHolds(t *testing.T) {
	calls := 0
	ok, seen := Poll(t.Context(), time.Minute, func(context.Context) (bool, string, error) {
		calls++
		if calls < 3 {
			return false, "", errors.New("not yet")
		}
		return calls == 5, "call " + string(rune('0'+calls)), nil
	})
	if !ok || calls != 5 || seen != "call 5" {
		t.Fatalf("Poll = %v, %q after %d calls; want true, \"call 5\" after 5", ok, seen, calls)
	}
}

func TestPollGivesUpAfterWithinWithWhatItSawLast(t *testing.T) {
	start := time.Now()
	ok, seen := Poll(t.Context(), 200*time.Millisecond, func(context.Context) (bool, string, error) {
		return false, "", errors.New("still down")
	})
	if ok || seen != "still down" {
		t.Fatalf("Poll = %v, %q; want false, \"still down\"", ok, seen)
	}
	if took := time.Since(start); took < 200*time.Millisecond {
		t.Fatalf("Poll gave up after %s, before its 200ms", took)
	}
}
