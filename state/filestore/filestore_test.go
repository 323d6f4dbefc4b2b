package filestore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/storetest"
	"github.com/batchlatch/batchlatch/state"
)

func TestStorePersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range storetest.ApplyInputs() {
		if _, err := s.Record(ctx, r, storetest.At(100)); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := s.List(ctx)
	s.Close()

	reopened, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := reopened.List(ctx)
	if fmt.Sprint(got) != fmt.Sprint(want) || len(got) != 2 {
		t.Fatalf("after reopen:\n%v\nwant\n%v", got, want)
	}
	j, err := reopened.Get(ctx, state.Key{Namespace: "ml", Name: "nightly"})
	if err != nil || j.ConsecutiveFailures != 2 {
		t.Fatalf("Get = %+v, %v", j, err)
	}
	if err := reopened.Delete(ctx, j.Key()); err != nil {
		t.Fatal(err)
	}
	if err := reopened.Delete(ctx, j.Key()); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("second delete: %v, want state.ErrNotFound", err)
	}
	again, _ := Open(path)
	if _, err := again.Get(ctx, j.Key()); !errors.Is(err, state.ErrNotFound) {
		t.Fatalf("deleted job back after reopen: %v", err)
	}
}

func TestStoreConcurrentRecordsLoseNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	s, _ := Open(path)
	storetest.RecordConcurrently(t, []state.Store{s}, 4, 8, 16)
	reopened, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	storetest.WantCounts(t, reopened, 4, 8)
}

func TestStoreRefusesCorruptFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	os.WriteFile(path, []byte(`{"jobs": {`), 0o644)
	if _, err := Open(path); err == nil {
		t.Fatal("corrupt file accepted")
	}
	if data, _ := os.ReadFile(path); string(data) != `{"jobs": {` {
		t.Fatalf("corrupt file was overwritten: %q", data)
	}
}

