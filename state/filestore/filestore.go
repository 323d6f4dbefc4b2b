// Package filestore is the state.Store of one JSON file, for a single
// process outside a cluster.
package filestore

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/groupcommit"
	"github.com/batchlatch/batchlatch/state"
)

// Store keeps every job in one JSON file, for local runs. A change is
// made durable by rewriting the file atomically (temporary file, fsync,
// rename, fsync of the directory), so a crash leaves either the old or the
// new state.
//
// Concurrency. All methods are safe for concurrent use. Changes (Record,
// Delete, AddSilence, DeleteSilence) are queued to a single writer goroutine,
// which takes everything queued at once (group commit), applies the
// operations one at a time in the order it took them, each to the state the
// previous one left, writes the file once for all of them, and only then
// answers them. Hence:
//
//   - A nil error means the change is in the file: fsynced and renamed into
//     place.
//   - An operation that fails on its own (an invalid key, state.ErrNotFound,
//     state.ErrSilenceNotFound, state.ErrFull) fails alone and changes nothing; the
//     others taken with it are written.
//   - When the write fails, every operation taken with it that had not
//     failed on its own returns the error (state.ErrUnavailable), and neither the
//     file nor what reads return changes.
//   - Changes made one after the other by a goroutine are applied in that
//     order; concurrent ones in the order the queue hands them out.
//   - The caller's context counts while its operation waits in the queue:
//     cancelled then, the operation is dropped and the method returns
//     ctx.Err(). Once the writer has taken it, it is carried out, and the
//     method waits for the write and returns its outcome.
//
// Reads (Get, List, Silences) never wait for a write: they read an immutable
// snapshot of the last state written, which the writer replaces after each
// successful write. So they never see a change before it is durable.
//
// Lifecycle. Open starts the writer. Close stops the queue (a later
// change returns state.ErrUnavailable), lets the writer carry out every operation
// already queued, and returns once it has exited. Close may be called more
// than once; reads still answer after it, from the last state written. Only
// one process may use a state file at a time.
type Store struct {
	path string

	// snap is the last state written (or read at open): what reads return.
	// The writer replaces it, never modifies it.
	snap atomic.Pointer[fileState]
	// savedSize is the size of the last file written or read, for Ready.
	savedSize atomic.Int64

	ops     chan *fileOp
	closeMu sync.RWMutex  // held for reading while queueing; Close takes it to stop the queue
	closed  bool          // guarded by closeMu
	stopped chan struct{} // closed when the writer has exited

	// The writer's own.
	buf *bufio.Writer
	// beforeRename, when set (by tests), runs after the temporary file is
	// written and synced, before it replaces the state file; an error from
	// it fails the write.
	beforeRename func() error
}

// fileState is one state of the store. It is never modified once the writer
// has published it: readers use it without a lock.
type fileState struct {
	// entries are ordered by key as List returns them (see
	// compareEntry); lookups are binary searches.
	entries []*fileEntry
	// jobs[i] is entries[i]'s job: what List lends, never modified, so
	// that every reader of this state shares it rather than each copying
	// it (32 MB at 100,000 jobs).
	jobs     []state.Job
	silences []api.Silence
	// silencesJSON is how the silences are written, after the jobs: empty
	// when there are none.
	silencesJSON []byte
}

// fileEntry is the line that holds one job in the file (the job itself is
// in fileState.jobs). Never modified once made.
type fileEntry struct {
	key  state.Key // state.ParseKey(name)
	name string    // the job's key in the file
	line []byte    // `"name": {compact JSON of job}`, or the unreadable value as it was
	// unreadable (state.ErrCorrupt) is set for a value that cannot be read;
	// the job is then its identity, with Job.Unreadable saying why.
	unreadable error
}

