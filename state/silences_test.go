package state

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/kubetest"
)

// silenceAt is a silence of job from hour start to hour end.
func silenceAt(id, job string, start, end int) api.Silence {
	return api.Silence{ID: id, Namespace: "ml", Job: job, StartsAt: at(start), EndsAt: at(end), Reason: "test " + id}
}

func silenceIDs(t *testing.T, s Store) string {
	t.Helper()
	silences, err := s.Silences(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, x := range silences {
		ids = append(ids, x.ID)
	}
	return fmt.Sprint(ids)
}

// testSilences is the silence contract every store keeps: added silences
// are listed, ended ones are dropped by the next change, deleting an
// unknown one is ErrSilenceNotFound, they do not disturb the jobs, and a
// reopened store has them all.
func testSilences(t *testing.T, open func() Store) {
	ctx := context.Background()
	s := open()
	if _, err := s.Record(ctx, run("nightly", "a", api.PhaseFailed, 0), at(100)); err != nil {
		t.Fatal(err)
	}
	for _, x := range []api.Silence{silenceAt("a1", "nightly", 0, 200), silenceAt("b2", "", 0, 300), silenceAt("c3", "hourly", 0, 400)} {
		if err := s.AddSilence(ctx, x, at(100)); err != nil {
			t.Fatal(err)
		}
	}
	if got := silenceIDs(t, s); got != "[a1 b2 c3]" {
		t.Fatalf("silences %s, want [a1 b2 c3]", got)
	}
	if err := s.DeleteSilence(ctx, "b2", at(100)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSilence(ctx, "b2", at(100)); !errors.Is(err, ErrSilenceNotFound) {
		t.Fatalf("second delete: %v, want ErrSilenceNotFound", err)
	}
	// a1 has ended by hour 250: the next change drops it.
	if err := s.AddSilence(ctx, silenceAt("d4", "nightly", 250, 500), at(250)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSilence(ctx, "a1", at(250)); !errors.Is(err, ErrSilenceNotFound) {
		t.Fatalf("delete of an ended silence: %v, want ErrSilenceNotFound", err)
	}
	if got := silenceIDs(t, s); got != "[c3 d4]" {
		t.Fatalf("silences %s, want [c3 d4]", got)
	}
	if jobs, err := s.List(ctx); err != nil || len(jobs) != 1 || jobs[0].ConsecutiveFailures != 1 {
		t.Fatalf("jobs beside the silences: %v, %v", jobs, err)
	}
	s.Close()

	again := open()
	defer again.Close()
	if got := silenceIDs(t, again); got != "[c3 d4]" {
		t.Fatalf("after reopening: silences %s, want [c3 d4]", got)
	}
	if jobs, err := again.List(ctx); err != nil || len(jobs) != 1 {
		t.Fatalf("after reopening: jobs %v, %v", jobs, err)
	}
	got, _ := again.Silences(ctx)
	if want := silenceAt("d4", "nightly", 250, 500); got[1].Reason != want.Reason || !got[1].EndsAt.Equal(want.EndsAt) {
		t.Fatalf("after reopening: %+v, want %+v", got[1], want)
	}
}

func TestFileStoreSilences(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	testSilences(t, func() Store {
		s, err := OpenFileStore(path)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestConfigMapStoreSilences(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	testSilences(t, func() Store { return newConfigMapStore(t, env, ns, ConfigMapOptions{}) })
}

// At most MaxSilences in force; ended ones make room.
func TestSilencesAreBounded(t *testing.T) {
	ctx := context.Background()
	s, err := OpenFileStore(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range MaxSilences {
		if err := s.AddSilence(ctx, silenceAt(fmt.Sprintf("s%d", i), "", 0, 10+i), at(0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.AddSilence(ctx, silenceAt("over", "", 0, 100), at(0)); !errors.Is(err, ErrFull) {
		t.Fatalf("silence past the limit: %v, want ErrFull", err)
	}
	if err := s.AddSilence(ctx, silenceAt("later", "", 0, 2000), at(11)); err != nil {
		t.Fatalf("after two silences ended: %v", err)
	}
	if got, _ := s.Silences(ctx); len(got) != MaxSilences-1 {
		t.Fatalf("%d silences, want %d", len(got), MaxSilences-1)
	}
}

// InForce: started and not ended.
func TestInForce(t *testing.T) {
	all := []api.Silence{silenceAt("past", "", 0, 10), silenceAt("now", "", 5, 20), silenceAt("future", "", 15, 30)}
	for _, tc := range []struct {
		hour int
		want string
	}{{0, "[past]"}, {5, "[past now]"}, {10, "[now]"}, {15, "[now future]"}, {20, "[future]"}, {30, "[]"}} {
		var ids []string
		for _, x := range InForce(all, at(tc.hour)) {
			ids = append(ids, x.ID)
		}
		if got := fmt.Sprint(ids); got != tc.want {
			t.Errorf("hour %d: %s, want %s", tc.hour, got, tc.want)
		}
	}
}
