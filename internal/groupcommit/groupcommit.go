// Package groupcommit gathers the operations queued for a store's single
// committer into one batch (group commit): both stores commit that way.
package groupcommit

import "time"

// Linger is how long a batch waits for more operations when the previous
// batch held several: the callers it answered are about to send their next
// ones, which would otherwise make a batch of their own and leave the
// committer alternating between a full batch and a lone operation.
const Linger = 2 * time.Millisecond

// Gather returns first and the operations queued on ops after it, up to
// limit, leaving out those take refuses (nil takes all). After a batch of
// several (lastBatch), it also waits up to Linger for as many as that one
// held. A closed ops ends the batch.
func Gather[O any](ops <-chan O, first O, lastBatch, limit int, take func(O) bool) []O {
	batch := make([]O, 0, max(lastBatch, 1))
	add := func(o O) {
		if take == nil || take(o) {
			batch = append(batch, o)
		}
	}
	add(first)
	var linger <-chan time.Time
	if lastBatch > 1 {
		timer := time.NewTimer(Linger)
		defer timer.Stop()
		linger = timer.C
	}
	for len(batch) < limit {
		select {
		case o, ok := <-ops:
			if !ok {
				return batch
			}
			add(o)
			continue
		default:
		}
		if linger == nil || len(batch) >= lastBatch {
			return batch
		}
		select {
		case o, ok := <-ops:
			if !ok {
				return batch
			}
			add(o)
		case <-linger:
			return batch
		}
	}
	return batch
}
