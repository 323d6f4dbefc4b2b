package cronjobwatch

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/watch/cronrules"
	"github.com/batchlatch/batchlatch/watch/schedule"
)

var t0 = time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)

func minutes(n int) time.Time { return t0.Add(time.Duration(n) * time.Minute) }

func everyMinute(t *testing.T) cronJob {
	t.Helper()
	s, err := schedule.Parse([]string{"* * * * *"}, "")
	if err != nil {
		t.Fatal(err)
	}
	return cronJob{Namespace: "ml", Name: "nightly", Created: t0, Expr: "* * * * *", Schedule: s, Grace: 2 * time.Minute}
}

func names(results []api.Result) string {
	var out []string
	for _, r := range results {
		out = append(out, string(r.Phase)+":"+r.WorkflowName)
	}
	return strings.Join(out, " ")
}

func tickName(n int) string { return jobName("nightly", minutes(n)) }

func TestJobName(t *testing.T) {
	// As the CronJob controller names them: minutes since the epoch.
	if got := jobName("nightly", time.Unix(1795485600, 0)); got != "nightly-29924760" {
		t.Fatalf("jobName = %s", got)
	}
	for _, tt := range []struct {
		job string
		ok  bool
	}{
		{"nightly-29924760", true},
		{"nightly-x-29924760", false},
		{"nightly-abcdefgh", false},
		{"nightly", false},
		{"other-29924760", false},
	} {
		tick, ok := scheduledTick("nightly", tt.job)
		if ok != tt.ok || ok && tick.Unix() != 1795485600 {
			t.Errorf("scheduledTick(%q) = %s, %v", tt.job, tick, ok)
		}
	}
}

func TestDueMissedTicks(t *testing.T) {
	base := everyMinute(t)
	now := minutes(5) // ticks 1..5; 1..3 are past the 2m grace
	all := "Missed:" + tickName(1) + " Missed:" + tickName(2) + " Missed:" + tickName(3)
	stored := func(workflow string, phase api.Phase, at time.Time) *state.Job {
		return &state.Job{Namespace: "ml", Name: "nightly", Kind: api.KindCronJob, LastWorkflow: workflow, LastPhase: phase, LastResultAt: at}
	}
	tests := []struct {
		name   string
		change func(c *cronJob)
		runs   []run
		job    *state.Job
		want   string
	}{
		{name: "no Job at all", want: all},
		{name: "a Job for a tick covers it (by name)", runs: []run{{Name: tickName(2), Phase: api.PhaseSucceeded, Created: minutes(2)}},
			want: "Missed:" + tickName(1) + " Missed:" + tickName(3)},
		{name: "a Job for a later tick covers the earlier ones (by annotation)", runs: []run{{Name: "nightly-x", Created: minutes(3), ScheduledAt: minutes(3)}}},
		{name: "suspended", change: func(c *cronJob) { c.Suspended = true }},
		{name: "created after the ticks", change: func(c *cronJob) { c.Created = minutes(3) }},
		{name: "schedule changed: ticks before it are the old schedule's", change: func(c *cronJob) { c.SpecChangedAt = minutes(2) }, want: "Missed:" + tickName(3)},
		{name: "a longer grace", change: func(c *cronJob) { c.Grace = 4 * time.Minute }, want: "Missed:" + tickName(1)},
		{name: "startingDeadlineSeconds passed: no Job will come, missed before the grace", change: func(c *cronJob) { c.StartingDeadline = 30 * time.Second },
			want: all + " Missed:" + tickName(4)},
		{name: "startingDeadlineSeconds longer than the grace changes nothing", change: func(c *cronJob) { c.StartingDeadline = time.Hour }, want: all},
		{name: "lastScheduleTime: the controller made Jobs up to it (gone since)", change: func(c *cronJob) { c.LastScheduled = minutes(2) }, want: "Missed:" + tickName(3)},
		{name: "a stored result of a later tick covers", job: stored(tickName(2), api.PhaseFailed, minutes(2).Add(30*time.Second)), want: "Missed:" + tickName(3)},
		{name: "the watcher's own result covers its tick and those before, whether the job remembers them or not",
			job: stored(tickName(2), api.PhaseMissed, minutes(4)), want: "Missed:" + tickName(3)},
		{name: "a grace longer than the ticks looked at: the latest ticks past it are missed", change: func(c *cronJob) { c.Grace = 15 * time.Minute; c.Created = minutes(-30) },
			want: "Missed:" + tickName(-19) + " Missed:" + tickName(-18) + " Missed:" + tickName(-17) + " Missed:" + tickName(-16) + " Missed:" + tickName(-15) +
				" Missed:" + tickName(-14) + " Missed:" + tickName(-13) + " Missed:" + tickName(-12) + " Missed:" + tickName(-11) + " Missed:" + tickName(-10)},
		{name: "a schedule that does not parse: one failure for the spec", change: func(c *cronJob) {
			c.Schedule = schedule.Schedule{}
			_, c.ScheduleErr = schedule.Parse([]string{"* * * * *"}, "Mars/Olympus")
		}, want: "SpecError:" + tickName(0)},
		{name: "Forbid: a Job running at the tick", change: func(c *cronJob) { c.Forbid = true },
			runs: []run{{Name: tickName(0), Created: t0, Started: t0}}},
		{name: "Forbid: a Job that ended after the tick", change: func(c *cronJob) { c.Forbid = true },
			job: stored(jobName("nightly", t0), api.PhaseSucceeded, minutes(2).Add(10*time.Second)), want: "Missed:" + tickName(3)},
		{name: "Allow: a Job of an earlier tick does not cover", runs: []run{{Name: tickName(0), Created: t0, Started: t0}}, want: all},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base
			if tt.change != nil {
				tt.change(&c)
			}
			got := due(c, tt.runs, tt.job, now)
			if names(got) != tt.want {
				t.Errorf("due:\n got %s\nwant %s", names(got), tt.want)
			}
			for _, r := range got {
				if err := r.ValidateObserved(now); err != nil {
					t.Errorf("%s: invalid result: %v", r.WorkflowName, err)
				}
				if r.CronJob != "nightly" || state.KeyOf(r) != state.KeyFor(api.KindCronJob, "ml", "nightly") {
					t.Errorf("%s: not the CronJob's job: %+v", r.WorkflowName, r)
				}
			}
		})
	}
}

