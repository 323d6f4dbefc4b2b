package storetest

// Jobs and results of realistic shapes, for the stores' benchmarks and
// capacity tests.

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// BenchNamespace is the Argo namespace of every job: 12 characters.
const BenchNamespace = "data-science"

// BenchCreated is every run's createdAt. One time for all runs means none is
// stale, so each accepted failure must add exactly one consecutive failure.
var BenchCreated = time.Date(2026, 11, 24, 5, 0, 0, 0, time.UTC)

// CronName is job i's CronWorkflow: 24 characters for every i < 100000.
func CronName(i int) string { return fmt.Sprintf("hourly-feature-etl-%05d", i) }

// WorkflowName is a cron-created workflow's name: cron + "-" + 10-digit unix time.
func WorkflowName(cron string, seq uint64) string {
	return cron + "-" + strconv.FormatUint(uint64(BenchCreated.Unix())+seq%1_000_000, 10)
}

// Job shapes, every job of a shape the same number of bytes.

var uidSeq atomic.Uint64

// NewUID returns a distinct 36-character, UUID-shaped workflow uid.
func NewUID() string {
	n := uidSeq.Add(1)
	return fmt.Sprintf("6f1c2a9e-%04x-4%03x-8%03x-%012x", n>>40&0xffff, n>>28&0xfff, n>>16&0xfff, n&0xffffffffffff)
}

// Replay is the job as the store keeps it after the results of runs, each a
// phase, of CronWorkflow cron (one run an hour, each with a uid), built by
// the store's own transition so the shapes follow the encoding.
func Replay(namespace, cron string, i int, withUID bool, phases ...api.Phase) state.Job {
	return replay(namespace, cron, i, withUID, func(workflow, finishedAt string) []api.Failure {
		return []api.Failure{RealisticFailure(workflow, finishedAt)}
	}, nil, phases...)
}

// replay is Replay with the failed steps of each failed run, and warnings
// on the last result.
func replay(namespace, cron string, i int, withUID bool, failures func(workflow, finishedAt string) []api.Failure, warnings []api.Warning, phases ...api.Phase) state.Job {
	var job state.Job
	start := BenchCreated.Add(-time.Duration(len(phases)) * time.Hour)
	for r, phase := range phases {
		created := start.Add(time.Duration(r) * time.Hour)
		res := api.Result{
			Namespace:       namespace,
			WorkflowName:    cron + "-" + strconv.FormatInt(created.Unix(), 10),
			CronWorkflow:    cron,
			Phase:           phase,
			ScheduledTime:   created.Format(time.RFC3339),
			CreatedAt:       created.Format(time.RFC3339),
			DurationSeconds: 754.218377,
		}
		if withUID {
			res.UID = fmt.Sprintf("3b9d2f4c-%04x-4a1b-9c2d-%012x", r, i)
		}
		if phase != api.PhaseSucceeded {
			res.Failures = failures(res.WorkflowName, created.Format(time.RFC3339))
		}
		if r == len(phases)-1 {
			res.Warnings = warnings
		}
		job, _ = state.Apply(job, r > 0, res, created.Add(13*time.Minute))
	}
	return job
}

func Repeat(phase api.Phase, n int) []api.Phase {
	out := make([]api.Phase, n)
	for i := range out {
		out[i] = phase
	}
	return out
}

// RealisticJob is job i after many runs: a streak of 5 failures that ended,
// then, when failing, a new streak of 7 failed runs (a failed node with a
// 120-character message each).
func RealisticJob(i int, failing bool) state.Job {
	phases := append(append(Repeat(api.PhaseSucceeded, 10), Repeat(api.PhaseFailed, 5)...), Repeat(api.PhaseSucceeded, 3)...)
	if failing {
		phases = append(phases, Repeat(api.PhaseFailed, 7)...)
	}
	return Replay(BenchNamespace, CronName(i), i, true, phases...)
}

// FullFailingJob is RealisticJob(i, true) at its largest: each failed run
// had LongFailures, and the last result a warning. Its failed steps fill the
// state's budget (state.FailedStepsBudget).
func FullFailingJob(i int) state.Job {
	phases := append(append(append(Repeat(api.PhaseSucceeded, 10), Repeat(api.PhaseFailed, 5)...), Repeat(api.PhaseSucceeded, 3)...), Repeat(api.PhaseFailed, 7)...)
	warning := api.Warning{Field: "annotations." + api.AnnotationFailureThreshold,
		Message: `"3 " is not a whole number from 1 to 100; ignored: the job alerts from its first failed run, the default`}
	return replay(BenchNamespace, CronName(i), i, true, LongFailures, []api.Warning{warning}, phases...)
}

// LongFailures are the failed steps of a run that failed badly: five steps,
// each with a 4,096-byte message (the most a container's termination
// message holds) and Argo's pod name.
func LongFailures(workflow, finishedAt string) []api.Failure {
	out := make([]api.Failure, 5)
	for i := range out {
		f := RealisticFailure(workflow, finishedAt)
		f.Message = strings.Repeat(f.Message+"\n", 4096/(len(f.Message)+1)+1)[:4096]
		out[i] = f
	}
	return out
}

// MinimalHealthyJob is the smallest job a real callback can leave: one
// succeeded run of a short-named CronWorkflow sent without a uid.
func MinimalHealthyJob(i int) state.Job {
	return Replay("ml", fmt.Sprintf("j%04d", i), i, false, api.PhaseSucceeded)
}

// MinimalFailingJob is a job after its first failed run (with a uid and a failed node).
func MinimalFailingJob(i int) state.Job {
	return Replay("ml", fmt.Sprintf("j%04d", i), i, true, api.PhaseFailed)
}

// RealisticFailure is the failed node of a realistic failed run of
// workflow: a 120-character message, Argo's pod name.
func RealisticFailure(workflow, finishedAt string) api.Failure {
	return api.Failure{
		DisplayName:  "train-model(0)",
		Message:      "OOMKilled (exit code 137): container main used 15.8Gi of its 16Gi memory limit while loading feature shard 0042 of 0128",
		TemplateName: "train-model",
		Phase:        "Failed",
		PodName:      workflow + "-train-model-1234567890",
		FinishedAt:   finishedAt,
	}
}

// FailedRun is a new failed run of CronWorkflow cron with a fresh uid.
func FailedRun(cron string) api.Result {
	seq := uidSeq.Load()
	return api.Result{
		Namespace:       BenchNamespace,
		WorkflowName:    WorkflowName(cron, seq),
		UID:             NewUID(),
		CronWorkflow:    cron,
		Phase:           api.PhaseFailed,
		CreatedAt:       BenchCreated.Format(time.RFC3339),
		DurationSeconds: 42,
	}
}

// Percentile is the nearest-rank p-quantile of sorted durations.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(float64(len(sorted))*p)) - 1
	return sorted[min(max(rank, 0), len(sorted)-1)]
}
