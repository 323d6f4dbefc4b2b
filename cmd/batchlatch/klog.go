package main

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"

	"k8s.io/klog/v2"
)

// klog is process-wide, and tests run several replicas in one process:
// klog is pointed once at a handler that forwards to the latest run's
// logger, swapped atomically, rather than set again by every run while the
// others' clients log through it.
var (
	klogTarget atomic.Pointer[slog.Logger]
	klogOnce   sync.Once
)

// routeKlog sends client-go's logs to logger.
func routeKlog(logger *slog.Logger) {
	klogTarget.Store(logger)
	klogOnce.Do(func() { klog.SetSlogLogger(slog.New(latestHandler{})) })
}

// latestHandler hands each record to the latest routeKlog logger's
// handler, with the attributes and groups added to it so far.
type latestHandler struct {
	with func(slog.Handler) slog.Handler // nil: none added
}

func (h latestHandler) current() slog.Handler {
	target := klogTarget.Load().Handler()
	if h.with != nil {
		return h.with(target)
	}
	return target
}

func (h latestHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.current().Enabled(ctx, level)
}

func (h latestHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.current().Handle(ctx, r)
}

func (h latestHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return h.then(func(next slog.Handler) slog.Handler { return next.WithAttrs(attrs) })
}

func (h latestHandler) WithGroup(name string) slog.Handler {
	return h.then(func(next slog.Handler) slog.Handler { return next.WithGroup(name) })
}

// then is h with f applied after what h already adds.
func (h latestHandler) then(f func(slog.Handler) slog.Handler) slog.Handler {
	prev := h.with
	return latestHandler{with: func(target slog.Handler) slog.Handler {
		if prev != nil {
			target = prev(target)
		}
		return f(target)
	}}
}
