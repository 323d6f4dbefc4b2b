package configmapstore

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// applyBatch computes the object after batch, and each operation's answer.
// It returns a nil object when no operation changes anything.
func (s *Store) applyBatch(ctx context.Context, base *corev1.ConfigMap, batch []*op) (*corev1.ConfigMap, []opDone) {
	next := base.DeepCopy()
	if next.Data == nil {
		next.Data = map[string]string{}
	}
	p := s.newPending(ctx, next.Data)
	answers := make([]opDone, len(batch))
	changed := false
	for i, o := range batch {
		var wrote bool
		switch o.kind {
		case opMerge:
			wrote, answers[i].err = p.merge(o)
		case opAddSilence, opDeleteSilence:
			wrote, answers[i].err = p.silence(o)
		case opCompact:
			wrote, answers[i].err = p.compact(o)
		case opCompacted:
			wrote, answers[i].err = p.compacted(o)
		case opRemoveUnchanged:
			wrote = p.removeUnchanged(o.entries)
		case opDelete:
			wrote, answers[i].err = p.delete(o.key)
		case opEdit:
			wrote, answers[i].err = p.edit(o)
		default:
			answers[i].rec, wrote, answers[i].err = p.record(o)
		}
		changed = changed || wrote
	}
	if !changed {
		return nil, answers
	}
	return next, answers
}

// pending is a batch's view of the data it is changing.
type pending struct {
	s    *Store
	ctx  context.Context
	data map[string]string
	size int // summed length of data's values

	// A journal's only (see journalRole):
	marks    map[int]string // each shard's version after its last compaction
	homeSize map[int]int    // projected size of each home shard touched so far
}

func (s *Store) newPending(ctx context.Context, data map[string]string) *pending {
	p := &pending{s: s, ctx: ctx, data: data}
	for _, v := range data {
		p.size += len(v)
	}
	if s.journal != nil {
		p.marks = decodeMarks(data[compactedKey])
		p.homeSize = map[int]int{}
	}
	return p
}

// current is key's value as the store answers for it: the one here, or, in
// a journal that holds neither the key nor its tombstone, its home shard's,
// read at least as new as the journal's last compaction into it.
func (p *pending) current(key string) (value string, exists bool, err error) {
	value, exists = p.data[key]
	if p.s.journal == nil {
		return value, exists, nil
	}
	if exists {
		if value == tombstone {
			return "", false, nil
		}
		return value, true, nil
	}
	h := p.s.journal.shardOf(key)
	home := p.s.journal.homes[h]
	if err := home.atLeast(p.ctx, p.marks[h]); err != nil {
		return "", false, err
	}
	value, exists = home.value(key)
	return value, exists, nil
}

// put sets key to value (in a journal, a tombstone deletes the job), as long
// as this ConfigMap, and the home shard of a journal's job, stay within
// their limits.
func (p *pending) put(key, value string) error {
	grown := p.size - len(p.data[key]) + len(value)
	if grown > p.s.maxData && p.s.journal != nil {
		// Its compactions keep a journal far below this limit; reaching it
		// means they have been failing: retrying later may find room.
		return fmt.Errorf("%w: ConfigMap %s is full until its jobs are compacted into their shards", state.ErrUnavailable, p.s.name)
	}
	if grown > p.s.maxData {
		return fmt.Errorf("%w: %s would bring ConfigMap %s to %d bytes, over its limit of %d",
			state.ErrFull, key, p.s.name, grown, p.s.maxData)
	}
	if p.s.journal != nil && !strings.HasPrefix(key, "_") {
		h := p.s.journal.shardOf(key)
		size, err := p.homeSizeOf(h)
		if err != nil {
			return err
		}
		was, _, err := p.current(key)
		if err != nil {
			return err
		}
		projected := size - len(was) + viewLen(value)
		if home := p.s.journal.homes[h]; projected > home.maxData {
			return fmt.Errorf("%w: %s would bring ConfigMap %s to %d bytes, over its limit of %d",
				state.ErrFull, key, home.name, projected, home.maxData)
		}
		p.homeSize[h] = projected
	}
	p.size = grown
	p.data[key] = value
	return nil
}

// remove deletes key from the data here.
func (p *pending) remove(key string) {
	p.size -= len(p.data[key])
	delete(p.data, key)
}

// viewLen is what a journal's value adds to its home shard once compacted.
func viewLen(value string) int {
	if value == tombstone {
		return 0
	}
	return len(value)
}

// homeSizeOf is the size home shard h will have once the journal's entries
// for it are compacted into it.
func (p *pending) homeSizeOf(h int) (int, error) {
	if size, ok := p.homeSize[h]; ok {
		return size, nil
	}
	home := p.s.journal.homes[h]
	if err := home.atLeast(p.ctx, p.marks[h]); err != nil {
		return 0, err
	}
	size := home.valueSize()
	for key, value := range p.data {
		if strings.HasPrefix(key, "_") || p.s.journal.shardOf(key) != h {
			continue
		}
		held, _ := home.value(key)
		size += viewLen(value) - len(held)
	}
	p.homeSize[h] = size
	return size, nil
}

// record applies a callback's result to its job.
func (p *pending) record(o *op) (state.Recorded, bool, error) {
	// Checked before the operation joins the update: a key the ConfigMap
	// cannot hold would make the API server refuse them all.
	if err := o.key.Validate(); err != nil {
		return state.Recorded{}, false, err
	}
	key := o.key.String()
	value, exists, err := p.current(key)
	if err != nil {
		return state.Recorded{}, false, err
	}
	var job state.Job
	if exists {
		if job, err = state.DecodeJob(key, value); err != nil {
			return state.Recorded{}, false, err
		}
	}
	job, outcome := state.Apply(job, exists, o.result, o.receivedAt)
	rec := state.Recorded{Job: job, Outcome: outcome}
	if !outcome.Changed() {
		return rec, false, nil
	}
	encoded, err := json.Marshal(job)
	if err != nil {
		return state.Recorded{}, false, err
	}
	if err := p.put(key, string(encoded)); err != nil {
		return state.Recorded{}, false, fmt.Errorf("%w; delete jobs that are gone (DELETE /api/v1/jobs/{namespace}/{job})", err)
	}
	return rec, true, nil
}

