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
	"slices"
	"sort"
	"strings"
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
	MaxRuntime    MaxRuntime
	// Usual is what the job usually does, which an auto MaxRuntime learns
	// from: an input, read by the watcher from the job's history.
	Usual Usual
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
	limit, _ := c.MaxRuntime.Limit(c.Usual)
	if limit <= 0 {
		return nil
	}
	var out []Run
	for _, r := range runs {
		if !r.Finished && now.Sub(r.Started) > limit {
			out = append(out, r)
		}
	}
	return out
}

// Uncovered returns c's ticks up to until (the latest TicksLookedAt after
// c.From) that have no run: neither a run of theirs nor of a later tick
// exists or has reported, the job has not counted them already, and no
// active run kept them from running under Forbid. job is c's stored job, nil
// when there is none. The caller passes until: now for ticks that fail at
// once (a condition explains them), now minus the grace for missed ticks,
// so that the ticks looked at are those that can be decided, however many
// ticks the grace spans.
func Uncovered(c Cron, n Naming, runs []Run, job *state.Job, until time.Time) []time.Time {
	ticks, _ := c.Schedule.Ticks(c.From, until, TicksLookedAt)
	var out []time.Time
	for _, tick := range ticks {
		if !covered(c, n, runs, job, tick) {
			out = append(out, tick)
		}
	}
	return out
}

// covered reports whether tick was run, or needs no run of its own: a run
// for it exists, a run of it or a later tick has reported, the job counted
// it or a later tick already, the controller says it scheduled it or a
// later tick, or (with Forbid) a run was still active at the tick.
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
	if job == nil || job.LastResultAt.IsZero() {
		return false
	}
	scheduled, named := n.Tick(c.Name, job.LastWorkflow)
	if (api.Result{Phase: job.LastPhase}).Synthetic() {
		// The watchers record a job's ticks in order: the latest one it
		// counted (or a stuck run of it) and every tick before it were
		// decided, whether or not the job still remembers each. Counting
		// them again is how a broken job's count used to run away.
		return named && !scheduled.Before(tick)
	}
	endedAfter := !job.LastResultAt.Before(tick)
	if named {
		// A run of this tick or a later one reported; with Forbid, an
		// earlier run that ended after the tick kept it from running.
		return !scheduled.Before(tick) || c.Forbid && endedAfter
	}
	// A run not named after a tick (made by hand from the cron) covers
	// the ticks before it ended.
	return endedAfter
}

// StuckFor is how long run r of c had run when it became stuck (c's max
// runtime), and what the Stuck result says of it. A stuck result is timed
// at r's start plus that, not when a pass noticed it, so that the same
// stuck run is the same result at every pass.
func StuckFor(c Cron, r Run) (time.Duration, string) {
	limit, why := c.MaxRuntime.Limit(c.Usual)
	started := r.Started.UTC().Format(time.RFC3339)
	if !c.MaxRuntime.Auto {
		return limit, fmt.Sprintf("still running past its max runtime of %s (started %s)", limit, started)
	}
	return limit, fmt.Sprintf("still running past %s, %s (max-runtime auto; started %s)", api.FormatDuration(limit), why, started)
}

// MaxRuntimeAuto is the value of the annotation batchlatch.io/max-runtime
// that learns a job's max runtime from its history.
const MaxRuntimeAuto = "auto"

// An auto max runtime is max(autoFactor × p90, p90 + autoMargin) of the
// job's usual duration: three times what nearly every run takes, and never
// within minutes of it for a short job, whose durations vary by more than
// their size.
const (
	autoFactor = 3
	autoMargin = 10 * time.Minute
)

// MaxRuntime is how long a run may go on before it is Stuck: a duration
// (the flag's, or the annotation's), or with Auto learnt from the job's
// usual duration.
type MaxRuntime struct {
	Fixed time.Duration // 0: off; not used with Auto
	Auto  bool
}

// Usual is what an auto max runtime learns from a job's history: the 90th
// percentile of the durations of its successful runs, known from
// api.MinRunsForUsual of them, and how many are known.
type Usual struct {
	P90            time.Duration // 0 with too few runs
	SuccessfulRuns int
}

// UsualOf is what job usually does (nil: no job, nothing known), as its
// view (state.UsualOf) tells it.
func UsualOf(job *state.Job) Usual {
	if job == nil {
		return Usual{}
	}
	p90, n := job.History.UsualP90()
	return Usual{P90: p90, SuccessfulRuns: n}
}

