// Package state is what batchlatch keeps of every job and the rules that
// change it: the Job record, the pure transition Apply, silences, and the
// Store contract. It depends on the standard library only (a test checks);
// the stores live beside it: state/filestore (a JSON file) and
// state/configmapstore (ConfigMaps, through client-go).
package state

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/batchlatch/batchlatch/api"
)

// Key identifies a job: a namespace, a CronWorkflow (or WorkflowTemplate)
// name, an empty Name being the namespace as a whole; or, with Kind
// api.KindCronJob, a CronJob's name. The zero Kind is api.KindWorkflow, so
// that every key made before CronJobs were watched still names its job.
type Key struct {
	Namespace string
	Name      string
	Kind      string // "" (api.KindWorkflow) or api.KindCronJob
}

// KeyFor is the key of the job kind/namespace/name, kind being api.KindWorkflow
// or api.KindCronJob.
func KeyFor(kind, namespace, name string) Key {
	if kind == api.KindWorkflow {
		kind = ""
	}
	return Key{Namespace: namespace, Name: name, Kind: kind}
}

// KindName is the key's kind as the API shows it.
func (k Key) KindName() string {
	if k.Kind == "" {
		return api.KindWorkflow
	}
	return k.Kind
}

// String is the key's stored form: "namespace" or "namespace.job", and
// "namespace.cronjob_job" for a CronJob (api.CronJobKeyPrefix). Namespaces
// are DNS-1123 labels (no dots), so the first dot separates the two.
func (k Key) String() string {
	if k.Kind == api.KindCronJob {
		return k.Namespace + "." + api.CronJobKeyPrefix + k.Name
	}
	if k.Name == "" {
		return k.Namespace
	}
	return k.Namespace + "." + k.Name
}

// ParseKey is the inverse of Key.String.
func ParseKey(s string) Key {
	ns, name, _ := strings.Cut(s, ".")
	if cronJob, ok := strings.CutPrefix(name, api.CronJobKeyPrefix); ok {
		return Key{Namespace: ns, Name: cronJob, Kind: api.KindCronJob}
	}
	return Key{Namespace: ns, Name: name}
}

// Validate reports whether a store can hold the key, as a *api.FieldError
// naming the field of the result the key came from. Every entry point checks
// its input with the same rules before a store sees it; the stores check
// again, so that no path around that turns into a store error that would
// fail other callers.
func (k Key) Validate() error {
	if err := api.ValidateNamespace("namespace", k.Namespace); err != nil {
		return err
	}
	return api.ValidateJob("job", k.KindName(), k.Namespace, k.Name)
}

// KeyOf is the job a result belongs to.
func KeyOf(r api.Result) Key { return KeyFor(r.Kind(), r.Namespace, r.JobName()) }