func TestMissedResultNamesTheTick(t *testing.T) {
	got := due(everyMinute(t), nil, nil, minutes(3))
	if len(got) != 1 {
		t.Fatalf("due = %s", names(got))
	}
	r := got[0]
	if r.WorkflowName != tickName(1) || r.UID != "" || r.Phase != api.PhaseMissed {
		t.Fatalf("result %+v", r)
	}
	// Ordered at tick + grace, when it became a missed run.
	if !r.FinishedAt(time.Time{}).Equal(minutes(3)) {
		t.Errorf("finished at %s, want %s", r.FinishedAt(time.Time{}), minutes(3))
	}
	if msg := r.Failures[0].Message; !strings.Contains(msg, "02:01 UTC tick") {
		t.Errorf("message %q does not name the tick", msg)
	}
}

func TestDueStuckJobs(t *testing.T) {
	c := everyMinute(t)
	c.Suspended = true // stuck Jobs are reported all the same
	c.MaxRuntime = cronrules.MaxRuntime{Fixed: time.Hour}
	now := minutes(120)
	runs := []run{
		{Name: "nightly-a", UID: "a", Created: minutes(0), Started: minutes(0)},
		{Name: "nightly-b", UID: "b", Created: minutes(30)}, // not started yet: counted from its creation
		{Name: "nightly-c", UID: "c", Created: minutes(0), Started: minutes(0), Phase: api.PhaseFailed},
		{Name: "nightly-d", UID: "d", Created: minutes(0), Started: minutes(90)}, // started late
	}
	got := due(c, runs, nil, now)
	if names(got) != "Stuck:nightly-a Stuck:nightly-b" {
		t.Fatalf("due = %s", names(got))
	}
	if got[0].UID != "a" || got[0].CronJob != "nightly" || !strings.Contains(got[0].Failures[0].Message, "past its max runtime of 1h0m0s") {
		t.Errorf("stuck result %+v", got[0])
	}
	c.MaxRuntime = cronrules.MaxRuntime{}
	if got := due(c, runs, nil, now); len(got) != 0 {
		t.Errorf("max runtime off: %s", names(got))
	}
}

func cond(typ batchv1.JobConditionType, reason, message string, at time.Time) batchv1.JobCondition {
	return batchv1.JobCondition{Type: typ, Status: corev1.ConditionTrue, Reason: reason, Message: message, LastTransitionTime: metav1.NewTime(at)}
}

