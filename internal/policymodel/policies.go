package policymodel

import "time"

// Previous is the policy examples/terraform shipped before: a counter of
// ERROR entries, ALIGN_DELTA over 720 s, missing data INACTIVE.
var Previous = Policy{Name: "previous: counter, ALIGN_DELTA 720 s, INACTIVE", Metric: Counter, Window: 720 * time.Second, Aligner: AlignDelta, Reducer: ReduceSum,
	Threshold: 0, Duration: time.Minute, MissingData: MissingInactive, AutoClose: 30 * time.Minute}

// Shipped is the policy examples/terraform ships: a distribution of the
// failing field, its median over 1080 s, missing data NO_OP.
var Shipped = Policy{Name: "shipped: distribution, ALIGN_PERCENTILE_50 1080 s, NO_OP", Metric: Distribution, Window: 1080 * time.Second,
	Aligner: AlignPercentile, Percentile: 50, Reducer: ReduceMax, Threshold: 0.5, Duration: time.Minute, MissingData: MissingNoOp, AutoClose: 24 * time.Hour}
