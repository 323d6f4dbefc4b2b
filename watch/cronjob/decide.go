package cronjobwatch

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/watch/cronrules"
	"github.com/batchlatch/batchlatch/watch/schedule"
)

// The decisions here are pure functions of what the informers hold, the
// job's stored state and a clock; the watcher's loop does the I/O.

// cronJob is what the decisions need of a CronJob.
type cronJob struct {
	Namespace, Name string
	Created         time.Time
	// SpecChangedAt is when the spec last changed (from managedFields):
	// ticks before it belong to an older schedule. Zero when unknown.
	SpecChangedAt time.Time
	Expr          string // spec.schedule as written
	Timezone      string // spec.timeZone
	Schedule      schedule.Schedule
	ScheduleErr   error
	Suspended     bool
	Forbid        bool // concurrencyPolicy Forbid
	// StartingDeadline is spec.startingDeadlineSeconds; 0 when unset.
	StartingDeadline time.Duration
	// LastScheduled is status.lastScheduleTime: the controller started a
	// Job for every tick up to it, even if that Job is gone now.
	LastScheduled time.Time
	Grace         time.Duration
	MaxRuntime    cronrules.MaxRuntime
	// Usual is what the job usually does, read from its history when
	// MaxRuntime is auto; UsualKnown says it was (the view says when not).
	Usual      cronrules.Usual
	UsualKnown bool
}

// run is what the decisions need of one of its Jobs.
type run struct {
	Name, UID   string
	Created     time.Time
	Started     time.Time // status.startTime; zero until the Job starts
	ScheduledAt time.Time // the scheduled-timestamp annotation; zero when absent
	// Phase is the outcome of the Job's terminal condition: "" while it
	// runs, api.PhaseSucceeded or api.PhaseFailed.
	Phase api.Phase
	// FinishedAt is when it completed or failed; Reason and Message are
	// its Failed (or FailureTarget) condition's.
	FinishedAt      time.Time
	Reason, Message string
}

func (r run) finished() bool { return r.Phase != "" }

// began is when the run started running, else when it was created.
func (r run) began() time.Time {
	if !r.Started.IsZero() {
		return r.Started
	}
	return r.Created
}

// naming is how the CronJob controller names the Job of a tick.
var naming = cronrules.Naming{RunName: jobName, Tick: scheduledTick}

// rules is what the shared cron rules need of c.
func (c cronJob) rules() cronrules.Cron {
	from := c.Created
	if c.SpecChangedAt.After(from) {
		from = c.SpecChangedAt
	}
	return cronrules.Cron{Name: c.Name, Schedule: c.Schedule, From: from, Forbid: c.Forbid, LastScheduled: c.LastScheduled, MaxRuntime: c.MaxRuntime, Usual: c.Usual}
}

func rulesRuns(runs []run) []cronrules.Run {
	out := make([]cronrules.Run, len(runs))
	for i, r := range runs {
		out[i] = cronrules.Run{Name: r.Name, UID: r.UID, Started: r.began(), ScheduledAt: r.ScheduledAt, Finished: r.finished()}
	}
	return out
}

// missedAfter is how long after a tick with no Job the tick is missed: the
// grace, or less when startingDeadlineSeconds passed first (the controller
// starts no Job for the tick after that, so waiting longer tells nothing).
func (c cronJob) missedAfter() time.Duration {
	if c.StartingDeadline > 0 && c.StartingDeadline < c.Grace {
		return c.StartingDeadline
	}
	return c.Grace
}

// due returns the synthetic results due for c at now: its missed ticks and
// its stuck Jobs, in the order they happened. job is c's stored job, nil
// when there is none. Each result is timed by what it is about (a tick plus
// its grace, a Job's start plus its max runtime), so re-evaluating returns
// the same results and the store counts none of them twice, however many
// ticks or runs it remembers.
func due(c cronJob, runs []run, job *state.Job, now time.Time) []api.Result {
	var results []api.Result
	shared := rulesRuns(runs)
	for _, r := range cronrules.Stuck(c.rules(), shared, now) {
		results = append(results, stuckResult(c, r))
	}
	if c.Suspended {
		return results
	}
	if c.ScheduleErr != nil {
		// The controller never runs it; the API server refuses such a
		// schedule when the CronJob is created, but not one whose time
		// zone the controller's database lacks.
		return append(results, scheduleErrorResult(c))
	}
	wait := c.missedAfter()
	for _, tick := range cronrules.Uncovered(c.rules(), naming, shared, job, now.Add(-wait)) {
		why := fmt.Sprintf("none %s after it", wait)
		if wait < c.Grace {
			why = fmt.Sprintf("none within its startingDeadlineSeconds (%s)", wait)
		}
		msg := fmt.Sprintf("no Job for the %s tick (%s): %s", tick.UTC().Format("15:04 UTC"), tick.UTC().Format(time.RFC3339), why)
		results = append(results, tickResult(c, tick, msg, tick.Add(wait)))
	}
	return results
}

// scheduleErrorResult is the failure of a CronJob whose schedule cannot be
// read: one for the version of its spec, with the parser's message.
func scheduleErrorResult(c cronJob) api.Result {
	from := c.rules().From
	r := tickResult(c, from, "the schedule cannot be read, so the CronJob never runs: "+c.ScheduleErr.Error(), from)
	r.Phase = api.PhaseSpecError
	r.Failures[0].Phase = string(api.PhaseSpecError)
	r.ScheduledTime = ""
	return r
}

