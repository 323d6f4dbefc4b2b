package alarm

import (
	"cmp"
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// Defaults of --interval, --recovery-window and --policy-window. The
// shipped alert policy is built on them (its alignment window is
// DefaultPolicyWindow: the 15 minutes of ingestion lag it is designed for
// plus three intervals, so that a window still holds points at that lag;
// the recovery window outlasts it plus that lag): the examples' tests and
// internal/policymodel tie them together.
const (
	DefaultInterval       = 60 * time.Second
	DefaultRecoveryWindow = 35 * time.Minute
	DefaultPolicyWindow   = 18 * time.Minute
)

// DefaultKickEvery is the least time between two kicked passes. A kicked
// pass lists and weighs every job to find the few that changed; in a burst
// (a cluster-wide outage failing every job at once: 5,000 kicks in 40 s on
// one replica of the reliability suite) kicks ran passes back to back, 40% of
// everything the process allocated. One a second still writes a new
// failure's first entry within the Cloud Logging client's own bundling delay
// (1 s).
const DefaultKickEvery = time.Second

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
	policyWindow   time.Duration
	logger         *slog.Logger
	metrics        *Metrics
	now            func() time.Time
	schedules      api.ScheduleOf
	silences       func(ctx context.Context) ([]api.Silence, error)
	kick           chan struct{}
	kickEvery      time.Duration
	purge          func(ctx context.Context, key state.Key, forgottenAt time.Time) error
	missedGrace    time.Duration
	record         func(ctx context.Context, r api.Result, receivedAt time.Time) (state.Recorded, error)
}

// LoopConfig holds the Loop's settings.
type LoopConfig struct {
	Interval       time.Duration
	RecoveryWindow time.Duration
	// PolicyWindow is the alert policy's alignment window (DueConfig).
	PolicyWindow time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Schedules adds watched jobs' schedules to their ERROR entries; nil:
	// none.
	Schedules api.ScheduleOf
	// Silences returns the stored silences; nil: none.
	Silences func(ctx context.Context) ([]api.Silence, error)
	// KickEvery is the least time between kicked passes; DefaultKickEvery
	// when zero.
	KickEvery time.Duration
	// Purge removes a forgotten job once its closing is written
	// (state.PurgeForgotten); nil: forgotten jobs are kept.
	Purge func(ctx context.Context, key state.Key, forgottenAt time.Time) error
	// MissedGrace is --missed-grace: a job that asks for Late runs is late
	// with no result for twice its expected interval plus this.
	MissedGrace time.Duration
	// Record records a job's Late run (state.Store.Record); nil: no Late
	// runs are recorded (lateness is still shown).
	Record func(ctx context.Context, r api.Result, receivedAt time.Time) (state.Recorded, error)
}

// NewLoop makes a loop that reads jobs and writes to sink.
func NewLoop(jobs Lister, sink Sink, cfg LoopConfig, metrics *Metrics, logger *slog.Logger) *Loop {
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	schedules := cfg.Schedules
	if schedules == nil {
		schedules = func(string, string, string, time.Time) *api.Schedule { return nil }
	}
	return &Loop{
		jobs:           jobs,
		sink:           sink,
		interval:       cfg.Interval,
		recoveryWindow: cfg.RecoveryWindow,
		policyWindow:   cfg.PolicyWindow,
		logger:         logger.With("component", "alarm"),
		metrics:        metrics,
		now:            now,
		schedules:      schedules,
		silences:       cfg.Silences,
		kick:           make(chan struct{}, 1),
		kickEvery:      cmp.Or(cfg.KickEvery, DefaultKickEvery),
		purge:          cfg.Purge,
		missedGrace:    cfg.MissedGrace,
		record:         cfg.Record,
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
	w := writer{announced: Announced{}, started: l.now(), failures: l.metrics.SinkFailures()}
	l.pass(ctx, &w, false)
	var lastKicked time.Time // wall time: the test clock may stand still
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			l.pass(ctx, &w, false)
		case <-l.kick:
			// Kicks that come meanwhile wait in the channel: one pass
			// answers them all.
			if wait := l.kickEvery - time.Since(lastKicked); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
			lastKicked = time.Now()
			l.pass(ctx, &w, true)
		}
	}
}

