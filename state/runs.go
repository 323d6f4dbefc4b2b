package state

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/batchlatch/batchlatch/api"
)

// Run is one run in a job's history (Job.History): its outcome, what
// reported it, and when. It is kept small in memory too (24 bytes): a store
// holds api.MaxRuns of them for each of tens of thousands of jobs.
type Run struct {
	// Finished is when the run ended, in unix seconds.
	Finished int64
	// Scheduled is the tick it ran for, in unix seconds; 0 when not known.
	Scheduled int64
	// Seconds is how long it ran, whole seconds; -1 when not known.
	Seconds int32
	phase   byte // a phaseCodes letter
	source  byte // a sourceCodes letter
}

// lateCode is a Late run's phase letter, which the page and the alarm look
// for in every job's runs (a letter, not a map lookup).
const lateCode = 'L'

// The letters a run's phase and source are stored as.
var (
	phaseCodes = map[api.Phase]byte{
		api.PhaseSucceeded: 'S', api.PhaseFailed: 'F', api.PhaseError: 'E', api.PhaseMissed: 'M',
		api.PhaseStuck: 'K', api.PhaseSpecError: 'X', api.PhaseSubmissionError: 'B', api.PhaseLate: lateCode,
	}
	sourceCodes = map[api.RunSource]byte{
		api.SourceCallback: 'c', api.SourceArgo: 'a', api.SourceCronJob: 'j', api.SourceUnknown: 'u',
	}
	phaseOfCode  = invert(phaseCodes)
	sourceOfCode = invert(sourceCodes)
)

func invert[K comparable](m map[K]byte) map[byte]K {
	out := make(map[byte]K, len(m))
	for k, v := range m {
		out[v] = k
	}
	return out
}

// Phase is the run's outcome.
func (r Run) Phase() api.Phase { return phaseOfCode[r.phase] }

// Source is what reported the run.
func (r Run) Source() api.RunSource { return sourceOfCode[r.source] }

// FinishedAt is when the run ended.
func (r Run) FinishedAt() time.Time { return time.Unix(r.Finished, 0).UTC() }

// Duration is how long the run took, and whether that is known.
func (r Run) Duration() (time.Duration, bool) {
	return time.Duration(r.Seconds) * time.Second, r.Seconds >= 0
}

// ScheduledAt is the tick the run was for, and whether that is known.
func (r Run) ScheduledAt() (time.Time, bool) {
	return time.Unix(r.Scheduled, 0).UTC(), r.Scheduled != 0
}

// start is when the run started, as far as known: its end when its
// duration is not.
func (r Run) start() int64 { return r.Finished - int64(max(r.Seconds, 0)) }

func (r Run) synthetic() bool { return (api.Result{Phase: r.Phase()}).Synthetic() }

// View is the run as the REST API shows it.
func (r Run) View() api.Run {
	out := api.Run{Phase: r.Phase(), Source: r.Source().Name(), FinishedAt: r.FinishedAt()}
	if at, ok := r.ScheduledAt(); ok {
		out.ScheduledAt = &at
	}
	if d, ok := r.Duration(); ok {
		seconds := d.Seconds()
		out.DurationSeconds = &seconds
	}
	return out
}

// NewRun is a run of phase, from source, that ended at finished; duration
// and scheduled are zero when not known.
func NewRun(phase api.Phase, source api.RunSource, finished, scheduled time.Time, duration time.Duration) Run {
	r := Run{Finished: finished.Unix(), Seconds: -1, phase: phaseCodes[phase], source: sourceCodes[source]}
	if r.phase == 0 {
		r.phase = phaseCodes[api.PhaseFailed] // every other phase is a failure
	}
	if r.source == 0 {
		r.source = sourceCodes[api.SourceUnknown]
	}
	if duration > 0 {
		r.Seconds = int32(min(duration.Round(time.Second)/time.Second, 1<<31-1))
	}
	if !scheduled.IsZero() {
		r.Scheduled = scheduled.Unix()
	}
	return r
}