// jobName is the name the CronJob controller gives the Job of cron's tick:
// the tick in minutes since the epoch.
func jobName(cron string, tick time.Time) string {
	return cron + "-" + strconv.FormatInt(tick.Unix()/60, 10)
}

var tickSuffix = regexp.MustCompile(`-([0-9]{6,10})$`)

// scheduledTick reads the tick from the name of one of cron's Jobs.
func scheduledTick(cron, job string) (time.Time, bool) {
	if !strings.HasPrefix(job, cron+"-") {
		return time.Time{}, false
	}
	m := tickSuffix.FindStringSubmatch(job)
	if m == nil || len(job) != len(cron)+len(m[0]) {
		return time.Time{}, false
	}
	minutes, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(minutes*60, 0), true
}

// tickResult is a synthetic failure of the Job cron's tick should have
// made. It stands for that Job (same name), so the Job's own result, if it
// comes late, supersedes it.
func tickResult(c cronJob, tick time.Time, message string, at time.Time) api.Result {
	return api.Result{
		Namespace:       c.Namespace,
		WorkflowName:    jobName(c.Name, tick),
		CronJob:         c.Name,
		Phase:           api.PhaseMissed,
		ScheduledTime:   tick.UTC().Format(time.RFC3339),
		CreatedAt:       tick.UTC().Format(time.RFC3339),
		DurationSeconds: at.Sub(tick).Seconds(),
		Failures:        []api.Failure{{DisplayName: c.Name, Message: message, Phase: string(api.PhaseMissed)}},
	}
}

// stuckResult is a synthetic failure of Job r, still running past c's max
// runtime: timed when it became stuck, so that every pass makes the same
// result of it.
func stuckResult(c cronJob, r cronrules.Run) api.Result {
	limit, message := cronrules.StuckFor(c.rules(), r)
	return api.Result{
		Namespace:       c.Namespace,
		WorkflowName:    r.Name,
		UID:             r.UID,
		CronJob:         c.Name,
		Phase:           api.PhaseStuck,
		CreatedAt:       r.Started.UTC().Format(time.RFC3339),
		DurationSeconds: limit.Seconds(),
		Failures:        []api.Failure{{DisplayName: r.Name, Phase: string(api.PhaseStuck), Message: message}},
	}
}

// replaced is run r, deleted unfinished by concurrencyPolicy Replace at
// the next tick, as the failed run it is: the Job gets no terminal
// condition, so the watcher's deletion time (now) is when it ended.
func replaced(r run, now time.Time) run {
	r.Phase, r.FinishedAt = api.PhaseFailed, now
	r.Reason = ReasonReplaced
	r.Message = "deleted before it finished: under concurrencyPolicy Replace the CronJob controller deletes a Job still running at the next tick and starts the tick's own"
	return r
}

// resultOf is the result of cron's finished Job r: ordered at the time it
// completed or failed, its failure the condition's reason and message.
func resultOf(namespace, cron string, r run, now time.Time) api.Result {
	res := api.Result{
		Namespace:    namespace,
		WorkflowName: r.Name,
		UID:          r.UID,
		CronJob:      cron,
		Phase:        r.Phase,
		CreatedAt:    r.Created.UTC().Format(time.RFC3339),
	}
	if !r.ScheduledAt.IsZero() {
		res.ScheduledTime = r.ScheduledAt.UTC().Format(time.RFC3339)
	}
	finished := r.FinishedAt
	if finished.IsZero() || finished.After(now) {
		finished = now
	}
	// CreatedAt has whole seconds: measure from them, so that FinishedAt is
	// the finish time to the second.
	res.DurationSeconds = max(finished.Sub(r.Created.Truncate(time.Second)).Seconds(), 0)
	if r.Phase == api.PhaseFailed {
		f := api.Failure{DisplayName: r.Reason, Message: r.Message, Phase: string(api.PhaseFailed)}
		if !r.FinishedAt.IsZero() {
			f.FinishedAt = r.FinishedAt.UTC().Format(time.RFC3339)
		}
		if f.DisplayName == "" {
			f.DisplayName = r.Name
		}
		res.Failures = []api.Failure{f}
	}
	return res
}

// byFinish orders results by when their Jobs finished: the order in which
// they change the job.
func byFinish(results []pendingResult) []pendingResult {
	sort.SliceStable(results, func(i, k int) bool {
		return results[i].FinishedAt(time.Time{}).Before(results[k].FinishedAt(time.Time{}))
	})
	return results
}

// scheduleView is what the job's REST view and entries say of c's schedule
// at now: so that "when should it have run?" has an answer.
func scheduleView(c cronJob, now time.Time) *api.Schedule {
	v := &api.Schedule{Kind: api.KindCronJob, Schedules: []string{c.Expr}, Timezone: c.Timezone, Suspended: c.Suspended}
	if v.Timezone == "" {
		v.Timezone = "UTC"
	}
	switch {
	case c.ScheduleErr != nil:
		v.Note = "the schedule cannot be read, so the CronJob never runs: " + c.ScheduleErr.Error()
	case c.Suspended:
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
