// Package alarm writes the entries that hold an alert open while a job is
// failing: the background Loop and its sinks (Cloud Logging, stdout).
package alarm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// Severity is a Cloud Logging severity name.
type Severity string

const (
	SeverityError  Severity = "ERROR"
	SeverityNotice Severity = "NOTICE"
	SeverityInfo   Severity = "INFO"
)

// DefaultLogName is the log the entries go to unless --log-name says otherwise.
const DefaultLogName = "batchlatch"

// Names of the entry labels and of the payload fields that the shipped
// log-based metrics and alert policies read; the sinks and the Terraform
// tests use these constants, so the two cannot drift apart.
const (
	LabelNamespace = "namespace"
	LabelJob       = "job"
	// LabelKind is the job's kind (api.KindWorkflow, api.KindCronJob): a
	// CronJob and a CronWorkflow of one name are two jobs.
	LabelKind = "kind"
	// LabelWriter names the pod that wrote the entry (the resource names
	// the instance, so that a leader change keeps one series per job).
	LabelWriter = "writer"

	FieldFailing             = "failing"
	FieldHeartbeat           = "heartbeat"
	FieldConsecutiveFailures = "consecutiveFailures"
	FieldFailingSeconds      = "failingSeconds"
)

// Entry is one log entry: about one job, or a heartbeat.
type Entry struct {
	Time     time.Time
	Severity Severity
	// InsertID, when set, makes the entry idempotent: Cloud Logging treats
	// entries with the same timestamp and insertId as one, so the same
	// entry written by two leaders shows once.
	InsertID string
	// Labels are the entry's labels: LabelNamespace, LabelJob and LabelKind
	// for a job's entry, none for a heartbeat (the sinks add LabelWriter).
	Labels  map[string]string
	Payload Payload
}

// JobView is the job as GET /api/v1/jobs shows it: an entry's payload
// carries the same fields under the same names.
type JobView = api.Job

// Payload is an entry's JSON payload: a message, the metric's value, and
// the job's REST view inline.
type Payload struct {
	Message string `json:"message"`
	// Failing is the value the shipped log-based metric extracts: 1 while
	// the job fails, 0 once it recovered; absent from a heartbeat. It hides
	// the view's boolean "failing" (encoding/json: the shallower field wins).
	Failing *int `json:"failing,omitempty"`
	// Heartbeat is set on the entry each pass writes to say that batchlatch
	// is up, leading and writing.
	Heartbeat bool `json:"heartbeat,omitempty"`
	*JobView
}

// FailingValue is the payload's failing value, and whether it has one.
func (p Payload) FailingValue() (int, bool) {
	if p.Failing == nil {
		return 0, false
	}
	return *p.Failing, true
}

// Sink receives entries. Implementations are safe for concurrent use.
type Sink interface {
	// Write hands one entry to the sink. It returns quickly: sinks that send
	// over the network buffer and report failures through their metrics
	// (in a burst that outruns the network, one may wait for it, boundedly,
	// rather than drop entries).
	Write(ctx context.Context, e Entry) error
	// Close flushes what is buffered, waiting at most until ctx is done.
	Close(ctx context.Context) error
}

// jobTitle names a job in messages: "ns/job", or "ns" for the namespace as a whole.
func jobTitle(j state.Job) string {
	switch {
	case j.Kind == api.KindCronJob:
		return "CronJob " + j.Namespace + "/" + j.Name
	case j.Name == "":
		return j.Namespace
	}
	return j.Namespace + "/" + j.Name
}

// jobEntry is an entry about j with its REST view at now and the given
// failing value.
func jobEntry(j state.Job, sev Severity, failing int, sched *api.Schedule, now time.Time) Entry {
	view := j.View(now)
	view.Schedule = sched
	return Entry{
		Time:     now,
		Severity: sev,
		Labels:   map[string]string{LabelNamespace: j.Namespace, LabelJob: j.Name, LabelKind: j.Key().KindName()},
		Payload:  Payload{Failing: &failing, JobView: &view},
	}
}

