package configmapstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/batchlatch/batchlatch/state"
)

// A Sharded store writes every job's change first to a journal: a small
// ConfigMap that several shards share, holding the jobs changed lately, one
// readable key per job as in the shards. Its committer moves them into their
// home shards in the background (compaction), a shard at a time, once the
// journal passes CompactAbove bytes, and all of them after a CompactAfter in
// which it moved none.
//
// Why: an update rewrites the whole object, and the API server's and etcd's
// cost grows with its size. A callback written straight into its 200 KiB
// shard costs the rewrite of that shard; written into a journal that many
// callbacks share, it costs a share of a small rewrite, and a compaction
// carries many jobs into their shard at once.
//
// A job's value is the journal's when the journal holds its key (a
// tombstone, the value "deleted", for a job deleted there), and its home
// shard's otherwise. A compaction writes the journal's entries for one shard
// into the shard, and only then, in one update of the journal, removes those
// still unchanged and records under "_compacted" the shard's
// resourceVersion that holds them. The shard records under "_compactedFrom"
// the journal's resourceVersion its entries were read at, and refuses
// entries read at an older one: a replica compacting from a journal it read
// before another replica's compaction would write older values over newer. Whoever reads a shard for a key the
// journal does not hold first makes sure it has read that version or a
// newer one, so a job just compacted by another replica is never read from
// an older copy of its shard. A replica killed between the two updates
// leaves the entries in both places, with the same values: nothing is lost
// or counted twice, and the next compaction finishes the move.
const (
	// tombstone is a journal's value for a deleted job.
	tombstone = "deleted"
	// compactedKey holds a journal's marks: shard index -> the shard's
	// resourceVersion after the journal's last compaction into it.
	compactedKey = "_compacted"
	// compactedFromKey holds, in a shard, the journal's resourceVersion
	// its last compaction read the entries at.
	compactedFromKey = "_compactedFrom"

	// DefaultCompactAbove is the journal size past which its committer
	// compacts.
	DefaultCompactAbove = 96 << 10
	// DefaultCompactAfter is how long a journal that holds jobs waits
	// without moving any before it moves them all into their shards, so
	// that a trickle of callbacks does not keep jobs in it for long.
	DefaultCompactAfter = 2 * time.Second

	// shardsPerJournal is how many shards share a journal.
	shardsPerJournal = 8
)

// JournalCount is the number of journals of a store on n shards.
func JournalCount(shards int) int { return (shards + shardsPerJournal - 1) / shardsPerJournal }

// JournalName is the name of journal i of the state ConfigMap name.
func JournalName(name string, i int) string { return name + "-journal-" + strconv.Itoa(i) }

