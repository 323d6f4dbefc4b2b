// Package schedule computes the ticks of a cron schedule the way the cron
// controllers compute them: Argo Workflows' CronWorkflow controller
// (spec.schedules, or the deprecated spec.schedule, and spec.timezone) and
// Kubernetes' CronJob controller (spec.schedule, spec.timeZone). Both parse
// with github.com/robfig/cron/v3's ParseStandard and step with its
// Schedule.Next, and so does this package, so that DST changes, impossible
// dates and descriptors come out as the controllers see them. It is pure: it
// takes plain strings and imports neither Argo nor Kubernetes.
//
// What ParseStandard accepts: five fields (minute hour day-of-month month
// day-of-week; names such as JAN or MON, "?" as "*"; no seconds field), or a
// descriptor: @yearly (@annually), @monthly, @weekly, @daily (@midnight),
// @hourly, or "@every <Go duration>"; each optionally preceded by
// "CRON_TZ=<zone> " or "TZ=<zone> ".
//
// Time zones. Argo composes "CRON_TZ=<timezone> <schedule>" when the timezone
// is set (GetSchedulesWithTimezone), Kubernetes "TZ=<timeZone> <schedule>";
// both read the same. Without a zone robfig uses the controller's local zone,
// which in a cluster is UTC: this package reads that as UTC, whatever the
// zone of the host it runs on or of the times it is given. The zone names are
// resolved with time.LoadLocation, so the binary needs the IANA database (the
// host's, or the one the main package embeds by importing time/tzdata, as
// Argo's workflow-controller does).
//
// DST, as robfig's Next computes it (the tests pin each case): a time of day
// that does not exist on the spring-forward day is skipped, not shifted (a
// daily 02:30 job does not run that day); a time of day that occurs twice on
// the fall-back day runs twice (at both instants); an hourly job ticks every
// real hour, so there is one local hour fewer in spring and the repeated hour
// ticks twice in autumn.
//
// "@every <d>" has no calendar anchor: robfig's Next(t) is t+d (whole
// seconds), and both controllers step it from the last scheduled time. Ticks
// therefore anchors it at its after argument: after+d, after+2d, ...
package schedule

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is one or more cron expressions with their time zone, read as the
// cron controllers read them. The zero Schedule never ticks.
type Schedule struct {
	exprs  []string        // as given
	specs  []string        // as composed and parsed (Argo's GetSchedulesWithTimezone)
	parsed []cron.Schedule // one per expression
	loc    *time.Location
}

// MaxTicks caps the max argument of Ticks: a larger one is read as MaxTicks
// (and truncated reports what that leaves out).
const MaxTicks = 10_000

// Parse parses exprs (each a 5-field cron expression or a descriptor,
// optionally with a CRON_TZ= or TZ= prefix), applying timezone (an IANA
// name; "" is the controller's local zone, which in a cluster is UTC, and is
// read as UTC) the way Argo's GetSchedulesWithTimezone does: each expression
// becomes "CRON_TZ=<timezone> <expr>" when timezone is set, and is parsed by
// cron.ParseStandard. An expression with its own zone prefix is therefore an
// error when timezone is set too (Argo's controller cannot parse the result
// and never schedules the CronWorkflow; Kubernetes refuses it at admission).
// A Kubernetes CronJob is Parse([]string{spec.schedule}, spec.timeZone).
//
// The error names the offending expression and says what is wrong with it.
func Parse(exprs []string, timezone string) (Schedule, error) {
	if len(exprs) == 0 {
		return Schedule{}, errors.New("no cron schedule: the schedule list is empty")
	}
	loc := time.UTC
	if timezone != "" {
		l, err := time.LoadLocation(timezone)
		if err != nil {
			return Schedule{}, fmt.Errorf("timezone %q is not a known IANA time zone name (such as \"Europe/Berlin\" or \"UTC\"): %v", timezone, err)
		}
		if l != time.Local {
			loc = l
		}
	}
	s := Schedule{exprs: slices.Clone(exprs), loc: loc}
	for i, expr := range exprs {
		spec := compose(expr, timezone)
		p, err := parseOne(expr, spec, timezone)
		if err != nil {
			which := fmt.Sprintf("cron schedule %q", expr)
			if len(exprs) > 1 {
				which = fmt.Sprintf("cron schedule %d of %d, %q,", i+1, len(exprs), expr)
			}
			return Schedule{}, fmt.Errorf("%s %v", which, err)
		}
		s.specs = append(s.specs, spec)
		s.parsed = append(s.parsed, p)
	}
	return s, nil
}

