package kubetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/pkg/client/clientset/versioned"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/batchlatch/batchlatch/internal/fakelet"
)

// Create creates obj in namespace, after checking that every container in
// it has a command (fakelet.CheckCommands: without one, Argo's controller
// looks the image up in a registry, off the machine); it fails the test if
// one has none or the create fails. obj is a *Workflow, *CronWorkflow,
// *WorkflowTemplate, *Job, *CronJob or *Pod. Tests running the real
// controllers create their objects with it. Build containers with
// fakelet.Container.
func Create[T any](t testing.TB, env *Env, namespace string, obj *T) *T {
	t.Helper()
	if err := fakelet.CheckCommands(any(obj)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	created, err := create(ctx, env, namespace, any(obj))
	if err != nil {
		t.Fatalf("create %T: %v", obj, err)
	}
	return created.(*T)
}

func create(ctx context.Context, env *Env, namespace string, obj any) (any, error) {
	opts := metav1.CreateOptions{}
	cs := env.Clientset
	switch o := obj.(type) {
	case *batchv1.Job:
		return cs.BatchV1().Jobs(namespace).Create(ctx, o, opts)
	case *batchv1.CronJob:
		return cs.BatchV1().CronJobs(namespace).Create(ctx, o, opts)
	case *corev1.Pod:
		return cs.CoreV1().Pods(namespace).Create(ctx, o, opts)
	}
	argo, err := versioned.NewForConfig(env.RESTConfig())
	if err != nil {
		return nil, err
	}
	a := argo.ArgoprojV1alpha1()
	switch o := obj.(type) {
	case *wfv1.Workflow:
		return a.Workflows(namespace).Create(ctx, o, opts)
	case *wfv1.CronWorkflow:
		return a.CronWorkflows(namespace).Create(ctx, o, opts)
	case *wfv1.WorkflowTemplate:
		return a.WorkflowTemplates(namespace).Create(ctx, o, opts)
	}
	return nil, fmt.Errorf("kubetest.Create cannot create a %T", obj)
}