// Only the Job's terminal condition tells its outcome, and when.
func TestRunOfReadsTheTerminalCondition(t *testing.T) {
	created := minutes(0).Add(500 * time.Millisecond)
	job := func(status batchv1.JobStatus) *batchv1.Job {
		return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: tickName(0), UID: "u", CreationTimestamp: metav1.NewTime(created),
			Annotations: map[string]string{batchv1.CronJobScheduledTimestampAnnotation: t0.Format(time.RFC3339)}}, Status: status}
	}
	done := metav1.NewTime(minutes(7))
	for _, tt := range []struct {
		name     string
		status   batchv1.JobStatus
		phase    api.Phase
		finished time.Time
		reason   string
	}{
		{"running, pods failed and retried", batchv1.JobStatus{Failed: 2, Active: 1}, "", time.Time{}, ""},
		{"complete after retried pods", batchv1.JobStatus{Failed: 2, Succeeded: 1, CompletionTime: &done, Conditions: []batchv1.JobCondition{
			cond(batchv1.JobSuccessCriteriaMet, "CompletionsReached", "", minutes(6)), cond(batchv1.JobComplete, "CompletionsReached", "", minutes(6))}},
			api.PhaseSucceeded, minutes(7), ""},
		{"success criteria met, not complete yet", batchv1.JobStatus{Conditions: []batchv1.JobCondition{cond(batchv1.JobSuccessCriteriaMet, "SuccessPolicy", "", minutes(5))}},
			api.PhaseSucceeded, minutes(5), ""},
		{"failed", batchv1.JobStatus{Failed: 3, Conditions: []batchv1.JobCondition{
			cond(batchv1.JobFailureTarget, "BackoffLimitExceeded", "limit", minutes(4)), cond(batchv1.JobFailed, "BackoffLimitExceeded", "limit", minutes(5))}},
			api.PhaseFailed, minutes(5), "BackoffLimitExceeded"},
		{"failure target only", batchv1.JobStatus{Conditions: []batchv1.JobCondition{cond(batchv1.JobFailureTarget, "DeadlineExceeded", "late", minutes(4))}},
			api.PhaseFailed, minutes(4), "DeadlineExceeded"},
		{"a condition that is not true", batchv1.JobStatus{Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: corev1.ConditionFalse}}}, "", time.Time{}, ""},
	} {
		r := runOf(job(tt.status))
		if r.Phase != tt.phase || !r.FinishedAt.Equal(tt.finished) || r.Reason != tt.reason || !r.ScheduledAt.Equal(t0) {
			t.Errorf("%s: %+v", tt.name, r)
			continue
		}
		if !r.finished() {
			continue
		}
		res := resultOf("ml", "nightly", r, minutes(60))
		if err := res.ValidateObserved(minutes(60)); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		// Ordered by when the Job finished, to the second.
		if got := res.FinishedAt(time.Time{}); !got.Equal(tt.finished) {
			t.Errorf("%s: finished at %s, want %s", tt.name, got, tt.finished)
		}
		if res.CronJob != "nightly" || res.UID != "u" || res.Phase != tt.phase {
			t.Errorf("%s: %+v", tt.name, res)
		}
		if tt.phase == api.PhaseFailed && (len(res.Failures) != 1 || res.Failures[0].DisplayName != tt.reason || res.Failures[0].Message == "") {
			t.Errorf("%s: failures %+v", tt.name, res.Failures)
		}
	}
}

func TestByFinish(t *testing.T) {
	at := func(name string, n int) pendingResult {
		return pendingResult{Result: api.Result{WorkflowName: name, CreatedAt: t0.Format(time.RFC3339), DurationSeconds: float64(n * 60)}}
	}
	got := byFinish([]pendingResult{at("c", 3), at("a", 1), at("b", 2)})
	if got[0].WorkflowName != "a" || got[1].WorkflowName != "b" || got[2].WorkflowName != "c" {
		t.Fatalf("order %+v", got)
	}
}

