package state

import (
	"math"
	"slices"
	"time"

	"github.com/batchlatch/batchlatch/api"
)

// succeeded is how a successful run's phase is stored.
var succeeded = phaseCodes[api.PhaseSucceeded]

// UsualP90 is the 90th percentile (nearest rank) of the durations of the
// successful runs of known duration among rs, as UsualOf tells it from
// their views, and how many such runs there are; p90 is 0 with fewer than
// api.MinRunsForUsual. Unlike UsualOf it makes no views and, for a history
// of at most api.MaxRuns, allocates nothing: the watchers ask it of every
// job whose max runtime is learnt (batchlatch.io/max-runtime: auto) at
// every pass. A history seeded from the state kept before histories were
// (Job.Runs) has no duration: Job.History gives the same answer.
func (rs Runs) UsualP90() (p90 time.Duration, successful int) {
	var buf [api.MaxRuns]int32
	took := buf[:0]
	for _, r := range rs {
		if r.Seconds >= 0 && r.phase == succeeded {
			took = append(took, r.Seconds)
		}
	}
	if len(took) < api.MinRunsForUsual {
		return 0, len(took)
	}
	slices.Sort(took)
	rank := max(int(math.Ceil(0.9*float64(len(took))))-1, 0)
	return time.Duration(took[rank]) * time.Second, len(took)
}
