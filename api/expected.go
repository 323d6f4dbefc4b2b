package api

import (
	"fmt"
	"time"
)

// AnnotationExpectedEvery in a callback's annotations says how often a job
// no watcher reads should report: a duration ("6h") or ExpectedEveryAuto
// (the job's usual interval, learnt from its runs). A job that sends no
// result for twice that plus the missed grace gets a failing Late run. Off
// without it: the job's lateness is then only shown.
const AnnotationExpectedEvery = "batchlatch.io/expected-every"

// ExpectedEveryAuto is the annotation's value that learns the interval from
// the job's runs (Usual.IntervalSeconds: MinRunsForUsual runs at least).
const ExpectedEveryAuto = "auto"

// Bounds of an expected interval. Under a minute, a pass of the alarm (every
// --interval) may come too late to tell; past 30 days, the bound of every
// duration a user sets (the watchers' too), a job is not expected at all.
const (
	MinExpectedEvery = time.Minute
	MaxExpectedEvery = 30 * 24 * time.Hour
)

// ExpectedEvery is how often a job is expected to report: Every, or, when
// Auto, its usual interval.
type ExpectedEvery struct {
	Every time.Duration
	Auto  bool
}

// ParseExpectedEvery reads the annotation's value: ExpectedEveryAuto or a Go
// duration from MinExpectedEvery to MaxExpectedEvery.
func ParseExpectedEvery(v string) (ExpectedEvery, error) {
	if v == ExpectedEveryAuto {
		return ExpectedEvery{Auto: true}, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < MinExpectedEvery || d > MaxExpectedEvery {
		return ExpectedEvery{}, fmt.Errorf("%s is neither %q nor a duration from %s to %dh", Quote(v), ExpectedEveryAuto, MinExpectedEvery, int(MaxExpectedEvery.Hours()))
	}
	return ExpectedEvery{Every: d}, nil
}

// ExpectedEvery is the result's expected interval as annotated ("" when it
// has none; Validate has checked a present one).
func (r Result) ExpectedEvery() string {
	v := r.Annotations[AnnotationExpectedEvery]
	if _, err := ParseExpectedEvery(v); err != nil {
		return ""
	}
	return v
}

// Expected says whether a job reports as often as expected: by the rule it
// asks for (AnnotationExpectedEvery), or else, for the reader only, by its
// usual interval. A job is late when it sent no result for twice the
// interval plus the missed grace.
type Expected struct {
	// OptedIn: the job asks for a failing Late run when late (the
	// annotation). Otherwise its lateness is only shown.
	OptedIn bool `json:"optedIn"`
	// Auto: the interval is the job's usual one, learnt from its runs (as
	// asked, or for a job that does not ask).
	Auto bool `json:"auto,omitempty"`
	// EverySeconds is the expected interval; absent when it cannot be told
	// yet (auto, with fewer than MinRunsForUsual runs: Note says so).
	EverySeconds *float64 `json:"everySeconds,omitempty"`
	// SilentSince is the job's latest result but a Late run: when it last
	// reported.
	SilentSince time.Time `json:"silentSince"`
	// LateAt is when the job is late without a result: its latest result
	// plus twice the interval plus the missed grace (or its Late run's
	// time, once it has one); absent with EverySeconds.
	LateAt *time.Time `json:"lateAt,omitempty"`
	// Late: no result since LateAt.
	Late bool   `json:"late"`
	Note string `json:"note,omitempty"`
}