// unreadableEntry is a job whose value, edited by hand, is JSON but not a
// job: it is listed by its identity, marked unreadable, and written back
// as it was until it is deleted (or fixed by hand, the store stopped).
func unreadableEntry(path, name string, value json.RawMessage, err error) (*fileEntry, state.Job, error) {
	k, merr := json.Marshal(name)
	if merr != nil {
		return nil, state.Job{}, merr
	}
	key := state.ParseKey(name)
	unreadable := fmt.Errorf("%w: key %s: %v (in state file %s)", state.ErrCorrupt, name, err, path)
	job := state.Job{Namespace: key.Namespace, Name: key.Name, Kind: key.Kind, Unreadable: unreadable.Error()}
	line := append(append(append(make([]byte, 0, len(k)+2+len(value)), k...), ": "...), value...)
	return &fileEntry{key: key, name: name, line: line, unreadable: unreadable}, job, nil
}

func newFileEntry(name string, job state.Job) (*fileEntry, error) {
	k, err := json.Marshal(name)
	if err != nil {
		return nil, err
	}
	v, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	line := make([]byte, 0, len(k)+2+len(v))
	line = append(append(append(line, k...), ": "...), v...)
	return &fileEntry{key: state.ParseKey(name), name: name, line: line}, nil
}

// entryKey is what jobs are looked up and ordered by: the job's key, then
// its name in the file (which only a file edited by hand makes differ from
// the key's String).
type entryKey struct {
	key  state.Key
	name string
}

func compareEntry(e *fileEntry, k entryKey) int {
	return cmp.Or(
		strings.Compare(e.key.Namespace, k.key.Namespace),
		strings.Compare(e.key.Name, k.key.Name),
		strings.Compare(e.key.Kind, k.key.Kind),
		strings.Compare(e.name, k.name),
	)
}

// find returns where key is, or would be, in entries.
func find(entries []*fileEntry, key state.Key) (int, bool) {
	return slices.BinarySearchFunc(entries, entryKey{key, key.String()}, compareEntry)
}

// opKind is what a queued change does.
type opKind int

const (
	opRecord opKind = iota
	opDelete
	opAddSilence
	opDeleteSilence
	opEdit
)

// opDone is a change's answer.
type opDone struct {
	rec state.Recorded
	err error
}

// fileOp is a change queued for the writer.
type fileOp struct {
	kind       opKind
	result     api.Result
	receivedAt time.Time
	key        state.Key
	edit       state.Edit  // opEdit
	silence    api.Silence // opAddSilence; opDeleteSilence: its ID
	now        time.Time   // silence operations: what has ended
	// taken goes from opQueued to opTaken when the writer takes the
	// operation, or to opAbandoned when its caller gives up first.
	taken atomic.Int32
	done  chan opDone
}

const (
	opQueued int32 = iota
	opTaken
	opAbandoned
)

// fileMaxBatch bounds the operations one write answers.
const fileMaxBatch = 4096

// The file's format marker: a file that lacks it is not batchlatch's state
// and is never taken for empty state (and overwritten).
const (
	fileFormatName    = "batchlatch-state"
	fileFormatVersion = 1
)

// fileFormat is the file's content. Each job is decoded on its own, so
// that one value edited by hand into something else fails alone.
type fileFormat struct {
	Format  string                     `json:"format"`
	Version int                        `json:"version"`
	Jobs    map[string]json.RawMessage `json:"jobs"`
	// Silences are kept with the state, as durably.
	Silences []api.Silence `json:"silences,omitempty"`
}

// legacyFileFormat is what releases before the format marker wrote; such a
// file is read as is and written with the marker on the next change.
type legacyFileFormat struct {
	Jobs map[string]json.RawMessage `json:"jobs"`
}

// Open loads path, or starts empty when it does not exist, and
// starts the store's writer (see Store; Close stops it). A file that is
// not batchlatch's state, or cannot be parsed, is an error: it is never
// silently replaced. Temporary files that a crash mid-write left beside it
// are removed.
func Open(path string) (*Store, error) {
	if err := removeTempFiles(path); err != nil {
		return nil, err
	}
	st, size, err := loadStateFile(path)
	if err != nil {
		return nil, err
	}
	s := &Store{
		path:    path,
		ops:     make(chan *fileOp, 1024),
		stopped: make(chan struct{}),
		buf:     bufio.NewWriterSize(nil, 256<<10),
	}
	s.snap.Store(st)
	s.savedSize.Store(size)
	go s.writeLoop()
	return s, nil
}

