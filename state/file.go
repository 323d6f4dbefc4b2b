package state

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/batchlatch/batchlatch/api"
)

// FileStore keeps every job in one JSON file, for local runs. Each change
// rewrites the file atomically (temp file, fsync, rename, fsync of the
// directory), so a crash leaves either the old or the new state.
type FileStore struct {
	path string

	mu   sync.Mutex // serializes writes; guards jobs
	jobs map[string]Job
}

// fileFormat is the file's content.
type fileFormat struct {
	Jobs map[string]Job `json:"jobs"`
}

// OpenFileStore loads path, or starts empty when it does not exist. A file
// that cannot be parsed is an error: it is never silently replaced.
func OpenFileStore(path string) (*FileStore, error) {
	s := &FileStore{path: path, jobs: map[string]Job{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	var f fileFormat
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("state file %s is not valid (fix or move it away): %w", path, err)
	}
	for k, j := range f.Jobs {
		key := ParseKey(k)
		j.Namespace, j.Name = key.Namespace, key.Name
		s.jobs[k] = j
	}
	return s, nil
}

// Record implements Store.
func (s *FileStore) Record(ctx context.Context, r api.Result, receivedAt time.Time) (Recorded, error) {
	if err := ctx.Err(); err != nil {
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

// Ready implements Store: the file store is ready once opened.
func (s *FileStore) Ready(context.Context) error { return nil }

// Close implements Store. Every change is already on disk.
func (s *FileStore) Close() error { return nil }

func (s *FileStore) persistLocked() error {
	data, err := json.MarshalIndent(fileFormat{Jobs: s.jobs}, "", "  ")
	if err != nil {
		return err
	}
	if err := WriteFileAtomic(s.path, data, 0o644); err != nil {
		return fmt.Errorf("%w: write state file: %v", ErrUnavailable, err)
	}
	return nil
}

// WriteFileAtomic replaces path with data so that a reader, or a restart
// after a crash, sees either the old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
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
