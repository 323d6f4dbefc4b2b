package api

import (
	"fmt"
	"time"
)

// Bounds on the times a callback carries. The sender's clock is trusted only
// this far: a finish time in the future would make every later result of the
// job look stale, and a duration past time.Duration's range wraps around.
const (
	// MaxClockSkew is how far past the moment a result was received its
	// finish time (createdAt + durationSeconds) may lie: clocks in one
	// cluster differ by seconds, not minutes.
	MaxClockSkew = 5 * time.Minute
	// MaxDuration bounds durationSeconds. Argo restarts the duration on
	// `argo retry`, so this is one attempt's run time; a CronWorkflow run of
	// more than 30 days is a broken clock, not a job.
	MaxDuration = 30 * 24 * time.Hour
	// MaxResultAge bounds how long before the callback a run may have been
	// created: older is a broken clock too (Argo garbage-collects such
	// workflows long before).
	MaxResultAge = 366 * 24 * time.Hour
)

// ParseTime parses an RFC 3339 time strictly: Go's time.Parse also takes
// offsets such as +24:00 or +00:60, which RFC 3339 does not allow.
func ParseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, err
	}
	if n := len(s); s[n-1] != 'Z' {
		// time.RFC3339 parsed, so s ends in ±hh:mm.
		hours := int(s[n-5]-'0')*10 + int(s[n-4]-'0')
		minutes := int(s[n-2]-'0')*10 + int(s[n-1]-'0')
		if hours > 23 || minutes > 59 {
			return time.Time{}, fmt.Errorf("offset %s is out of range", s[n-6:])
		}
	}
	return t, nil
}

// validateTimes checks the result's times against when it was received.
func (r Result) validateTimes(receivedAt time.Time) error {
	if r.ScheduledTime != "" {
		if _, err := ParseTime(r.ScheduledTime); err != nil {
			return &FieldError{Field: "scheduledTime", Message: fmt.Sprintf("%s is not an RFC 3339 time", Quote(r.ScheduledTime))}
		}
	}
	if !(r.DurationSeconds >= 0 && r.DurationSeconds <= MaxDuration.Seconds()) { // NaN too
		return &FieldError{Field: "durationSeconds", Message: fmt.Sprintf("must be a number of seconds from 0 to %.0f (%s), not %g", MaxDuration.Seconds(), MaxDuration, r.DurationSeconds)}
	}
	if r.CreatedAt == "" {
		return nil
	}
	created, err := ParseTime(r.CreatedAt)
	if err != nil {
		return &FieldError{Field: "createdAt", Message: fmt.Sprintf("%s is not an RFC 3339 time", Quote(r.CreatedAt))}
	}
	latest := receivedAt.Add(MaxClockSkew)
	if created.After(latest) {
		return &FieldError{Field: "createdAt", Message: fmt.Sprintf("%s is in the future: more than %s after the callback was received (%s); check the cluster's clock",
			r.CreatedAt, MaxClockSkew, receivedAt.UTC().Format(time.RFC3339))}
	}
	if created.Before(receivedAt.Add(-MaxResultAge)) {
		return &FieldError{Field: "createdAt", Message: fmt.Sprintf("%s is more than %s before the callback was received (%s); check the cluster's clock",
			r.CreatedAt, MaxResultAge, receivedAt.UTC().Format(time.RFC3339))}
	}
	if finished := r.FinishedAt(receivedAt); finished.After(latest) {
		return &FieldError{Field: "durationSeconds", Message: fmt.Sprintf("createdAt %s plus %g seconds ends at %s, in the future: more than %s after the callback was received (%s)",
			r.CreatedAt, r.DurationSeconds, finished.Format(time.RFC3339), MaxClockSkew, receivedAt.UTC().Format(time.RFC3339))}
	}
	return nil
}
