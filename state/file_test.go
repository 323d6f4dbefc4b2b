package state

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/batchlatch/batchlatch/api"
)

func TestFileStorePersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range applyInputs() {
		if _, err := s.Record(ctx, r, at(100)); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := s.List(ctx)
	s.Close()

	reopened, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := reopened.List(ctx)
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 2 {
		t.Fatalf("after reopen:\n%v\nwant\n%v", got, want)
	}
	j, err := reopened.Get(ctx, Key{Namespace: "ml", Name: "nightly"})
	if err != nil || j.ConsecutiveFailures != 2 {
		t.Fatalf("Get = %+v, %v", j, err)
	}
	if err := reopened.Delete(ctx, j.Key()); err != nil {
		t.Fatal(err)
	}
	if err := reopened.Delete(ctx, j.Key()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v, want ErrNotFound", err)
	}
	again, _ := OpenFileStore(path)
	if _, err := again.Get(ctx, j.Key()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted job back after reopen: %v", err)
	}
}

func applyInputs() []api.Result {
	return []api.Result{
		run("nightly", "a", api.PhaseFailed, 0),
		run("nightly", "b", api.PhaseFailed, 1),
		run("hourly", "h", api.PhaseSucceeded, 1),
	}
}

func TestFileStoreConcurrentRecordsLoseNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	s, _ := OpenFileStore(path)
	recordConcurrently(t, []Store{s}, 4, 8, 16)
	reopened, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	wantCounts(t, reopened, 4, 8)
}

func TestFileStoreRefusesCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	os.WriteFile(path, []byte(`{"jobs": {`), 0o644)
	if _, err := OpenFileStore(path); err == nil {
		t.Fatal("corrupt file accepted")
	}
	if data, _ := os.ReadFile(path); string(data) != `{"jobs": {` {
		t.Fatalf("corrupt file was overwritten: %q", data)
	}
}

func TestFileStoreWriteFailureChangesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := OpenFileStore(filepath.Join(dir, "missing-dir", "state.json"))
	_, err := s.Record(ctx, run("nightly", "a", api.PhaseFailed, 0), at(1))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Record into a missing directory: %v, want ErrUnavailable", err)
	}
	if jobs, _ := s.List(ctx); len(jobs) != 0 {
		t.Fatalf("failed write left %d jobs in memory", len(jobs))
	}
}

func TestFileStoreRefusesForeignFiles(t *testing.T) {
	for _, content := range []string{
		`{"name":"my-app"}`,
		`null`,
		`[]`,
		`"jobs"`,
		`{}`,
		``,
		`{"jobs":{},"name":"my-app"}`,
		`{"jobs":null}`,
		`{"format":"something-else","version":1,"jobs":{}}`,
		`{"format":"batchlatch-state","version":2,"jobs":{}}`,
	} {
		path := filepath.Join(t.TempDir(), "state.json")
		os.WriteFile(path, []byte(content), 0o644)
		if _, err := OpenFileStore(path); err == nil {
			t.Errorf("%q taken for state", content)
		} else if !strings.Contains(err.Error(), path) {
			t.Errorf("%q: error does not name the file: %v", content, err)
		}
		if data, _ := os.ReadFile(path); string(data) != content {
			t.Errorf("%q was changed to %q", content, data)
		}
	}
}

// Files written before the format marker are read, and get it on the next
// write.
func TestFileStoreReadsLegacyFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	legacy := `{"jobs":{"ml.nightly":{"failingSince":"2026-11-24T02:00:00Z","failedRuns":1,"lastAt":"2026-11-24T02:00:00Z","workflow":"nightly-a","uid":"a","phase":"Failed","runs":["x"]}}}`
	os.WriteFile(path, []byte(legacy), 0o644)
	s, err := OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	if j, err := s.Get(ctx, Key{Namespace: "ml", Name: "nightly"}); err != nil || j.ConsecutiveFailures != 1 {
		t.Fatalf("legacy job: %+v, %v", j, err)
	}
	if _, err := s.Record(ctx, run("nightly", "b", api.PhaseFailed, 1), at(2)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `"format": "batchlatch-state"`) || !strings.Contains(string(data), `"version": 1`) {
		t.Fatalf("rewritten without the format marker:\n%s", data)
	}
	if _, err := OpenFileStore(path); err != nil {
		t.Fatalf("reopen: %v", err)
	}
}

func TestFileStoreRemovesTemporaryFilesLeftByACrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	leftovers := []string{".state.json.tmp-123", ".state.json.tmp-abc"}
	for _, name := range leftovers {
		os.WriteFile(filepath.Join(dir, name), make([]byte, 300<<10), 0o644)
	}
	other := filepath.Join(dir, ".other.json.tmp-1") // not ours
	os.WriteFile(other, []byte("x"), 0o644)
	if _, err := OpenFileStore(path); err != nil {
		t.Fatal(err)
	}
	for _, name := range leftovers {
		if _, err := os.Stat(filepath.Join(dir, name)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s left behind: %v", name, err)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("another file's temporary file was removed: %v", err)
	}
}

func TestFileStoreNotReadyWhereWritesFail(t *testing.T) {
	ctx := context.Background()
	missing, _ := OpenFileStore(filepath.Join(t.TempDir(), "missing-dir", "state.json"))
	if err := missing.Ready(ctx); !errors.Is(err, ErrUnavailable) {
		t.Errorf("directory missing: Ready = %v, want ErrUnavailable", err)
	}

	ok, _ := OpenFileStore(filepath.Join(t.TempDir(), "state.json"))
	if err := ok.Ready(ctx); err != nil {
		t.Errorf("writable directory: Ready = %v", err)
	}
}

// An identity no store can hold is bad input, whatever the store.
func TestFileStoreRefusesKeysNoStoreCanHold(t *testing.T) {
	s, _ := OpenFileStore(filepath.Join(t.TempDir(), "state.json"))
	r := run(strings.Repeat("j", 251), "a", api.PhaseFailed, 0)
	_, err := s.Record(context.Background(), r, at(1))
	var fe *api.FieldError
	if !errors.As(err, &fe) || fe.Field != "job" {
		t.Fatalf("Record = %v, want a FieldError naming the job", err)
	}
}
