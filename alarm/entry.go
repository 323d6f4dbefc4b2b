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
// log-based metric and alert policy read; the sinks and the Terraform tests
// use these constants, so the two cannot drift apart.
const (
	LabelNamespace = "namespace"
	LabelJob       = "job"

	FieldFailing             = "failing"
	FieldConsecutiveFailures = "consecutiveFailures"
	FieldFailingSeconds      = "failingSeconds"
)

// Entry is one log entry about one job.
type Entry struct {
	Time     time.Time
	Severity Severity
	// InsertID, when set, makes the entry idempotent: Cloud Logging treats
	// entries with the same timestamp and insertId as one, so the same
	// entry written by two leaders shows once.
	InsertID string
	// Labels are the entry's labels: LabelNamespace and LabelJob.
	Labels  map[string]string
	Payload Payload
}

// Payload is an entry's JSON payload. Field names match the Field* constants.
type Payload struct {
	Message             string        `json:"message"`
	Namespace           string        `json:"namespace"`
	Job                 string        `json:"job"`
	Workflow            string        `json:"workflow"`
	UID                 string        `json:"uid,omitempty"`
	Phase               string        `json:"phase"`
	Failing             int           `json:"failing"`
	FailingSince        *time.Time    `json:"failingSince,omitempty"`
	ConsecutiveFailures int           `json:"consecutiveFailures"`
	FailingSeconds      float64       `json:"failingSeconds"`
	Failures            []api.Failure `json:"failures,omitempty"`
	// LastStreak is set on the entries written after a recovery.
	LastStreak *api.Streak `json:"lastStreak,omitempty"`
	// Schedule is set for a job a watcher reads: when it should run.
	Schedule *api.Schedule `json:"schedule,omitempty"`
}

// Sink receives entries. Implementations are safe for concurrent use.
type Sink interface {
	// Write hands one entry to the sink. It returns quickly: sinks that send
	// over the network buffer and report failures through their metrics.
	Write(ctx context.Context, e Entry) error
	// Close flushes what is buffered, waiting at most until ctx is done.
	Close(ctx context.Context) error
}

// jobTitle names a job in messages: "ns/job", or "ns" for the namespace as a whole.
func jobTitle(j state.Job) string {
	if j.Name == "" {
		return j.Namespace
	}
	return j.Namespace + "/" + j.Name
}

func basePayload(j state.Job) Payload {
	return Payload{
		Namespace: j.Namespace,
		Job:       j.Name,
		Workflow:  j.LastWorkflow,
		UID:       j.LastUID,
		Phase:     string(j.LastPhase),
	}
}

func entryFor(j state.Job, sev Severity, p Payload, now time.Time) Entry {
	return Entry{
		Time:     now,
		Severity: sev,
		Labels:   map[string]string{LabelNamespace: j.Namespace, LabelJob: j.Name},
		Payload:  p,
	}
}

// failingEntry is the ERROR entry written every interval while j fails;
// sched is its schedule, nil for a job no watcher reads.
func failingEntry(j state.Job, sched *api.Schedule, now time.Time) Entry {
	p := basePayload(j)
	p.Schedule = sched
	p.Failing = 1
	p.FailingSince = j.FailingSince
	p.ConsecutiveFailures = j.ConsecutiveFailures
	p.FailingSeconds = j.FailingFor(now).Truncate(time.Second).Seconds()
	p.Failures = j.LastFailures
	p.Message = fmt.Sprintf("%s is failing: %d failed run(s) in a row, failing for %s; last run %s ended %s",
		jobTitle(j), j.ConsecutiveFailures, j.FailingFor(now).Truncate(time.Second), j.LastWorkflow, j.LastPhase)
	if len(j.LastFailures) > 0 {
		f := j.LastFailures[0]
		p.Message += fmt.Sprintf(" (%s: %s)", f.DisplayName, f.Message)
	}
	return entryFor(j, SeverityError, p, now)
}

// recoveredEntry is the NOTICE entry written once when a streak ends. Its
// time is the recovery's and its insertId is derived from the job and the
// recovery, so that a new leader that writes it again (it cannot know what
// its predecessor wrote) writes the same entry, which Cloud Logging shows
// once.
func recoveredEntry(j state.Job, now time.Time) Entry {
	p := basePayload(j)
	p.LastStreak = j.LastStreak
	streak := j.LastStreak
	p.Message = fmt.Sprintf("%s recovered after %d failed runs, failing for %s",
		jobTitle(j), streak.Failures, (time.Duration(streak.Seconds * float64(time.Second))).Truncate(time.Second))
	e := entryFor(j, SeverityNotice, p, *j.RecoveredAt)
	e.InsertID = recoveryInsertID(j)
	return e
}

// healthyEntry is the INFO entry with failing 0 written during the recovery
// window, so that a policy which ignores missing data sees the job healthy.
func healthyEntry(j state.Job, now time.Time) Entry {
	p := basePayload(j)
	p.LastStreak = j.LastStreak
	p.Message = fmt.Sprintf("%s is healthy since %s", jobTitle(j), j.LastStreak.Until.Format(time.RFC3339))
	return entryFor(j, SeverityInfo, p, now)
}

// forgottenEntry is the NOTICE entry written once when a job is forgotten
// (its CronWorkflow was deleted): failing 0, so a policy that reads the
// failing field sees it healthy and no incident is left open.
func forgottenEntry(j state.Job, reason string, now time.Time) Entry {
	p := basePayload(j)
	p.Message = fmt.Sprintf("%s forgotten: %s", jobTitle(j), reason)
	if j.Failing() {
		p.Message += fmt.Sprintf(" (it was failing: %d failed run(s) since %s)", j.ConsecutiveFailures, j.FailingSince.Format(time.RFC3339))
	}
	return entryFor(j, SeverityNotice, p, now)
}

// recoveryInsertID names one recovery of one job.
func recoveryInsertID(j state.Job) string {
	sum := sha256.Sum256([]byte(j.Key().String() + "@" + j.RecoveredAt.UTC().Format(time.RFC3339Nano)))
	return "batchlatch-recovered-" + hex.EncodeToString(sum[:12])
}
