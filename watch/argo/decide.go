package argowatch

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/watch/cronrules"
	"github.com/batchlatch/batchlatch/watch/schedule"
)

// The decisions here are pure functions of what the informers hold, the
// job's stored state and a clock; the watcher's loop does the I/O.

// cron is what the decisions need of a CronWorkflow.
type cron struct {
	Namespace, Name string
	Created         time.Time
	// SpecChangedAt is when the spec last changed (from managedFields):
	// ticks before it belong to an older schedule. Zero when unknown.
	SpecChangedAt time.Time
	Exprs         []string // the schedules as written
	Timezone      string
	Schedule      schedule.Schedule
	ScheduleErr   error
	Suspended     bool
	Stopped       bool // status.phase Stopped: its stopStrategy was met
	When          string
	Forbid        bool // concurrencyPolicy Forbid
	// Condition is a SpecError or SubmissionError condition that is set.
	Condition *condition
	// SpecErr says why the controller will never run the CronWorkflow: its
	// schedule does not parse, or Argo's own validation refuses it. ""
	// when it is valid.
	SpecErr string
	// ScheduleUsed: the controller's latest attempt used the current
	// schedule (its last-used-schedule annotation), so the ticks of the
	// current schedule are those it attempted, even before the spec's
	// last change.
	ScheduleUsed bool
	Grace        time.Duration
	MaxRuntime   cronrules.MaxRuntime
	// Usual is what the job usually does, read from its history when
	// MaxRuntime is auto; UsualKnown says it was (the view says when not).
	Usual      cronrules.Usual
	UsualKnown bool
}

type condition struct {
	Phase   api.Phase // api.PhaseSpecError or api.PhaseSubmissionError
	Message string
	// WrittenAt is when the controller last wrote the CronWorkflow's
	// status (from managedFields): the condition stands for the latest
	// tick up to it, the one the controller attempted then (refusedTicks).
	WrittenAt time.Time
	// StillRefused: a SpecError that Argo's own validation, run by the
	// watcher, still gives for the CronWorkflow as it is now. The
	// controller then refuses every later tick too without writing again:
	// a refusal that changes nothing in the status (a SpecError, unlike a
	// SubmissionError, counts nothing) is a patch the API server drops.
	StillRefused bool
}

// run is what the decisions need of one of its Workflows, all from the
// Workflow's metadata.
type run struct {
	Name, UID   string
	Phase       wfv1.WorkflowPhase // from the phase label; "" when unknown
	Created     time.Time
	ScheduledAt time.Time // the scheduled-time annotation; zero when absent
	Completed   bool      // the completed label
	// LastWritten is when the Workflow was last written (from
	// managedFields): for a finished run, about when it finished, which
	// its metadata does not say otherwise. Zero when unknown.
	LastWritten time.Time
}

// finished reports whether the run has ended: its completed label or, for a
// run terminated by concurrencyPolicy Replace that Argo may leave labelled
// completed=false, its phase.
func (r run) finished() bool {
	switch r.Phase {
	case wfv1.WorkflowSucceeded, wfv1.WorkflowFailed, wfv1.WorkflowError:
		return true
	}
	return r.Completed
}

// began is when the run was scheduled, else created.
func (r run) began() time.Time {
	if !r.ScheduledAt.IsZero() {
		return r.ScheduledAt
	}
	return r.Created
}