// writer is what one Run knows of what it wrote.
type writer struct {
	announced Announced
	// started is when this run began writing, or when its writes resumed
	// after failing: what it announced before may be lost.
	started time.Time
	// failures is the sinks' failure count at the last pass; failing is
	// true while it grows.
	failures uint64
	failing  bool
}

// resumed reports whether the sink's writes failed since the last pass and
// then stopped failing (sink errors surface asynchronously, within a write
// timeout): from then on the run announces everything again, as a new
// leader would, since the entries of the outage are lost.
func (w *writer) resumed(failures uint64) bool {
	grew := failures > w.failures
	w.failures = failures
	switch {
	case grew:
		w.failing = true
	case w.failing:
		w.failing = false
		return true
	}
	return false
}

func (l *Loop) dueConfig(started time.Time, kicked bool) DueConfig {
	return DueConfig{
		Interval:       l.interval,
		RecoveryWindow: l.recoveryWindow,
		PolicyWindow:   l.policyWindow,
		Started:        started,
		Schedules:      l.schedules,
		Kicked:         kicked,
		MissedGrace:    l.missedGrace,
	}
}

// pass lists the jobs, decides what is due and writes it: the I/O around Due.
func (l *Loop) pass(ctx context.Context, w *writer, kicked bool) {
	jobs, err := l.jobs.List(ctx)
	if err != nil {
		l.logger.Warn("list jobs", "err", err)
		return
	}
	now := l.now()
	var silences []api.Silence
	if l.silences != nil {
		all, err := l.silences(ctx)
		if err != nil {
			l.logger.Warn("list silences", "err", err)
			return
		}
		silences = state.InForce(all, now)
	}
	if !kicked && w.resumed(l.metrics.SinkFailures()) {
		l.logger.Info("writes resumed after failing: announcing every job again")
		w.announced, w.started = Announced{}, now
	}
	cfg := l.dueConfig(w.started, kicked)
	cfg.Silences = silences
	w.announced = DueEach(jobs, w.announced, now, cfg, func(e Entry) { l.write(ctx, e) })
	if !kicked {
		l.metrics.Passes.Inc()
		failing := 0
		for _, j := range jobs {
			if j.Failing() {
				failing++
			}
		}
		l.metrics.FailingJobs.Set(float64(failing))
		if l.purge != nil {
			for _, j := range Purgeable(jobs, now, cfg) {
				if err := l.purge(ctx, j.Key(), *j.ForgottenAt); err != nil && !errors.Is(err, state.ErrNotFound) {
					l.logger.Warn("remove forgotten job", "err", err, "namespace", j.Namespace, "job", j.Name)
				}
			}
		}
		if l.record != nil {
			l.recordLate(ctx, LateResults(jobs, now, cfg), now)
		}
	}
}

// recordLate records the Late runs due, and kicks the loop to announce the
// streaks they start at once rather than at the next interval.
func (l *Loop) recordLate(ctx context.Context, late []api.Result, now time.Time) {
	announce := false
	for _, r := range late {
		if err := r.ValidateObserved(now); err != nil {
			// A silence longer than a result's times may span
			// (api.MaxResultAge): the job shows as late, with no run.
			l.logger.Warn("late run not recorded", "err", err, "namespace", r.Namespace, "job", r.JobName())
			continue
		}
		rec, err := l.record(ctx, r, now)
		if err != nil {
			l.logger.Warn("record late run", "err", err, "namespace", r.Namespace, "job", r.JobName())
			continue
		}
		if !rec.Outcome.Duplicate && !rec.Outcome.Stale {
			l.logger.Info("job late: recorded a Late run", "namespace", r.Namespace, "job", r.JobName(), "kind", r.Kind(), "workflow", r.WorkflowName)
			announce = announce || rec.Outcome.Announces(rec.Job)
		}
	}
	if announce {
		l.Kick()
	}
}

func (l *Loop) write(ctx context.Context, e Entry) {
	if err := l.sink.Write(ctx, e); err != nil {
		l.logger.Warn("write entry", "err", err, "namespace", e.Labels[LabelNamespace], "job", e.Labels[LabelJob])
		return
	}
	l.metrics.EntriesWritten.WithLabelValues(string(e.Severity)).Inc()
}
