package argowatch

import (
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/argoproj/argo-workflows/v3/workflow/common"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// The informer keeps slimRun's copy of each Workflow's metadata: the
// watcher must read the same run from it as from the full metadata, and
// find it under the same CronWorkflow.
func TestSlimRunKeepsWhatTheWatcherReads(t *testing.T) {
	created := metav1.NewTime(t0)
	deleting := metav1.NewTime(minutes(9))
	full := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{
		Name: "nightly-1795485600", Namespace: "ml", UID: types.UID("6f1c0b52-0000-4000-8000-000000000001"), ResourceVersion: "4711",
		Generation: 7, CreationTimestamp: created, DeletionTimestamp: &deleting,
		Labels: map[string]string{common.LabelKeyCronWorkflow: "nightly", common.LabelKeyPhase: "Failed", common.LabelKeyCompleted: "true",
			"workflows.argoproj.io/workflow-archiving-status": "Archived", "team": "data"},
		Annotations:     map[string]string{common.AnnotationKeyCronWfScheduledTime: t0.Format(time.RFC3339), "note": "kept elsewhere"},
		OwnerReferences: []metav1.OwnerReference{{APIVersion: "argoproj.io/v1alpha1", Kind: "CronWorkflow", Name: "nightly", UID: "u"}},
		ManagedFields: []metav1.ManagedFieldsEntry{
			{Manager: "workflow-controller", Time: &metav1.Time{Time: minutes(3)}, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:status":{}}`)}},
			{Manager: "workflow-controller", Time: &metav1.Time{Time: minutes(2)}, FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{}}`)}},
		},
	}}
	obj, err := slimRun(full.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	o, ok := obj.(*runObject)
	if !ok {
		t.Fatalf("slimRun made a %T", obj)
	}
	if want := runOf(full); o.run != want {
		t.Errorf("run from the slim copy %+v, from the full metadata %+v", o.run, want)
	}
	if !o.deleting {
		t.Error("the slim copy lost the deletion")
	}
	// client-go's cache keys it as it would the full metadata.
	if key, err := cache.MetaNamespaceKeyFunc(obj); err != nil || key != "ml/nightly-1795485600" {
		t.Errorf("key %q, %v", key, err)
	}
	if again, _ := slimRun(obj); again != obj {
		t.Error("slimRun changed an object it had made")
	}
}

// The byCron index finds a run under its CronWorkflow.
func TestRunsAreIndexedByCronWorkflow(t *testing.T) {
	w := New(nil, nil, nil, Config{MissedGrace: time.Minute}, Hooks{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	full := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Name: "nightly-1", Namespace: "ml", UID: "u1",
		Labels: map[string]string{common.LabelKeyCronWorkflow: "nightly"}}}
	obj, _ := slimRun(full)
	if err := w.runs[0].GetIndexer().Add(obj); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.runs[0].GetIndexer().ByIndex(byCron, "ml/nightly"); len(got) != 1 {
		t.Errorf("runs of ml/nightly: %v", got)
	}
}
