package alarm

import (
	"context"
	"log/slog"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// Defaults of --interval and --recovery-window. The shipped alert policy is
// built on them (its window holds two intervals and the metric's ingestion
// lag; the recovery window outlasts its window plus that lag): the examples'
// tests tie them together.
const (
	DefaultInterval       = 60 * time.Second
	DefaultRecoveryWindow = 30 * time.Minute
)

// Lister is the part of state.Store the loop reads.
type Lister interface {
	List(ctx context.Context) ([]state.Job, error)
}

// Loop writes one ERROR entry per failing job every interval, a NOTICE entry
// when a job recovers, and INFO entries with failing 0 for recoveryWindow
// after that.
type Loop struct {
	jobs           Lister
	sink           Sink
	interval       time.Duration
	recoveryWindow time.Duration
	logger         *slog.Logger
	metrics        *Metrics
	now            func() time.Time
	schedules      api.ScheduleOf
	kick           chan struct{}
}

// LoopConfig holds the Loop's settings.
type LoopConfig struct {
	Interval       time.Duration
	RecoveryWindow time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Schedules adds watched jobs' schedules to their ERROR entries; nil:
	// none.
	Schedules api.ScheduleOf
}

// NewLoop makes a loop that reads jobs and writes to sink.
func NewLoop(jobs Lister, sink Sink, cfg LoopConfig, metrics *Metrics, logger *slog.Logger) *Loop {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	schedules := cfg.Schedules
	if schedules == nil {
		schedules = func(string, string, time.Time) *api.Schedule { return nil }
	}
	return &Loop{
		jobs:           jobs,
		sink:           sink,
		interval:       cfg.Interval,
		recoveryWindow: cfg.RecoveryWindow,
		logger:         logger.With("component", "alarm"),
		metrics:        metrics,
		now:            now,
		schedules:      schedules,
		kick:           make(chan struct{}, 1),
	}
}

// Kick asks a running loop to write, without waiting for the next tick, the
// entries of jobs that just started failing or just recovered. It never blocks.
func (l *Loop) Kick() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Run writes entries until ctx is done. It may be called again after it
// returns (a replica that regains leadership); each run starts from the
// stored state.
func (l *Loop) Run(ctx context.Context) {
	ticker := time.NewTicker(l.interval)
	defer ticker.Stop()
	announced := Announced{}
	l.pass(ctx, &announced, false)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			l.pass(ctx, &announced, false)
		case <-l.kick:
			l.pass(ctx, &announced, true)
		}
	}
}

// pass lists the jobs, decides what is due and writes it: the I/O around Due.
func (l *Loop) pass(ctx context.Context, announced *Announced, kicked bool) {
	jobs, err := l.jobs.List(ctx)
	if err != nil {
		l.logger.Warn("list jobs", "err", err)
		return
	}
	entries, next := Due(jobs, *announced, l.now(), DueConfig{RecoveryWindow: l.recoveryWindow, Schedules: l.schedules, Kicked: kicked})
	*announced = next
	for _, e := range entries {
		l.write(ctx, e)
	}
	if !kicked {
		l.metrics.Passes.Inc()
		l.metrics.FailingJobs.Set(float64(len(state.Failing(jobs))))
	}
}

// Forgotten writes the one NOTICE entry of a job that was forgotten, and why.
func (l *Loop) Forgotten(ctx context.Context, j state.Job, reason string) {
	l.write(ctx, forgottenEntry(j, reason, l.now()))
}

func (l *Loop) write(ctx context.Context, e Entry) {
	if err := l.sink.Write(ctx, e); err != nil {
		l.logger.Warn("write entry", "err", err, "namespace", e.Payload.Namespace, "job", e.Payload.Job)
		return
	}
	l.metrics.EntriesWritten.WithLabelValues(string(e.Severity)).Inc()
}