// shardIndexOf is ShardIndex of a key in its stored form.
func shardIndexOf(key string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// journalRole makes a Store the journal of some of a Sharded store's shards.
type journalRole struct {
	homes        []*Store // every shard of the store, by index
	compactAbove int
	compactAfter time.Duration
}

func (j *journalRole) shardOf(key string) int { return shardIndexOf(key, len(j.homes)) }

// decodeMarks reads a journal's marks; unreadable marks read as none, which
// only makes reads of the shards less sure to be fresh, never wrong values
// written: every write is still checked against the shard's version.
func decodeMarks(value string) map[int]string {
	marks := map[int]string{}
	if value != "" {
		_ = json.Unmarshal([]byte(value), &marks)
	}
	return marks
}

// errStaleCompaction: a shard refused entries read from a journal older
// than those it already holds.
var errStaleCompaction = errors.New("entries read from an older journal than the shard's")

// journalEntries returns the jobs' entries the journal holds, by shard,
// their summed size, and the journal's resourceVersion they were read at.
func (s *Store) journalEntries() (map[int]map[string]string, int, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	perShard := map[int]map[string]string{}
	size := 0
	if s.cm == nil {
		return perShard, 0, ""
	}
	for key, value := range s.cm.Data {
		if strings.HasPrefix(key, "_") {
			continue
		}
		h := s.journal.shardOf(key)
		if perShard[h] == nil {
			perShard[h] = map[string]string{}
		}
		perShard[h][key] = value
		size += len(value)
	}
	return perShard, size, s.cm.ResourceVersion
}

// compactOver compacts, the shard with the most bytes first, while the
// journal holds more than compactAbove bytes of jobs.
func (s *Store) compactOver(ctx context.Context) {
	for range len(s.journal.homes) + 1 {
		// Most commits leave the journal below the threshold: its summed
		// size (marks included) says so without grouping its entries.
		if s.valueSize() <= s.journal.compactAbove {
			return
		}
		perShard, size, version := s.journalEntries()
		if size <= s.journal.compactAbove {
			return
		}
		largest, most := -1, 0
		for h, entries := range perShard {
			n := 0
			for _, v := range entries {
				n += len(v)
			}
			if n > most {
				largest, most = h, n
			}
		}
		if err := s.compactShard(ctx, largest, perShard[largest], version); err != nil {
			s.compactFailed(ctx, err)
			return
		}
		s.compactWorks()
	}
}

// compactAll compacts every shard the journal holds jobs of.
func (s *Store) compactAll(ctx context.Context) {
	perShard, _, version := s.journalEntries()
	for h, entries := range perShard {
		if err := s.compactShard(ctx, h, entries, version); err != nil {
			s.compactFailed(ctx, err)
			return
		}
		s.compactWorks()
	}
}

// compactFailed logs a failed compaction, as a warning only the first time
// since the last one that worked (an outage would repeat it every few
// seconds); one refused as stale reads the journal again, for the next one
// to start from what it holds now.
func (s *Store) compactFailed(ctx context.Context, err error) {
	if errors.Is(err, errStaleCompaction) {
		s.logger.Debug("compact the journal: another replica compacted first", "err", err)
		if err := s.refresh(ctx); err != nil {
			s.logger.Debug("read the journal again", "err", err)
		}
		return
	}
	if s.compactFailing {
		s.logger.Debug("compact the journal; trying again later", "err", err)
		return
	}
	s.compactFailing = true
	s.logger.Warn("compact the journal; trying again later (further failures are logged at debug level until one works)", "err", err)
}

// compactWorks notes a compaction that worked, and says so after failures.
func (s *Store) compactWorks() {
	s.lastMove = time.Now()
	if s.compactFailing {
		s.compactFailing = false
		s.logger.Info("compact the journal: works again")
	}
}

// compactShard writes entries, read from the journal at version, into home
// shard h, then removes them from the journal (see the journal's
// description above).
func (s *Store) compactShard(ctx context.Context, h int, entries map[string]string, version string) error {
	ctx, cancel := context.WithTimeout(ctx, defaultOpTimeout)
	defer cancel()
	home := s.journal.homes[h]
	if _, err := home.submit(ctx, &op{kind: opCompact, entries: maps.Clone(entries), version: version}); err != nil {
		return fmt.Errorf("compact into %s: %w", home.name, err)
	}
	o := &op{kind: opCompacted, shard: h, version: home.version(), entries: entries,
		deadline: time.Now().Add(defaultOpTimeout), done: make(chan opDone, 1)}
	s.commit(ctx, []*op{o})
	if err := (<-o.done).err; err != nil {
		return fmt.Errorf("remove what %s now holds from %s: %w", home.name, s.name, err)
	}
	return nil
}

// holdsJobs reports whether the journal holds any job.
func (s *Store) holdsJobs() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.jobs)+len(s.corrupt)+len(s.deleted) > 0
}

// value is key's value in the last object seen.
func (s *Store) value(key string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cm == nil {
		return "", false
	}
	v, ok := s.cm.Data[key]
	return v, ok
}

// valueSize is the summed size of the values of the last object seen.
func (s *Store) valueSize() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.size
}

// version is the resourceVersion of the last object seen.
func (s *Store) version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cm == nil {
		return ""
	}
	return s.cm.ResourceVersion
}

// atLeast makes sure the object seen is version rv or newer, reading it
// again if not.
func (s *Store) atLeast(ctx context.Context, rv string) error {
	if s.loaded() && !olderVersion(s.version(), rv) {
		return nil
	}
	return s.refresh(ctx)
}

// mark is the resourceVersion of shard h after the journal's last
// compaction into it, as last seen.
func (s *Store) mark(h int) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.marks[h]
}

