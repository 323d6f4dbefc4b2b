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
}

// DueConfig holds what Due needs besides the jobs and the clock.
type DueConfig struct {
	// RecoveryWindow: INFO entries with failing 0 are due this long after a
	// recovery.
	RecoveryWindow time.Duration
	// Schedules adds watched jobs' schedules to their ERROR entries; nil:
	// none.
	Schedules api.ScheduleOf
	// Kicked: a job just started failing or recovered. Only what was not
	// announced yet is due, so that a burst of callbacks does not multiply
	// the interval's entries.
	Kicked bool
}

// Due is the decision of the alarm loop, a pure function of the jobs, what
// was announced and the clock (as state.Apply is for results): the entries
// due at now, and what is announced once they are written.
//
//   - a failing job: one ERROR entry (failing 1) every pass; on a kick only
//     when its streak was not announced yet;
//   - a job that recovered within the recovery window: one NOTICE, then an
//     INFO entry (failing 0) every pass until the window ends;
//   - any other job: nothing.
func Due(jobs []state.Job, announced Announced, now time.Time, cfg DueConfig) ([]Entry, Announced) {
	next := Announced{Failing: map[state.Key]time.Time{}, Recovery: map[state.Key]time.Time{}}
	schedules := cfg.Schedules
	if schedules == nil {
		schedules = func(string, string, time.Time) *api.Schedule { return nil }
	}
	var entries []Entry
	for _, j := range jobs {
		key := j.Key()
		switch {
		case j.Failing():
			next.Failing[key] = *j.FailingSince
			if cfg.Kicked && announced.Failing[key].Equal(*j.FailingSince) {
				continue
			}
			entries = append(entries, failingEntry(j, schedules(j.Namespace, j.Name, now), now))
		case j.LastStreak != nil && j.RecoveredAt != nil && now.Sub(*j.RecoveredAt) < cfg.RecoveryWindow:
			next.Recovery[key] = *j.RecoveredAt
			if !announced.Recovery[key].Equal(*j.RecoveredAt) {
				entries = append(entries, recoveredEntry(j, now))
				continue
			}
			if !cfg.Kicked {
				entries = append(entries, healthyEntry(j, now))
			}
		}
	}
	// Only the jobs failing or recovering now are remembered: one that comes
	// back to either is a new streak or a new recovery.
	return entries, next
}