// Job is the stored state of one job. State is timestamps, not booleans: a
// job is failing while FailingSince is set.
//
// The JSON form is what the stores write, one value per job: short field
// names, times to the second, run identities hashed, because one ConfigMap
// holds 1 MiB for all jobs. Namespace, Name and Kind are not in it: the
// stores keep them in the key (see Key.String).
type Job struct {
	Namespace           string        `json:"-"`
	Name                string        `json:"-"`
	Kind                string        `json:"-"` // as in Key`
	FailingSince        *time.Time    `json:"failingSince,omitempty"`
	ConsecutiveFailures int           `json:"failedRuns,omitempty"`
	LastResultAt        time.Time     `json:"lastAt"`
	LastWorkflow        string        `json:"workflow"`
	LastUID             string        `json:"uid,omitempty"`
	LastPhase           api.Phase     `json:"phase"`
	LastFailures        []api.Failure `json:"failedSteps,omitempty"`
	// FailuresOmitted is how many more steps of the last run failed than
	// LastFailures keeps.
	FailuresOmitted int         `json:"moreSteps,omitempty"`
	LastStreak      *api.Streak `json:"lastStreak,omitempty"`
	// EarlierStreaks are the streaks before LastStreak, newest first: with
	// it, at most api.MaxStreaks.
	EarlierStreaks []api.Streak `json:"streaks,omitempty"`
	// FailureThreshold is the latest result's failure threshold (the
	// annotation api.AnnotationFailureThreshold); 0 when it had none.
	FailureThreshold int `json:"threshold,omitempty"`
	// ExpectedEvery is the latest result's expected interval (the
	// annotation api.AnnotationExpectedEvery): "" when it had none.
	ExpectedEvery string `json:"every,omitempty"`
	// RecoveredAt is when the success that ended LastStreak was received: the
	// recovery window runs from here, even for a callback that came late.
	RecoveredAt *time.Time `json:"recoveredAt,omitempty"`
	// QuietRecovery: the streak LastStreak holds never reached the failure
	// threshold it had, so nothing announced it and its end is no news.
	// Decided when the streak ends: the success that ends it may carry
	// another threshold.
	QuietRecovery bool `json:"quiet,omitempty"`
	// RecentRuns holds hashes of the latest runs' dedup keys, newest last, so
	// that a redelivered callback changes nothing.
	RecentRuns []string `json:"runs,omitempty"`
	// History is the job's last runs (at most api.MaxRuns), newest first;
	// empty for a job stored before jobs kept one (Runs seeds it). Its key
	// is one letter, unlike the others: it is in every job, and 6 bytes of
	// each of 10,000 jobs count (docs/state.md).
	History Runs `json:"h,omitempty"`
	// Warning is the first warning of the latest result that had any (what
	// was left out of it), until a later result comes without one.
	Warning *api.JobWarning `json:"warning,omitempty"`
	// ForgottenAt: an operator or a watcher forgot the job at this time
	// while an incident of it may be open (it was alerting, or in its
	// recovery window). The job is then kept, hidden from every reader but
	// the alarm, so that the alarm writes a recovery's closing from the
	// state, which outlasts a restart and a leader change; the alarm
	// removes it once written (PurgeForgotten). A result for the job
	// brings it back as a new job.
	ForgottenAt *time.Time `json:"forgottenAt,omitempty"`
	// ForgetReason says why the job was forgotten.
	ForgetReason string `json:"forgotten,omitempty"`
	// Unreadable says why the job's stored value cannot be read (edited by
	// hand?), when it cannot. The store then lists the last readable copy
	// it saw, so that the job keeps alerting, or only the job's identity
	// when it saw none (after a restart). Set by the stores, never stored.
	Unreadable string `json:"-"`
}

// Forgotten reports whether the job was forgotten: only the alarm still
// reads it (ForgottenAt).
func (j Job) Forgotten() bool { return j.ForgottenAt != nil }

// Remembered returns jobs without the forgotten ones: what every reader but
// the alarm sees. It is jobs itself when none is forgotten (the usual case:
// no copy of 10,000 jobs per request).
func Remembered(jobs []Job) []Job {
	first := slices.IndexFunc(jobs, Job.Forgotten)
	if first < 0 {
		return jobs
	}
	out := append(make([]Job, 0, len(jobs)-1), jobs[:first]...)
	for _, j := range jobs[first+1:] {
		if !j.Forgotten() {
			out = append(out, j)
		}
	}
	return out
}

// Key is the job's key.
func (j Job) Key() Key { return Key{Namespace: j.Namespace, Name: j.Name, Kind: j.Kind} }

// Failing reports whether the job's latest run failed.
func (j Job) Failing() bool { return j.FailingSince != nil }

// FailingFor is how long the job has been failing at now (0 when it is not).
func (j Job) FailingFor(now time.Time) time.Duration {
	if j.FailingSince == nil {
		return 0
	}
	if d := now.Sub(*j.FailingSince); d > 0 {
		return d
	}
	return 0
}

// View is the job as the REST API shows it at now. failingSeconds is whole
// seconds, as the entries' messages count them.
func (j Job) View(now time.Time) api.Job {
	return api.Job{
		Namespace:           j.Namespace,
		Job:                 j.Name,
		Kind:                j.Key().KindName(),
		Failing:             j.Failing(),
		FailingSince:        j.FailingSince,
		FailingSeconds:      j.FailingFor(now).Truncate(time.Second).Seconds(),
		ConsecutiveFailures: j.ConsecutiveFailures,
		LastResultAt:        j.LastResultAt,
		LastWorkflow:        j.LastWorkflow,
		LastUID:             j.LastUID,
		LastPhase:           j.LastPhase,
		LastFailures:        j.LastFailures,
		LastFailuresOmitted: j.FailuresOmitted,
		LastStreak:          j.LastStreak,
		Streaks:             j.Streaks(),
		FailureThreshold:    j.Threshold(),
		Alerting:            j.Alerting(),
		LastWarning:         j.Warning,
		Unreadable:          j.Unreadable,
	}
}

