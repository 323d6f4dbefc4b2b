package state

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"

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
		run("nightly", "a", wfv1.WorkflowFailed, 0),
		run("nightly", "b", wfv1.WorkflowFailed, 1),
		run("hourly", "h", wfv1.WorkflowSucceeded, 1),
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
	_, err := s.Record(ctx, run("nightly", "a", wfv1.WorkflowFailed, 0), at(1))
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Record into a missing directory: %v, want ErrUnavailable", err)
	}
	if jobs, _ := s.List(ctx); len(jobs) != 0 {
		t.Fatalf("failed write left %d jobs in memory", len(jobs))
	}
}