// loadStateFile reads the state at path, empty when there is no file, and
// the file's size.
func loadStateFile(path string) (*fileState, int64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &fileState{}, 0, nil
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read state file: %w", err)
	}
	jobs, silences, err := decodeStateFile(data)
	if err != nil {
		return nil, 0, fmt.Errorf("state file %s: %w (fix it, or move it away to start empty)", path, err)
	}
	type loaded struct {
		entry *fileEntry
		job   state.Job
	}
	all := make([]loaded, 0, len(jobs))
	for name, value := range jobs {
		var j state.Job
		if err := json.Unmarshal(value, &j); err != nil {
			e, j, err := unreadableEntry(path, name, value, err)
			if err != nil {
				return nil, 0, fmt.Errorf("state file %s: job %s: %w", path, name, err)
			}
			all = append(all, loaded{e, j})
			continue
		}
		key := state.ParseKey(name)
		j.Namespace, j.Name, j.Kind = key.Namespace, key.Name, key.Kind
		e, err := newFileEntry(name, j)
		if err != nil {
			return nil, 0, fmt.Errorf("state file %s: job %s: %w", path, name, err)
		}
		all = append(all, loaded{e, j})
	}
	slices.SortFunc(all, func(a, b loaded) int { return compareEntry(a.entry, entryKey{b.entry.key, b.entry.name}) })
	st := &fileState{entries: make([]*fileEntry, len(all)), jobs: make([]state.Job, len(all))}
	for i, l := range all {
		st.entries[i], st.jobs[i] = l.entry, l.job
	}
	if err := st.setSilences(silences); err != nil {
		return nil, 0, fmt.Errorf("state file %s: %w", path, err)
	}
	return st, int64(len(data)), nil
}

// decodeStateFile reads the file's jobs, each still encoded, refusing
// anything that is not batchlatch's state in a format this version knows.
// A file that is not JSON at all is refused whole: where one job ends and
// the next begins is then anyone's guess.
func decodeStateFile(data []byte) (map[string]json.RawMessage, []api.Silence, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil || top == nil {
		if err == nil {
			err = errors.New("null")
		}
		return nil, nil, fmt.Errorf("not a batchlatch state file (a JSON object with \"format\": %q): %v", fileFormatName, err)
	}
	if _, marked := top["format"]; !marked {
		var legacy legacyFileFormat
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if _, ok := top["jobs"]; !ok || dec.Decode(&legacy) != nil || legacy.Jobs == nil {
			return nil, nil, fmt.Errorf("not a batchlatch state file: it has no \"format\": %q", fileFormatName)
		}
		return legacy.Jobs, nil, nil
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, nil, fmt.Errorf("not valid: %w", err)
	}
	if f.Format != fileFormatName {
		return nil, nil, fmt.Errorf("not a batchlatch state file: format is %q, not %q", f.Format, fileFormatName)
	}
	if f.Version != fileFormatVersion {
		return nil, nil, fmt.Errorf("format version %d is not %d, the one this batchlatch reads (written by another release?)", f.Version, fileFormatVersion)
	}
	if f.Jobs == nil {
		f.Jobs = map[string]json.RawMessage{}
	}
	return f.Jobs, f.Silences, nil
}

// tempPattern names the temporary files the atomic writes make beside path.
func tempPattern(path string) string { return "." + filepath.Base(path) + ".tmp-*" }

// removeTempFiles removes what a crash mid-write left beside path. Only one
// process may use a state file, so no other writer's file is removed.
func removeTempFiles(path string) error {
	leftovers, err := filepath.Glob(filepath.Join(filepath.Dir(path), tempPattern(path)))
	if err != nil {
		return fmt.Errorf("state file %s: %w", path, err)
	}
	for _, name := range leftovers {
		if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove temporary file left by a crash: %w", err)
		}
	}
	return nil
}

// Record implements state.Store.
func (s *Store) Record(ctx context.Context, r api.Result, receivedAt time.Time) (state.Recorded, error) {
	return s.submit(ctx, &fileOp{kind: opRecord, result: r, receivedAt: receivedAt, key: state.KeyOf(r)})
}

