// Package schedule computes the ticks of a cron schedule the way the cron
// controllers read it: Argo's CronWorkflow controller (schedules, the
// deprecated schedule, timezone) and Kubernetes' CronJob controller, both
// through github.com/robfig/cron/v3's standard parser. It is pure: no
// Kubernetes or Argo types, so every source of jobs shares it.
package schedule

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is one or more cron expressions with their time zone.
type Schedule struct {
	exprs  []string
	parsed []cron.Schedule
	loc    *time.Location
}

// Parse parses exprs (5-field expressions or descriptors such as @hourly,
// each optionally prefixed with CRON_TZ= or TZ=) in timezone, an IANA name,
// the way Argo's GetSchedulesWithTimezone composes them ("CRON_TZ=<tz>
// <expr>"). An empty timezone is UTC: the controllers run in containers
// whose local zone is UTC, and a watcher must not depend on its own host's.
func Parse(exprs []string, timezone string) (Schedule, error) {
	if len(exprs) == 0 {
		return Schedule{}, errors.New("no schedule")
	}
	loc := time.UTC
	if timezone != "" {
		l, err := time.LoadLocation(timezone)
		if err != nil {
			return Schedule{}, fmt.Errorf("timezone %q: %v", timezone, err)
		}
		loc = l
	}
	s := Schedule{exprs: append([]string(nil), exprs...), loc: loc}
	for _, expr := range exprs {
		composed := expr
		if !strings.HasPrefix(expr, "CRON_TZ=") && !strings.HasPrefix(expr, "TZ=") {
			composed = "CRON_TZ=" + loc.String() + " " + expr
		}
		parsed, err := cron.ParseStandard(composed)
		if err != nil {
			return Schedule{}, fmt.Errorf("schedule %q: %v", expr, err)
		}
		s.parsed = append(s.parsed, parsed)
	}
	return s, nil
}

// Strings returns the expressions as given.
func (s Schedule) Strings() []string { return append([]string(nil), s.exprs...) }

// Location is the schedule's time zone.
func (s Schedule) Location() *time.Location { return s.loc }

// Next is the earliest tick strictly after t, across all expressions; the
// zero Time when there is none (an impossible date such as February 30).
func (s Schedule) Next(t time.Time) time.Time {
	var next time.Time
	for _, p := range s.parsed {
		if n := p.Next(t); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

// maxSteps bounds the Next calls of one look-back, whatever the schedule
// (an "@every 1s" over a month would otherwise be millions).
const maxSteps = 100_000

// Ticks returns the ticks in (after, until], ascending, ticks of several
// expressions at the same instant merged; at most max of them, the latest
// ones, and whether earlier ones were left out. It looks back from until
// over a window that doubles, so a frequent schedule over a long window
// costs about as much as max ticks.
func (s Schedule) Ticks(after, until time.Time, max int) ([]time.Time, bool) {
	if max <= 0 || !until.After(after) || len(s.parsed) == 0 {
		return nil, false
	}
	for span := time.Hour; ; span *= 2 {
		from := until.Add(-span)
		if !from.After(after) {
			from = after
		}
		ticks, complete := s.between(from, until)
		if len(ticks) >= max || from.Equal(after) || !complete {
			truncated := len(ticks) > max || !from.Equal(after) || !complete
			if len(ticks) > max {
				ticks = ticks[len(ticks)-max:]
			}
			return ticks, truncated && len(ticks) > 0
		}
	}
}

// between returns every tick in (from, until], and false when maxSteps cut
// it short (the latest ticks are then missing: callers look back from until
// with a window small enough not to).
func (s Schedule) between(from, until time.Time) ([]time.Time, bool) {
	seen := map[int64]bool{}
	var ticks []time.Time
	steps := 0
	for _, p := range s.parsed {
		for t := p.Next(from); !t.IsZero() && !t.After(until); t = p.Next(t) {
			if steps++; steps > maxSteps {
				return sortTicks(ticks), false
			}
			if !seen[t.UnixNano()] {
				seen[t.UnixNano()] = true
				ticks = append(ticks, t)
			}
		}
	}
	return sortTicks(ticks), true
}

func sortTicks(ticks []time.Time) []time.Time {
	sort.Slice(ticks, func(i, k int) bool { return ticks[i].Before(ticks[k]) })
	return ticks
}

// Last is the latest tick in (after, atOrBefore], if any.
func (s Schedule) Last(after, atOrBefore time.Time) (time.Time, bool) {
	ticks, _ := s.Ticks(after, atOrBefore, 1)
	if len(ticks) == 0 {
		return time.Time{}, false
	}
	return ticks[0], true
}
