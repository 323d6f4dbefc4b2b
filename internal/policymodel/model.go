// Package policymodel is a model of how Cloud Monitoring turns batchlatch's
// entries into incidents: a log-based metric (a counter, or a DELTA
// distribution of a payload field) and an alert policy's threshold
// condition, evaluated every minute. It is fed with the entry stream that
// alarm.Due produces for a scenario, and counts incidents and their delays.
//
// Which documented rule each part follows (../shared/FACTS.md):
//   - a log-based metric writes one point per minute per series; a counter
//     writes a point only for a minute that counted entries, plus a zero
//     right after; points may arrive up to 10 minutes late (Lag);
//   - each writer pod makes its own series; the policy groups by the metric
//     labels (namespace, job), summing or maxing over the rest;
//   - the condition aligns each series over the alignment window, reduces
//     across series, compares with the threshold, and must hold for the
//     duration before an incident opens; with missing data INACTIVE an
//     empty window is "not met", ACTIVE "met", NO_OP "no change";
//   - an open incident closes at the first evaluation that is not met, or
//     after auto-close with no data.
//
// What it cannot know, and assumes: the evaluation runs at each whole
// minute; a point is seen from the first evaluation at or after the end of
// its minute plus the lag (an entry dated back counts in its minute, seen
// from when it was written plus the lag), and only by windows that still
// contain its minute (a point later than the window is never counted); a
// percentile over a distribution whose buckets keep 0s and 1s apart is 1
// exactly when fewer than p% of the window's values are 0 (the threshold
// lies in an empty bucket, so the interpolation inside a bucket does not
// matter). Whether Cloud Monitoring counts the window's values or its points
// (one per minute) is not documented: CountPoints models the latter.
package policymodel

import (
	"sort"
	"time"
)

// Sample is one entry as the metric sees it: when, from which writer pod,
// for which group (namespace/job), and its payload's failing value.
type Sample struct {
	Time time.Time
	// Written is when the entry was written, when that is after Time (an
	// entry dated back, as a recovery's NOTICE written again by a new
	// leader): the metric counts it in Time's minute, but only from then.
	Written  time.Time
	Pod      string
	Group    string
	Severity string
	Failing  float64
}

// MetricKind is how the log-based metric turns matching entries into points.
type MetricKind int

const (
	// Counter counts entries with severity ERROR and failing 1.
	Counter MetricKind = iota
	// Distribution records the failing value of every entry that has it.
	Distribution
)

// Aligner is the per-series aligner.
type Aligner int

const (
	// AlignDelta sums the counts in the window.
	AlignDelta Aligner = iota
	// AlignPercentile is ALIGN_PERCENTILE_<Percentile> over a distribution.
	AlignPercentile
)

// Reducer is the cross-series reducer over the group's series.
type Reducer int

const (
	ReduceSum Reducer = iota
	ReduceMax
)

// MissingData is evaluation_missing_data.
type MissingData int

const (
	MissingInactive MissingData = iota
	MissingActive
	MissingNoOp
)

// Policy is the metric and the alert condition.
type Policy struct {
	Name       string
	Metric     MetricKind
	Window     time.Duration
	Aligner    Aligner
	Percentile float64 // for AlignPercentile, 0–100
	// CountPoints: the percentile is taken over the window's points, each
	// counted once with its own percentile, instead of over every value the
	// points hold (the model's assumption, which the weight relies on).
	CountPoints bool
	Reducer     Reducer
	Threshold   float64 // the condition is value > Threshold
	Duration    time.Duration
	MissingData MissingData
	AutoClose   time.Duration
}

// Incident is one incident of a group.
type Incident struct {
	Group          string
	Opened, Closed time.Time // Closed is zero while open
}

type point struct {
	minute time.Time
	// written is when the latest of its entries was written, when that is
	// after the minute: the point is seen only from then.
	written time.Time
	series  string // group + pod
	group   string
	count   float64
	values  []float64
}

