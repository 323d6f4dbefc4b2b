package state

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/batchlatch/batchlatch/api"
)

// Sentinel errors of every Store; the server maps them to HTTP status codes.
var (
	// ErrNotFound: no job with that key.
	ErrNotFound = errors.New("job not found")
	// ErrUnavailable: the backing store cannot be reached; retry later.
	ErrUnavailable = errors.New("state store unavailable")
	// ErrFull: the result would push the store past its size limit; nothing
	// was changed.
	ErrFull = errors.New("state store full")
)

// Recorded is the outcome of Store.Record: the job after the result.
type Recorded struct {
	Job     Job
	Outcome Outcome
}

// Store keeps the latest state of every job.
//
// All methods are safe for concurrent use by many goroutines. Record applies
// the transition (Apply) and makes it durable before it returns: when it
// returns nil the result survives a crash of the process, and when it returns
// an error the stored state is as before. Results for the same job are
// applied one at a time, so no update is lost and none is counted twice.
// Reads return copies the caller may keep. A Store is ready for use when its
// constructor returns; Close releases it, and no method may be called after.
type Store interface {
	// Record applies r, received at receivedAt, to its job.
	Record(ctx context.Context, r api.Result, receivedAt time.Time) (Recorded, error)
	// Get returns one job, or ErrNotFound.
	Get(ctx context.Context, key Key) (Job, error)
	// List returns every job, ordered by key.
	List(ctx context.Context) ([]Job, error)
	// Delete forgets a job, or returns ErrNotFound.
	Delete(ctx context.Context, key Key) error
	// Ready returns nil when the store can take writes, else ErrUnavailable.
	Ready(ctx context.Context) error
	Close() error
}

// SortByKey orders jobs by namespace, then name.
func SortByKey(jobs []Job) {
	sort.Slice(jobs, func(i, k int) bool {
		if jobs[i].Namespace != jobs[k].Namespace {
			return jobs[i].Namespace < jobs[k].Namespace
		}
		return jobs[i].Name < jobs[k].Name
	})
}

// Failing returns the failing jobs, longest-failing first.
func Failing(jobs []Job) []Job {
	var failing []Job
	for _, j := range jobs {
		if j.Failing() {
			failing = append(failing, j)
		}
	}
	sort.SliceStable(failing, func(i, k int) bool {
		if !failing[i].FailingSince.Equal(*failing[k].FailingSince) {
			return failing[i].FailingSince.Before(*failing[k].FailingSince)
		}
		return failing[i].Key().String() < failing[k].Key().String()
	})
	return failing
}