// Streaks are the job's finished streaks, newest first.
func (j Job) Streaks() []api.Streak {
	if j.LastStreak == nil {
		return nil
	}
	return append([]api.Streak{*j.LastStreak}, j.EarlierStreaks...)
}

// Threshold is how many failed runs in a row make the job alert: its
// failure threshold, 1 when it has none.
func (j Job) Threshold() int { return max(j.FailureThreshold, 1) }

// Alerting reports whether the job's failure streak reached its threshold:
// what the alarm announces, unless a silence mutes it.
func (j Job) Alerting() bool { return j.Failing() && j.ConsecutiveFailures >= j.Threshold() }

// Transition says how a result changed its job.
type Transition string

const (
	// Unchanged: a duplicate, a stale result, or a success of a healthy job.
	Unchanged Transition = "unchanged"
	// StartedFailing: the first failure after a success (or ever).
	StartedFailing Transition = "started-failing"
	// StillFailing: another failure in a running streak.
	StillFailing Transition = "still-failing"
	// Recovered: a success ended a streak.
	Recovered Transition = "recovered"
)

// Outcome is what Apply did with a result.
type Outcome struct {
	Transition Transition
	// Duplicate: this outcome of the run was already recorded (at-least-once
	// delivery).
	Duplicate bool
	// Stale: the run finished before the job's latest known result.
	Stale bool
	// Retry: another outcome of the same run was recorded before; this one
	// came from `argo retry` and is the newer.
	Retry bool
	// Supersedes: a synthetic failure (Missed, Stuck, …) stood for this run,
	// which has now reported itself.
	Supersedes bool
	// Detail: a duplicate that added the failed steps its first delivery
	// lacked.
	Detail bool
}

// Announces reports whether the result changed what the alarm writes for
// job (the job after it): a streak reached its failure threshold, or one
// ended. The loop is kicked then, so that the change is written at once.
func (o Outcome) Announces(job Job) bool {
	switch o.Transition {
	case StartedFailing, StillFailing: // never a duplicate or a stale result
		return job.ConsecutiveFailures == job.Threshold()
	case Recovered:
		return true
	}
	return false
}

// Changed reports whether the job record must be written.
func (o Outcome) Changed() bool { return !o.Duplicate || o.Detail }

// Limits that keep one job's record small (a ConfigMap holds 1 MiB in all).
const (
	recentRunsKept = 8
	// failuresKept is how many failed steps of a run a job keeps: the first
	// ones, with how many more there were.
	failuresKept = 2
	// FailedStepsBudget bounds the stored failed steps of a job: their
	// JSON, escapes included. It is what 10,000 failing jobs whose failed
	// steps all fill it leave room for in the default 32 ConfigMaps, with
	// the largest one at most 80% full (docs/state.md: TestFailedStepsFit).
	FailedStepsBudget = 1536
	// failureNameBytes bounds a failed step's name and pod name (JSON):
	// Argo's pod names are at most 63 characters.
	failureNameBytes = 128
)