// Delete implements state.Store.
func (s *Store) Delete(ctx context.Context, key state.Key) error {
	_, err := s.submit(ctx, &fileOp{kind: opDelete, key: key})
	return err
}

// Edit implements state.Store.
func (s *Store) Edit(ctx context.Context, key state.Key, edit state.Edit) error {
	_, err := s.submit(ctx, &fileOp{kind: opEdit, key: key, edit: edit})
	return err
}

// AddSilence implements state.Store.
func (s *Store) AddSilence(ctx context.Context, silence api.Silence, now time.Time) error {
	_, err := s.submit(ctx, &fileOp{kind: opAddSilence, silence: silence, now: now})
	return err
}

// DeleteSilence implements state.Store.
func (s *Store) DeleteSilence(ctx context.Context, id string, now time.Time) error {
	_, err := s.submit(ctx, &fileOp{kind: opDeleteSilence, silence: api.Silence{ID: id}, now: now})
	return err
}

// Get implements state.Store.
func (s *Store) Get(_ context.Context, key state.Key) (state.Job, error) {
	st := s.snap.Load()
	i, ok := find(st.entries, key)
	if !ok {
		return state.Job{}, state.ErrNotFound
	}
	if err := st.entries[i].unreadable; err != nil {
		return state.Job{}, err
	}
	return st.jobs[i], nil
}

// List implements state.Store: the jobs are the snapshot's own, lent.
func (s *Store) List(context.Context) ([]state.Job, error) {
	jobs := s.snap.Load().jobs
	return jobs[:len(jobs):len(jobs)], nil
}

// Silences implements state.Store.
func (s *Store) Silences(context.Context) ([]api.Silence, error) {
	return slices.Clone(s.snap.Load().silences), nil
}

// Ready implements Store: ready means a write can succeed now, so it probes
// the directory (a file can be made there) and the free space (room for
// another copy of the state and a callback's growth).
func (s *Store) Ready(context.Context) error {
	dir := filepath.Dir(s.path)
	probe, err := os.CreateTemp(dir, tempPattern(s.path))
	if err != nil {
		return fmt.Errorf("%w: state directory %s is not writable: %v", state.ErrUnavailable, dir, err)
	}
	name := probe.Name()
	probe.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("%w: state directory %s: %v", state.ErrUnavailable, dir, err)
	}
	need := uint64(s.savedSize.Load()) + readyHeadroom
	if free, ok := freeBytes(dir); ok && free < need {
		return fmt.Errorf("%w: state directory %s has %d bytes free, a write needs %d", state.ErrUnavailable, dir, free, need)
	}
	return nil
}

// readyHeadroom is the room a write needs beyond the current file's size:
// a callback grows the state by a few KiB at most.
const readyHeadroom = 64 << 10

// Close implements Store: it stops the queue, lets the writer carry out what
// was queued before, and returns when the writer has exited. Every change
// acknowledged is on disk.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if !s.closed {
		s.closed = true
		close(s.ops)
	}
	s.closeMu.Unlock()
	<-s.stopped
	return nil
}

// submit queues o and waits for its answer.
func (s *Store) submit(ctx context.Context, o *fileOp) (state.Recorded, error) {
	if err := ctx.Err(); err != nil {
		return state.Recorded{}, err
	}
	o.done = make(chan opDone, 1)
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return state.Recorded{}, fmt.Errorf("%w: state file %s: store closed", state.ErrUnavailable, s.path)
	}
	select {
	case s.ops <- o:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return state.Recorded{}, ctx.Err()
	}
	select {
	case d := <-o.done:
		return d.rec, d.err
	case <-ctx.Done():
		if o.taken.CompareAndSwap(opQueued, opAbandoned) {
			return state.Recorded{}, ctx.Err()
		}
		// The writer has it: its outcome stands, and is the answer.
		d := <-o.done
		return d.rec, d.err
	}
}

