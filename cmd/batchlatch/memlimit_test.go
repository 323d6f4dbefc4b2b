package main

import (
	"io"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"
)

// The container's limit sets the runtime's soft limit to three quarters of
// it, unless GOMEMLIMIT is set or there is no limit.
func TestSetMemoryLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1)) // restored for the other tests
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	noEnv := func(string) string { return "" }

	debug.SetMemoryLimit(math.MaxInt64)
	setMemoryLimit(256<<20, noEnv, logger)
	if got := debug.SetMemoryLimit(-1); got != 192<<20 {
		t.Errorf("256 MiB container: soft limit %d, want 192 MiB", got)
	}

	debug.SetMemoryLimit(math.MaxInt64)
	setMemoryLimit(0, noEnv, logger)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("no container limit: soft limit %d, want none", got)
	}

	debug.SetMemoryLimit(math.MaxInt64)
	setMemoryLimit(256<<20, func(k string) string {
		if k == "GOMEMLIMIT" {
			return "100MiB" // read by the runtime at start; here only its presence counts
		}
		return ""
	}, logger)
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("with GOMEMLIMIT set: soft limit %d, want it left alone", got)
	}
}

// The collector's target is gcPercent unless GOGC is set.
func TestSetGCPercent(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100)) // restored for the other tests
	setGCPercent(func(string) string { return "" })
	if got := debug.SetGCPercent(100); got != gcPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, gcPercent)
	}
	setGCPercent(func(k string) string {
		if k == "GOGC" {
			return "200" // read by the runtime at start; here only its presence counts
		}
		return ""
	})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set: GC percent %d, want it left alone", got)
	}
}