// Limit is the max runtime m gives a job that usually does u, 0 when none
// applies, and how an auto limit was found or why none applies.
func (m MaxRuntime) Limit(u Usual) (limit time.Duration, why string) {
	if !m.Auto {
		return max(m.Fixed, 0), ""
	}
	if u.SuccessfulRuns < api.MinRunsForUsual || u.P90 <= 0 {
		return 0, fmt.Sprintf("no limit applies yet: it needs %d successful runs of known duration, %d known", api.MinRunsForUsual, u.SuccessfulRuns)
	}
	if tripled := autoFactor * u.P90; tripled >= u.P90+autoMargin {
		return tripled, fmt.Sprintf("%d × its usual p90 of %s", autoFactor, api.FormatDuration(u.P90))
	}
	return u.P90 + autoMargin, fmt.Sprintf("its usual p90 of %s plus %s", api.FormatDuration(u.P90), api.FormatDuration(autoMargin))
}

// Note is what the job's view says of an auto max runtime (known: u was
// read from the job's history), "" for a fixed one: the flag or the
// annotation says it.
func (m MaxRuntime) Note(u Usual, known bool) string {
	if !m.Auto {
		return ""
	}
	if !known {
		return "max-runtime auto: learnt from the job's history at the watcher's next pass"
	}
	limit, why := m.Limit(u)
	if limit <= 0 {
		return "max-runtime auto: " + why
	}
	return fmt.Sprintf("max-runtime auto: a run is stuck past %s, %s", api.FormatDuration(limit), why)
}

// AnnotatedMaxRuntime is the max runtime annotated under key: auto, or a
// duration checked by CheckMaxRuntime; else def. A value that is neither is
// reported in err (def is returned with it).
func AnnotatedMaxRuntime(annotations map[string]string, key string, def time.Duration) (MaxRuntime, error) {
	if v, ok := annotations[key]; ok && strings.EqualFold(strings.TrimSpace(v), MaxRuntimeAuto) {
		return MaxRuntime{Auto: true}, nil
	}
	d, err := AnnotatedDuration(annotations, key, def, CheckMaxRuntime)
	if err != nil {
		err = fmt.Errorf("%w (or %s)", err, MaxRuntimeAuto)
	}
	return MaxRuntime{Fixed: d}, err
}