// writeLoop is the writer: it takes what is queued, and commits it.
func (s *Store) writeLoop() {
	defer close(s.stopped)
	last := 0
	for o := range s.ops {
		// Operations whose callers gave up are left out.
		batch := groupcommit.Gather(s.ops, o, last, fileMaxBatch, func(o *fileOp) bool {
			return o.taken.CompareAndSwap(opQueued, opTaken)
		})
		last = len(batch)
		if len(batch) > 0 {
			s.commit(batch)
		}
	}
}

// commit applies batch to the last state written, writes the result once,
// publishes it, and answers every operation.
func (s *Store) commit(batch []*fileOp) {
	next, answers, changed := applyFileBatch(s.snap.Load(), batch)
	if changed {
		size, err := s.write(next)
		if err != nil {
			err = fmt.Errorf("%w: write state file: %v", state.ErrUnavailable, err)
			for i := range answers {
				if answers[i].err == nil {
					answers[i] = opDone{err: err}
				}
			}
		} else {
			s.snap.Store(next)
			s.savedSize.Store(size)
		}
	}
	for i, o := range batch {
		o.done <- answers[i]
	}
}

// applyFileBatch returns the state after batch, each operation's answer, and
// whether anything changed. base is not modified.
func applyFileBatch(base *fileState, batch []*fileOp) (*fileState, []opDone, bool) {
	next := *base
	answers := make([]opDone, len(batch))
	jobsCopied, silencesChanged := false, false
	// modifiable makes next's entries and jobs copies of its own before
	// the first change: base's are read meanwhile, and lent (List).
	modifiable := func() {
		if !jobsCopied {
			next.entries = append(make([]*fileEntry, 0, len(base.entries)+len(batch)), base.entries...)
			next.jobs = append(make([]state.Job, 0, len(base.jobs)+len(batch)), base.jobs...)
			jobsCopied = true
		}
	}
	// remove deletes the entry and job at.
	remove := func(at int) {
		next.entries = slices.Delete(next.entries, at, at+1)
		next.jobs = slices.Delete(next.jobs, at, at+1)
	}
	for i, o := range batch {
		switch o.kind {
		case opAddSilence, opDeleteSilence:
			var silences []api.Silence
			var err error
			if o.kind == opAddSilence {
				silences, err = state.AddSilenceTo(next.silences, o.silence, o.now)
			} else {
				silences, err = state.DeleteSilenceFrom(next.silences, o.silence.ID, o.now)
			}
			if err != nil {
				answers[i] = opDone{err: err}
				continue
			}
			next.silences = silences
			silencesChanged = true

		case opDelete:
			// No check of the key: deleting is also how an operator
			// clears a key edited in by hand.
			at, ok := find(next.entries, o.key)
			if !ok {
				answers[i] = opDone{err: state.ErrNotFound}
				continue
			}
			modifiable()
			remove(at)

		case opEdit:
			at, ok := find(next.entries, o.key)
			if !ok {
				answers[i] = opDone{err: state.ErrNotFound}
				continue
			}
			if err := next.entries[at].unreadable; err != nil {
				answers[i] = opDone{err: err}
				continue
			}
			job, keep, err := o.edit(next.jobs[at])
			if err != nil {
				answers[i] = opDone{err: err}
				continue
			}
			if !keep {
				modifiable()
				remove(at)
				continue
			}
			entry, err := newFileEntry(next.entries[at].name, job)
			if err != nil {
				answers[i] = opDone{err: err}
				continue
			}
			modifiable()
			next.entries[at], next.jobs[at] = entry, job

		case opRecord:
			// Checked here too, whatever the entry point: a key no store
			// can hold fails alone.
			if err := o.key.Validate(); err != nil {
				answers[i] = opDone{err: err}
				continue
			}
			at, exists := find(next.entries, o.key)
			var old state.Job
			if exists {
				if err := next.entries[at].unreadable; err != nil {
					// Left alone, as in the ConfigMap store, until it is
					// fixed or deleted.
					answers[i] = opDone{err: err}
					continue
				}
				old = next.jobs[at]
			}
			job, outcome := state.Apply(old, exists, o.result, o.receivedAt)
			if !outcome.Changed() {
				answers[i] = opDone{rec: state.Recorded{Job: job, Outcome: outcome}}
				continue
			}
			entry, err := newFileEntry(o.key.String(), job)
			if err != nil {
				answers[i] = opDone{err: err}
				continue
			}
			modifiable()
			if exists {
				next.entries[at], next.jobs[at] = entry, job
			} else {
				next.entries = slices.Insert(next.entries, at, entry)
				next.jobs = slices.Insert(next.jobs, at, job)
			}
			answers[i] = opDone{rec: state.Recorded{Job: job, Outcome: outcome}}
		}
	}
	if silencesChanged {
		if err := next.setSilences(next.silences); err != nil {
			// Silences that cannot be encoded: fail the operations that
			// changed them, keep the rest.
			for i, o := range batch {
				if (o.kind == opAddSilence || o.kind == opDeleteSilence) && answers[i].err == nil {
					answers[i] = opDone{err: err}
				}
			}
			next.silences, next.silencesJSON = base.silences, base.silencesJSON
			silencesChanged = false
		}
	}
	return &next, answers, jobsCopied || silencesChanged
}

