// Package api holds the wire types shared by the server and its clients: the
// exit-handler callback body, the job and failure-list responses and the error
// body, with the validation of what arrives.
package api

import (
	"time"
)

// Result is the body of POST /api/v1/results, as the shipped onExit template
// sends it. Unknown fields are ignored; namespace, workflowName and phase are
// required. Only what identifies the run and its outcome (namespace,
// workflowName, uid, the job, phase) can refuse a callback: any other field
// that cannot be trusted is left out with a warning (see DecodeResult).
type Result struct {
	Namespace    string `json:"namespace"`
	WorkflowName string `json:"workflowName"`
	UID          string `json:"uid,omitempty"`
	CronWorkflow string `json:"cronWorkflow,omitempty"`
	// CronJob names the Kubernetes CronJob whose Job this run was (its
	// WorkflowName is the Job's name): a job of kind CronJob.
	CronJob string `json:"cronJob,omitempty"`
	Phase   Phase  `json:"phase"`
	// ScheduledTime and CreatedAt are RFC 3339 strings, as Argo renders
	// {{workflow.scheduledTime}} and {{workflow.creationTimestamp}}.
	ScheduledTime   string            `json:"scheduledTime,omitempty"`
	CreatedAt       string            `json:"createdAt,omitempty"`
	DurationSeconds float64           `json:"durationSeconds,omitempty"`
	Failures        []Failure         `json:"failures,omitempty"`
	Labels          map[string]string `json:"labels,omitempty"`
	Annotations     map[string]string `json:"annotations,omitempty"`
	// Warnings name what DecodeResult left out of the body, and why; the
	// job keeps the first (Job.LastWarning). Never part of the body.
	Warnings []Warning `json:"-"`
	// Source is what reported the result: SourceCallback (the zero value,
	// what the HTTP handler decodes) or the watcher that made it. Never
	// part of the body.
	Source RunSource `json:"-"`
}

// RunSource is what reported a run.
type RunSource string

// The sources of a run. SourceUnknown marks the runs a job's history was
// seeded with from what it kept before it kept a history.
const (
	SourceCallback RunSource = ""
	SourceArgo     RunSource = "argo"
	SourceCronJob  RunSource = "cronjob"
	SourceUnknown  RunSource = "unknown"
)

// Name is the source as the API shows it.
func (s RunSource) Name() string {
	if s == SourceCallback {
		return "callback"
	}
	return string(s)
}

// Run is one finished run of a job in its history (Job.Runs), or a
// synthetic failure standing for one (Missed, Stuck, SpecError,
// SubmissionError). Times are to the second.
type Run struct {
	Phase Phase `json:"phase"`
	// Source is "callback", "argo" (the Argo watcher), "cronjob" (the
	// CronJob watcher), or "unknown" for a run the history was seeded with
	// from the state kept before histories were (the job's latest run, its
	// streaks' first failures and recoveries).
	Source      string     `json:"source"`
	ScheduledAt *time.Time `json:"scheduledAt,omitempty"`
	FinishedAt  time.Time  `json:"finishedAt"`
	// DurationSeconds is absent when not known (a Missed tick has none).
	DurationSeconds *float64 `json:"durationSeconds,omitempty"`
}

// MaxRuns bounds the runs a job's history keeps.
const MaxRuns = 20

// Usual is what a job usually does, from its last runs: how long its
// successful runs take and how often it runs. Each needs MinRunsForUsual
// runs to be told; Note says which cannot be yet, and why.
type Usual struct {
	// MedianSeconds and P90Seconds: the median and 90th percentile (nearest
	// rank) of the durations of its successful runs whose duration is
	// known, of which there are SuccessfulRuns.
	MedianSeconds  *float64 `json:"medianSeconds,omitempty"`
	P90Seconds     *float64 `json:"p90Seconds,omitempty"`
	SuccessfulRuns int      `json:"successfulRuns"`
	// IntervalSeconds: the median time between two runs (their ticks, else
	// their starts), a synthetic failure standing for a run counting as one.
	IntervalSeconds *float64 `json:"intervalSeconds,omitempty"`
	Note            string   `json:"note,omitempty"`
}

// MinRunsForUsual is how many runs it takes to tell what a job usually
// does: fewer say little.
const MinRunsForUsual = 5

// Warning names a field of a callback that could not be trusted and says
// what was done instead: the run was recorded without it.
type Warning struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// JobWarning is the first warning about the latest result of a job that
// had any: which run, received when, and how many other warnings it had.
type JobWarning struct {
	Field    string    `json:"field"`
	Message  string    `json:"message"`
	Workflow string    `json:"workflow"`
	At       time.Time `json:"at"`
	// More is how many other warnings that result had (in its answer and the
	// log only).
	More int `json:"more,omitempty"`
}