// points turns samples into the metric's per-minute points.
func points(p Policy, samples []Sample) []point {
	type key struct {
		minute  time.Time
		series  string
		written time.Time // zero for entries written within their minute
	}
	byKey := map[key]*point{}
	for _, s := range samples {
		var v float64
		switch p.Metric {
		case Counter:
			if s.Severity != "ERROR" || s.Failing != 1 {
				continue
			}
		case Distribution:
			v = s.Failing
		}
		k := key{minute: s.Time.Truncate(time.Minute), series: s.Group + "|" + s.Pod}
		if s.Written.After(k.minute.Add(time.Minute)) {
			k.written = s.Written
		}
		pt := byKey[k]
		if pt == nil {
			pt = &point{minute: k.minute, series: k.series, group: s.Group, written: k.written}
			byKey[k] = pt
		}
		pt.count++
		pt.values = append(pt.values, v)
	}
	var out []point
	for _, pt := range byKey {
		out = append(out, *pt)
	}
	if p.Metric == Counter {
		// A counter writes a zero right after its last non-zero minute.
		seen := map[key]bool{}
		for _, pt := range out {
			seen[key{minute: pt.minute, series: pt.series}] = true
		}
		for _, pt := range append([]point(nil), out...) {
			next := key{minute: pt.minute.Add(time.Minute), series: pt.series}
			if !seen[next] {
				seen[next] = true
				out = append(out, point{minute: next.minute, series: pt.series, group: pt.group})
			}
		}
	}
	sort.Slice(out, func(i, k int) bool { return out[i].minute.Before(out[k].minute) })
	return out
}

// Evaluate runs the condition every minute from from to until over samples
// that arrive lag late, and returns the incidents of every group.
func Evaluate(p Policy, samples []Sample, lag func(time.Time) time.Duration, from, until time.Time) []Incident {
	pts := points(p, samples)
	groups := map[string]bool{}
	for _, pt := range pts {
		groups[pt.group] = true
	}
	var incidents []Incident
	for group := range groups {
		incidents = append(incidents, evaluateGroup(p, pts, group, lag, from, until)...)
	}
	sort.Slice(incidents, func(i, k int) bool { return incidents[i].Opened.Before(incidents[k].Opened) })
	return incidents
}

func evaluateGroup(p Policy, pts []point, group string, lag func(time.Time) time.Duration, from, until time.Time) []Incident {
	var incidents []Incident
	var open *Incident
	met := false
	var metSince time.Time
	var lastData time.Time
	for t := from.Truncate(time.Minute); !t.After(until); t = t.Add(time.Minute) {
		value, hasData := aligned(p, pts, group, lag, t)
		switch {
		case hasData:
			lastData = t
			now := value > p.Threshold
			if now && !met {
				metSince = t
			}
			met = now
		case p.MissingData == MissingInactive:
			met = false
		case p.MissingData == MissingActive:
			if !met {
				metSince = t
			}
			met = true
		case p.MissingData == MissingNoOp:
			// no change
		}
		switch {
		case open == nil && met && t.Sub(metSince) >= p.Duration:
			open = &Incident{Group: group, Opened: t}
		case open != nil && !met:
			open.Closed = t
			incidents = append(incidents, *open)
			open = nil
		case open != nil && p.AutoClose > 0 && t.Sub(lastData) >= p.AutoClose:
			open.Closed = t
			incidents = append(incidents, *open)
			open, met = nil, false
		}
	}
	if open != nil {
		incidents = append(incidents, *open)
	}
	return incidents
}

// aligned is the group's value at evaluation time t: each series aligned
// over the window, reduced across series; hasData is false when no point
// of the window has arrived.
func aligned(p Policy, pts []point, group string, lag func(time.Time) time.Duration, t time.Time) (float64, bool) {
	perSeries := map[string][]point{}
	for _, pt := range pts {
		if pt.group != group || !pt.minute.After(t.Add(-p.Window)) || pt.minute.After(t) {
			continue
		}
		// A minute's point exists once the minute is over, and is seen
		// lag later.
		if pt.minute.Add(time.Minute+lag(pt.minute)).After(t) || !pt.written.IsZero() && pt.written.Add(lag(pt.minute)).After(t) {
			continue // not ingested yet
		}
		perSeries[pt.series] = append(perSeries[pt.series], pt)
	}
	if len(perSeries) == 0 {
		return 0, false
	}
	var result float64
	first := true
	for _, series := range perSeries {
		var v float64
		switch p.Aligner {
		case AlignDelta:
			for _, pt := range series {
				v += pt.count
			}
		case AlignPercentile:
			var values []float64
			for _, pt := range series {
				if p.CountPoints {
					values = append(values, percentile(p, pt.values))
				} else {
					values = append(values, pt.values...)
				}
			}
			v = percentile(p, values)
		}
		switch {
		case first:
			result = v
		case p.Reducer == ReduceSum:
			result += v
		case p.Reducer == ReduceMax:
			result = max(result, v)
		}
		first = false
	}
	return result, true
}

// percentile is the p.Percentile of values that are 0s and 1s: 1 exactly
// when fewer than p.Percentile% of them are 0.
func percentile(p Policy, values []float64) float64 {
	zeros := 0.0
	for _, x := range values {
		if x == 0 {
			zeros++
		}
	}
	if len(values) > 0 && zeros/float64(len(values)) < p.Percentile/100 {
		return 1
	}
	return 0
}
