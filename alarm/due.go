package alarm

import (
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// Announced is what a loop has written so far: for each failing job the
// start of the streak its ERROR entries announced, and for each recovered
// job the recovery its NOTICE announced. The zero value is a loop that has
// written nothing.
type Announced struct {
	Failing  map[state.Key]time.Time
	Recovery map[state.Key]time.Time
	// Silenced holds, for each failing job a silence mutes, when this loop
	// first wrote it as silenced.
	Silenced map[state.Key]time.Time
}

// ReannounceRecoveries: a loop that starts (a restart, a new leader)
// announces again the recoveries of this long before it started, because it
// cannot know whether its predecessor wrote their recovery window (it may
// have been down, or not leading, since). An incident older than that has
// been closed by the shipped policy's auto_close, which the examples' tests
// tie to this value.
const ReannounceRecoveries = 24 * time.Hour

// MaxWindowPasses bounds the passes a policy window is taken to hold, and
// so the entries that announce one change (--policy-window / --interval).
const MaxWindowPasses = 60

// DueConfig holds what Due needs besides the jobs and the clock.
type DueConfig struct {
	// Interval is the time between passes.
	Interval time.Duration
	// RecoveryWindow: INFO entries with failing 0 are due this long after a
	// recovery (or after Started, for a recovery announced again).
	RecoveryWindow time.Duration
	// PolicyWindow is the alert policy's alignment window: the first
	// announcement of a streak or of a recovery is written as
	// TransitionWeight entries, so that in any window that holds it the new
	// value outnumbers the old (the policy reads the window's median). Zero:
	// one entry.
	PolicyWindow time.Duration
	// Started is when this loop began writing (zero: long ago).
	Started time.Time
	// Schedules adds watched jobs' schedules to their ERROR entries; nil:
	// none.
	Schedules api.ScheduleOf
	// Kicked: a job just started failing or recovered. Only what was not
	// announced yet is due, so that a burst of callbacks does not multiply
	// the interval's entries.
	Kicked bool
	// Silences are the silences in force at now.
	Silences []api.Silence
	// MissedGrace (--missed-grace): a job no watcher reads is late with no
	// result for twice its expected interval plus this (LateResults).
	MissedGrace time.Duration
}

// TransitionWeight is how many entries announce a new value of a job at
// now, so that they outnumber the entries of the old value in any policy
// window that holds them: one per pass the window can hold, plus two for
// the passes and kicks at its edges; plus twice that for each earlier burst
// of the old value that may still be in the window: the announcement of the
// previous transition (at previous), and this loop's start-up announcement
// of the old value (oldAtStart). Three transitions within one window may
// therefore close or open an incident only when the window has passed.
func (c DueConfig) TransitionWeight(now, previous time.Time, oldAtStart bool) int {
	if c.PolicyWindow <= 0 || c.Interval <= 0 {
		return 1
	}
	base := int(min(c.PolicyWindow/c.Interval, MaxWindowPasses)) + 2
	weight := base
	recent := c.PolicyWindow + c.Interval
	if !previous.IsZero() && now.Sub(previous) < recent {
		weight += 2 * base
	}
	if oldAtStart && !c.Started.IsZero() && now.Sub(c.Started) < recent {
		weight += 2 * base
	}
	return weight
}

// reannounced: a recovery at recoveredAt is announced again by a loop that
// started at c.Started.
func (c DueConfig) reannounced(recoveredAt time.Time) bool {
	return !c.Started.IsZero() && recoveredAt.Before(c.Started) && c.Started.Sub(recoveredAt) < ReannounceRecoveries
}

// Due is the decision of the alarm loop, a pure function of the jobs, what
// was announced and the clock (as state.Apply is for results): the entries
// due at now, and what is announced once they are written.
//
//   - a failing job at or past its failure threshold: one ERROR entry
//     (failing 1) every pass; the first announcement of its streak (on a
//     kick, the first pass of a loop, or when a silence of it ends) is
//     TransitionWeight entries;
//   - a failing job a silence mutes: one INFO entry with failing 0 every
//     pass, the first one TransitionWeight times: what the policies read as
//     healthy, so its incident closes; never an ERROR entry;
//   - a failing job below its failure threshold: nothing yet;
//   - a job that recovered within the recovery window, from a streak that
//     reached its failure threshold: one NOTICE and
//     TransitionWeight INFO entries (failing 0), then one INFO entry every
//     pass until the window ends;
//   - a recovery in the ReannounceRecoveries before the loop started, not
//     announced by this loop: as if it had just recovered;
//   - a job forgotten while alerting (state.ForgetAt ended its streak) is a
//     recovery whose NOTICE says it was forgotten, and why; one forgotten
//     in its recovery window keeps it;
//   - any other job: nothing;
//   - every pass that is not a kick: one heartbeat.
func Due(jobs []state.Job, announced Announced, now time.Time, cfg DueConfig) ([]Entry, Announced) {
	var entries []Entry
	next := DueEach(jobs, announced, now, cfg, func(e Entry) { entries = append(entries, e) })
	return entries, next
}

// DueEach is Due handing each entry to emit as it is decided, in the same
// order, instead of returning them all: the loop writes them as they come,
// so that the entries of a first pass (TransitionWeight of each, 200,000 at
// 10,000 failing jobs with the default window) are never all in memory at
// once.
func DueEach(jobs []state.Job, announced Announced, now time.Time, cfg DueConfig, emit func(Entry)) Announced {
	next := Announced{Failing: map[state.Key]time.Time{}, Recovery: map[state.Key]time.Time{}, Silenced: map[state.Key]time.Time{}}
	schedules := cfg.Schedules
	if schedules == nil {
		schedules = func(string, string, string, time.Time) *api.Schedule { return nil }
	}
	failing, forgotten := 0, 0
	for _, j := range jobs {
		key := j.Key()
		if j.Failing() {
			failing++
		}
		if j.Forgotten() {
			forgotten++
		}
		silence := state.SilenceOf(key, cfg.Silences)
		switch {
		case j.Alerting() && silence != nil:
			silencedAt, known := announced.Silenced[key]
			if !known {
				silencedAt = now
			}
			next.Silenced[key] = silencedAt
			if cfg.Kicked && known {
				continue
			}
			e := silencedEntry(j, silence, now)
			n := 1
			if !known {
				n = cfg.TransitionWeight(now, *j.FailingSince, j.FailingSince.Before(cfg.Started))
			}
			for range n {
				emit(e)
			}
		case j.Alerting():
			next.Failing[key] = *j.FailingSince
			first := !announced.Failing[key].Equal(*j.FailingSince)
			if cfg.Kicked && !first {
				continue
			}
			sched := schedules(j.Key().KindName(), j.Namespace, j.Name, now)
			e := failingEntry(j, sched, now)
			if sched == nil {
				e.Payload.JobView.Expected = j.ExpectedAt(now, cfg.MissedGrace)
			}
			n := 1
			if first {
				var previous time.Time
				if j.LastStreak != nil {
					previous = j.LastStreak.Until
				}
				oldAtStart := !previous.IsZero() && cfg.reannounced(previous)
				if silencedAt, ok := announced.Silenced[key]; ok {
					// A silence just ended: its zeros are the old value.
					previous, oldAtStart = silencedAt, false
				}
				n = cfg.TransitionWeight(now, previous, oldAtStart)
			}
			for range n {
				emit(e)
			}
		case j.Failing():
			// Below its failure threshold: shown as failing, not announced.
		case recovering(j, now, cfg):
			next.Recovery[key] = *j.RecoveredAt
			if !announced.Recovery[key].Equal(*j.RecoveredAt) {
				if j.Forgotten() {
					emit(forgottenEntry(j))
				} else {
					emit(recoveredEntry(j, now))
				}
				e := healthyEntry(j, now)
				since := j.LastStreak.Since
				for range cfg.TransitionWeight(now, since, since.Before(cfg.Started)) {
					emit(e)
				}
				continue
			}
			if !cfg.Kicked {
				emit(healthyEntry(j, now))
			}
		}
	}
	if !cfg.Kicked {
		emit(heartbeatEntry(len(jobs)-forgotten, failing, now))
	}
	// Only the jobs failing or recovering now are remembered: one that comes
	// back to either is a new streak or a new recovery.
	return next
}

// recovering: j's recovery window is running at now. It starts at the
// recovery, or when the loop started for a recovery it announces again.
func recovering(j state.Job, now time.Time, cfg DueConfig) bool {
	if j.Failing() || j.LastStreak == nil || j.RecoveredAt == nil || j.QuietRecovery {
		return false
	}
	from := *j.RecoveredAt
	if cfg.reannounced(from) {
		from = cfg.Started
	}
	return now.Sub(from) < cfg.RecoveryWindow
}

// Purgeable returns the forgotten jobs whose closing this loop has
// written (their recovery window has passed, counted as recovering counts
// it): the loop removes them from the state (state.PurgeForgotten).
func Purgeable(jobs []state.Job, now time.Time, cfg DueConfig) []state.Job {
	var out []state.Job
	for _, j := range jobs {
		if j.Forgotten() && !recovering(j, now, cfg) {
			out = append(out, j)
		}
	}
	return out
}

// LateResults are the Late runs due at now (state.LateResult) of the jobs
// no watcher reads (a watched job's missed ticks are reported instead): the
// loop records them. A job's Late run is decided from the stored state
// alone, so a pass that sees it again, a restart or a new leader makes the
// same run, which the store counts once.
func LateResults(jobs []state.Job, now time.Time, cfg DueConfig) []api.Result {
	var out []api.Result
	for _, j := range jobs {
		if j.ExpectedEvery == "" {
			continue // the usual case: nothing to decide
		}
		if r, ok := state.LateResult(j, now, cfg.MissedGrace); ok && (cfg.Schedules == nil || cfg.Schedules(j.Key().KindName(), j.Namespace, j.Name, now) == nil) {
			out = append(out, r)
		}
	}
	return out
}