// One job's value edited by hand into JSON that is not a job fails that job
// alone, as in the ConfigMap store: the others are read and change, the
// broken key is listed by its identity with why (no readable copy is known:
// the file is read once, at start), its GET and callbacks are ErrCorrupt,
// and it is written back as it was until it is deleted.
func TestStoreKeepsTheOthersAroundAnUnreadableJob(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range storetest.ApplyInputs() {
		if _, err := s.Record(ctx, r, storetest.At(100)); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	data, _ := os.ReadFile(path)
	const edit = `"ml.nightly": {"failedRuns": "two"}`
	edited := regexp.MustCompile(`"ml\.nightly": \{.*\}`).ReplaceAllString(string(data), edit)
	if strings.Count(edited, edit) != 1 {
		t.Fatalf("the edit did not take:\n%s", edited)
	}
	os.WriteFile(path, []byte(edited), 0o644)

	s, err = Open(path)
	if err != nil {
		t.Fatalf("one unreadable job refuses the whole file: %v", err)
	}
	defer s.Close()
	nightly := state.Key{Namespace: "ml", Name: "nightly"}
	all, err := s.List(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "hourly" || all[0].Unreadable != "" ||
		all[1].Key() != nightly || !strings.Contains(all[1].Unreadable, "ml.nightly") || all[1].Failing() {
		t.Fatalf("List: %+v, %v; want hourly, and nightly by its identity marked unreadable", all, err)
	}
	if _, err := s.Get(ctx, nightly); !errors.Is(err, state.ErrCorrupt) {
		t.Fatalf("Get: %v, want ErrCorrupt", err)
	}
	if _, err := s.Record(ctx, storetest.Run("nightly", "c", api.PhaseFailed, 3), storetest.At(100)); !errors.Is(err, state.ErrCorrupt) {
		t.Fatalf("Record of the unreadable job: %v, want ErrCorrupt", err)
	}
	if _, err := s.Record(ctx, storetest.Run("hourly", "h2", api.PhaseFailed, 3), storetest.At(100)); err != nil {
		t.Fatalf("other jobs must keep working: %v", err)
	}
	if data, _ := os.ReadFile(path); !strings.Contains(string(data), edit) {
		t.Fatalf("the unreadable value was not written back as it was:\n%s", data)
	}
	if err := s.Delete(ctx, nightly); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if all, _ := s.List(ctx); len(all) != 1 || all[0].ConsecutiveFailures != 1 {
		t.Fatalf("after the delete and a reopen: %+v", all)
	}
}

func TestStoreWriteFailureChangesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, _ := Open(filepath.Join(dir, "missing-dir", "state.json"))
	_, err := s.Record(ctx, storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.At(1))
	if !errors.Is(err, state.ErrUnavailable) {
		t.Fatalf("Record into a missing directory: %v, want state.ErrUnavailable", err)
	}
	if jobs, _ := s.List(ctx); len(jobs) != 0 {
		t.Fatalf("failed write left %d jobs in memory", len(jobs))
	}
}

func TestStoreRefusesForeignFiles(t *testing.T) {
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
		if _, err := Open(path); err == nil {
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
func TestStoreReadsLegacyFile(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	legacy := `{"jobs":{"ml.nightly":{"failingSince":"2026-11-24T02:00:00Z","failedRuns":1,"lastAt":"2026-11-24T02:00:00Z","workflow":"nightly-a","uid":"a","phase":"Failed","runs":["x"]}}}`
	os.WriteFile(path, []byte(legacy), 0o644)
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if j, err := s.Get(ctx, state.Key{Namespace: "ml", Name: "nightly"}); err != nil || j.ConsecutiveFailures != 1 {
		t.Fatalf("legacy job: %+v, %v", j, err)
	}
	if _, err := s.Record(ctx, storetest.Run("nightly", "b", api.PhaseFailed, 1), storetest.At(2)); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `"format": "batchlatch-state"`) || !strings.Contains(string(data), `"version": 1`) {
		t.Fatalf("rewritten without the format marker:\n%s", data)
	}
	if _, err := Open(path); err != nil {
		t.Fatalf("reopen: %v", err)
	}
}

func TestStoreRemovesTemporaryFilesLeftByACrash(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	leftovers := []string{".state.json.tmp-123", ".state.json.tmp-abc"}
	for _, name := range leftovers {
		os.WriteFile(filepath.Join(dir, name), make([]byte, 300<<10), 0o644)
	}
	other := filepath.Join(dir, ".other.json.tmp-1") // not ours
	os.WriteFile(other, []byte("x"), 0o644)
	if _, err := Open(path); err != nil {
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

func TestStoreNotReadyWhereWritesFail(t *testing.T) {
	ctx := context.Background()
	missing, _ := Open(filepath.Join(t.TempDir(), "missing-dir", "state.json"))
	if err := missing.Ready(ctx); !errors.Is(err, state.ErrUnavailable) {
		t.Errorf("directory missing: Ready = %v, want state.ErrUnavailable", err)
	}

	ok, _ := Open(filepath.Join(t.TempDir(), "state.json"))
	if err := ok.Ready(ctx); err != nil {
		t.Errorf("writable directory: Ready = %v", err)
	}
}

// An identity no store can hold is bad input, whatever the store.
func TestStoreRefusesKeysNoStoreCanHold(t *testing.T) {
	s, _ := Open(filepath.Join(t.TempDir(), "state.json"))
	r := storetest.Run(strings.Repeat("j", 251), "a", api.PhaseFailed, 0)
	_, err := s.Record(context.Background(), r, storetest.At(1))
	var fe *api.FieldError
	if !errors.As(err, &fe) || fe.Field != "job" {
		t.Fatalf("Record = %v, want a FieldError naming the job", err)
	}
}

// writeGate holds each of a store's writes just before its rename, until
// the test lets it go on (nil) or fail (an error). When the test ends, the
// writes still held, and later ones, go on.
type writeGate struct {
	entered  chan struct{} // a write is waiting
	proceed  chan error
	released chan struct{}
}

// gateWrites gates s's writes. Open s with openTestStore, so that the gate
// is released before s is closed.
func gateWrites(t *testing.T, s *Store) *writeGate {
	g := &writeGate{entered: make(chan struct{}, 16), proceed: make(chan error), released: make(chan struct{})}
	s.beforeRename = func() error {
		select {
		case g.entered <- struct{}{}:
		case <-g.released:
			return nil
		}
		select {
		case err := <-g.proceed:
			return err
		case <-g.released:
			return nil
		}
	}
	t.Cleanup(func() { close(g.released) })
	return g
}

// openTestStore opens a store that is closed when the test ends.
func openTestStore(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitWrite waits until a write is held.
func (g *writeGate) waitWrite(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(time.Minute):
		t.Fatal("no write reached the rename")
	}
}

// waitQueued waits until n operations wait in s's queue.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for len(s.ops) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d operations queued, want %d", len(s.ops), n)
		}
		time.Sleep(time.Millisecond)
	}
}

type recordAnswer struct {
	rec state.Recorded
	err error
}

// recordAsync records r in the background; the answer comes on the channel.
func recordAsync(ctx context.Context, s state.Store, r api.Result) <-chan recordAnswer {
	out := make(chan recordAnswer, 1)
	go func() {
		rec, err := s.Record(ctx, r, storetest.At(1))
		out <- recordAnswer{rec, err}
	}()
	return out
}

func answerOf(t *testing.T, c <-chan recordAnswer) recordAnswer {
	t.Helper()
	select {
	case a := <-c:
		return a
	case <-time.After(time.Minute):
		t.Fatal("no answer")
		return recordAnswer{}
	}
}

// noAnswerYet fails if c has an answer.
func noAnswerYet(t *testing.T, c <-chan recordAnswer, what string) {
	t.Helper()
	select {
	case a := <-c:
		t.Fatalf("%s answered before its write: %+v", what, a)
	case <-time.After(20 * time.Millisecond):
	}
}

// 64 clients at once: every callback counts once, in memory and in the file,
// and they share writes.
func TestStoreGroupCommitLosesNothing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	s.beforeRename = func() error { writes.Add(1); return nil }
	const jobs, runs, clients = 16, 40, 64
	storetest.RecordConcurrently(t, []state.Store{s}, jobs, runs, clients)
	storetest.WantCounts(t, s, jobs, runs)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	reopened, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	storetest.WantCounts(t, reopened, jobs, runs)
	if n := writes.Load(); n > jobs*runs/2 {
		t.Errorf("%d writes for %d callbacks: not grouped", n, jobs*runs)
	}
	t.Logf("%d callbacks in %d writes", jobs*runs, writes.Load())
}