// Apply is the transition: the job after result r, received at receivedAt.
// existing is false for a job never seen before. Apply is pure: it never
// modifies its arguments' shared slices.
//
// A run is identified by its dedup key and its outcome, failed or succeeded:
// the same outcome delivered again is a duplicate however the body was
// re-rendered, while a different outcome of the same run is `argo retry`
// (Argo keeps the uid) and counts. A retry is never stale: Argo resets the
// run's start on a retry, so createdAt plus the duration can fall before the
// outcome it replaces; it is ordered as received instead.
//
// A result without a time of its own (no createdAt, or one that could not be
// trusted and was left out with a warning) is ordered the same way, as
// received: it is never stale.
//
// A synthetic failure (a watcher's Missed, Stuck, …) stands for a run that
// did not report. When that run reports after all, its result supersedes the
// synthetic one: a failure is the same failed run (it is not counted again),
// a success ends the streak.
//
// The job keeps the first of the result's warnings (r.Warnings) until a
// later result comes without any.
func Apply(job Job, existing bool, r api.Result, receivedAt time.Time) (Job, Outcome) {
	key := KeyOf(r)
	if !existing {
		job = Job{Namespace: key.Namespace, Name: key.Name, Kind: key.Kind}
	}
	m := job.match(r)
	if !m.seen && job.lateBefore(r, receivedAt) {
		m.supersedes = true
	}
	if m.seen {
		if job.addsDetail(r) {
			// The job's latest run, recorded without its failed steps (a
			// watcher read only its metadata): the same run's later
			// delivery tells what broke, and counts nothing again.
			next := job
			next.LastFailures, next.FailuresOmitted = trimFailures(r.Failures)
			return next, Outcome{Transition: Unchanged, Duplicate: true, Detail: true}
		}
		return job, Outcome{Transition: Unchanged, Duplicate: true}
	}
	next := job
	next.RecentRuns = append(append(make([]string, 0, recentRunsKept), lastN(job.RecentRuns, recentRunsKept-1)...), runHash(r.DedupKey(), outcomeOf(r)))

	// Stored times have whole seconds; compute with what will be stored.
	finished := r.FinishedAt(receivedAt).Truncate(time.Second)
	if m.retry || m.supersedes || r.CreatedAt == "" {
		finished = latest(receivedAt.UTC().Truncate(time.Second), job.LastResultAt)
	}
	if len(r.Warnings) > 0 {
		next.Warning = jobWarning(r, receivedAt)
	}
	// The history has the run's own end when it has a time of its own (a
	// run that supersedes a synthetic failure too), not the order's; a
	// retry's own time is not its end (see above).
	ended := finished
	if !m.retry && r.CreatedAt != "" {
		ended = r.FinishedAt(receivedAt).Truncate(time.Second)
	}
	run, runs := runOf(r, ended), job.Runs()
	if existing && (finished.Before(job.LastResultAt) || r.Synthetic() && !finished.After(job.LastResultAt)) {
		// Out of order: remember the run so a redelivery stays a duplicate,
		// but the current state belongs to the newer result. A watcher's
		// synthetic failure is timed by what it is about (a tick plus its
		// grace, a run's start plus its max runtime), and the watchers
		// record them in that order: one no newer than the job's latest
		// result was decided already, whether or not the job still
		// remembers it, so it is never counted again. A late run goes into
		// the history in its place, unless the history has it already
		// (the recent runs no longer remember every run it holds).
		if !r.Synthetic() && copyOf(runs, run) < 0 {
			next.History = withRun(runs, run)
		}
		return next, Outcome{Transition: Unchanged, Stale: true}
	}
	if m.supersedes {
		// The run takes the place of the synthetic failure that stood for it.
		if i := standInFor(runs, run, job.LastPhase == api.PhaseLate); i >= 0 {
			runs = withoutRun(runs, i)
		}
	}
	next.History = withRun(runs, run)
	if len(r.Warnings) == 0 {
		next.Warning = nil
	}
	// A forgotten job comes back as a new one: not failing (forgetting
	// ended its streak), its runs and streaks kept so that a late copy of
	// an old run stays a duplicate and the alarm weighs the new streak
	// against the closing it may still be writing.
	next.ForgottenAt, next.ForgetReason = nil, ""
	if m.supersedes && r.Failed() && job.Failing() {
		// The run that a synthetic failure stood for failed: same run, its
		// own result tells what broke.
		setLast(&next, r, finished)
		next.LastFailures, next.FailuresOmitted = trimFailures(r.Failures)
		return next, Outcome{Transition: StillFailing, Supersedes: true}
	}
	transition := apply(&next, job, r, finished, receivedAt)
	return next, Outcome{Transition: transition, Retry: m.retry, Supersedes: m.supersedes}
}

// addsDetail reports whether r, a delivery of a run already recorded, is
// the job's latest run and failed, recorded with no failed steps, and
// carries some.
func (j Job) addsDetail(r api.Result) bool {
	return r.Failed() && !r.Synthetic() && len(j.LastFailures) == 0 && len(r.Failures) > 0 &&
		r.UID == j.LastUID && r.WorkflowName == j.LastWorkflow && r.Phase == j.LastPhase
}