// compose is Argo's CronWorkflowSpec.withTimezone.
func compose(expr, timezone string) string {
	if timezone != "" {
		return "CRON_TZ=" + timezone + " " + expr
	}
	return expr
}

// hasZone is robfig's test for a zone prefix.
func hasZone(spec string) bool {
	return strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=")
}

const syntaxHint = "(expected 5 fields, minute hour day-of-month month day-of-week, or a descriptor such as @hourly, @daily or @every 1h, optionally after CRON_TZ=<zone>)"

func parseOne(expr, spec, timezone string) (p cron.Schedule, err error) {
	switch {
	case strings.TrimSpace(expr) == "":
		return nil, errors.New("is empty " + syntaxHint)
	case hasZone(expr) && timezone != "":
		zone, _, _ := strings.Cut(expr, " ")
		return nil, fmt.Errorf("sets its own time zone (%s) and the timezone %q is set too: the controller would read %q, which does not parse (Argo never schedules it, Kubernetes refuses it); set the zone in one place only", zone, timezone, spec)
	case hasZone(spec) && !strings.Contains(spec, " "):
		// robfig slices up to the first space and would panic.
		return nil, errors.New("has a time zone prefix but no schedule after it (a space must separate them) " + syntaxHint)
	}
	defer func() { // as Kubernetes' ParseCronScheduleWithPanicRecovery
		if r := recover(); r != nil {
			p, err = nil, fmt.Errorf("cannot be parsed: %v %s", r, syntaxHint)
		}
	}()
	p, err = cron.ParseStandard(spec)
	if err != nil {
		if strings.HasPrefix(err.Error(), "provided bad location") {
			return nil, fmt.Errorf("has an unknown time zone: %v", err)
		}
		return nil, fmt.Errorf("cannot be parsed: %v %s", err, syntaxHint)
	}
	if sp, ok := p.(*cron.SpecSchedule); ok && sp.Location == time.Local {
		// No zone, or CRON_TZ=Local: the controller's zone, UTC in a cluster.
		// (Left as time.Local, robfig would use the zone of each time given.)
		sp.Location = time.UTC
	}
	return p, nil
}

// Strings returns the expressions as given (for display).
func (s Schedule) Strings() []string { return slices.Clone(s.exprs) }

// Location is the zone of the timezone argument (UTC for ""); an expression
// with its own CRON_TZ=/TZ= prefix ticks in that zone instead.
func (s Schedule) Location() *time.Location {
	if s.loc == nil {
		return time.UTC
	}
	return s.loc
}