// Failure is one failed node of a run, as in Argo's {{workflow.failures}}.
type Failure struct {
	DisplayName  string `json:"displayName,omitempty"`
	Message      string `json:"message,omitempty"`
	TemplateName string `json:"templateName,omitempty"`
	Phase        string `json:"phase,omitempty"`
	PodName      string `json:"podName,omitempty"`
	FinishedAt   string `json:"finishedAt,omitempty"`
}

// Kinds of job: what runs it. A CronWorkflow and a CronJob of the same name
// in one namespace are two jobs.
const (
	// KindWorkflow: Argo Workflows runs, grouped by their CronWorkflow (or
	// WorkflowTemplate), or the namespace as a whole.
	KindWorkflow = "Workflow"
	// KindCronJob: the Jobs of a Kubernetes CronJob.
	KindCronJob = "CronJob"
)

// Job is the state of one job as the REST API shows it.
type Job struct {
	Namespace string `json:"namespace"`
	// Job is the CronWorkflow (or WorkflowTemplate) or CronJob name; empty
	// means the namespace as a whole (of kind Workflow only).
	Job string `json:"job"`
	// Kind is KindWorkflow or KindCronJob.
	Kind                string     `json:"kind"`
	Failing             bool       `json:"failing"`
	FailingSince        *time.Time `json:"failingSince,omitempty"`
	FailingSeconds      float64    `json:"failingSeconds,omitempty"`
	ConsecutiveFailures int        `json:"consecutiveFailures"`
	LastResultAt        time.Time  `json:"lastResultAt"`
	LastWorkflow        string     `json:"lastWorkflow"`
	LastUID             string     `json:"lastUID,omitempty"`
	LastPhase           Phase      `json:"lastPhase"`
	LastFailures        []Failure  `json:"lastFailures,omitempty"`
	// LastFailuresOmitted is how many more steps of the last run failed
	// than LastFailures holds: the state keeps only the first few.
	LastFailuresOmitted int     `json:"lastFailuresOmitted,omitempty"`
	LastStreak          *Streak `json:"lastStreak,omitempty"`
	// Streaks are the job's earlier finished streaks, newest first (at
	// most MaxStreaks, LastStreak included).
	Streaks []Streak `json:"streaks,omitempty"`
	// Schedule is set for a job a watcher reads (--watch-argo,
	// --watch-cronjobs): when it should run.
	Schedule *Schedule `json:"schedule,omitempty"`
	// FailureThreshold is how many failed runs in a row it takes before the
	// job alerts (the annotation batchlatch.io/failure-threshold); 1 when
	// not set.
	FailureThreshold int `json:"failureThreshold"`
	// Silenced is the silence that mutes the job, while one does.
	Silenced *Silence `json:"silenced,omitempty"`
	// Alerting is what the alert policies see: failing, at or past the
	// failure threshold, and not silenced.
	Alerting bool `json:"alerting"`
	// LastWarning is what was left out of the job's latest result that had
	// a warning, until a later result comes without one.
	LastWarning *JobWarning `json:"lastWarning,omitempty"`
	// Unreadable says why the job's stored value cannot be read, while it
	// cannot: the other fields are then the last readable copy the replica
	// saw, or empty when it saw none. Fix or delete the stored value.
	Unreadable string `json:"unreadable,omitempty"`
	// Expected says how often the job should report and whether it is
	// late: always for a job that asks for Late runs
	// (AnnotationExpectedEvery), for any other only while it is late. A
	// job a watcher reads has none: its missed ticks are reported instead.
	Expected *Expected `json:"expected,omitempty"`
}

// JobDetail answers GET /api/v1/jobs/{namespace}/{job}: the job, its last
// runs and what it usually does. Only one job's answer has them: in a list
// of hundreds they would be most of it, and the alarm's entries need none.
type JobDetail struct {
	Job
	// Runs are the job's last runs, newest first (at most MaxRuns).
	Runs []Run `json:"runs,omitempty"`
	// Usual is what the job usually does, learnt from Runs; with them only.
	Usual *Usual `json:"usual,omitempty"`
}

// MaxStreaks bounds the finished streaks a job keeps.
const MaxStreaks = 5