// replaced checks cm, the journal just read (or created, when it was
// missing), against the one this store read before: when it is another
// object, the journal was deleted (by hand?) with the jobs it held, whose
// callbacks were acknowledged. What this replica last saw of it that the
// shards do not hold is written back into cm (see writeBack), and an error
// is logged. It returns the object to adopt.
func (s *Store) replaced(ctx context.Context, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
	seen := s.seenObject()
	if seen == nil || seen.UID == cm.UID {
		return cm, nil
	}
	s.restoring.Lock()
	defer s.restoring.Unlock()
	if seen = s.seenObject(); seen.UID == cm.UID { // written back meanwhile
		return cm, nil
	}
	return s.writeBack(ctx, seen, cm)
}

// seenObject is the last object adopted; nil until loaded.
func (s *Store) seenObject() *corev1.ConfigMap {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cm
}

// writeBack writes into the journal cm the entries of seen, the journal
// that was deleted, that the shards do not hold: those of a shard that no
// compaction has read a journal as new as seen into (its _compactedFrom is
// older), and whose value the shard does not hold already. Every replica
// that held the journal does so, each from what it saw: a job held by cm
// already (written back by another, or a callback since) is merged with it
// (state.Merge), so nothing is counted twice; a tombstone never replaces a
// job (a delete may be lost in that race, a run never).
func (s *Store) writeBack(ctx context.Context, seen, cm *corev1.ConfigMap) (*corev1.ConfigMap, error) {
	perShard := map[int]map[string]string{}
	for key, value := range seen.Data {
		if strings.HasPrefix(key, "_") {
			continue
		}
		h := s.journal.shardOf(key)
		if perShard[h] == nil {
			perShard[h] = map[string]string{}
		}
		perShard[h][key] = value
	}
	lost, held := map[string]string{}, 0
	for h, entries := range perShard {
		home := s.journal.homes[h]
		if err := home.refresh(ctx); err != nil {
			return nil, err
		}
		if from, _ := home.value(compactedFromKey); from != "" && !olderVersion(from, seen.ResourceVersion) {
			held += len(entries) // a compaction read them, or newer ones, into the shard
			continue
		}
		for key, value := range entries {
			inShard, ok := home.value(key)
			if (value == tombstone && !ok) || (ok && inShard == value) {
				held++
				continue
			}
			lost[key] = value
		}
	}
	if len(lost) == 0 {
		s.logger.Warn("the journal ConfigMap was deleted or replaced; its shards hold everything this replica saw in it", "jobs", held)
		return cm, nil
	}
	marks := decodeMarks(seen.Data[compactedKey])
	for {
		next := cm.DeepCopy()
		if next.Data == nil {
			next.Data = map[string]string{}
		}
		for key, value := range lost {
			next.Data[key] = mergeWrittenBack(key, next.Data[key], value)
		}
		current := decodeMarks(next.Data[compactedKey])
		for h, v := range marks {
			if olderVersion(current[h], v) || current[h] == "" {
				current[h] = v
			}
		}
		encoded, err := json.Marshal(current)
		if err != nil {
			return nil, err
		}
		next.Data[compactedKey] = string(encoded)
		updated, err := s.client.Update(ctx, next, metav1.UpdateOptions{})
		if apierrors.IsConflict(err) {
			if cm, err = s.client.Get(ctx, s.name, metav1.GetOptions{}); err == nil {
				continue
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%w: write back the jobs of journal %s, found deleted: %v", state.ErrUnavailable, s.name, err)
		}
		s.logger.Error("the journal ConfigMap was deleted or replaced with jobs in it; wrote back what this replica saw in it that the shards do not hold",
			"written_back", len(lost), "held_by_shards", held)
		return updated, nil
	}
}

// mergeWrittenBack is what a journal holds for key after the write-back of
// value, lost with a deleted journal, into its replacement, which holds
// current ("" for nothing).
func mergeWrittenBack(key, current, value string) string {
	switch {
	case current == "":
		return value
	case value == tombstone:
		return current
	case current == tombstone:
		return value
	}
	a, errA := state.DecodeJob(key, current)
	b, errB := state.DecodeJob(key, value)
	if errA != nil || errB != nil {
		return current // an unreadable value is left alone
	}
	merged, err := json.Marshal(state.Merge(a, b))
	if err != nil {
		return current
	}
	return string(merged)
}
