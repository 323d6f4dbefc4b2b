package configmapstore

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// A Sharded store keeps the silences apart from the jobs, in SilenceShards
// ConfigMaps of their own, <name>-silences-0 …, each a Store holding at most
// SilencesPerShard of those in force under the key "_silences": so that
// muting never takes room a job's failure needs (they used to share shard
// 0, and long reasons filled it), and so that state.MaxSilences fit at
// their largest. The largest silence the API accepts is 8,103 bytes of
// JSON: a reason of api.MaxSilenceReason bytes that encoding/json writes six
// bytes each (control characters, '<', '&'), and so a createdBy; 125 of
// them take 1,012,876 bytes, under the 1 MiB a ConfigMap holds
// (TestSilencesFitAtTheirLargest).
const (
	SilenceShards    = 8
	SilencesPerShard = state.MaxSilences / SilenceShards
)

// SilencesName is the name of silence shard i of the state ConfigMap name.
func SilencesName(name string, i int) string { return name + "-silences-" + strconv.Itoa(i) }

// silenceShards are the ConfigMaps of a Sharded store's silences.
type silenceShards struct {
	stores []*Store
	// freshening lets one caller at a time read the shards again: the
	// others then find them fresh, rather than each reading 8 MiB at once.
	freshening sync.Mutex
}

// freshen reads every silence shard again that needs it, all at once.
func (ss *silenceShards) freshen(ctx context.Context) error {
	ss.freshening.Lock()
	defer ss.freshening.Unlock()
	return eachAtOnce(ss.stores, func(_ int, st *Store) error { return st.freshen(ctx) })
}

// held returns each shard's silences, as last read.
func (ss *silenceShards) held() [][]api.Silence {
	out := make([][]api.Silence, len(ss.stores))
	for i, st := range ss.stores {
		st.mu.Lock()
		out[i] = st.silences
		st.mu.Unlock()
	}
	return out
}

// all returns the stored silences, oldest first.
func (ss *silenceShards) all(ctx context.Context) ([]api.Silence, error) {
	if err := ss.freshen(ctx); err != nil {
		return nil, err
	}
	var out []api.Silence
	for _, held := range ss.held() {
		out = append(out, held...)
	}
	slices.SortFunc(out, func(a, b api.Silence) int {
		return cmp.Or(a.StartsAt.Compare(b.StartsAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// emptiestFirst orders the shards by how many silences in force at now
// each holds, fewest first.
func (ss *silenceShards) emptiestFirst(now time.Time) []int {
	held := ss.held()
	order := make([]int, len(ss.stores))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(state.NotEnded(held[a], now), state.NotEnded(held[b], now))
	})
	return order
}

// add stores s in the shard holding the fewest silences; one that fills
// meanwhile (another replica added there) passes it on to the next.
func (ss *silenceShards) add(ctx context.Context, s api.Silence, now time.Time) error {
	if err := ss.freshen(ctx); err != nil {
		return err
	}
	for _, i := range ss.emptiestFirst(now) {
		err := ss.stores[i].AddSilence(ctx, s, now)
		if !errors.Is(err, state.ErrFull) {
			return err
		}
	}
	return fmt.Errorf("%w: %d silences in force, the most the state keeps", state.ErrFull, state.MaxSilences)
}

// remove ends silence id in the shard that holds it.
func (ss *silenceShards) remove(ctx context.Context, id string, now time.Time) error {
	if err := ss.freshen(ctx); err != nil {
		return err
	}
	for i, held := range ss.held() {
		if slices.ContainsFunc(held, func(s api.Silence) bool { return s.ID == id }) {
			return ss.stores[i].DeleteSilence(ctx, id, now)
		}
	}
	return fmt.Errorf("%w: %s (it may have ended)", state.ErrSilenceNotFound, id)
}

// merge brings in silences held elsewhere (an older layout), those not held
// yet spread over the emptiest shards.
func (ss *silenceShards) merge(ctx context.Context, silences []api.Silence) error {
	if err := ss.freshen(ctx); err != nil {
		return err
	}
	held := ss.held()
	counts := make([]int, len(ss.stores))
	known := map[string]bool{}
	for i, h := range held {
		counts[i] = len(h)
		for _, s := range h {
			known[s.ID] = true
		}
	}
	perShard := make([][]api.Silence, len(ss.stores))
	for _, s := range silences {
		if known[s.ID] {
			continue
		}
		known[s.ID] = true
		i := 0
		for k := range counts {
			if counts[k] < counts[i] {
				i = k
			}
		}
		counts[i]++
		perShard[i] = append(perShard[i], s)
	}
	errs := make([]error, len(ss.stores))
	var wg sync.WaitGroup
	for i, st := range ss.stores {
		if len(perShard[i]) > 0 {
			wg.Go(func() { errs[i] = st.merge(ctx, nil, perShard[i]) })
		}
	}
	wg.Wait()
	return errors.Join(errs...)
}