// runOf is the history's entry for result r that finished at finished.
// A tick with no run (Missed, SpecError, SubmissionError) has no duration:
// its result's is the grace the watcher gave it; nor has a Late run.
func runOf(r api.Result, finished time.Time) Run {
	var duration time.Duration
	switch r.Phase {
	case api.PhaseMissed, api.PhaseSpecError, api.PhaseSubmissionError, api.PhaseLate:
	default:
		duration = time.Duration(r.DurationSeconds * float64(time.Second))
	}
	scheduled, err := api.ParseTime(r.ScheduledTime)
	if err != nil {
		scheduled = time.Time{}
	}
	return NewRun(r.Phase, r.Source, finished, scheduled, duration)
}

// Runs are a job's last runs, newest (latest finished) first.
//
// Stored as one string, because a ConfigMap holds 1 MiB for all its jobs
// and a callback rewrites a journal and moves jobs into shards whose cost
// grows with their size: api.MaxRuns runs as JSON objects with RFC 3339
// times take about 1.6 KB, more than twice a realistic job; this form takes
// about 170 bytes (docs/state.md), what is usual taking nothing. Runs are
// separated by spaces, each
//
//	<phase letter>[<source mark>]<time>[.<seconds>][~<delay>]
//
// The phase letter is upper case when the run's tick is known, lower case
// when not; the source mark is absent for a callback, + for the Argo
// watcher, * for the CronJob watcher, ? for unknown. Numbers are in base 36:
// time is the newest run's end in unix seconds, and for every other run
// how long before the previous (newer) one it ended; seconds its duration
// when known; delay how long after its tick it started (ended, when its
// duration is not known), when not 0.
type Runs []Run

// sourceMarks are how the sources are stored, a callback's as nothing.
var (
	sourceMarks  = map[byte]byte{'a': '+', 'j': '*', 'u': '?'}
	sourceOfMark = invert(sourceMarks)
)

// MarshalJSON writes the runs' stored form.
func (rs Runs) MarshalJSON() ([]byte, error) {
	b := make([]byte, 0, 2+12*len(rs))
	b = append(b, '"')
	for i, r := range rs {
		at := r.Finished
		if i > 0 {
			b = append(b, ' ')
			at = rs[i-1].Finished - r.Finished
		}
		letter := r.phase
		if r.Scheduled == 0 {
			letter += 'a' - 'A'
		}
		b = append(b, letter)
		if mark, ok := sourceMarks[r.source]; ok {
			b = append(b, mark)
		}
		b = strconv.AppendInt(b, at, 36)
		if r.Seconds >= 0 {
			b = append(b, '.')
			b = strconv.AppendInt(b, int64(r.Seconds), 36)
		}
		if delay := r.start() - r.Scheduled; r.Scheduled != 0 && delay != 0 {
			b = append(b, '~')
			b = strconv.AppendInt(b, delay, 36)
		}
	}
	return append(b, '"'), nil
}

// UnmarshalJSON reads the runs' stored form.
func (rs *Runs) UnmarshalJSON(data []byte) error {
	if string(data) == "null" { // as encoding/json reads null into a slice
		*rs = nil
		return nil
	}
	s, err := strconv.Unquote(string(data))
	if err != nil {
		return fmt.Errorf("history: not a string")
	}
	if s == "" {
		*rs = nil
		return nil
	}
	fields := strings.Split(s, " ")
	out := make(Runs, 0, len(fields))
	for i, f := range fields {
		r, delay, ticked, err := parseRun(f)
		if err != nil {
			return fmt.Errorf("history: run %d %q: %v", i+1, f, err)
		}
		if i > 0 {
			r.Finished = out[i-1].Finished - r.Finished
		}
		if ticked {
			r.Scheduled = r.start() - delay
		}
		out = append(out, r)
	}
	*rs = out
	return nil
}