// Silence mutes the alarm of one job, or of every job of a namespace,
// until EndsAt: the job shows as silenced and its incident closes (nothing
// failing is written for it). It expires by itself.
type Silence struct {
	ID        string `json:"id"`
	Namespace string `json:"namespace"`
	// Job is the job's name; empty: every job of the namespace.
	Job string `json:"job,omitempty"`
	// Kind is the job's kind when Job is set (KindWorkflow or KindCronJob).
	Kind      string    `json:"kind,omitempty"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	Reason    string    `json:"reason"`
	CreatedBy string    `json:"createdBy,omitempty"`
}

// MaxSilence bounds how long a silence may last.
const MaxSilence = 30 * 24 * time.Hour

// Bounds of a silence's reason and createdBy, in bytes of UTF-8: the stores
// make room for the most silences in force at these sizes.
const (
	MaxSilenceReason    = 1024
	MaxSilenceCreatedBy = 256
)

// SilenceRequest is the body of POST /api/v1/silences: what to silence,
// until when (endsAt, RFC 3339, or for, a Go duration such as "2h"; one of
// them, at most MaxSilence ahead), and why.
type SilenceRequest struct {
	Namespace string `json:"namespace"`
	Job       string `json:"job,omitempty"`
	Kind      string `json:"kind,omitempty"`
	EndsAt    string `json:"endsAt,omitempty"`
	For       string `json:"for,omitempty"`
	Reason    string `json:"reason"`
	CreatedBy string `json:"createdBy,omitempty"`
}

// SilenceList answers GET /api/v1/silences: the silences in force, soonest
// to end first.
type SilenceList struct {
	Silences []Silence `json:"silences"`
}

// Schedule says when a watched job should run.
type Schedule struct {
	// Kind is what the job is: "CronWorkflow".
	Kind      string   `json:"kind"`
	Schedules []string `json:"schedules"`
	Timezone  string   `json:"timezone"`
	// NextTick is the next time it should run; absent while it never will
	// (suspended, stopped, an impossible schedule).
	NextTick  *time.Time `json:"nextTick,omitempty"`
	Suspended bool       `json:"suspended,omitempty"`
	Stopped   bool       `json:"stopped,omitempty"`
	// Note says why missed ticks are not reported, when they are not;
	// and, for a job whose max runtime is auto (batchlatch.io/max-runtime:
	// auto), the limit learnt from its usual duration or why none applies
	// yet. Notes are joined by "; ".
	Note string `json:"note,omitempty"`
}

// ScheduleOf returns the schedule of the job kind/namespace/name at now, or
// nil for a job no watcher reads.
type ScheduleOf func(kind, namespace, name string, now time.Time) *Schedule

// Streak is a finished failure streak: from the first failed run to the
// success that ended it.
type Streak struct {
	Since    time.Time `json:"since"`
	Until    time.Time `json:"until"`
	Seconds  float64   `json:"seconds"`
	Failures int       `json:"failures"`
}

// ResultResponse answers POST /api/v1/results.
type ResultResponse struct {
	// Duplicate is true when this outcome of the workflow (same uid, both
	// failed or both succeeded) was already recorded; nothing changed.
	Duplicate bool `json:"duplicate"`
	// Stale is true when the result finished before the job's latest known
	// result; the current state did not change.
	Stale bool `json:"stale"`
	// Retry is true when another outcome of the same workflow (same uid) was
	// recorded before: `argo retry` ran it again, and this newer outcome
	// counts.
	Retry bool `json:"retry"`
	Job   Job  `json:"job"`
	// Warnings name each field of the body that was left out, and why: the
	// run was recorded without it. Absent when there were none.
	Warnings []Warning `json:"warnings,omitempty"`
}

// JobList answers GET /api/v1/jobs and GET /api/v1/jobs/{namespace}.
type JobList struct {
	Jobs []Job `json:"jobs"`
	// Continue, when set, asks for the next page: pass it as ?continue=
	// with the same path and namespace. Absent on the last page.
	Continue string `json:"continue,omitempty"`
}

// FailureList answers GET /api/v1/failures: the jobs whose latest run failed,
// longest-failing first.
type FailureList struct {
	Failures []Job `json:"failures"`
	// Continue, as in JobList.
	Continue string `json:"continue,omitempty"`
}

// TokenHeader carries the token, read or write, as the Authorization
// header's bearer token does, where that header cannot: through the
// Kubernetes API server's service proxy, which authenticates the caller
// with Authorization and drops it before proxying.
const TokenHeader = "X-Batchlatch-Token"

// ErrorBody is every error response.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail says what went wrong and, for bad input, which field.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}
