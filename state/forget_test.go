package state

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
)

// applyResults applies results, received when they finished, to a new job.
func applyResults(t *testing.T, results ...api.Result) Job {
	t.Helper()
	var j Job
	for i, r := range results {
		finished, _ := time.Parse(time.RFC3339, r.CreatedAt)
		j, _ = Apply(j, i > 0, r, finished)
	}
	return j
}

// Forgetting a job whose incident may be open keeps it, forgotten, with its
// streak ended as a recovery ends it; one that nothing announced is removed.
func TestForgetAtKeepsWhatMustBeClosed(t *testing.T) {
	forgetAt := at(5).Add(30 * time.Minute)
	alerting := applyResults(t, run("nightly", "a", api.PhaseFailed, 0), run("nightly", "b", api.PhaseFailed, 1))
	recovered := applyResults(t, run("nightly", "a", api.PhaseFailed, 0), run("nightly", "b", api.PhaseSucceeded, 1))
	belowThreshold := applyResults(t, withThreshold(run("nightly", "a", api.PhaseFailed, 0), 3))
	healthy := applyResults(t, run("nightly", "a", api.PhaseSucceeded, 0))
	recoveredThenBelow := applyResults(t, run("nightly", "a", api.PhaseFailed, 0), run("nightly", "b", api.PhaseSucceeded, 1),
		withThreshold(run("nightly", "c", api.PhaseFailed, 2), 3))

	j, keep, err := ForgetAt(forgetAt, "gone")(alerting)
	if err != nil || !keep || !j.Forgotten() || j.Failing() || j.ConsecutiveFailures != 0 || j.ForgetReason != "gone" ||
		!j.ForgottenAt.Equal(forgetAt) || j.RecoveredAt == nil || !j.RecoveredAt.Equal(forgetAt) || j.QuietRecovery ||
		j.LastStreak == nil || !j.LastStreak.Since.Equal(at(0)) || !j.LastStreak.Until.Equal(forgetAt) || j.LastStreak.Failures != 2 {
		t.Fatalf("alerting job forgotten: %+v keep %v err %v", j, keep, err)
	}
	if _, _, err := ForgetAt(forgetAt, "again")(j); !errors.Is(err, ErrNotFound) {
		t.Errorf("forgetting a forgotten job: %v, want ErrNotFound", err)
	}
	j, keep, err = ForgetAt(forgetAt, "gone")(recovered)
	if err != nil || !keep || !j.Forgotten() || !j.RecoveredAt.Equal(*recovered.RecoveredAt) || *j.LastStreak != *recovered.LastStreak {
		t.Fatalf("recovered job forgotten: %+v keep %v err %v; its recovery window must go on", j, keep, err)
	}
	j, keep, err = ForgetAt(forgetAt, "gone")(recoveredThenBelow)
	if err != nil || !keep || j.Failing() || !j.RecoveredAt.Equal(*recoveredThenBelow.RecoveredAt) {
		t.Fatalf("a recovered job failing below its threshold, forgotten: %+v keep %v err %v", j, keep, err)
	}
	for name, j := range map[string]Job{"below its threshold": belowThreshold, "healthy": healthy} {
		if _, keep, err := ForgetAt(forgetAt, "gone")(j); err != nil || keep {
			t.Errorf("%s job forgotten: keep %v err %v, want it removed", name, keep, err)
		}
	}
}

// A forgotten job is removed only as it was forgotten: one a result brought
// back, or forgotten again later, is left alone.
func TestPurgeForgottenRemovesOnlyThatJob(t *testing.T) {
	alerting := applyResults(t, run("nightly", "a", api.PhaseFailed, 0))
	forgotten, _, _ := ForgetAt(at(2), "gone")(alerting)
	if _, keep, err := PurgeForgotten(at(2))(forgotten); err != nil || keep {
		t.Errorf("purge: keep %v err %v, want it removed", keep, err)
	}
	if _, keep, err := PurgeForgotten(at(3))(forgotten); !errors.Is(err, ErrNotFound) || !keep {
		t.Errorf("purge of another forgetting: keep %v err %v, want ErrNotFound", keep, err)
	}
	back, _ := Apply(forgotten, true, run("nightly", "b", api.PhaseFailed, 3), at(3))
	if _, keep, err := PurgeForgotten(at(2))(back); !errors.Is(err, ErrNotFound) || !keep {
		t.Errorf("purge of a job brought back: keep %v err %v, want ErrNotFound", keep, err)
	}
}

// A result for a forgotten job brings it back as a new job: a failure
// starts a streak of its own, a success is no recovery; a late copy of a
// run it had is still a duplicate, and leaves it forgotten.
func TestApplyBringsAForgottenJobBack(t *testing.T) {
	alerting := applyResults(t, run("nightly", "a", api.PhaseFailed, 0), run("nightly", "b", api.PhaseFailed, 1))
	forgotten, _, _ := ForgetAt(at(2), "gone")(alerting)

	j, o := Apply(forgotten, true, run("nightly", "b", api.PhaseFailed, 1), at(3))
	if !o.Duplicate || !j.Forgotten() {
		t.Errorf("an old run again: %+v, job forgotten %v; want a duplicate that changes nothing", o, j.Forgotten())
	}
	j, o = Apply(forgotten, true, run("nightly", "c", api.PhaseFailed, 3), at(3))
	if j.Forgotten() || o.Transition != StartedFailing || !o.Announces(j) {
		t.Fatalf("a failure after forgetting: %+v, %+v", j, o)
	}
	wantFailing(t, j, at(3), 1)
	j, o = Apply(forgotten, true, run("nightly", "c", api.PhaseSucceeded, 3), at(3))
	if j.Forgotten() || j.Failing() || o.Transition != Unchanged || !o.Changed() {
		t.Fatalf("a success after forgetting: %+v, %+v", j, o)
	}
}

func withThreshold(r api.Result, n int) api.Result {
	r.Annotations = map[string]string{api.AnnotationFailureThreshold: fmt.Sprint(n)}
	return r
}

func TestRememberedLeavesOutForgottenJobs(t *testing.T) {
	alerting := applyResults(t, run("nightly", "a", api.PhaseFailed, 0))
	forgotten, _, _ := ForgetAt(at(1), "gone")(alerting)
	healthy := applyResults(t, run("hourly", "h", api.PhaseSucceeded, 0))
	for _, tc := range []struct {
		jobs []Job
		want int
	}{{nil, 0}, {[]Job{healthy, alerting}, 2}, {[]Job{forgotten}, 0}, {[]Job{healthy, forgotten, alerting, forgotten}, 2}} {
		got := Remembered(tc.jobs)
		if len(got) != tc.want {
			t.Errorf("%d jobs remembered of %d, want %d", len(got), len(tc.jobs), tc.want)
		}
		for _, j := range got {
			if j.Forgotten() {
				t.Errorf("a forgotten job remembered")
			}
		}
	}
}
