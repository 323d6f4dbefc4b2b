package state

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/batchlatch/batchlatch/api"
)

// lateRunPrefix starts the name of a Late run, followed by the unix time of
// the result the silence started after: one name per silence, so that every
// pass, replica and restart makes the same Late run of it.
const lateRunPrefix = "late-"

// ExpectedAt says whether the job reports as often as expected at now
// (api.Expected), grace being --missed-grace: by the interval it asks for
// (api.AnnotationExpectedEvery), else by its usual one, for the reader only.
// It is nil when there is nothing to say: the job asks for nothing and is
// not late (or has no usual interval yet). The caller leaves out the jobs a
// watcher reads: their missed ticks are reported instead.
func (j Job) ExpectedAt(now time.Time, grace time.Duration) *api.Expected {
	if j.LastResultAt.IsZero() || j.Forgotten() || j.Unreadable != "" {
		return nil
	}
	var rule api.ExpectedEvery
	optedIn := false
	if j.ExpectedEvery != "" {
		var err error
		rule, err = api.ParseExpectedEvery(j.ExpectedEvery)
		optedIn = err == nil
	}
	every := rule.Every
	if !optedIn || rule.Auto {
		interval, runs := j.usualInterval()
		if runs < api.MinRunsForUsual {
			if !optedIn {
				return nil
			}
			return &api.Expected{OptedIn: true, Auto: true, SilentSince: j.LastResultAt,
				Note: api.AnnotationExpectedEvery + ": auto: " + intervalNote(runs) + "; no Late run until then"}
		}
		every = interval
	}
	silentSince, lateAt := j.LastResultAt, j.LastResultAt.Add(2*every+grace)
	if j.LastPhase == api.PhaseLate {
		silentSince, lateAt = j.silentSince(), j.LastResultAt
	}
	late := !now.Before(lateAt)
	if !optedIn && !late {
		return nil // the usual case, for every job a page shows: no allocation
	}
	seconds, at := every.Seconds(), lateAt
	return &api.Expected{OptedIn: optedIn, Auto: rule.Auto || !optedIn, EverySeconds: &seconds,
		SilentSince: silentSince, LateAt: &at, Late: late}
}

// LateResult is the Late run the job gets at now, when one is due: it asks
// for them (api.AnnotationExpectedEvery) and sent no result for twice its
// expected interval plus grace (--missed-grace). It is timed when the job
// became late, not when a pass noticed, and named after the silence it is
// about (lateRunPrefix), so that every pass makes the same one and the
// store counts it once; and none is due once the job's latest result is a
// Late run: one per silence. The caller leaves out the jobs a watcher reads.
func LateResult(j Job, now time.Time, grace time.Duration) (api.Result, bool) {
	e := j.ExpectedAt(now, grace)
	if e == nil || !e.OptedIn || !e.Late || j.LastPhase == api.PhaseLate {
		return api.Result{}, false
	}
	r := api.Result{
		Namespace:    j.Namespace,
		WorkflowName: lateRunPrefix + strconv.FormatInt(j.LastResultAt.Unix(), 10),
		Phase:        api.PhaseLate,
		CreatedAt:    e.LateAt.UTC().Format(time.RFC3339),
		// What the job asked for stays with it: a Late run is its latest
		// result, whose annotations the job keeps.
		Annotations: map[string]string{api.AnnotationExpectedEvery: j.ExpectedEvery},
	}
	if j.Kind == api.KindCronJob {
		r.CronJob = j.Name
	} else {
		r.CronWorkflow = j.Name
	}
	if j.FailureThreshold > 0 {
		r.Annotations[api.AnnotationFailureThreshold] = strconv.Itoa(j.FailureThreshold)
	}
	every := time.Duration(*e.EverySeconds * float64(time.Second))
	how := "expected every " + api.FormatDuration(every)
	if e.Auto {
		how = "usually every " + api.FormatDuration(every) + " (" + api.AnnotationExpectedEvery + ": auto)"
	}
	r.Failures = []api.Failure{{
		DisplayName: cmp.Or(j.Name, j.Namespace),
		Phase:       string(api.PhaseLate),
		Message: fmt.Sprintf("no result since %s: %s, late after twice that plus the missed grace of %s",
			j.LastResultAt.UTC().Format(time.RFC3339), how, api.FormatDuration(grace)),
	}}
	return r, true
}

// lateBefore reports whether r is the result that the job's Late run stood
// for: the job's latest result is a Late run, and r is a run that reported
// after the silence the Late run is about started (or has no time of its
// own). Like a watcher's synthetic failure, the Late run is then
// superseded: the streak counts the silence once.
func (j Job) lateBefore(r api.Result, receivedAt time.Time) bool {
	if j.LastPhase != api.PhaseLate || r.Synthetic() {
		return false
	}
	return r.CreatedAt == "" || r.FinishedAt(receivedAt).After(j.silentSince())
}

// silentSince is, for a job whose latest result is a Late run, the result
// the silence started after, as the Late run's name says (lateRunPrefix).
func (j Job) silentSince() time.Time {
	unix, _ := strings.CutPrefix(j.LastWorkflow, lateRunPrefix)
	at, err := strconv.ParseInt(unix, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.Unix(at, 0).UTC()
}
