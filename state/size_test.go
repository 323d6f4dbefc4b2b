package state_test

import (
	"encoding/json"
	"testing"

	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/configmapstore"
)

// defaultShards is --state-shards' default.
const defaultShards = 32

// maxShardFill is how full the fullest shard may be with 10,000 failing jobs
// at their largest: the rest is room for silences (shard 0), a job moving
// in, and the hash's unevenness beyond this sample.
const maxShardFill = 0.80

// TestFailedStepsFit: 10,000 failing jobs whose failed steps fill
// state.FailedStepsBudget (five steps of 4 KiB messages, and a warning),
// spread over the default shards as the ConfigMap store spreads them, leave
// the fullest shard at most maxShardFill full. It logs the bytes per job of
// that shape and of a realistic one (storetest.RealisticJob: one failed step
// with a 120-byte message): the figures of docs/state.md. The real API
// server's view of the realistic shape: go test ./state/configmapstore/ -run
// TestShardedCapacity -v.
func TestFailedStepsFit(t *testing.T) {
	const jobs = 10000
	realistic := func(i int) state.Job { return storetest.RealisticJob(i, true) }
	for _, shape := range []struct {
		name string
		job  func(int) state.Job
	}{{"realistic failing", realistic}, {"failed steps at the budget", storetest.FullFailingJob}} {
		// Every job of a shape is as large (names of one length): weigh
		// one, and spread the keys.
		value, err := json.Marshal(shape.job(0))
		if err != nil {
			t.Fatal(err)
		}
		if last, _ := json.Marshal(shape.job(jobs - 1)); len(last) != len(value) {
			t.Fatalf("%s: job %d is %d bytes, job 0 %d", shape.name, jobs-1, len(last), len(value))
		}
		shards := make([]int, defaultShards)
		for i := range jobs {
			key := state.Key{Namespace: storetest.BenchNamespace, Name: storetest.CronName(i)}
			shards[configmapstore.ShardIndex(key, defaultShards)] += len(value)
		}
		total := jobs * len(value)
		fullest := 0
		for _, size := range shards {
			fullest = max(fullest, size)
		}
		fill := float64(fullest) / configmapstore.MaxData
		t.Logf("%s: %d bytes per job, %d jobs in %d shards: fullest %d KiB (%.0f%% of %d KiB), mean %d KiB; about %d such jobs fit",
			shape.name, len(value), jobs, defaultShards, fullest/1024, 100*fill, configmapstore.MaxData/1024, total/defaultShards/1024,
			int(float64(jobs)/fill))
		if fill > maxShardFill {
			t.Errorf("%s: the fullest shard is %.0f%% full, over %.0f%%: lower state.FailedStepsBudget", shape.name, 100*fill, 100*maxShardFill)
		}
	}
	// The budget is what the failed steps of the full shape take.
	full := storetest.FullFailingJob(0)
	steps, _ := json.Marshal(full.LastFailures)
	if len(steps) > state.FailedStepsBudget || len(steps) < state.FailedStepsBudget-16 || full.FailuresOmitted != 3 {
		t.Errorf("the full shape's failed steps take %d bytes (%d omitted), the budget is %d", len(steps), full.FailuresOmitted, state.FailedStepsBudget)
	}
}
