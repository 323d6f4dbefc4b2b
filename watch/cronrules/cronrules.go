// Package cronrules holds the decisions the CronWorkflow and the CronJob
// watchers share: which ticks of a schedule went without a run, and which
// runs are stuck. Both controllers schedule the same way (one run per tick,
// named after the tick, at most the latest missed tick after an outage,
// concurrencyPolicy Forbid skipping ticks while a run is active), so a
// missed tick means the same for both; only how a run is named after its
// tick differs, and each watcher passes its Naming. Pure: plain structs and
// a clock.
package cronrules

import (
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/watch/schedule"
)

// TicksLookedAt bounds how many past ticks one evaluation considers: after a
// long outage the latest ones are what matters (both controllers start at
// most the latest missed tick).
const TicksLookedAt = 10

// Cron is what the rules need of a CronWorkflow or a CronJob.
type Cron struct {
	Name     string
	Schedule schedule.Schedule
	// From: only ticks after it count (its creation, or the latest change
	// of its spec: earlier ticks belong to an older schedule).
	From   time.Time
	Forbid bool // concurrencyPolicy Forbid
	// LastScheduled is when the controller last started a run (a CronJob's
	// status.lastScheduleTime): it covers the ticks up to it even when
	// their runs are gone. Zero when unknown.
	LastScheduled time.Time
	MaxRuntime    time.Duration // 0: off
}

// Run is what the rules need of one of its runs.
type Run struct {
	Name, UID   string
	Started     time.Time // when it started running (else was created)
	ScheduledAt time.Time // the tick it was made for; zero when unknown
	Finished    bool
}

// Naming is how a controller names the run of a tick.
type Naming struct {
	// RunName is the name of cron's run of tick.
	RunName func(cron string, tick time.Time) string
	// Tick reads the tick back from the name of one of cron's runs.
	Tick func(cron, run string) (time.Time, bool)
}

// Stuck returns c's runs still running past its max runtime at now.
func Stuck(c Cron, runs []Run, now time.Time) []Run {
	if c.MaxRuntime <= 0 {
		return nil
	}
	var out []Run
	for _, r := range runs {
		if !r.Finished && now.Sub(r.Started) > c.MaxRuntime {
			out = append(out, r)
		}
	}
	return out
}

// Uncovered returns c's ticks up to now (the latest TicksLookedAt after
// c.From) that have no run: neither a run of theirs nor of a later tick
// exists or has reported, and no active run kept them from running under
// Forbid. job is c's stored job, nil when there is none. The caller decides
// when an uncovered tick is a failure (after a grace, or at once).
func Uncovered(c Cron, n Naming, runs []Run, job *state.Job, now time.Time) []time.Time {
	ticks, _ := c.Schedule.Ticks(c.From, now, TicksLookedAt)
	var out []time.Time
	for _, tick := range ticks {
		if !covered(c, n, runs, job, tick) {
			out = append(out, tick)
		}
	}
	return out
}

// covered reports whether tick was run, or needs no run of its own: a run
// for it exists, a run of it or a later tick has reported, the controller
// says it scheduled it or a later tick, or (with Forbid) a run was still
// active at the tick.
func covered(c Cron, n Naming, runs []Run, job *state.Job, tick time.Time) bool {
	if !c.LastScheduled.IsZero() && !c.LastScheduled.Before(tick) {
		return true
	}
	name := n.RunName(c.Name, tick)
	for _, r := range runs {
		if r.Name == name || (!r.ScheduledAt.IsZero() && !r.ScheduledAt.Before(tick)) {
			return true
		}
		if c.Forbid && r.Started.Before(tick) && !r.Finished {
			return true
		}
	}
	if job == nil || job.LastResultAt.IsZero() || (api.Result{Phase: job.LastPhase}).Synthetic() {
		return false
	}
	endedAfter := !job.LastResultAt.Before(tick)
	if scheduled, ok := n.Tick(c.Name, job.LastWorkflow); ok {
		// A run of this tick or a later one reported; with Forbid, an
		// earlier run that ended after the tick kept it from running.
		return !scheduled.Before(tick) || c.Forbid && endedAfter
	}
	// A run not named after a tick (made by hand from the cron) covers
	// the ticks before it ended.
	return endedAfter
}

// WithFailureThreshold returns r carrying the failure threshold annotated on
// its CronWorkflow or CronJob (annotations), which is where a watcher reads
// it. A value the callback would refuse is left out, with an error to
// report, rather than failing the result: the run still counts.
func WithFailureThreshold(r api.Result, annotations map[string]string) (api.Result, error) {
	v, ok := annotations[api.AnnotationFailureThreshold]
	if !ok {
		return r, nil
	}
	if _, err := api.ParseFailureThreshold(v); err != nil {
		return r, fmt.Errorf("annotation %s: %w", api.AnnotationFailureThreshold, err)
	}
	out := make(map[string]string, len(r.Annotations)+1)
	maps.Copy(out, r.Annotations)
	out[api.AnnotationFailureThreshold] = v
	r.Annotations = out
	return r, nil
}

// Warned remembers which bad annotations were reported: once per version of
// the object, not at every evaluation. The zero value is ready for use.
type Warned struct{ seen sync.Map }

// First reports whether annotation key of version version of the object
// with uid uid is reported for the first time.
func (w *Warned) First(uid, version, key string) bool {
	_, seen := w.seen.LoadOrStore(uid+"/"+version+"/"+key, true)
	return !seen
}