// Knows reports whether this outcome of r's run is recorded already: Apply
// would answer it as a duplicate.
func (j Job) Knows(r api.Result) bool { return j.match(r).seen }

// match is what a job's recent runs say of a result.
type match struct {
	seen       bool // this outcome of the run was recorded already
	retry      bool // the run's other outcome was: r comes from `argo retry`
	supersedes bool // a synthetic failure stood for r's run
}

// The outcomes a run is recorded with.
const (
	outcomeFailed    = "failed"
	outcomeSucceeded = "succeeded"
	outcomeSynthetic = "synthetic"
)

func outcomeOf(r api.Result) string {
	switch {
	case r.Synthetic():
		return outcomeSynthetic
	case r.Failed():
		return outcomeFailed
	}
	return outcomeSucceeded
}

func (j Job) match(r api.Result) match {
	dedup := r.DedupKey()
	has := func(h string) bool { return slices.Contains(j.RecentRuns, h) }
	if r.Synthetic() {
		// The run's own result, or the same synthetic one, came already.
		return match{seen: has(runHash(dedup, outcomeSynthetic)) || has(runHash(dedup, outcomeFailed)) || has(runHash(dedup, outcomeSucceeded))}
	}
	if has(runHash(dedup, outcomeOf(r))) {
		return match{seen: true}
	}
	var m match
	other := outcomeFailed
	if r.Failed() {
		other = outcomeSucceeded
	}
	m.retry = has(runHash(dedup, other))
	m.supersedes = has(runHash(dedup, outcomeSynthetic)) || has(runHash("name:"+r.WorkflowName, outcomeSynthetic))
	if has(legacyRunHash(dedup)) {
		// Recorded before outcomes were told apart: the outcome is known
		// only for the job's latest run.
		if r.UID != j.LastUID || r.WorkflowName != j.LastWorkflow || r.Failed() == (j.LastPhase != api.PhaseSucceeded) {
			return match{seen: true}
		}
		m.retry = true
	}
	return m
}

// setLast records r, finished at finished, as the job's latest result.
func setLast(next *Job, r api.Result, finished time.Time) {
	next.FailureThreshold = r.FailureThreshold()
	next.ExpectedEvery = r.ExpectedEvery()
	next.LastResultAt = finished
	next.LastWorkflow = r.WorkflowName
	next.LastUID = r.UID
	next.LastPhase = r.Phase
}

// apply moves next, a copy of job, to result r that finished at finished.
func apply(next *Job, job Job, r api.Result, finished, receivedAt time.Time) Transition {
	setLast(next, r, finished)
	if r.Failed() {
		next.LastFailures, next.FailuresOmitted = trimFailures(r.Failures)
		next.ConsecutiveFailures = job.ConsecutiveFailures + 1
		if job.FailingSince == nil {
			since := finished
			next.FailingSince = &since
			return StartedFailing
		}
		return StillFailing
	}

	next.LastFailures, next.FailuresOmitted = nil, 0
	if job.FailingSince == nil {
		return Unchanged
	}
	endStreak(next, job, finished, receivedAt)
	return Recovered
}

// endStreak ends job's streak in next, a copy of job, at until (the
// streak's end), received at receivedAt (the recovery window's start).
func endStreak(next *Job, job Job, until, receivedAt time.Time) {
	if job.LastStreak != nil {
		// A new slice: next must not share job's.
		next.EarlierStreaks = append([]api.Streak{*job.LastStreak}, job.EarlierStreaks[:min(len(job.EarlierStreaks), api.MaxStreaks-2)]...)
	}
	next.LastStreak = &api.Streak{
		Since:    *job.FailingSince,
		Until:    until,
		Seconds:  until.Sub(*job.FailingSince).Seconds(),
		Failures: job.ConsecutiveFailures,
	}
	// Rounded up, so the recovery window is never cut short.
	recoveredAt := receivedAt.UTC().Add(time.Second - time.Nanosecond).Truncate(time.Second)
	next.RecoveredAt = &recoveredAt
	next.QuietRecovery = !job.Alerting()
	next.FailingSince = nil
	next.ConsecutiveFailures = 0
}

