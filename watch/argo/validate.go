package argowatch

import (
	"context"
	"errors"
	"fmt"
	"sync"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	wflisters "github.com/argoproj/argo-workflows/v3/pkg/client/listers/workflow/v1alpha1"
	"github.com/argoproj/argo-workflows/v3/workflow/validate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// specChecker validates CronWorkflows with Argo's own validation code, as
// the controller does when it adds one: a CronWorkflow invalid from the
// moment it was added is logged by the controller and never scheduled, and
// gets no condition at all, so only validating it says why it never runs.
// Verdicts are kept per version of the CronWorkflow and of its namespace's
// WorkflowTemplates: validation is the costly part of an evaluation pass.
type specChecker struct {
	templates []wflisters.WorkflowTemplateLister

	mu       sync.Mutex
	versions map[string]uint64 // namespace → changes of its WorkflowTemplates seen
	verdicts map[string]verdict
}

type verdict struct {
	resourceVersion string
	templates       uint64
	err             string
}

func newSpecChecker() *specChecker {
	return &specChecker{versions: map[string]uint64{}, verdicts: map[string]verdict{}}
}

// templatesChanged: a WorkflowTemplate of namespace was added, changed or
// deleted, so the verdicts of its CronWorkflows are out of date.
func (s *specChecker) templatesChanged(namespace string) {
	s.mu.Lock()
	s.versions[namespace]++
	s.mu.Unlock()
}

// forget drops the verdict of a deleted CronWorkflow.
func (s *specChecker) forget(uid string) {
	s.mu.Lock()
	delete(s.verdicts, uid)
	s.mu.Unlock()
}

// check returns why Argo's controller refuses cwf, "" when it accepts it or
// when that cannot be told here: a ClusterWorkflowTemplate it references
// (the watcher does not read them; a cluster-wide read is more than it asks
// for), or its controller's workflowDefaults (not read either), may make it
// valid, so a verdict that depends on what the watcher cannot see is no
// verdict.
func (s *specChecker) check(cwf *wfv1.CronWorkflow) string {
	s.mu.Lock()
	templates := s.versions[cwf.Namespace]
	if v, ok := s.verdicts[string(cwf.UID)]; ok && v.resourceVersion == cwf.ResourceVersion && v.templates == templates {
		s.mu.Unlock()
		return v.err
	}
	s.mu.Unlock()

	getter := &namespacedTemplates{listers: s.templates, namespace: cwf.Namespace}
	cluster := &unknownClusterTemplates{}
	msg := ""
	if err := validate.ValidateCronWorkflow(context.Background(), getter, cluster, cwf, nil); err != nil && !cluster.asked {
		msg = fmt.Sprintf("invalid cron workflow: %s", err)
	}
	s.mu.Lock()
	s.verdicts[string(cwf.UID)] = verdict{resourceVersion: cwf.ResourceVersion, templates: templates, err: msg}
	s.mu.Unlock()
	return msg
}

// namespacedTemplates finds a namespace's WorkflowTemplates in the
// informers' caches.
type namespacedTemplates struct {
	listers   []wflisters.WorkflowTemplateLister
	namespace string
}

func (g *namespacedTemplates) Get(name string) (*wfv1.WorkflowTemplate, error) {
	for _, l := range g.listers {
		if t, err := l.WorkflowTemplates(g.namespace).Get(name); err == nil {
			return t, nil
		}
	}
	return nil, apierrors.NewNotFound(schema.GroupResource{Group: "argoproj.io", Resource: "workflowtemplates"}, name)
}

// unknownClusterTemplates answers every ClusterWorkflowTemplate as unknown
// and remembers that one was asked for.
type unknownClusterTemplates struct{ asked bool }

func (g *unknownClusterTemplates) Get(name string) (*wfv1.ClusterWorkflowTemplate, error) {
	g.asked = true
	return nil, errors.New("clusterworkflowtemplates are not read by batchlatch")
}