// Pending returns the results of results that recording would count, in
// the order they happened: those the job knows already, or that are not
// newer than its latest result, are left out (recording them would change
// nothing but push newer runs out of the job's memory). job is the stored
// job, nil when there is none.
func Pending(results []api.Result, job *state.Job, now time.Time) []api.Result {
	sort.SliceStable(results, func(i, k int) bool {
		return results[i].FinishedAt(now).Before(results[k].FinishedAt(now))
	})
	if job == nil {
		return results
	}
	out := results[:0:0]
	for _, r := range results {
		if _, o := state.Apply(*job, true, r, now); o.Duplicate || o.Stale {
			continue
		}
		out = append(out, r)
	}
	return out
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

// Bounds of the durations a user sets per rule, by flag or by annotation on
// a CronWorkflow or CronJob: both are checked with the same function, so an
// annotation can ask for nothing the flag would refuse.
const (
	// MinMissedGrace: neither controller creates a tick's run at the
	// tick's instant (Argo's within about a second, the CronJob
	// controller's within its 10 s sync); a shorter grace reports runs
	// that are on their way as missed.
	MinMissedGrace = 10 * time.Second
	// MaxSetting bounds every duration a user sets (30 days).
	MaxSetting = 30 * 24 * time.Hour
)

// CheckMissedGrace reports whether d can be a missed grace.
func CheckMissedGrace(d time.Duration) error {
	if d < MinMissedGrace || d > MaxSetting {
		return fmt.Errorf("must be a duration from %s to %s, got %s", MinMissedGrace, shortHours(MaxSetting), d)
	}
	return nil
}

// CheckMaxRuntime reports whether d can be a max runtime (0 is off).
func CheckMaxRuntime(d time.Duration) error {
	if d < 0 || d > MaxSetting {
		return fmt.Errorf("must be a duration from 0 (off) to %s, got %s", shortHours(MaxSetting), d)
	}
	return nil
}

// CheckForgetAfter reports whether d can be how long after its CronWorkflow
// or CronJob is gone a job is forgotten.
func CheckForgetAfter(d time.Duration) error {
	if d <= 0 || d > MaxSetting {
		return fmt.Errorf("must be a positive duration up to %s, got %s", shortHours(MaxSetting), d)
	}
	return nil
}

func shortHours(d time.Duration) string { return fmt.Sprintf("%dh", int(d.Hours())) }

// AnnotatedDuration is the duration annotated under key, checked by check,
// else def; a value that is not a duration or fails check is reported in
// err (def is returned with it).
func AnnotatedDuration(annotations map[string]string, key string, def time.Duration, check func(time.Duration) error) (time.Duration, error) {
	v, ok := annotations[key]
	if !ok {
		return def, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return def, fmt.Errorf("annotation %s: %s is not a duration such as 15m or 2h", key, api.Quote(v))
	}
	if err := check(d); err != nil {
		return def, fmt.Errorf("annotation %s: %w", key, err)
	}
	return d, nil
}

// Finished is what Collapse needs of a run's result.
type Finished interface {
	Failed() bool
	FinishedAt(receivedAt time.Time) time.Time
}

// Collapse splits one job's fresh results, in finish order, into those to
// record and those that cannot change what the job ends up as: at a first
// start (or after a long stop) every finished run is fresh, and recording
// each is one store write (and, for a Workflow, one read of it).
//
// A success ends any streak, so what came before the latest success shows
// only through the streak the job remembers as its last: kept are the
// latest success and everything after it, and the streak before it that a
// success ended last (its failures, the success that ended it, and the
// success before them, which ends any streak before). Successes in between
// change nothing but the job's latest run, which the latest success sets.
// When the stored job is failing (failing), its streak's further failures
// and the success that ends it are kept too. The job's failure count, the
// latest streak (its failures, start and end), the stored streak and the
// latest result are what recording every result gives; a streak that both
// began and ended among the results before the latest streak is left out
// of the job's earlier streaks (never counted wrong). Results that finished in
// the same second as the last are all kept: a restart reads them as not
// older than the job's latest result.
func Collapse[R Finished](results []R, failing bool) (keep, moot []R) {
	n := len(results)
	latestSuccess := -1
	for i := n - 1; i >= 0; i-- {
		if !results[i].Failed() {
			latestSuccess = i
			break
		}
	}
	if latestSuccess < 0 {
		return results, nil // every failure counts
	}
	kept := make([]bool, n)
	for i := latestSuccess; i < n; i++ {
		kept[i] = true
	}
	// The latest success that ended a streak: one after a failure, or the
	// first when the job was failing.
	for i := latestSuccess; i >= 0; i-- {
		if results[i].Failed() || !(i > 0 && results[i-1].Failed() || i == 0 && failing) {
			continue
		}
		kept[i] = true
		k := i - 1
		for ; k >= 0 && results[k].Failed(); k-- {
			kept[k] = true
		}
		if k >= 0 {
			kept[k] = true
		}
		break
	}
	if failing {
		// The stored streak goes on to the first success, which ends it.
		for i := 0; i < n; i++ {
			kept[i] = true
			if !results[i].Failed() {
				break
			}
		}
	}
	lastSecond := results[n-1].FinishedAt(time.Time{}).Truncate(time.Second)
	for i := n - 1; i >= 0 && !results[i].FinishedAt(time.Time{}).Truncate(time.Second).Before(lastSecond); i-- {
		kept[i] = true
	}
	for i, p := range results {
		if kept[i] {
			keep = append(keep, p)
		} else {
			moot = append(moot, p)
		}
	}
	return keep, moot
}

// Absent returns the stored jobs that belong to a watched CronWorkflow or
// CronJob which no longer exists: deleted while the watcher was stopped or
// another replica led, so that no deletion event will ever come for it.
// ours tells whether a stored job is one the watcher owns (its kind, a
// namespace it watches, a name its object would have); exists whether its
// object is in the watcher's synced cache.
func Absent(jobs map[state.Key]state.Job, ours func(state.Job) bool, exists func(state.Key) bool) []state.Key {
	var out []state.Key
	for key, job := range jobs {
		if ours(job) && !exists(key) {
			out = append(out, key)
		}
	}
	return out
}

// Watches reports whether namespace is one of namespaces (empty: all).
func Watches(namespaces []string, namespace string) bool {
	return len(namespaces) == 0 || slices.Contains(namespaces, namespace)
}