// A bad operation in a batch fails alone: the others are written, in one
// write.
func TestStoreBadOperationFailsAlone(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	s := openTestStore(t, path)
	gate := gateWrites(t, s)

	first := recordAsync(ctx, s, storetest.Run("first", "a", api.PhaseFailed, 0))
	gate.waitWrite(t) // the writer is busy: what follows queues up
	good1 := recordAsync(ctx, s, storetest.Run("nightly", "a", api.PhaseFailed, 0))
	waitQueued(t, s, 1)
	bad := recordAsync(ctx, s, storetest.Run(strings.Repeat("j", 251), "a", api.PhaseFailed, 0))
	waitQueued(t, s, 2)
	missing := make(chan error, 1)
	go func() { missing <- s.Delete(ctx, state.Key{Namespace: "ml", Name: "never-seen"}) }()
	waitQueued(t, s, 3)
	good2 := recordAsync(ctx, s, storetest.Run("hourly", "h", api.PhaseFailed, 0))
	waitQueued(t, s, 4)

	gate.proceed <- nil // first's write
	if a := answerOf(t, first); a.err != nil {
		t.Fatal(a.err)
	}
	select { // one write for the four
	case <-gate.entered:
	case a := <-good1:
		t.Fatalf("a good record of the batch answered without a write: %+v, %v", a.rec.Job, a.err)
	case <-time.After(time.Minute):
		t.Fatal("no write for the batch")
	}
	noAnswerYet(t, good1, "a good record")
	gate.proceed <- nil
	for _, c := range []<-chan recordAnswer{good1, good2} {
		if a := answerOf(t, c); a.err != nil || a.rec.Job.ConsecutiveFailures != 1 {
			t.Errorf("good record in the batch: %+v, %v", a.rec.Job, a.err)
		}
	}
	var fe *api.FieldError
	if a := answerOf(t, bad); !errors.As(a.err, &fe) {
		t.Errorf("bad record: %v, want a FieldError", a.err)
	}
	if err := <-missing; !errors.Is(err, state.ErrNotFound) {
		t.Errorf("delete of a missing job: %v, want state.ErrNotFound", err)
	}
	select {
	case <-gate.entered:
		t.Fatal("the batch took more than one write")
	default:
	}

	s.beforeRename = nil
	reopened, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	got, _ := reopened.List(ctx)
	if len(got) != 3 {
		t.Fatalf("file holds %v, want first, hourly and nightly", got)
	}
}