func TestSlimDropsWhatIsNotRead(t *testing.T) {
	big := map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 1000)}
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "j", Labels: map[string]string{"a": "b"},
			Annotations:   map[string]string{batchv1.CronJobScheduledTimestampAnnotation: "t", "kubectl.kubernetes.io/last-applied-configuration": big["kubectl.kubernetes.io/last-applied-configuration"]},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}},
		Spec: batchv1.JobSpec{Template: podTemplate},
	}
	job.Namespace, job.ResourceVersion = "etl", "42"
	job.Annotations[batchv1.CronJobScheduledTimestampAnnotation] = minutes(0).Format(time.RFC3339)
	job.OwnerReferences = []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "nightly", Controller: &[]bool{true}[0]}}
	at := metav1.NewTime(minutes(2))
	job.Status = batchv1.JobStatus{StartTime: &metav1.Time{Time: minutes(1)}, Conditions: []batchv1.JobCondition{
		{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, Reason: "BackoffLimitExceeded", Message: "m", LastTransitionTime: at}}}
	want := runOf(job)
	obj, _ := slim(job)
	o, ok := obj.(*jobObject)
	if !ok {
		t.Fatalf("slim made a %T of a Job", obj)
	}
	if o.run != want || o.cron != "nightly" || o.namespace != "etl" {
		t.Errorf("job kept %+v, the decisions read %+v", o, want)
	}
	if key, err := cache.MetaNamespaceKeyFunc(obj); err != nil || key != "etl/j" {
		t.Errorf("key %q, %v", key, err)
	}
	if again, _ := slim(obj); again != obj {
		t.Error("slim changed a Job it had made")
	}
	changed := metav1.NewTime(minutes(3))
	suspend := true
	cj := &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "c", Annotations: map[string]string{AnnotationMaxRuntime: "1h", "other": big["kubectl.kubernetes.io/last-applied-configuration"]},
			ManagedFields: []metav1.ManagedFieldsEntry{
				{Manager: "kubectl", Time: &changed, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:schedule":{}}}`)}},
				{Manager: "controller", Time: &metav1.Time{Time: minutes(9)}, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{}}`)}},
			}},
		Spec: batchv1.CronJobSpec{Schedule: "* * * * *", Suspend: &suspend, JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: podTemplate}}},
	}
	_, _ = slim(cj)
	if len(cj.Spec.JobTemplate.Spec.Template.Spec.Containers) != 0 || len(cj.Annotations) != 1 || len(cj.ManagedFields) != 1 {
		t.Errorf("cronjob kept %+v", cj)
	}
	c := (&Watcher{logger: slog.New(slog.NewTextHandler(io.Discard, nil))}).cronOf(cj)
	if !c.SpecChangedAt.Equal(minutes(3)) || !c.Suspended || c.MaxRuntime != (cronrules.MaxRuntime{Fixed: time.Hour}) || c.Expr != "* * * * *" {
		t.Errorf("what the decisions read did not survive: %+v", c)
	}
}

func TestScheduleView(t *testing.T) {
	now := minutes(0).Add(30 * time.Second)
	c := everyMinute(t)
	v := scheduleView(c, now)
	if v.Kind != "CronJob" || v.Timezone != "UTC" || v.NextTick == nil || !v.NextTick.Equal(minutes(1)) || strings.Join(v.Schedules, ",") != "* * * * *" {
		t.Errorf("view %+v", v)
	}
	c.Suspended = true
	if v := scheduleView(c, now); v.NextTick != nil || !v.Suspended {
		t.Errorf("suspended: %+v", v)
	}
	c.Suspended = false
	_, c.ScheduleErr = schedule.Parse([]string{"61 * * * *"}, "")
	if v := scheduleView(c, now); v.NextTick != nil || !strings.Contains(v.Note, "never runs") {
		t.Errorf("bad schedule: %+v", v)
	}
}

// The annotations override the flags per CronJob; a bad value keeps the
// flag's. spec.timeZone and startingDeadlineSeconds are read.
func TestCronOf(t *testing.T) {
	w := &Watcher{cfg: Config{MissedGrace: 10 * time.Minute}, logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	tz, deadline := "Europe/Berlin", int64(200)
	for _, tt := range []struct {
		annotations       map[string]string
		grace, maxRuntime time.Duration
	}{
		{nil, 10 * time.Minute, 0},
		{map[string]string{AnnotationMissedGrace: "30m", AnnotationMaxRuntime: "2h"}, 30 * time.Minute, 2 * time.Hour},
		{map[string]string{AnnotationMissedGrace: "soon", AnnotationMaxRuntime: "-1h"}, 10 * time.Minute, 0},
		{map[string]string{AnnotationMissedGrace: "100000h"}, 10 * time.Minute, 0},
		// The flag's bounds: a grace shorter than a controller takes to
		// create a run reports runs on their way as missed.
		{map[string]string{AnnotationMissedGrace: "0s"}, 10 * time.Minute, 0},
		{map[string]string{AnnotationMissedGrace: "1ns"}, 10 * time.Minute, 0},
		{map[string]string{AnnotationMissedGrace: "10s", AnnotationMaxRuntime: "721h"}, 10 * time.Second, 0},
	} {
		cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "ml", Annotations: tt.annotations},
			Spec:   batchv1.CronJobSpec{Schedule: "0 2 * * *", TimeZone: &tz, StartingDeadlineSeconds: &deadline, ConcurrencyPolicy: batchv1.ForbidConcurrent},
			Status: batchv1.CronJobStatus{LastScheduleTime: &metav1.Time{Time: t0}}}
		c := w.cronOf(cj)
		if c.Grace != tt.grace || c.MaxRuntime != (cronrules.MaxRuntime{Fixed: tt.maxRuntime}) {
			t.Errorf("%v: grace %s, max runtime %+v; want %s, %s", tt.annotations, c.Grace, c.MaxRuntime, tt.grace, tt.maxRuntime)
		}
		if c.ScheduleErr != nil || c.Timezone != "Europe/Berlin" || c.StartingDeadline != 200*time.Second || !c.Forbid || !c.LastScheduled.Equal(t0) {
			t.Errorf("spec: %+v", c)
		}
		if next := c.Schedule.Next(t0); !next.Equal(time.Date(2026, 11, 25, 1, 0, 0, 0, time.UTC)) { // 02:00 in Berlin (CET)
			t.Errorf("next tick %s", next)
		}
	}
	// auto: learnt from the job's history, with the flag set or not.
	w.cfg.MaxRuntime = time.Hour
	for _, v := range []string{"auto", " AUTO"} {
		cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "nightly", Namespace: "ml", Annotations: map[string]string{AnnotationMaxRuntime: v}},
			Spec: batchv1.CronJobSpec{Schedule: "0 2 * * *"}}
		if c := w.cronOf(cj); c.MaxRuntime != (cronrules.MaxRuntime{Auto: true}) {
			t.Errorf("%q: max runtime %+v, want auto", v, c.MaxRuntime)
		}
	}
}

// usualJob is nightly's job with n successful Jobs in its history, an hour
// apart, each of which took took, the last before t0.
func usualJob(n int, took time.Duration) *state.Job {
	var job state.Job
	for i := range n {
		created := t0.Add(-time.Duration(n-i) * time.Hour)
		r := api.Result{Namespace: "ml", CronJob: "nightly", WorkflowName: jobName("nightly", created), UID: fmt.Sprint("h", i),
			Phase: api.PhaseSucceeded, CreatedAt: created.Format(time.RFC3339), DurationSeconds: took.Seconds()}
		job, _ = state.Apply(job, i > 0, r, r.FinishedAt(time.Time{}))
	}
	return &job
}

// batchlatch.io/max-runtime: auto on a CronJob: a Job is stuck past
// max(3 × p90, p90 + 10m) of its job's usual duration, from 5 successful
// Jobs; off unless asked for. The job's view says which limit applies, or
// why none.
func TestDueStuckAuto(t *testing.T) {
	c := everyMinute(t)
	c.Suspended = true // no missed ticks: only the stuck Job
	runs := []run{{Name: tickName(0), UID: "a", Created: minutes(0), Started: minutes(0)}}
	took := 2 * time.Minute
	if got := due(c, runs, usualJob(20, took), minutes(24*60)); len(got) != 0 {
		t.Fatalf("off by default: %s", names(got))
	}
	c.MaxRuntime = cronrules.MaxRuntime{Auto: true}
	for _, tc := range []struct {
		history int
		now     time.Time
		want    string
		note    string
	}{
		{4, minutes(24 * 60), "", "max-runtime auto: no limit applies yet: it needs 5 successful runs of known duration, 4 known"},
		{5, minutes(12), "", "max-runtime auto: a run is stuck past 12m, its usual p90 of 2m plus 10m"},
		{5, minutes(13), "Stuck:" + tickName(0), "max-runtime auto: a run is stuck past 12m, its usual p90 of 2m plus 10m"},
	} {
		job := usualJob(tc.history, took)
		c.Usual, c.UsualKnown = cronrules.UsualOf(job), true
		got := due(c, runs, job, tc.now)
		if names(got) != tc.want {
			t.Errorf("%d runs, at %s: due %q, want %q", tc.history, tc.now, names(got), tc.want)
		}
		if len(got) == 1 {
			want := "still running past 12m, its usual p90 of 2m plus 10m (max-runtime auto; started 2026-11-24T02:00:00Z)"
			if msg := got[0].Failures[0].Message; msg != want || got[0].UID != "a" || !got[0].FinishedAt(time.Time{}).Equal(minutes(12)) {
				t.Errorf("stuck result %q at %s; want %q at %s", msg, got[0].FinishedAt(time.Time{}), want, minutes(12))
			}
		}
		if note := scheduleView(c, tc.now).Note; note != tc.note {
			t.Errorf("%d runs: note %q, want %q", tc.history, note, tc.note)
		}
	}
}