// whenVerdict tells what the decisions can make of spec.when: "" or a
// literal true runs every tick, a literal false none; anything else needs
// Argo's template and expression evaluation, which the watcher does not
// attempt: it reports no missed ticks for such a CronWorkflow and says so.
func whenVerdict(when string) (runs, known bool) {
	switch strings.ToLower(strings.TrimSpace(when)) {
	case "", "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// naming is how Argo names the Workflow of a tick.
var naming = cronrules.Naming{RunName: runName, Tick: scheduledTick}

// rules is what the shared cron rules need of c.
func (c cron) rules() cronrules.Cron {
	from := c.Created
	if c.SpecChangedAt.After(from) {
		from = c.SpecChangedAt
	}
	return cronrules.Cron{Name: c.Name, Schedule: c.Schedule, From: from, Forbid: c.Forbid, MaxRuntime: c.MaxRuntime, Usual: c.Usual}
}

func rulesRuns(runs []run) []cronrules.Run {
	out := make([]cronrules.Run, len(runs))
	for i, r := range runs {
		out[i] = cronrules.Run{Name: r.Name, UID: r.UID, Started: r.Created, ScheduledAt: r.ScheduledAt, Finished: r.finished()}
	}
	return out
}

// due returns the synthetic results due for c at now: its missed or
// unsubmittable ticks and its stuck runs, in the order they happened. job
// is c's stored job, nil when there is none. Each result is timed by what it
// is about (a tick, a tick plus its grace, a run's start plus its max
// runtime), so re-evaluating returns the same results and the store counts
// none of them twice, however many ticks or runs it remembers.
func due(c cron, runs []run, job *state.Job, now time.Time) []api.Result {
	var results []api.Result
	shared := rulesRuns(runs)
	rules := c.rules()
	for _, r := range cronrules.Stuck(rules, shared, now) {
		results = append(results, stuckResult(c, rules, r))
	}
	if c.SpecErr != "" {
		if c.Suspended || c.Stopped {
			return results
		}
		return append(results, specResults(c, shared, job, now)...)
	}
	// A tick the controller refused counts even if the CronWorkflow was
	// suspended, stopped or changed since: it was attempted.
	results, decided := refusedTicks(c, shared, job, now, results)
	if c.Suspended || c.Stopped {
		return results
	}
	if runsEveryTick, known := whenVerdict(c.When); !runsEveryTick || !known {
		return results
	}
	for _, tick := range cronrules.Uncovered(rules, naming, shared, job, now.Add(-c.Grace)) {
		if decided[tick] {
			continue
		}
		msg := fmt.Sprintf("no run for the %s tick (%s): none %s after it", tick.UTC().Format("15:04 UTC"), tick.UTC().Format(time.RFC3339), c.Grace)
		results = append(results, tickResult(c, tick, api.PhaseMissed, msg, missedAt(c, tick)))
	}
	return results
}

// refusedTicks appends to results what c's SpecError or SubmissionError
// condition tells, and returns the ticks it decided.
//
// The controller writes the CronWorkflow at every tick it attempts and
// cannot submit (its failed counter), at the tick or, for the one missed tick
// it runs when it comes back within startingDeadlineSeconds, just after: the
// condition stands for the latest tick up to its last write, the one it
// attempted then. A tick after that write was not attempted (the controller
// is down, or about to write). An uncovered tick before it, since the spec
// last changed, was not attempted either (the controller was down then, or
// the watcher did not look between two writes): the controller moved on, so
// no run will come for it, and it is Missed at once, in order with the
// refused tick, so that neither is counted twice or dropped as older than
// the other.
//
// A change of the spec since that write (a suspend, a fix) does not undo the
// refusal: while the controller's last attempt used the current schedule,
// the refused tick counts even if it came before the change.
func refusedTicks(c cron, runs []cronrules.Run, job *state.Job, now time.Time, results []api.Result) ([]api.Result, map[time.Time]bool) {
	decided := map[time.Time]bool{}
	if c.Condition == nil {
		return results, decided
	}
	rules := c.rules()
	from := rules.From
	attempted, ok := c.Schedule.Last(from, c.Condition.WrittenAt)
	if !ok && c.ScheduleUsed {
		// Refused before the spec's last change.
		from = c.Created
		attempted, ok = c.Schedule.Last(from, c.Condition.WrittenAt)
	}
	if !ok || attempted.After(now) { // a write timed by a clock ahead of ours: at a later pass
		return results, decided
	}
	var before []time.Time // uncovered ticks before the attempted one, then it
	if runsEveryTick, known := whenVerdict(c.When); runsEveryTick && known {
		// (Under a when expression, the controller may have skipped them.)
		before = cronrules.Uncovered(rules, naming, runs, job, attempted.Add(-time.Nanosecond))
	}
	// The attempted tick itself, read from the same start as attempted
	// ("@every" ticks count from it).
	widened := rules
	widened.From = from
	if ticks := cronrules.Uncovered(widened, naming, runs, job, attempted); len(ticks) > 0 && ticks[len(ticks)-1].Equal(attempted) {
		before = append(before, attempted)
	}
	for _, tick := range before {
		if tick.Equal(attempted) {
			results = append(results, tickResult(c, tick, c.Condition.Phase, c.Condition.Message, tick))
		} else {
			msg := fmt.Sprintf("no run for the %s tick (%s): the controller has attempted a later tick (%s), and no run or refusal of this one was seen",
				tick.UTC().Format("15:04 UTC"), tick.UTC().Format(time.RFC3339), attempted.UTC().Format(time.RFC3339))
			results = append(results, tickResult(c, tick, api.PhaseMissed, msg, missedAt(c, tick)))
		}
		decided[tick] = true
	}
	if runsEveryTick, known := whenVerdict(c.When); c.Condition.StillRefused && !c.Suspended && !c.Stopped && runsEveryTick && known {
		// The ticks since, refused without a write: each fails at once
		// with the condition's message.
		for _, tick := range cronrules.Uncovered(rules, naming, runs, job, now) {
			if tick.After(attempted) {
				results = append(results, tickResult(c, tick, c.Condition.Phase, c.Condition.Message, tick))
				decided[tick] = true
			}
		}
	}
	return results, decided
}

// missedAt is when c's tick counts as Missed: its grace after it, but
// before the next tick. Every result about a tick is so timed within the
// tick's own interval (a refused tick at the tick, a missed one before the
// next), so results are ordered as their ticks however they were decided:
// a missed tick decided at once (the controller attempted a later one) or
// after its grace. The store keeps only results newer than a job's latest,
// and a later tick counted covers the earlier ones.
func missedAt(c cron, tick time.Time) time.Time {
	at := tick.Add(c.Grace)
	if next := c.Schedule.Next(tick); !next.IsZero() && next.Add(-time.Second).Before(at) {
		at = next.Add(-time.Second)
	}
	if at.Before(tick) {
		return tick // ticks a second apart
	}
	return at
}

// specResults are the failures of a CronWorkflow the controller will never
// run (its spec does not validate, or its schedule does not parse): one at
// once, standing for its next tick, so the user hears of it before that
// tick and with the reason, and one for every later tick, as the controller
// itself would report them. Argo writes no condition for a CronWorkflow
// invalid from the moment it was added.
func specResults(c cron, runs []cronrules.Run, job *state.Job, now time.Time) []api.Result {
	from := c.rules().From
	name := runName(c.Name, from)
	if c.ScheduleErr == nil {
		if next := c.Schedule.Next(from); !next.IsZero() {
			name = runName(c.Name, next)
		}
	}
	first := tickResult(c, from, api.PhaseSpecError, c.SpecErr, from)
	first.WorkflowName = name
	first.ScheduledTime = ""
	results := []api.Result{first}
	if c.ScheduleErr != nil {
		return results
	}
	for _, tick := range cronrules.Uncovered(c.rules(), naming, runs, job, now) {
		results = append(results, tickResult(c, tick, api.PhaseSpecError, c.SpecErr, tick))
	}
	return results
}

// runName is the name Argo gives the Workflow of cron's tick.
func runName(cron string, tick time.Time) string {
	return cron + "-" + strconv.FormatInt(tick.Unix(), 10)
}

var tickSuffix = regexp.MustCompile(`-([0-9]{9,11})$`)

// scheduledTick reads the tick from the name of one of cron's Workflows.
func scheduledTick(cron, workflow string) (time.Time, bool) {
	if !strings.HasPrefix(workflow, cron+"-") {
		return time.Time{}, false
	}
	m := tickSuffix.FindStringSubmatch(workflow)
	if m == nil || len(workflow) != len(cron)+len(m[0]) {
		return time.Time{}, false
	}
	unix, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(unix, 0), true
}

// tickResult is a synthetic failure of the run cron's tick should have made.
// It stands for that run (same name), so the run's own result, if it comes
// late, supersedes it.
func tickResult(c cron, tick time.Time, phase api.Phase, message string, at time.Time) api.Result {
	return api.Result{
		Namespace:       c.Namespace,
		WorkflowName:    runName(c.Name, tick),
		CronWorkflow:    c.Name,
		Phase:           phase,
		ScheduledTime:   tick.UTC().Format(time.RFC3339),
		CreatedAt:       tick.UTC().Format(time.RFC3339),
		DurationSeconds: at.Sub(tick).Seconds(),
		Failures:        []api.Failure{{DisplayName: c.Name, Message: message, Phase: string(phase)}},
	}
}

// stuckResult is a synthetic failure of run r, still running past c's max
// runtime (rules is c's): timed when it became stuck, so that every pass
// makes the same result of it.
func stuckResult(c cron, rules cronrules.Cron, r cronrules.Run) api.Result {
	limit, message := cronrules.StuckFor(rules, r)
	return api.Result{
		Namespace:       c.Namespace,
		WorkflowName:    r.Name,
		UID:             r.UID,
		CronWorkflow:    c.Name,
		Phase:           api.PhaseStuck,
		CreatedAt:       r.Started.UTC().Format(time.RFC3339),
		DurationSeconds: limit.Seconds(),
		Failures:        []api.Failure{{DisplayName: r.Name, Phase: string(api.PhaseStuck), Message: message}},
	}
}

// metaResult is the result of cron's finished run r as far as its
// metadata tells: its outcome (the phase label) and about when it ended.
// It stands in for the full result when the Workflow cannot be read (it
// was deleted) or need not be (a run in the middle of a long history).
func metaResult(namespace, cron string, r run) api.Result {
	res := api.Result{
		Namespace:    namespace,
		WorkflowName: r.Name,
		UID:          r.UID,
		CronWorkflow: cron,
		Phase:        api.Phase(r.Phase),
		CreatedAt:    r.Created.UTC().Format(time.RFC3339),
	}
	if res.Phase == "" {
		res.Phase = api.PhaseFailed // completed with no phase label: it did not succeed
	}
	if !r.ScheduledAt.IsZero() {
		res.ScheduledTime = r.ScheduledAt.UTC().Format(time.RFC3339)
	}
	if r.LastWritten.After(r.Created) {
		res.DurationSeconds = r.LastWritten.Sub(r.Created.Truncate(time.Second)).Seconds()
	}
	return res // no failed steps: a callback or a read of the run adds them
}

// notAfter is r ending no later than now. A finished run's result is made
// from its metadata (times the API server wrote) or from the Workflow
// read in full (its status); which of the two
// a run gets depends on whether it was deleted before the watcher read
// it. Both end no later than the watcher's clock, so that the order of a
// job's runs (and whether a run is older than the job's latest, and so
// stale) does not depend on that race when the API server's clock is ahead
// of this one's.
func notAfter(r api.Result, now time.Time) api.Result {
	created, err := api.ParseTime(r.CreatedAt)
	switch {
	case err != nil:
	case created.After(now):
		r.CreatedAt, r.DurationSeconds = now.UTC().Format(time.RFC3339), 0
	case r.FinishedAt(now).After(now):
		r.DurationSeconds = now.Sub(created).Seconds()
	}
	return r
}

// scheduleView is what the job's REST view and entries say of c's schedule
// at now: so that "when should it have run?" has an answer.
func scheduleView(c cron, now time.Time) *api.Schedule {
	v := &api.Schedule{Kind: "CronWorkflow", Schedules: c.Exprs, Timezone: c.Timezone, Suspended: c.Suspended, Stopped: c.Stopped}
	if v.Timezone == "" {
		v.Timezone = "UTC"
	}
	runsEveryTick, known := whenVerdict(c.When)
	switch {
	case c.SpecErr != "":
		v.Note = "the controller never runs it: " + c.SpecErr
	case !known:
		v.Note = "spec.when is an expression batchlatch does not evaluate, so missed ticks are not reported"
	case !runsEveryTick:
		v.Note = "spec.when is false: no tick runs"
	case c.Suspended || c.Stopped:
	default:
		if next := c.Schedule.Next(now); !next.IsZero() {
			next = next.UTC()
			v.NextTick = &next
		}
	}
	v.Note = joinNotes(v.Note, c.MaxRuntime.Note(c.Usual, c.UsualKnown))
	return v
}

// joinNotes joins the notes that are not empty.
func joinNotes(notes ...string) string {
	return strings.Join(slices.DeleteFunc(notes, func(n string) bool { return n == "" }), "; ")
}
