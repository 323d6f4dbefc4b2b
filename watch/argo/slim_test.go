package argowatch

import (
	"testing"
	"time"

	"github.com/argoproj/argo-workflows/v3/workflow/common"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
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
	want := runOf(full)
	obj, err := slimRun(full.DeepCopy())
	if err != nil {
		t.Fatal(err)
	}
	slim := obj.(*metav1.PartialObjectMetadata)
	if got := runOf(slim); got != want {
		t.Errorf("run from the slim copy %+v, from the full metadata %+v", got, want)
	}
	if slim.Namespace != "ml" || slim.Labels[common.LabelKeyCronWorkflow] != "nightly" || slim.DeletionTimestamp == nil || slim.ResourceVersion != "4711" {
		t.Errorf("slim copy lost its identity, CronWorkflow or deletion: %+v", slim.ObjectMeta)
	}
	if len(slim.Labels) != 3 || len(slim.Annotations) != 1 || slim.OwnerReferences != nil || len(slim.ManagedFields) != 1 {
		t.Errorf("slim copy keeps more than the watcher reads: %+v", slim.ObjectMeta)
	}
}
