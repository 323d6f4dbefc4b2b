package kubetest

import (
	"errors"
	"testing"

	"github.com/batchlatch/batchlatch/internal/fakelet"
)

// TestCheckWorkflowDefaults: the controller's workflowDefaults are merged
// into every Workflow, so a container without a command there is refused
// like one in a Workflow.
func TestCheckWorkflowDefaults(t *testing.T) {
	for _, tc := range []struct {
		doc     string
		wantErr error
	}{
		{"", nil},
		{"spec:\n  onExit: notify\n", nil},
		{"spec:\n  templates:\n  - name: notify\n    container: {image: busybox, command: [\"true\"]}\n", nil},
		{"spec:\n  templates:\n  - name: notify\n    container: {image: busybox}\n", fakelet.ErrNoCommand},
	} {
		err := checkWorkflowDefaults(tc.doc)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("checkWorkflowDefaults(%q) = %v, want %v", tc.doc, err, tc.wantErr)
		}
	}
	if err := checkWorkflowDefaults("spec: {templatez: []}\n"); err == nil {
		t.Error("a misspelt field passed")
	}
}