// A failed write fails every operation of its batch and changes nothing, in
// memory or on disk.
func TestStoreFailedWriteFailsTheBatch(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	s := openTestStore(t, path)
	if _, err := s.Record(ctx, storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.At(1)); err != nil {
		t.Fatal(err)
	}
	if err := s.AddSilence(ctx, storetest.SilenceAt("s1", "nightly", 0, 100), storetest.At(0)); err != nil {
		t.Fatal(err)
	}
	wantJobs, _ := s.List(ctx)
	wantSilences, _ := s.Silences(ctx)
	wantFile, _ := os.ReadFile(path)

	gate := gateWrites(t, s)
	held := recordAsync(ctx, s, storetest.Run("held", "a", api.PhaseFailed, 0))
	gate.waitWrite(t)
	batch := []<-chan recordAnswer{
		recordAsync(ctx, s, storetest.Run("nightly", "b", api.PhaseFailed, 1)),
		recordAsync(ctx, s, storetest.Run("hourly", "h", api.PhaseFailed, 0)),
	}
	waitQueued(t, s, 2)
	silenced := make(chan error, 1)
	go func() { silenced <- s.AddSilence(ctx, storetest.SilenceAt("s2", "hourly", 0, 100), storetest.At(0)) }()
	waitQueued(t, s, 3)
	gate.proceed <- errors.New("injected: disk gone")
	if a := answerOf(t, held); !errors.Is(a.err, state.ErrUnavailable) {
		t.Fatalf("held write: %v, want state.ErrUnavailable", a.err)
	}
	gate.waitWrite(t)
	gate.proceed <- errors.New("injected: disk gone")
	for _, c := range batch {
		if a := answerOf(t, c); !errors.Is(a.err, state.ErrUnavailable) || !strings.Contains(a.err.Error(), "disk gone") {
			t.Errorf("record in a failed batch: %v, want state.ErrUnavailable", a.err)
		}
	}
	if err := <-silenced; !errors.Is(err, state.ErrUnavailable) {
		t.Errorf("silence in a failed batch: %v, want state.ErrUnavailable", err)
	}

	if got, _ := s.List(ctx); fmt.Sprint(got) != fmt.Sprint(wantJobs) {
		t.Errorf("in memory after failed writes:\n%v\nwant\n%v", got, wantJobs)
	}
	if got, _ := s.Silences(ctx); fmt.Sprint(got) != fmt.Sprint(wantSilences) {
		t.Errorf("silences after failed writes: %v, want %v", got, wantSilences)
	}
	if got, _ := os.ReadFile(path); string(got) != string(wantFile) {
		t.Errorf("file changed by failed writes:\n%s\nwant\n%s", got, wantFile)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, tempPattern(path))); len(left) > 0 {
		t.Errorf("failed writes left %v", left)
	}

	// The next write carries on from the state before the failures.
	next := recordAsync(ctx, s, storetest.Run("nightly", "b", api.PhaseFailed, 1))
	gate.waitWrite(t)
	gate.proceed <- nil
	if a := answerOf(t, next); a.err != nil || a.rec.Job.ConsecutiveFailures != 2 {
		t.Fatalf("after the failures: %+v, %v", a.rec.Job, a.err)
	}
}