// parseRun reads one run of the stored form: the run with its time as
// stored, whether its tick is known, and its delay.
func parseRun(f string) (r Run, delay int64, ticked bool, err error) {
	if len(f) < 2 {
		return Run{}, 0, false, fmt.Errorf("too short")
	}
	r = Run{phase: f[0], source: sourceCodes[api.SourceCallback], Seconds: -1}
	if ticked = 'A' <= r.phase && r.phase <= 'Z'; !ticked {
		r.phase -= 'a' - 'A'
	}
	if _, ok := phaseOfCode[r.phase]; !ok {
		return Run{}, 0, false, fmt.Errorf("unknown phase %q", f[0])
	}
	rest := f[1:]
	if source, ok := sourceOfMark[rest[0]]; ok {
		r.source, rest = source, rest[1:]
	}
	rest, delayText, hasDelay := strings.Cut(rest, "~")
	at, seconds, hasSeconds := strings.Cut(rest, ".")
	if r.Finished, err = strconv.ParseInt(at, 36, 64); err != nil {
		return Run{}, 0, false, fmt.Errorf("time %q", at)
	}
	if hasSeconds {
		n, err := strconv.ParseInt(seconds, 36, 32)
		if err != nil || n < 0 {
			return Run{}, 0, false, fmt.Errorf("duration %q", seconds)
		}
		r.Seconds = int32(n)
	}
	if hasDelay {
		if !ticked {
			return Run{}, 0, false, fmt.Errorf("a delay without a tick")
		}
		if delay, err = strconv.ParseInt(delayText, 36, 64); err != nil {
			return Run{}, 0, false, fmt.Errorf("delay %q", delayText)
		}
	}
	return r, delay, ticked, nil
}

// Runs are the job's last runs, newest first. A job stored before jobs
// kept a history has none: it is seeded with the runs its state knows of
// (source unknown): its latest run, the first failure of its current
// streak, and each finished streak's first failure (shown as Failed: its
// kind is not kept) and the success that ended it.
func (j Job) Runs() Runs {
	if len(j.History) > 0 || j.LastResultAt.IsZero() {
		return j.History
	}
	seeded := Runs{NewRun(j.LastPhase, api.SourceUnknown, j.LastResultAt, time.Time{}, 0)}
	add := func(phase api.Phase, at time.Time) {
		if !slices.ContainsFunc(seeded, func(r Run) bool { return r.Finished == at.Unix() }) {
			seeded = withRun(seeded, NewRun(phase, api.SourceUnknown, at, time.Time{}, 0))
		}
	}
	if j.FailingSince != nil {
		add(api.PhaseFailed, *j.FailingSince)
	}
	for _, s := range j.Streaks() {
		add(api.PhaseSucceeded, s.Until)
		add(api.PhaseFailed, s.Since)
	}
	return seeded
}

// RunViews are the job's last runs as the REST API shows them, newest
// first.
func (j Job) RunViews() []api.Run {
	runs := j.Runs()
	if len(runs) == 0 {
		return nil
	}
	out := make([]api.Run, len(runs))
	for i, r := range runs {
		out[i] = r.View()
	}
	return out
}

// withRun is a new slice of runs with r in its place (runs are newest
// first; among runs that ended in the same second, the one recorded last
// first), at most api.MaxRuns: r is left out when it is older than all of
// a full history.
func withRun(runs Runs, r Run) Runs {
	at := slices.IndexFunc(runs, func(o Run) bool { return o.Finished <= r.Finished })
	if at < 0 {
		at = len(runs)
	}
	if at >= api.MaxRuns {
		return runs
	}
	out := make(Runs, 0, min(len(runs)+1, api.MaxRuns))
	out = append(append(append(out, runs[:at]...), r), runs[at:min(len(runs), api.MaxRuns-1)]...)
	return out
}

// withoutRun is a new slice of runs without its i-th.
func withoutRun(runs Runs, i int) Runs {
	return append(append(make(Runs, 0, len(runs)-1), runs[:i]...), runs[i+1:]...)
}

// copyOf returns the index of the run in runs that r, a late result the
// job's recent runs no longer remember, is a copy of, or -1. A late copy
// (a watcher reading an old run again, a redelivery after many runs) has
// the same outcome, failed or not, and the same tick, start or end.
func copyOf(runs Runs, r Run) int {
	return slices.IndexFunc(runs, func(o Run) bool {
		if (o.Phase() == api.PhaseSucceeded) != (r.Phase() == api.PhaseSucceeded) {
			return false
		}
		return o.Finished == r.Finished || r.Scheduled != 0 && o.Scheduled == r.Scheduled ||
			r.Seconds >= 0 && o.Seconds >= 0 && o.start() == r.start()
	})
}

