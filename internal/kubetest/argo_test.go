package kubetest_test

import (
	"slices"
	"testing"

	"github.com/argoproj/argo-workflows/v3/pkg/apis/workflow"
	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/pkg/client/clientset/versioned"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/metadata"

	"github.com/batchlatch/batchlatch/internal/kubetest"
)

// TestArgoCRDs installs Argo's minimal CRDs and uses them the way the
// project does: Argo's typed clientset creates, updates (status included)
// and lists CronWorkflows and Workflows; a metadata-only client lists
// Workflows.
func TestArgoCRDs(t *testing.T) {
	env := kubetest.Get(t)
	env.InstallArgoCRDs(t)
	env.InstallArgoCRDs(t) // idempotent
	ns := env.NewNamespace(t)
	ctx := t.Context()

	wfc, err := versioned.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	argo := wfc.ArgoprojV1alpha1()

	cwf, err := argo.CronWorkflows(ns).Create(ctx, &wfv1.CronWorkflow{
		ObjectMeta: metav1.ObjectMeta{Name: "nightly", Labels: map[string]string{"app": "batchlatch-test"}},
		Spec: wfv1.CronWorkflowSpec{
			Schedules: []string{"0 3 * * *"},
			Timezone:  "UTC",
			WorkflowSpec: wfv1.WorkflowSpec{
				Entrypoint: "main",
				Templates:  []wfv1.Template{{Name: "main", Suspend: &wfv1.SuspendTemplate{}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create CronWorkflow: %v", err)
	}
	if got := cwf.Spec.Schedules; !slices.Equal(got, []string{"0 3 * * *"}) {
		t.Fatalf("CronWorkflow schedules after create: %q", got)
	}

	wf, err := argo.Workflows(ns).Create(ctx, &wfv1.Workflow{
		ObjectMeta: metav1.ObjectMeta{
			Name:   "nightly-1",
			Labels: map[string]string{"workflows.argoproj.io/cron-workflow": cwf.Name},
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: wfv1.SchemeGroupVersion.String(), Kind: workflow.CronWorkflowKind,
				Name: cwf.Name, UID: cwf.UID,
			}},
		},
		Spec: cwf.Spec.WorkflowSpec,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create Workflow: %v", err)
	}

	// The minimal CRDs have no status subresource (Workflow has
	// 'subresources: {}', CronWorkflow none), and Argo's clientset has no
	// UpdateStatus: status is written with a normal Update.
	dyn, err := dynamic.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	crdGVR := schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	for _, name := range []string{workflow.WorkflowFullName, workflow.CronWorkflowFullName} {
		crd, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("get CRD %s: %v", name, err)
		}
		versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
		for _, v := range versions {
			if _, found, _ := unstructured.NestedFieldNoCopy(v.(map[string]any), "subresources", "status"); found {
				t.Errorf("CRD %s now has a status subresource: status needs UpdateStatus/Patch(..., \"status\"), not Update", name)
			}
		}
	}

	wf.Status.Phase = wfv1.WorkflowRunning
	wf.Status.Message = "running for the test"
	wf.Status.StartedAt = metav1.Now()
	if _, err := argo.Workflows(ns).Update(ctx, wf, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update Workflow status: %v", err)
	}
	got, err := argo.Workflows(ns).Get(ctx, wf.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.Status.Phase != wfv1.WorkflowRunning || got.Status.Message != "running for the test" || got.Status.StartedAt.IsZero() {
		t.Fatalf("Workflow status after Update: %+v, want phase Running with the message and start time", got.Status)
	}

	cwf.Status.Succeeded = 1
	cwf.Status.Active = nil
	if _, err := argo.CronWorkflows(ns).Update(ctx, cwf, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("update CronWorkflow status: %v", err)
	}

	cwfs, err := argo.CronWorkflows(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("list CronWorkflows: %v", err)
	}
	if len(cwfs.Items) != 1 || cwfs.Items[0].Name != "nightly" || cwfs.Items[0].Status.Succeeded != 1 {
		t.Fatalf("CronWorkflows: %+v, want nightly with status.succeeded 1", cwfs.Items)
	}
	wfs, err := argo.Workflows(ns).List(ctx, metav1.ListOptions{LabelSelector: "workflows.argoproj.io/cron-workflow=nightly"})
	if err != nil {
		t.Fatalf("list Workflows: %v", err)
	}
	if len(wfs.Items) != 1 || wfs.Items[0].Name != "nightly-1" || wfs.Items[0].Status.Phase != wfv1.WorkflowRunning {
		t.Fatalf("Workflows: %+v, want nightly-1 Running", wfs.Items)
	}

	// The watcher lists and watches Workflows' metadata only.
	mc, err := metadata.NewForConfig(env.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	wfGVR := wfv1.SchemeGroupVersion.WithResource(workflow.WorkflowPlural)
	metas, err := mc.Resource(wfGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatalf("metadata list Workflows: %v", err)
	}
	if len(metas.Items) != 1 {
		t.Fatalf("metadata list Workflows: %d items, want 1", len(metas.Items))
	}
	m := metas.Items[0]
	if m.Name != "nightly-1" || m.UID != wf.UID || m.Labels["workflows.argoproj.io/cron-workflow"] != "nightly" ||
		len(m.OwnerReferences) != 1 || m.OwnerReferences[0].UID != cwf.UID {
		t.Fatalf("metadata of the Workflow: %+v", m.ObjectMeta)
	}
	// Across namespaces too (the watcher's default).
	all, err := mc.Resource(wfGVR).List(ctx, metav1.ListOptions{LabelSelector: "workflows.argoproj.io/cron-workflow=nightly"})
	if err != nil {
		t.Fatalf("metadata list Workflows in all namespaces: %v", err)
	}
	if !slices.ContainsFunc(all.Items, func(p metav1.PartialObjectMetadata) bool { return p.UID == wf.UID }) {
		t.Fatalf("metadata list in all namespaces misses %s/%s", ns, wf.Name)
	}

	// A second Env on the same cluster (as another test process sharing it
	// would have) installs again over the existing CRDs.
	t.Run("existing CRDs", func(t *testing.T) {
		t.Setenv(kubetest.KubeconfigEnv, env.Kubeconfig)
		other, stop, err := kubetest.Start()
		if err != nil {
			t.Fatal(err)
		}
		defer stop()
		other.InstallArgoCRDs(t)
		if _, err := argo.Workflows(ns).Get(ctx, wf.Name, metav1.GetOptions{}); err != nil {
			t.Fatalf("Workflow after reinstalling the CRDs: %v", err)
		}
	})
}
