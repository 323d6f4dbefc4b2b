//go:build linux

package filestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/state"
)

// mountTmpfs mounts a small tmpfs on a fresh directory, as CI's root can;
// elsewhere the test is skipped.
func mountTmpfs(t *testing.T, flags uintptr, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", flags, "size="+size); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("mount tmpfs (CI runs as root): %v", err)
		}
		t.Skipf("mount tmpfs: %v (needs root)", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}

func TestStoreNotReadyOnReadOnlyFileSystem(t *testing.T) {
	ctx := context.Background()
	dir := mountTmpfs(t, unix.MS_RDONLY, "1m")
	s, err := Open(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(ctx); !errors.Is(err, state.ErrUnavailable) {
		t.Errorf("read-only: Ready = %v, want state.ErrUnavailable", err)
	}
	if _, err := s.Record(ctx, storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.At(1)); !errors.Is(err, state.ErrUnavailable) {
		t.Errorf("read-only: Record = %v, want state.ErrUnavailable", err)
	}
}

func TestStoreNotReadyOnFullFileSystem(t *testing.T) {
	ctx := context.Background()
	dir := mountTmpfs(t, 0, "512k")
	s, err := Open(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Record(ctx, storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.At(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("room left: Ready = %v", err)
	}

	filler := filepath.Join(dir, "filler")
	f, _ := os.Create(filler)
	chunk := make([]byte, 4096)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the disk: %v", err)
			}
			break
		}
	}
	f.Close()
	if err := s.Ready(ctx); !errors.Is(err, state.ErrUnavailable) {
		t.Errorf("full: Ready = %v, want state.ErrUnavailable", err)
	}
	if _, err := s.Record(ctx, storetest.Run("nightly", "b", api.PhaseFailed, 1), storetest.At(1)); !errors.Is(err, state.ErrUnavailable) {
		t.Errorf("full: Record = %v, want state.ErrUnavailable", err)
	}

	os.Remove(filler)
	if err := s.Ready(ctx); err != nil {
		t.Errorf("room again: Ready = %v", err)
	}
	if rec, err := s.Record(ctx, storetest.Run("nightly", "b", api.PhaseFailed, 1), storetest.At(1)); err != nil || rec.Job.ConsecutiveFailures != 2 {
		t.Errorf("room again: Record = %+v, %v", rec.Job, err)
	}
}

// A real write failure (the file system turned read-only under the store)
// fails every change queued meanwhile and changes nothing, in memory or on
// disk; once writable again, the store carries on from where it was.
func TestStoreFailedWritesOnReadOnlyRemount(t *testing.T) {
	ctx := context.Background()
	dir := mountTmpfs(t, 0, "4m")
	path := filepath.Join(dir, "state.json")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Record(ctx, storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.At(1)); err != nil {
		t.Fatal(err)
	}
	wantJobs, _ := s.List(ctx)
	wantFile, _ := os.ReadFile(path)

	if err := unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		t.Fatalf("remount read-only: %v", err)
	}
	errs := make(chan error, 16)
	for i := range cap(errs) {
		go func() {
			_, err := s.Record(ctx, storetest.Run(fmt.Sprintf("job%d", i%4), fmt.Sprint(i), api.PhaseFailed, 0), storetest.At(1))
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; !errors.Is(err, state.ErrUnavailable) {
			t.Errorf("record on a read-only file system: %v, want state.ErrUnavailable", err)
		}
	}
	if got, _ := s.List(ctx); fmt.Sprint(got) != fmt.Sprint(wantJobs) {
		t.Errorf("in memory after failed writes:\n%v\nwant\n%v", got, wantJobs)
	}
	if got, _ := os.ReadFile(path); string(got) != string(wantFile) {
		t.Errorf("file changed by failed writes:\n%s\nwant\n%s", got, wantFile)
	}

	if err := unix.Mount("", dir, "", unix.MS_REMOUNT, ""); err != nil {
		t.Fatalf("remount writable: %v", err)
	}
	if rec, err := s.Record(ctx, storetest.Run("nightly", "b", api.PhaseFailed, 1), storetest.At(1)); err != nil || rec.Job.ConsecutiveFailures != 2 {
		t.Fatalf("writable again: %+v, %v", rec.Job, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %v, want only the state file", entries)
	}
}