// failingEntry is the ERROR entry written every interval while j fails;
// sched is its schedule, nil for a job no watcher reads.
func failingEntry(j state.Job, sched *api.Schedule, now time.Time) Entry {
	e := jobEntry(j, SeverityError, 1, sched, now)
	e.Payload.Message = fmt.Sprintf("%s is failing: %d failed run(s) in a row, failing for %s; last run %s ended %s",
		jobTitle(j), j.ConsecutiveFailures, api.FormatDuration(j.FailingFor(now)), j.LastWorkflow, j.LastPhase)
	if len(j.LastFailures) > 0 {
		f := j.LastFailures[0]
		more := ""
		if n := len(j.LastFailures) - 1 + j.FailuresOmitted; n > 0 {
			more = fmt.Sprintf("; and %d more failed step%s", n, map[bool]string{true: "s"}[n > 1])
		}
		e.Payload.Message += fmt.Sprintf(" (%s: %s%s)", f.DisplayName, f.Message, more)
	}
	return e
}

// recoveredEntry is the NOTICE entry written once when a streak ends. Its
// time is the recovery's and its insertId is derived from the job and the
// recovery, so that a new leader that writes it again (it cannot know what
// its predecessor wrote) writes the same entry, which Cloud Logging shows
// once.
func recoveredEntry(j state.Job, now time.Time) Entry {
	e := jobEntry(j, SeverityNotice, 0, nil, *j.RecoveredAt)
	streak := j.LastStreak
	e.Payload.Message = fmt.Sprintf("%s recovered after %d failed runs, failing for %s",
		jobTitle(j), streak.Failures, api.FormatDuration(time.Duration(streak.Seconds*float64(time.Second))))
	e.InsertID = recoveryInsertID(j)
	return e
}

// silencedEntry is the INFO entry written every pass while a silence mutes
// failing job j: failing 0, what the alert policies read as healthy.
func silencedEntry(j state.Job, s *api.Silence, now time.Time) Entry {
	e := jobEntry(j, SeverityInfo, 0, nil, now)
	e.Payload.Message = fmt.Sprintf("%s is failing (%d failed run(s) in a row) but silenced until %s: %s",
		jobTitle(j), j.ConsecutiveFailures, s.EndsAt.UTC().Format(time.RFC3339), s.Reason)
	e.Payload.JobView.Silenced = s
	e.Payload.JobView.Alerting = false
	return e
}

// healthyEntry is the INFO entry with failing 0 written during the recovery
// window, so that a policy which ignores missing data sees the job healthy.
func healthyEntry(j state.Job, now time.Time) Entry {
	e := jobEntry(j, SeverityInfo, 0, nil, now)
	e.Payload.Message = fmt.Sprintf("%s is healthy since %s", jobTitle(j), j.LastStreak.Until.Format(time.RFC3339))
	if j.Forgotten() {
		e.Payload.Message = fmt.Sprintf("%s was forgotten at %s: %s", jobTitle(j), j.ForgottenAt.Format(time.RFC3339), j.ForgetReason)
	}
	return e
}

// forgottenEntry is the NOTICE entry written once when a job forgotten
// while alerting (its CronWorkflow was deleted, an operator deleted it)
// starts its closing: failing 0, so a policy that reads the failing field
// sees it healthy and no incident is left open. It stands for the
// recovery's NOTICE, with the same time and insertId.
func forgottenEntry(j state.Job) Entry {
	e := jobEntry(j, SeverityNotice, 0, nil, *j.RecoveredAt)
	streak := j.LastStreak
	e.Payload.Message = fmt.Sprintf("%s forgotten: %s (it was failing: %d failed run(s) since %s)",
		jobTitle(j), j.ForgetReason, streak.Failures, streak.Since.Format(time.RFC3339))
	e.InsertID = recoveryInsertID(j)
	return e
}

// heartbeatEntry is the INFO entry each pass writes: the shipped absence
// alert fires when they stop (batchlatch down, no leader, or its writes
// failing).
func heartbeatEntry(jobs, failing int, now time.Time) Entry {
	return Entry{
		Time:     now,
		Severity: SeverityInfo,
		Payload: Payload{
			Message:   fmt.Sprintf("batchlatch is writing: %d job(s), %d failing", jobs, failing),
			Heartbeat: true,
		},
	}
}

// recoveryInsertID names one recovery of one job.
func recoveryInsertID(j state.Job) string {
	sum := sha256.Sum256([]byte(j.Key().String() + "@" + j.RecoveredAt.UTC().Format(time.RFC3339Nano)))
	return "batchlatch-recovered-" + hex.EncodeToString(sum[:12])
}