// Next is the earliest tick strictly after t, across all expressions, in
// t's location; the zero Time when there is none (an impossible date such
// as February 30, or none within robfig's five-year search).
func (s Schedule) Next(t time.Time) time.Time {
	var next time.Time
	for _, p := range s.parsed {
		if n := p.Next(t); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

// Ticks returns the ticks in (after, until], ascending, in until's location,
// ticks of several expressions at the same instant merged; at most max of
// them (max is capped at MaxTicks), the LATEST ones when there are more, and
// whether any were dropped.
//
// It never walks the whole window: per expression it looks back from until
// over a window that doubles (starting at max minutes, as a standard
// expression ticks at most once a minute) until the window holds max ticks
// or reaches after, stopping any walk that passes 2*max+64 ticks and then
// bisecting the window. So an every-minute schedule over 30 days with max 10
// costs a few dozen Next calls, and no call costs more than about 90 walks of
// at most 2*max+64 steps. "@every" ticks are computed arithmetically from
// after.
func (s Schedule) Ticks(after, until time.Time, max int) (ticks []time.Time, truncated bool) {
	after, until = after.Round(0), until.Round(0) // wall clock only
	if !until.After(after) {
		return nil, false
	}
	if max <= 0 {
		for _, p := range s.parsed {
			if n := p.Next(after); !n.IsZero() && !n.After(until) {
				return nil, true
			}
		}
		return nil, false
	}
	max = min(max, MaxTicks)
	for _, p := range s.parsed {
		latest, dropped := latestTicks(p, after, until, max)
		ticks = append(ticks, latest...)
		truncated = truncated || dropped
	}
	for i := range ticks {
		ticks[i] = ticks[i].In(until.Location())
	}
	slices.SortFunc(ticks, func(a, b time.Time) int { return a.Compare(b) })
	ticks = slices.CompactFunc(ticks, time.Time.Equal)
	if len(ticks) > max {
		ticks, truncated = ticks[len(ticks)-max:], true
	}
	if len(ticks) == 0 {
		ticks = nil
	}
	return ticks, truncated
}

// Last is the latest tick in (after, atOrBefore], if any.
func (s Schedule) Last(after, atOrBefore time.Time) (time.Time, bool) {
	ticks, _ := s.Ticks(after, atOrBefore, 1)
	if len(ticks) == 0 {
		return time.Time{}, false
	}
	return ticks[0], true
}

// latestTicks returns the latest max ticks of p in (after, until], ascending,
// and whether there are earlier ones. max >= 1.
func latestTicks(p cron.Schedule, after, until time.Time, max int) ([]time.Time, bool) {
	if every, ok := p.(cron.ConstantDelaySchedule); ok {
		return latestEvery(every, after, until, max)
	}
	limit := 2*max + 64
	whole := until.Sub(after) // saturates for windows beyond ~292 years
	const maxSpan = time.Duration(1<<63 - 1)
	window := func(span time.Duration) time.Time {
		if span >= whole || span == maxSpan {
			return after
		}
		return until.Add(-span)
	}
	done := func(from time.Time, ticks []time.Time, n int) ([]time.Time, bool) {
		dropped := n > max
		if !dropped && from.After(after) {
			next := p.Next(after) // is there a tick in (after, from]?
			dropped = !next.IsZero() && !next.After(from)
		}
		return lastN(ticks, max), dropped
	}

	// Double the look-back until it holds max ticks or reaches after.
	lo := time.Duration(0) // a look-back known to hold fewer than max ticks
	hi := time.Duration(0) // one known to hold more than limit (0: none yet)
	for span := time.Duration(max) * time.Minute; ; {
		from := window(span)
		ticks, n, complete := walk(p, from, until, max, limit)
		if !complete {
			hi = span
			break
		}
		if n >= max || from.Equal(after) {
			return done(from, ticks, n)
		}
		lo = span
		if span > maxSpan/2 {
			span = maxSpan
		} else {
			span *= 2
		}
	}

	// The last window was too dense to walk: bisect between lo and hi for a
	// look-back holding between max and limit ticks (the count grows by one
	// tick at a time, so there is one). At most 63 halvings.
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		from := window(mid)
		ticks, n, complete := walk(p, from, until, max, limit)
		switch {
		case !complete:
			hi = mid
		case n >= max || from.Equal(after):
			return done(from, ticks, n)
		default:
			lo = mid
		}
	}
	// Unreachable unless Next misbehaves: the latest ticks found, flagged.
	ticks, _, _ := walk(p, window(lo), until, max, limit)
	return lastN(ticks, max), true
}

// walk steps p from from and collects the ticks in (from, until], keeping
// the latest keep of them (in at most 2*keep memory); n counts them all.
// It gives up (complete false) once n exceeds limit.
func walk(p cron.Schedule, from, until time.Time, keep, limit int) (ticks []time.Time, n int, complete bool) {
	prev := from
	for t := p.Next(from); !t.IsZero() && !t.After(until); t = p.Next(t) {
		if !t.After(prev) { // never from robfig; guards the loop anyway
			break
		}
		prev = t
		if n++; n > limit {
			return nil, n, false
		}
		if len(ticks) == 2*keep {
			ticks = append(ticks[:0], ticks[keep:]...)
		}
		ticks = append(ticks, t)
	}
	return ticks, n, true
}

func lastN(ticks []time.Time, n int) []time.Time {
	if len(ticks) > n {
		return ticks[len(ticks)-n:]
	}
	return ticks
}

// latestEvery is latestTicks for "@every d": robfig's Next(t) is t+d less
// t's nanoseconds, and d is whole seconds, so from after the ticks are
// first, first+d, first+2d, ... with first = Next(after), all on whole
// seconds: the latest ones are computed, not walked.
func latestEvery(p cron.ConstantDelaySchedule, after, until time.Time, max int) ([]time.Time, bool) {
	first := p.Next(after)
	if first.After(until) {
		return nil, false
	}
	step := max64(int64(p.Delay/time.Second), 1)
	firstSec := first.Unix()
	n := (until.Unix()-firstSec)/step + 1 // until.Unix() is floored: a tick on until counts
	m := min(n, int64(max))
	ticks := make([]time.Time, 0, m)
	for k := n - m; k < n; k++ {
		ticks = append(ticks, time.Unix(firstSec+k*step, 0))
	}
	return ticks, n > m
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}