// standInFor returns the index of the synthetic failure in runs that
// stood for r's run (the same tick, or the same start: a Stuck run; the
// latest Late run when late, the job's latest result being one), or -1.
func standInFor(runs Runs, r Run, late bool) int {
	return slices.IndexFunc(runs, func(o Run) bool {
		if late && o.phase == lateCode {
			return true
		}
		return o.synthetic() && (r.Scheduled != 0 && o.Scheduled == r.Scheduled ||
			r.Seconds >= 0 && o.Seconds >= 0 && o.start() == r.start())
	})
}

// UsualOf is what a job whose last runs are runs (any order) usually
// does: see api.Usual.
func UsualOf(runs []api.Run) api.Usual {
	var took []float64
	var starts []int64
	for _, r := range runs {
		if r.Phase == api.PhaseLate {
			continue // no run: the lack of one
		}
		start := r.FinishedAt
		if r.DurationSeconds != nil {
			start = start.Add(-time.Duration(*r.DurationSeconds * float64(time.Second)))
			if r.Phase == api.PhaseSucceeded {
				took = append(took, *r.DurationSeconds)
			}
		}
		if r.ScheduledAt != nil {
			start = *r.ScheduledAt
		}
		starts = append(starts, start.Unix()) // times of runs are to the second
	}
	u := api.Usual{SuccessfulRuns: len(took)}
	var notes []string
	if len(took) >= api.MinRunsForUsual {
		slices.Sort(took)
		median, p90 := nearestRank(took, 0.5), nearestRank(took, 0.9)
		u.MedianSeconds, u.P90Seconds = &median, &p90
	} else {
		notes = append(notes, fmt.Sprintf("the usual duration needs %d successful runs of known duration, %d known", api.MinRunsForUsual, len(took)))
	}
	if interval, runs := usualInterval(starts); runs >= api.MinRunsForUsual {
		u.IntervalSeconds = &interval
	} else {
		notes = append(notes, intervalNote(runs))
	}
	u.Note = strings.Join(notes, "; ")
	return u
}

func intervalNote(runs int) string {
	return fmt.Sprintf("the usual interval needs %d runs, %d known", api.MinRunsForUsual, runs)
}

// usualInterval is the median time between runs that started at starts
// (unix seconds, sorted in place), in seconds, and how many runs that
// counts: two results of one tick (a retry, a run and its Stuck) are one.
// It allocates nothing for a job's history: the page asks it of every job
// it shows, the alarm of every failing job at every pass.
func usualInterval(starts []int64) (seconds float64, runs int) {
	slices.Sort(starts)
	var buf [api.MaxRuns]int64
	gaps := buf[:0]
	for i := 1; i < len(starts); i++ {
		if gap := starts[i] - starts[i-1]; gap > 0 {
			gaps = append(gaps, gap)
		}
	}
	if len(gaps) == 0 {
		return 0, min(len(starts), 1)
	}
	slices.Sort(gaps)
	return float64(gaps[max(int(math.Ceil(0.5*float64(len(gaps))))-1, 0)]), len(gaps) + 1
}

// usualInterval is the job's usual interval (UsualOf's, without making
// views of its runs), and how many runs it counts; below
// api.MinRunsForUsual it says little.
func (j Job) usualInterval() (time.Duration, int) {
	var buf [api.MaxRuns]int64
	starts := buf[:0]
	for _, r := range j.Runs() {
		if r.phase == lateCode {
			continue
		}
		start := r.start()
		if r.Scheduled != 0 {
			start = r.Scheduled
		}
		starts = append(starts, start)
	}
	seconds, n := usualInterval(starts)
	return time.Duration(seconds) * time.Second, n
}

// nearestRank is the p-quantile of sorted by the nearest rank.
func nearestRank(sorted []float64, p float64) float64 {
	return sorted[max(int(math.Ceil(p*float64(len(sorted))))-1, 0)]
}