// Edit is a change to a stored job made outside Apply: forgetting it
// (ForgetAt) and removing it once forgotten (PurgeForgotten). It returns
// the job after the change, or keep false to remove the job; an error
// leaves the job as it was. A store applies it like a result: one at a
// time per job, durably before it returns.
type Edit func(job Job) (next Job, keep bool, err error)

// ForgetAt forgets a job at at, for reason (an operator's delete, or its
// CronWorkflow or CronJob gone). A job whose incident may be open is kept,
// forgotten (Job.ForgottenAt), so that the alarm closes its incident as
// after a recovery: an alerting job's streak ends at at, as a success
// would end it; a job in its recovery window keeps it. Any other job is
// removed at once: nothing announced it. Forgetting a forgotten job is
// ErrNotFound.
func ForgetAt(at time.Time, reason string) Edit {
	return func(job Job) (Job, bool, error) {
		if job.Forgotten() {
			return job, true, ErrNotFound
		}
		announcedRecovery := job.RecoveredAt != nil && !job.QuietRecovery
		next := job
		switch {
		case job.Alerting():
			endStreak(&next, job, at.UTC().Truncate(time.Second), at)
		case job.Failing() && announcedRecovery:
			// Below its threshold, never announced: its streak is dropped,
			// the previous recovery's window may still be running.
			next.FailingSince, next.ConsecutiveFailures = nil, 0
		case job.Failing() || !announcedRecovery:
			return Job{}, false, nil
		}
		forgottenAt := at.UTC().Truncate(time.Second)
		next.ForgottenAt = &forgottenAt
		next.ForgetReason = truncate(reason, maxWarningBytes)
		return next, true, nil
	}
}

// PurgeForgotten removes the job forgotten at forgottenAt; a job that is
// not that one any more (a result brought it back, it was forgotten again)
// is ErrNotFound and left alone.
func PurgeForgotten(forgottenAt time.Time) Edit {
	return func(job Job) (Job, bool, error) {
		if job.ForgottenAt == nil || !job.ForgottenAt.Equal(forgottenAt) {
			return job, true, ErrNotFound
		}
		return Job{}, false, nil
	}
}

// runHash is a short stand-in for one outcome of a run: 48 bits of SHA-256
// make a collision among a job's few recent runs negligible, in 8 bytes
// instead of a 36-byte uid.
func runHash(dedupKey, outcome string) string {
	return shortHash(dedupKey + "\x00" + outcome)
}

// legacyRunHash is how runs were recorded before their outcomes were told
// apart; stored jobs still hold such hashes.
func legacyRunHash(dedupKey string) string { return shortHash(dedupKey) }

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:6])
}

// maxWarningBytes bounds the stored warning's message (the answer and the
// log carry it whole).
const maxWarningBytes = 300

