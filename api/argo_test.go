package api_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/workflow/common"

	"github.com/batchlatch/batchlatch/api"
)

// api names Argo's phases and labels without importing Argo: they must be
// Argo's own.
func TestConstantsAreArgos(t *testing.T) {
	for _, c := range []struct{ ours, argos string }{
		{string(api.PhaseSucceeded), string(wfv1.WorkflowSucceeded)},
		{string(api.PhaseFailed), string(wfv1.WorkflowFailed)},
		{string(api.PhaseError), string(wfv1.WorkflowError)},
		{api.LabelCronWorkflow, common.LabelKeyCronWorkflow},
		{api.LabelWorkflowTemplate, common.LabelKeyWorkflowTemplate},
		{api.LabelClusterWorkflowTemplate, common.LabelKeyClusterWorkflowTemplate},
	} {
		if c.ours != c.argos {
			t.Errorf("%q, Argo's is %q", c.ours, c.argos)
		}
	}
}

// The core is readable with no Kubernetes in sight: these packages build
// from the standard library alone.
func TestCoreNeedsOnlyTheStandardLibrary(t *testing.T) {
	for _, pkg := range stdlibOnly {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		var foreign []string
		for _, p := range strings.Fields(string(out)) {
			if !slices.Contains(stdlibOnly, p) {
				foreign = append(foreign, p)
			}
		}
		if len(foreign) > 0 {
			t.Errorf("%s depends on %d packages beyond the standard library and the core: %v", pkg, len(foreign), foreign)
		}
	}
}

// stdlibOnly are the packages of the core.
var stdlibOnly = []string{"github.com/batchlatch/batchlatch/api", "github.com/batchlatch/batchlatch/state"}