// delete removes a job; deleting is also how an operator clears an
// unreadable key. A journal writes a tombstone, which its compaction turns
// into the key's removal from the home shard.
func (p *pending) delete(k state.Key) (bool, error) {
	if err := k.Validate(); err != nil {
		return false, err
	}
	key := k.String()
	_, exists, err := p.current(key)
	if err != nil {
		return false, err
	}
	if !exists {
		return false, state.ErrNotFound
	}
	if p.s.journal != nil {
		return true, p.put(key, tombstone)
	}
	p.remove(key)
	return true, nil
}

// edit applies o.edit to its job: an unreadable one is state.ErrCorrupt.
func (p *pending) edit(o *op) (bool, error) {
	if err := o.key.Validate(); err != nil {
		return false, err
	}
	key := o.key.String()
	value, exists, err := p.current(key)
	if err != nil {
		return false, err
	}
	if !exists {
		return false, state.ErrNotFound
	}
	job, err := state.DecodeJob(key, value)
	if err != nil {
		return false, err
	}
	next, keep, err := o.edit(job)
	if err != nil {
		return false, err
	}
	if !keep {
		return p.delete(o.key)
	}
	encoded, err := json.Marshal(next)
	if err != nil {
		return false, err
	}
	return true, p.put(key, string(encoded))
}

// silence adds or ends a silence.
func (p *pending) silence(o *op) (bool, error) {
	silences, err := decodeSilences(cmp.Or(p.data[silencesKey], "[]"))
	if err != nil {
		return false, err
	}
	if o.kind == opAddSilence {
		silences, err = state.AddSilenceWithin(silences, o.silence, o.now, p.s.maxSilences)
	} else {
		silences, err = state.DeleteSilenceFrom(silences, o.silence.ID, o.now)
	}
	if err != nil {
		return false, err
	}
	encoded, err := json.Marshal(silences)
	if err != nil {
		return false, err
	}
	if err := p.put(silencesKey, string(encoded)); err != nil {
		return false, err
	}
	return true, nil
}

// merge applies an opMerge: each job merged with the copy held here,
// silences joined by ID. Whatever does not fit is left out, and reported as
// state.ErrFull.
func (p *pending) merge(o *op) (bool, error) {
	var full error
	wrote := false
	for _, job := range o.merge {
		key := job.Key().String()
		value, exists, err := p.current(key)
		if err != nil {
			return wrote, err
		}
		if exists {
			held, err := state.DecodeJob(key, value)
			if err != nil {
				continue // an unreadable value here is left alone, as everywhere
			}
			job = state.Merge(held, job)
		}
		encoded, err := json.Marshal(job)
		if err != nil {
			return wrote, err
		}
		if exists && string(encoded) == value {
			continue
		}
		if err := p.put(key, string(encoded)); err != nil {
			full = err
			continue
		}
		wrote = true
	}
	if len(o.mergeSilences) > 0 {
		held, err := decodeSilences(cmp.Or(p.data[silencesKey], "[]"))
		if err != nil {
			return wrote, err
		}
		n := len(held)
		for _, x := range o.mergeSilences {
			if !slices.ContainsFunc(held, func(h api.Silence) bool { return h.ID == x.ID }) {
				held = append(held, x)
			}
		}
		if len(held) > n {
			encoded, err := json.Marshal(held)
			if err != nil {
				return wrote, err
			}
			if err := p.put(silencesKey, string(encoded)); err != nil {
				return wrote, err
			}
			wrote = true
		}
	}
	return wrote, full
}

// compact applies an opCompact to a home shard: the journal's values
// verbatim, its tombstones as removals, unless they were read from an
// older journal than the last ones.
func (p *pending) compact(o *op) (bool, error) {
	if from := p.data[compactedFromKey]; olderVersion(o.version, from) {
		return false, fmt.Errorf("%w: %s holds entries of version %s, these are of %s", errStaleCompaction, p.s.name, from, o.version)
	}
	if err := p.put(compactedFromKey, o.version); err != nil {
		return false, err
	}
	var full error
	wrote := false
	for key, value := range o.entries {
		held, exists := p.data[key]
		switch {
		case value == tombstone && exists:
			p.remove(key)
			wrote = true
		case value == tombstone || (exists && held == value):
		default:
			if err := p.put(key, value); err != nil {
				full = err
				continue
			}
			wrote = true
		}
	}
	return wrote, full
}

// compacted applies an opCompacted to a journal: the entries its home shard
// now holds leave the journal, unless they changed meanwhile, and the
// shard's mark records the home version that holds them.
func (p *pending) compacted(o *op) (bool, error) {
	p.removeUnchanged(o.entries)
	if olderVersion(p.marks[o.shard], o.version) || p.marks[o.shard] == "" {
		p.marks[o.shard] = o.version
	}
	encoded, err := json.Marshal(p.marks)
	if err != nil {
		return false, err
	}
	if err := p.put(compactedKey, string(encoded)); err != nil {
		return false, err
	}
	return true, nil
}

// removeUnchanged removes the entries whose values are still those given.
func (p *pending) removeUnchanged(entries map[string]string) bool {
	wrote := false
	for key, value := range entries {
		if held, ok := p.data[key]; ok && held == value {
			p.remove(key)
			wrote = true
		}
	}
	return wrote
}