// jobWarning is what the job keeps of r's warnings.
func jobWarning(r api.Result, receivedAt time.Time) *api.JobWarning {
	w := r.Warnings[0]
	return &api.JobWarning{
		Field:    truncate(w.Field, maxWarningBytes),
		Message:  truncate(w.Message, maxWarningBytes),
		Workflow: r.WorkflowName,
		At:       receivedAt.UTC().Truncate(time.Second),
		More:     len(r.Warnings) - 1,
	}
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func lastN(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// trimFailures keeps the first few failed steps, each with its name, pod
// and message (what broke and where to look; the rest is in Argo), within
// FailedStepsBudget, and says how many more failed. The messages share what
// the names leave: each takes what it needs up to an even share of what is
// left, a shorter one passing on what it does not need.
func trimFailures(failures []api.Failure) ([]api.Failure, int) {
	if len(failures) == 0 {
		return nil, 0
	}
	kept := make([]api.Failure, min(len(failures), failuresKept))
	left := FailedStepsBudget - len(`[]`) - (len(kept) - 1) // brackets and commas
	for i, f := range failures[:len(kept)] {
		kept[i] = api.Failure{DisplayName: cutJSON(f.DisplayName, failureNameBytes), PodName: cutJSON(f.PodName, failureNameBytes)}
		left -= encodedLen(kept[i]) + len(`,"message":""`)
	}
	order := make([]int, len(kept))
	for i := range order {
		order[i] = i
	}
	needs := make([]int, len(kept))
	for i := range needs {
		needs[i] = jsonStringLen(failures[i].Message, FailedStepsBudget)
	}
	slices.SortStableFunc(order, func(a, b int) int { return needs[a] - needs[b] })
	for k, i := range order {
		kept[i].Message = cutJSON(failures[i].Message, left/(len(order)-k))
		left -= jsonStringLen(kept[i].Message, FailedStepsBudget)
	}
	return kept, len(failures) - len(kept)
}

// encodedLen is the length of v's JSON.
func encodedLen(v any) int {
	b, _ := json.Marshal(v)
	return len(b)
}

// cutMark marks a cut string.
const cutMark = "…"

// cutJSON is the longest start of s whose JSON (as encoding/json writes it
// inside a string: escapes, HTML escaping, U+FFFD for invalid UTF-8) is at
// most n bytes, with cutMark when it is not all of s. encoding/json has no
// such measure: jsonRuneLen follows its rules (a test compares the two). It
// reads s only as far as n bytes of JSON take it.
func cutJSON(s string, n int) string {
	room := n - len(cutMark) // for the start of s when it is cut
	size, cut := 0, -1
	for i := 0; i < len(s); {
		r, width := utf8.DecodeRuneInString(s[i:])
		size += jsonRuneLen(r, width)
		if size > room && cut < 0 {
			cut = i
		}
		if size > n {
			if cut < 0 || room < 0 {
				return ""
			}
			return s[:cut] + cutMark
		}
		i += width
	}
	return s
}

// jsonStringLen is the length of s's JSON without the quotes, or more than
// limit when it is longer than that.
func jsonStringLen(s string, limit int) int {
	n := 0
	for i := 0; i < len(s) && n <= limit; {
		r, width := utf8.DecodeRuneInString(s[i:])
		n += jsonRuneLen(r, width)
		i += width
	}
	return n
}

// jsonRuneLen is how many bytes encoding/json writes for the rune r, read
// from width bytes of a string.
func jsonRuneLen(r rune, width int) int {
	switch {
	case r == utf8.RuneError && width == 1:
		return len(`\ufffd`)
	case r == '"', r == '\\', r == '\n', r == '\r', r == '\t', r == '\b', r == '\f':
		return 2
	case r < 0x20, r == '<', r == '>', r == '&', r == '\u2028', r == '\u2029':
		return len(`\u0000`)
	}
	return width
}

// truncate cuts s to at most n bytes on a rune boundary, marking the cut.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}

// SilenceOf returns the silence among silences that mutes the job key
// (one of the job, else one of its namespace; the one ending last), or nil.
func SilenceOf(key Key, silences []api.Silence) *api.Silence {
	var found *api.Silence
	for i, s := range silences {
		if s.Namespace != key.Namespace {
			continue
		}
		if s.Job != "" && (s.Job != key.Name || KeyFor(orWorkflow(s.Kind), s.Namespace, s.Job) != key) {
			continue
		}
		if found == nil || s.EndsAt.After(found.EndsAt) {
			found = &silences[i]
		}
	}
	if found == nil {
		return nil
	}
	s := *found
	return &s
}

func orWorkflow(kind string) string {
	if kind == "" {
		return api.KindWorkflow
	}
	return kind
}

// Merge returns the newer of two copies of one job that two places held (a
// move between ConfigMaps cut short, or a copy written by an older release
// meanwhile): the copy whose recent runs include the other's latest run has
// seen everything the other has; when neither has (they diverged), the one
// with the later result wins, and the other's runs since they diverged are
// not counted.
func Merge(a, b Job) Job {
	switch {
	case a.Knows(b.lastRun()):
		return a
	case b.Knows(a.lastRun()):
		return b
	case b.LastResultAt.After(a.LastResultAt):
		return b
	}
	return a
}

// lastRun is the result of the job's latest run, as far as matching runs
// goes.
func (j Job) lastRun() api.Result {
	return api.Result{Namespace: j.Namespace, WorkflowName: j.LastWorkflow, UID: j.LastUID, Phase: j.LastPhase}
}
