package alarm

import (
	"context"
	"log/slog"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
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
	// What this run has announced: the streak start of each failing job, and
	// the end of each streak it wrote the NOTICE for.
	p := pass{announcedFailing: map[state.Key]time.Time{}, announcedRecovery: map[state.Key]time.Time{}}
	l.pass(ctx, &p, false)
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			l.pass(ctx, &p, false)
		case <-l.kick:
			l.pass(ctx, &p, true)
		}
	}
}

type pass struct {
	announcedFailing  map[state.Key]time.Time
	announcedRecovery map[state.Key]time.Time
}

// pass writes the entries due now. On a kick only changes not yet announced
// are written, so a burst of callbacks does not multiply the interval entries.
func (l *Loop) pass(ctx context.Context, p *pass, onlyChanges bool) {
	jobs, err := l.jobs.List(ctx)
	if err != nil {
		l.logger.Warn("list jobs", "err", err)
		return
	}
	now := l.now()
	failing := 0
	seen := make(map[state.Key]bool, len(jobs))
	for _, j := range jobs {
		key := j.Key()
		seen[key] = true
		switch {
		case j.Failing():
			failing++
			if onlyChanges && p.announcedFailing[key].Equal(*j.FailingSince) {
				continue
			}
			p.announcedFailing[key] = *j.FailingSince
			l.write(ctx, failingEntry(j, l.schedules(j.Namespace, j.Name, now), now))
		case j.LastStreak != nil && j.RecoveredAt != nil && now.Sub(*j.RecoveredAt) < l.recoveryWindow:
			delete(p.announcedFailing, key)
			if !p.announcedRecovery[key].Equal(*j.RecoveredAt) {
				p.announcedRecovery[key] = *j.RecoveredAt
				l.write(ctx, recoveredEntry(j, now))
				continue
			}
			if !onlyChanges {
				l.write(ctx, healthyEntry(j, now))
			}
		default:
			delete(p.announcedFailing, key)
			delete(p.announcedRecovery, key)
		}
	}
	for key := range p.announcedFailing {
		if !seen[key] {
			delete(p.announcedFailing, key)
		}
	}
	for key := range p.announcedRecovery {
		if !seen[key] {
			delete(p.announcedRecovery, key)
		}
	}
	if !onlyChanges {
		l.metrics.Passes.Inc()
		l.metrics.FailingJobs.Set(float64(failing))
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