// setSilences makes silences the state's, with their encoding.
func (st *fileState) setSilences(silences []api.Silence) error {
	st.silences, st.silencesJSON = silences, nil
	if len(silences) == 0 {
		return nil
	}
	out := []byte(",\n  \"silences\": [")
	for i, x := range silences {
		v, err := json.Marshal(x)
		if err != nil {
			return fmt.Errorf("encode silence %s: %w", x.ID, err)
		}
		if i > 0 {
			out = append(out, ',')
		}
		out = append(append(out, "\n    "...), v...)
	}
	st.silencesJSON = append(out, "\n  ]"...)
	return nil
}

// write replaces the file with st, and returns the file's size.
//
// The file is written as it goes, one job a line (compact JSON, no buffer
// of the whole state), so that memory does not grow with the state and an
// edit by hand or a diff touches one job's line:
//
//	{
//	  "format": "batchlatch-state",
//	  "version": 1,
//	  "jobs": {
//	    "ns.job": {"failingSince":...},
//	    ...
//	  },
//	  "silences": [
//	    {...}
//	  ]
//	}
func (s *Store) write(st *fileState) (int64, error) {
	var size int64
	err := writeFileAtomic(s.path, 0o644, func(f io.Writer) error {
		w := s.buf
		w.Reset(f)
		defer w.Reset(nil)
		n := 0
		put := func(b []byte) {
			m, _ := w.Write(b) // the error sticks; Flush returns it
			n += m
		}
		put(fileHeader)
		for i, e := range st.entries {
			if i > 0 {
				put(jobSeparator)
			} else {
				put(jobSeparator[1:])
			}
			put(e.line)
		}
		if len(st.entries) > 0 {
			put(jobsEndNonEmpty)
		} else {
			put(jobsEndEmpty)
		}
		put(st.silencesJSON)
		put(fileEnd)
		size = int64(n)
		return w.Flush()
	}, s.beforeRename)
	return size, err
}

// The fixed parts of the file.
var (
	fileHeader      = []byte(fmt.Sprintf("{\n  \"format\": %q,\n  \"version\": %d,\n  \"jobs\": {", fileFormatName, fileFormatVersion))
	jobSeparator    = []byte(",\n    ")
	jobsEndNonEmpty = []byte("\n  }")
	jobsEndEmpty    = []byte("}")
	fileEnd         = []byte("\n}\n")
)

// WriteFileAtomic replaces path with data so that a reader, or a restart
// after a crash, sees either the old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	return writeFileAtomic(path, perm, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	}, nil)
}

// writeFileAtomic replaces path with what write writes: a temporary file
// beside it, synced, then renamed over it, then the directory synced.
// beforeRename, when not nil, runs just before the rename; its error fails
// the write.
func writeFileAtomic(path string, perm os.FileMode, write func(io.Writer) error, beforeRename func() error) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if err := write(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(perm); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if beforeRename != nil {
		if err := beforeRename(); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	// The rename is durable only once the directory entry is.
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