// Reads answer while a write is in progress, with the state before it: a
// change is seen once it is durable, not before.
func TestStoreReadsDoNotWaitForWrites(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "state.json"))
	if _, err := s.Record(ctx, storetest.Run("hourly", "h", api.PhaseFailed, 0), storetest.At(1)); err != nil {
		t.Fatal(err)
	}
	gate := gateWrites(t, s)
	held := recordAsync(ctx, s, storetest.Run("nightly", "a", api.PhaseFailed, 0))
	gate.waitWrite(t)

	read := make(chan string, 1)
	go func() {
		jobs, err := s.List(ctx)
		_, getErr := s.Get(ctx, state.Key{Namespace: "ml", Name: "nightly"})
		hourly, _ := s.Get(ctx, state.Key{Namespace: "ml", Name: "hourly"})
		silences, _ := s.Silences(ctx)
		read <- fmt.Sprintf("%d jobs %v, nightly: %v, hourly: %d, silences: %d", len(jobs), err, getErr, hourly.ConsecutiveFailures, len(silences))
	}()
	select {
	case got := <-read:
		if want := fmt.Sprintf("1 jobs <nil>, nightly: %v, hourly: 1, silences: 0", state.ErrNotFound); got != want {
			t.Errorf("reads during the write: %s, want %s", got, want)
		}
	case <-time.After(time.Minute):
		t.Fatal("reads wait for the write in progress")
	}
	noAnswerYet(t, held, "the held record")
	gate.proceed <- nil
	if a := answerOf(t, held); a.err != nil {
		t.Fatal(a.err)
	}
	if _, err := s.Get(ctx, state.Key{Namespace: "ml", Name: "nightly"}); err != nil {
		t.Errorf("after the write: %v", err)
	}
}

// A caller that gives up while its operation waits in the queue gets its
// context's error, and the operation is dropped; once taken, an operation is
// carried out and its outcome is the answer.
func TestStoreContextCountsUntilTaken(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	s := openTestStore(t, path)
	gate := gateWrites(t, s)

	takenCtx, cancelTaken := context.WithCancel(ctx)
	taken := recordAsync(takenCtx, s, storetest.Run("taken", "a", api.PhaseFailed, 0))
	gate.waitWrite(t)
	queuedCtx, cancelQueued := context.WithCancel(ctx)
	queued := recordAsync(queuedCtx, s, storetest.Run("queued", "a", api.PhaseFailed, 0))
	waitQueued(t, s, 1)

	cancelQueued()
	if a := answerOf(t, queued); !errors.Is(a.err, context.Canceled) {
		t.Fatalf("cancelled in the queue: %v, want context.Canceled", a.err)
	}
	cancelTaken()
	noAnswerYet(t, taken, "a record being written")
	gate.proceed <- nil
	if a := answerOf(t, taken); a.err != nil || a.rec.Job.ConsecutiveFailures != 1 {
		t.Fatalf("cancelled while written: %+v, %v; want its outcome", a.rec.Job, a.err)
	}

	// The writer drops the abandoned operation: nothing more to write.
	select {
	case <-gate.entered:
		t.Fatal("the abandoned operation was written")
	case <-time.After(50 * time.Millisecond):
	}
	if _, err := s.Get(ctx, state.Key{Namespace: "ml", Name: "queued"}); !errors.Is(err, state.ErrNotFound) {
		t.Errorf("abandoned record applied: %v", err)
	}
	if data, _ := os.ReadFile(path); strings.Contains(string(data), "queued") {
		t.Errorf("abandoned record in the file:\n%s", data)
	}
}

