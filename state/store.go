package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
	// ErrSilenceNotFound: no silence in force with that ID.
	ErrSilenceNotFound = errors.New("silence not found")
	// ErrCorrupt: a job's stored value cannot be read (edited by hand?). It
	// is left alone until someone fixes or deletes it.
	ErrCorrupt = errors.New("stored job is unreadable")
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
// Reads return values the caller may keep, but the jobs List returns may be
// shared with every other caller (the file store lends its snapshot rather
// than copy 100,000 jobs for each): the caller must not modify them, their
// slices or the fields they point to; one that sorts or edits them copies
// them first. A Store is ready for use when its constructor returns; Close
// releases it, and no method may be called after.
type Store interface {
	// Record applies r, received at receivedAt, to its job.
	Record(ctx context.Context, r api.Result, receivedAt time.Time) (Recorded, error)
	// Get returns one job, or ErrNotFound.
	Get(ctx context.Context, key Key) (Job, error)
	// List returns every job, ordered by key. The jobs are shared: read
	// them, never modify them (see Store).
	List(ctx context.Context) ([]Job, error)
	// Delete removes a job at once, or returns ErrNotFound: how an
	// operator clears an unreadable key. Forgetting a job is Edit with
	// ForgetAt, which closes its incident first.
	Delete(ctx context.Context, key Key) error
	// Edit applies edit to a job, durably like Record: ErrNotFound when
	// there is none, ErrCorrupt when its stored value cannot be read.
	Edit(ctx context.Context, key Key, edit Edit) error
	// AddSilence stores a silence (api.Silence with its ID set), durably
	// like Record; silences ended before now are dropped meanwhile. More
	// than MaxSilences in force is ErrFull.
	AddSilence(ctx context.Context, s api.Silence, now time.Time) error
	// DeleteSilence ends the silence id now, or returns ErrSilenceNotFound.
	DeleteSilence(ctx context.Context, id string, now time.Time) error
	// Silences returns the stored silences (some may have ended).
	Silences(ctx context.Context) ([]api.Silence, error)
	// Ready returns nil when the store can take writes, else ErrUnavailable.
	Ready(ctx context.Context) error
	Close() error
}

// Forget forgets the job key at at, for reason (Edit with ForgetAt); an
// unreadable one is removed (Delete): there is nothing to close from.
func Forget(ctx context.Context, store Store, key Key, at time.Time, reason string) error {
	err := store.Edit(ctx, key, ForgetAt(at, reason))
	if errors.Is(err, ErrCorrupt) {
		return store.Delete(ctx, key)
	}
	return err
}

// SortByKey orders jobs by namespace, then name, then kind.
func SortByKey(jobs []Job) {
	sort.Slice(jobs, func(i, k int) bool {
		if jobs[i].Namespace != jobs[k].Namespace {
			return jobs[i].Namespace < jobs[k].Namespace
		}
		if jobs[i].Name != jobs[k].Name {
			return jobs[i].Name < jobs[k].Name
		}
		return jobs[i].Kind < jobs[k].Kind
	})
}

// MaxSilences bounds the silences in force: they are kept with the state.
const MaxSilences = 1000

// AddSilenceTo returns silences with s added and those ended before now
// dropped, or ErrFull: what a store's AddSilence stores.
func AddSilenceTo(silences []api.Silence, s api.Silence, now time.Time) ([]api.Silence, error) {
	return AddSilenceWithin(silences, s, now, MaxSilences)
}

// AddSilenceWithin is AddSilenceTo where at most limit silences may be in
// force: a store that spreads the silences over several places keeps a
// share of MaxSilences in each.
func AddSilenceWithin(silences []api.Silence, s api.Silence, now time.Time, limit int) ([]api.Silence, error) {
	next := inForce(silences, now)
	if len(next) >= limit {
		return nil, fmt.Errorf("%w: %d silences in force, as many as are kept", ErrFull, len(next))
	}
	return append(next, s), nil
}

// NotEnded counts the silences not ended at now: those AddSilenceTo counts.
func NotEnded(silences []api.Silence, now time.Time) int {
	n := 0
	for _, s := range silences {
		if now.Before(s.EndsAt) {
			n++
		}
	}
	return n
}

// DeleteSilenceFrom returns silences without id and those ended before now,
// or ErrSilenceNotFound: what a store's DeleteSilence stores.
func DeleteSilenceFrom(silences []api.Silence, id string, now time.Time) ([]api.Silence, error) {
	next := inForce(silences, now)
	i := slices.IndexFunc(next, func(s api.Silence) bool { return s.ID == id })
	if i < 0 {
		return nil, fmt.Errorf("%w: %s (it may have ended)", ErrSilenceNotFound, id)
	}
	return slices.Delete(next, i, i+1), nil
}

// InForce returns the silences in force at now: started, not ended.
func InForce(silences []api.Silence, now time.Time) []api.Silence {
	var out []api.Silence
	for _, s := range silences {
		if !now.Before(s.StartsAt) && now.Before(s.EndsAt) {
			out = append(out, s)
		}
	}
	return out
}

// inForce is a new slice of the silences not ended at now.
func inForce(silences []api.Silence, now time.Time) []api.Silence {
	out := make([]api.Silence, 0, len(silences)+1)
	for _, s := range silences {
		if now.Before(s.EndsAt) {
			out = append(out, s)
		}
	}
	return out
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

// DecodeJob reads a job stored as JSON under key (Key.String); the job's
// identity comes from the key.
func DecodeJob(key, value string) (Job, error) {
	k := ParseKey(key)
	if k.Namespace == "" {
		return Job{}, fmt.Errorf("%w: key %q names no namespace", ErrCorrupt, key)
	}
	var j Job
	if err := json.Unmarshal([]byte(value), &j); err != nil {
		return Job{}, fmt.Errorf("%w: key %s: %v", ErrCorrupt, key, err)
	}
	j.Namespace, j.Name, j.Kind = k.Namespace, k.Name, k.Kind
	return j, nil
}
