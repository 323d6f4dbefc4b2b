package fakelet

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/argoproj/argo-workflows/v3/pkg/apis/workflow"
	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/workflow/common"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// isArgoPod: a pod Argo's controller made for a node of a Workflow.
func isArgoPod(pod *corev1.Pod) bool {
	_, wf := pod.Labels[common.LabelKeyWorkflow]
	_, node := pod.Annotations[common.AnnotationKeyNodeID]
	return wf && node && !isAgentPod(pod)
}

// isAgentPod: Argo's agent pod of a Workflow (it runs HTTP templates).
func isAgentPod(pod *corev1.Pod) bool {
	_, wf := pod.Labels[common.LabelKeyWorkflow]
	return wf && pod.Labels[common.LabelKeyComponent] == "agent"
}

// isArgoMain: a container of an Argo pod that runs the user's command (not
// the wait container, not a sidecar of the template).
func isArgoMain(pod *corev1.Pod, name string) bool {
	if name == common.WaitContainerName {
		return false
	}
	if t := argoTemplate(pod); t != nil {
		return !slices.ContainsFunc(t.Sidecars, func(s wfv1.UserContainer) bool { return s.Name == name })
	}
	return true
}

func (f *Fakelet) argoMainsDone(pod *corev1.Pod) bool {
	for _, cs := range pod.Status.ContainerStatuses {
		if isArgoMain(pod, cs.Name) && cs.State.Terminated == nil {
			return false
		}
	}
	return true
}

func (f *Fakelet) argoWaitRunning(pod *corev1.Pod) bool {
	return slices.ContainsFunc(pod.Status.ContainerStatuses, func(cs corev1.ContainerStatus) bool {
		return cs.Name == common.WaitContainerName && cs.State.Running != nil
	})
}

// initTaskResult creates the node's WorkflowTaskResult as not complete, as
// the wait container does when it starts (executor.InitializeOutput).
func (f *Fakelet) initTaskResult(ctx context.Context, pod *corev1.Pod) error {
	nodeID := pod.Annotations[common.AnnotationKeyNodeID]
	wfName := pod.Labels[common.LabelKeyWorkflow]
	var wfUID types.UID
	for _, ref := range pod.OwnerReferences {
		if ref.Kind == workflow.WorkflowKind && ref.Name == wfName {
			wfUID = ref.UID
		}
	}
	labels := map[string]string{
		common.LabelKeyWorkflow:               wfName,
		common.LabelKeyReportOutputsCompleted: "false",
	}
	if id, ok := pod.Labels[common.LabelKeyControllerInstanceID]; ok {
		labels[common.LabelKeyControllerInstanceID] = id
	}
	_, err := f.cfg.Argo.ArgoprojV1alpha1().WorkflowTaskResults(pod.Namespace).Create(ctx, &wfv1.WorkflowTaskResult{
		ObjectMeta: metav1.ObjectMeta{
			Name:   nodeID,
			Labels: labels,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: workflow.APIVersion, Kind: workflow.WorkflowKind, Name: wfName, UID: wfUID,
			}},
		},
	}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// completeTaskResult reports the template's outputs and marks the result
// complete, as the wait container does once the main containers have ended
// (executor.ReportOutputs, then FinalizeOutput). Output parameters and
// artifacts get no values: nothing ran to produce them.
func (f *Fakelet) completeTaskResult(ctx context.Context, pod *corev1.Pod) error {
	outputs := &wfv1.Outputs{}
	if t := argoTemplate(pod); t != nil {
		outputs = t.Outputs.DeepCopy()
		outputs.Artifacts = nil
	}
	results := f.cfg.Argo.ArgoprojV1alpha1().WorkflowTaskResults(pod.Namespace)
	nodeID := pod.Annotations[common.AnnotationKeyNodeID]
	patch, err := json.Marshal(&wfv1.WorkflowTaskResult{NodeResult: wfv1.NodeResult{Outputs: outputs}})
	if err != nil {
		return err
	}
	if _, err := results.Patch(ctx, nodeID, types.MergePatchType, patch, metav1.PatchOptions{}); apierrors.IsNotFound(err) {
		if err := f.initTaskResult(ctx, pod); err != nil {
			return err
		}
		if _, err := results.Patch(ctx, nodeID, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return fmt.Errorf("report outputs: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("report outputs: %w", err)
	}
	done, err := json.Marshal(map[string]any{"metadata": map[string]any{"labels": map[string]string{
		common.LabelKeyReportOutputsCompleted: "true",
	}}})
	if err != nil {
		return err
	}
	if _, err := results.Patch(ctx, nodeID, types.MergePatchType, done, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("mark the task result complete: %w", err)
	}
	return nil
}