// Close carries out what was queued before it, then refuses changes; reads
// still answer.
func TestStoreCloseDrainsTheQueue(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	s := openTestStore(t, path)
	gate := gateWrites(t, s)
	held := recordAsync(ctx, s, storetest.Run("held", "a", api.PhaseFailed, 0))
	gate.waitWrite(t)
	var queued []<-chan recordAnswer
	for i := range 5 {
		queued = append(queued, recordAsync(ctx, s, storetest.Run(fmt.Sprintf("job%d", i), "a", api.PhaseFailed, 0)))
		waitQueued(t, s, i+1)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for !func() bool { s.closeMu.RLock(); defer s.closeMu.RUnlock(); return s.closed }() {
		time.Sleep(time.Millisecond)
	}
	if _, err := s.Record(ctx, storetest.Run("late", "a", api.PhaseFailed, 0), storetest.At(1)); !errors.Is(err, state.ErrUnavailable) {
		t.Errorf("record after Close: %v, want state.ErrUnavailable", err)
	}
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) before the queue was carried out", err)
	case <-time.After(20 * time.Millisecond):
	}
	gate.proceed <- nil
	gate.waitWrite(t)
	gate.proceed <- nil
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for _, c := range append(queued, held) {
		if a := answerOf(t, c); a.err != nil {
			t.Errorf("queued before Close: %v", a.err)
		}
	}
	if jobs, _ := s.List(ctx); len(jobs) != 6 {
		t.Errorf("List after Close: %d jobs, want 6", len(jobs))
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	reopened, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if jobs, _ := reopened.List(ctx); len(jobs) != 6 {
		t.Errorf("file after Close: %d jobs, want 6", len(jobs))
	}
}

// The file holds one job a line, compact, in List's order, and reads back
// the same, silences included.
func TestStoreFileLayout(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "state.json")
	s, _ := Open(path)
	defer s.Close()
	if err := s.AddSilence(ctx, storetest.SilenceAt("s1", "nightly", 0, 100), storetest.At(0)); err != nil {
		t.Fatal(err)
	}
	for _, r := range append(storetest.ApplyInputs(), storetest.Run("zeta", "z", api.PhaseFailed, 0), storetest.Run("alpha", "a", api.PhaseFailed, 0)) {
		if _, err := s.Record(ctx, r, storetest.At(100)); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(path)
	lines := strings.Split(string(data), "\n")
	wantPrefixes := []string{`{`, `  "format": "batchlatch-state",`, `  "version": 1,`, `  "jobs": {`,
		`    "ml.alpha": {"failingSince":`, `    "ml.hourly": {`, `    "ml.nightly": {`, `    "ml.zeta": {`,
		`  },`, `  "silences": [`, `    {"id":"s1",`, `  ]`, `}`, ``}
	if len(lines) != len(wantPrefixes) {
		t.Fatalf("file:\n%s", data)
	}
	for i, want := range wantPrefixes {
		if !strings.HasPrefix(lines[i], want) {
			t.Errorf("line %d: %q, want it to start with %q", i+1, lines[i], want)
		}
	}
	jobs, silences, err := decodeStateFile(data)
	if err != nil || len(jobs) != 4 || len(silences) != 1 {
		t.Fatalf("decode: %d jobs, %d silences, %v", len(jobs), len(silences), err)
	}
	want, _ := s.List(ctx)
	s.Close()
	reopened, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer reopened.Close()
	if got, _ := reopened.List(ctx); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reopened:\n%v\nwant\n%v", got, want)
	}

	// Emptied, it is still the format.
	for _, j := range want {
		if err := reopened.Delete(ctx, j.Key()); err != nil {
			t.Fatal(err)
		}
	}
	if err := reopened.DeleteSilence(ctx, "s1", storetest.At(1)); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(path)
	if want := "{\n  \"format\": \"batchlatch-state\",\n  \"version\": 1,\n  \"jobs\": {}\n}\n"; string(data) != want {
		t.Errorf("empty state:\n%s\nwant\n%s", data, want)
	}
}

