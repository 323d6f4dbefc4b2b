package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/batchlatch/batchlatch/api"
)

// FileStore keeps every job in one JSON file, for local runs. Each change
// rewrites the file atomically (temp file, fsync, rename, fsync of the
// directory), so a crash leaves either the old or the new state.
type FileStore struct {
	path string

	mu        sync.Mutex // serializes writes; guards the fields below
	jobs      map[string]Job
	silences  []api.Silence
	savedSize int // bytes of the last file written or read
}

// The file's format marker: a file that lacks it is not batchlatch's state
// and is never taken for empty state (and overwritten).
const (
	fileFormatName    = "batchlatch-state"
	fileFormatVersion = 1
)

// fileFormat is the file's content.
type fileFormat struct {
	Format  string         `json:"format"`
	Version int            `json:"version"`
	Jobs    map[string]Job `json:"jobs"`
	// Silences are kept with the state, as durably.
	Silences []api.Silence `json:"silences,omitempty"`
}

// legacyFileFormat is what releases before the format marker wrote; such a
// file is read as is and written with the marker on the next change.
type legacyFileFormat struct {
	Jobs map[string]Job `json:"jobs"`
}

// OpenFileStore loads path, or starts empty when it does not exist. A file
// that is not batchlatch's state, or cannot be parsed, is an error: it is
// never silently replaced. Temporary files that a crash mid-write left
// beside it are removed.
func OpenFileStore(path string) (*FileStore, error) {
	s := &FileStore{path: path, jobs: map[string]Job{}}
	if err := removeTempFiles(path); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	jobs, silences, err := decodeStateFile(data)
	if err != nil {
		return nil, fmt.Errorf("state file %s: %w (fix it, or move it away to start empty)", path, err)
	}
	for k, j := range jobs {
		key := ParseKey(k)
		j.Namespace, j.Name, j.Kind = key.Namespace, key.Name, key.Kind
		s.jobs[k] = j
	}
	s.silences = silences
	s.savedSize = len(data)
	return s, nil
}

// decodeStateFile reads the file's jobs, refusing anything that is not
// batchlatch's state in a format this version knows.
func decodeStateFile(data []byte) (map[string]Job, []api.Silence, error) {
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
		f.Jobs = map[string]Job{}
	}
	return f.Jobs, f.Silences, nil
}

// tempPattern names the temporary files WriteFileAtomic makes beside path.
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

// Record implements Store.
func (s *FileStore) Record(ctx context.Context, r api.Result, receivedAt time.Time) (Recorded, error) {
	if err := ctx.Err(); err != nil {
		return Recorded{}, err
	}
	if err := KeyOf(r).Validate(); err != nil {
		return Recorded{}, err
	}
	key := KeyOf(r).String()
	s.mu.Lock()
	defer s.mu.Unlock()
	old, existing := s.jobs[key]
	job, outcome := Apply(old, existing, r, receivedAt)
	if !outcome.Changed() {
		return Recorded{Job: job, Outcome: outcome}, nil
	}
	s.jobs[key] = job
	if err := s.persistLocked(); err != nil {
		if existing {
			s.jobs[key] = old
		} else {
			delete(s.jobs, key)
		}
		return Recorded{}, err
	}
	return Recorded{Job: job, Outcome: outcome}, nil
}

// Get implements Store.
func (s *FileStore) Get(_ context.Context, key Key) (Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j, ok := s.jobs[key.String()]
	if !ok {
		return Job{}, ErrNotFound
	}
	return j, nil
}

// List implements Store.
func (s *FileStore) List(context.Context) ([]Job, error) {
	s.mu.Lock()
	jobs := make([]Job, 0, len(s.jobs))
	for _, j := range s.jobs {
		jobs = append(jobs, j)
	}
	s.mu.Unlock()
	SortByKey(jobs)
	return jobs, nil
}

// Delete implements Store.
func (s *FileStore) Delete(_ context.Context, key Key) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.jobs[key.String()]
	if !ok {
		return ErrNotFound
	}
	delete(s.jobs, key.String())
	if err := s.persistLocked(); err != nil {
		s.jobs[key.String()] = old
		return err
	}
	return nil
}

// AddSilence implements Store.
func (s *FileStore) AddSilence(ctx context.Context, silence api.Silence, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.silences
	next, err := addSilence(old, silence, now)
	if err != nil {
		return err
	}
	s.silences = next
	if err := s.persistLocked(); err != nil {
		s.silences = old
		return err
	}
	return nil
}

// DeleteSilence implements Store.
func (s *FileStore) DeleteSilence(ctx context.Context, id string, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.silences
	next, err := deleteSilence(old, id, now)
	if err != nil {
		return err
	}
	s.silences = next
	if err := s.persistLocked(); err != nil {
		s.silences = old
		return err
	}
	return nil
}

// Silences implements Store.
func (s *FileStore) Silences(context.Context) ([]api.Silence, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.silences), nil
}

// Ready implements Store: ready means a write can succeed now, so it probes
// the directory (a file can be made there) and the free space (room for
// another copy of the state and a callback's growth).
func (s *FileStore) Ready(context.Context) error {
	dir := filepath.Dir(s.path)
	probe, err := os.CreateTemp(dir, tempPattern(s.path))
	if err != nil {
		return fmt.Errorf("%w: state directory %s is not writable: %v", ErrUnavailable, dir, err)
	}
	name := probe.Name()
	probe.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("%w: state directory %s: %v", ErrUnavailable, dir, err)
	}
	s.mu.Lock()
	need := uint64(s.savedSize) + readyHeadroom
	s.mu.Unlock()
	if free, ok := freeBytes(dir); ok && free < need {
		return fmt.Errorf("%w: state directory %s has %d bytes free, a write needs %d", ErrUnavailable, dir, free, need)
	}
	return nil
}

// readyHeadroom is the room a write needs beyond the current file's size:
// a callback grows the state by a few KiB at most.
const readyHeadroom = 64 << 10

// Close implements Store. Every change is already on disk.
func (s *FileStore) Close() error { return nil }

func (s *FileStore) persistLocked() error {
	data, err := json.MarshalIndent(fileFormat{Format: fileFormatName, Version: fileFormatVersion, Jobs: s.jobs, Silences: s.silences}, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(s.path, data, 0o644); err != nil {
		return fmt.Errorf("%w: write state file: %v", ErrUnavailable, err)
	}
	s.savedSize = len(data)
	return nil
}

// WriteFileAtomic replaces path with data so that a reader, or a restart
// after a crash, sees either the old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, tempPattern(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(data); err != nil {
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