// OnFileWrite makes s call f at each write of its file, before the rename;
// for benchmarks in package state_test.
func OnFileWrite(s *Store, f func()) {
	s.beforeRename = func() error { f(); return nil }
}

func TestStoreSilences(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	storetest.Silences(t, func() state.Store {
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestStoreForget(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	storetest.Forget(t, func() state.Store {
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

// At most state.MaxSilences in force; ended ones make room.
func TestSilencesAreBounded(t *testing.T) {
	ctx := context.Background()
	s, err := Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range state.MaxSilences {
		if err := s.AddSilence(ctx, storetest.SilenceAt(fmt.Sprintf("s%d", i), "", 0, 10+i), storetest.At(0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddSilence(ctx, storetest.SilenceAt("over", "", 0, 100), storetest.At(0)); !errors.Is(err, state.ErrFull) {
		t.Fatalf("silence past the limit: %v, want state.ErrFull", err)
	}
	if err := s.AddSilence(ctx, storetest.SilenceAt("later", "", 0, 2000), storetest.At(11)); err != nil {
		t.Fatalf("after two silences ended: %v", err)
	}
	if got, _ := s.Silences(ctx); len(got) != state.MaxSilences-1 {
		t.Fatalf("%d silences, want %d", len(got), state.MaxSilences-1)
	}
}

func TestStoreHistory(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	// Only one process may use a state file: no replica.
	storetest.History(t, func() state.Store {
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, nil)
}

func TestStoreLate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	storetest.Late(t, func() state.Store {
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, nil)
}

func TestStoreHistoryMigration(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	storetest.Migration(t, func() state.Store {
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, func(key, value string) {
		k, _ := json.Marshal(key)
		if err := os.WriteFile(path, []byte(`{"format":"batchlatch-state","version":1,"jobs":{`+string(k)+`:`+value+`}}`), 0o644); err != nil {
			t.Fatal(err)
		}
	})
}

// List lends the snapshot's jobs: reads share one slice, and a later write
// makes a new one, never changing what an earlier List returned.
func TestStoreListLendsAnUnchangingSnapshot(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "state.json"))
	for _, r := range []api.Result{storetest.Run("nightly", "a", api.PhaseFailed, 0), storetest.Run("hourly", "h", api.PhaseFailed, 0)} {
		if _, err := s.Record(ctx, r, storetest.At(1)); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := s.List(ctx)
	again, _ := s.List(ctx)
	if len(before) != 2 || &before[0] != &again[0] {
		t.Fatalf("two lists without a write between: %d jobs, shared %v; want 2, shared", len(before), &before[0] == &again[0])
	}
	kept := before[1]
	if kept.Name != "nightly" || kept.ConsecutiveFailures != 1 {
		t.Fatalf("listed %s with %d failures", kept.Name, kept.ConsecutiveFailures)
	}
	if _, err := s.Record(ctx, storetest.Run("nightly", "b", api.PhaseFailed, 1), storetest.At(2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, kept.Key()); err != nil {
		t.Fatal(err)
	}
	if len(before) != 2 || before[1].Name != "nightly" || before[1].ConsecutiveFailures != 1 {
		t.Errorf("a write changed a list returned before it: %s with %d failures", before[1].Name, before[1].ConsecutiveFailures)
	}
	if after, _ := s.List(ctx); len(after) != 1 || after[0].Name != "hourly" {
		t.Errorf("after the delete: %d jobs, want hourly alone", len(after))
	}
}
