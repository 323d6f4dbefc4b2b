package kubetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"
)

// ArgoModule is the Go module whose CRD manifests InstallArgoCRDs installs:
// the same module (and version) as the Argo client code the tests link.
const ArgoModule = "github.com/argoproj/argo-workflows/v3"

// argoCRDSubdir holds the "minimal" CRDs inside ArgoModule: schemas that
// keep spec and status as preserve-unknown-fields objects, without the
// full OpenAPI validation (which Argo itself does not install by default).
const argoCRDSubdir = "manifests/base/crds/minimal"

// argoRequiredCRDs must be among the installed CRDs.
var argoRequiredCRDs = []string{"workflows.argoproj.io", "cronworkflows.argoproj.io"}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// argoInstalls records InstallArgoCRDs' outcome per *Env (one per cluster).
var argoInstalls sync.Map // *Env -> *argoInstall

type argoInstall struct {
	once sync.Once
	err  error
}

// InstallArgoCRDs creates Argo's CRDs (the minimal ones the pinned module
// ships) in the test cluster once per process, and waits until they are
// Established and the API server serves them (CronWorkflow, Workflow at
// least; install all of the minimal directory).
//
// The manifests are read from the directory of ArgoModule that the go
// command resolves for this repository ('go list -m'), so they always match
// the go.mod pin and therefore the Argo clientset the tests are built with.
//
// It is safe for many tests and several test processes sharing a cluster:
// a CRD that already exists (created concurrently, or by a previous run of a
// shared cluster) is updated to this module's definition instead. CRDs are
// never deleted. In the minimal CRDs neither Workflow nor CronWorkflow has a
// status subresource: status is written with a normal Update (Argo's typed
// clientset has no UpdateStatus for them either).
func (e *Env) InstallArgoCRDs(t testing.TB) {
	t.Helper()
	v, _ := argoInstalls.LoadOrStore(e, &argoInstall{})
	in := v.(*argoInstall)
	in.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		in.err = e.installArgoCRDs(ctx)
	})
	if in.err != nil {
		t.Fatalf("install Argo CRDs: %v", in.err)
	}
}

func (e *Env) installArgoCRDs(ctx context.Context) error {
	dir, err := argoModuleDir(ctx)
	if err != nil {
		return err
	}
	crds, err := readCRDs(filepath.Join(dir, filepath.FromSlash(argoCRDSubdir)))
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(e.config)
	if err != nil {
		return err
	}
	client := dyn.Resource(crdGVR)
	for _, crd := range crds {
		if err := applyCRD(ctx, client, crd); err != nil {
			return fmt.Errorf("CRD %s: %w", crd.GetName(), err)
		}
	}
	for _, crd := range crds {
		if err := waitCRDServed(ctx, e, dyn, crd); err != nil {
			return fmt.Errorf("CRD %s: %w", crd.GetName(), err)
		}
	}
	return nil
}

// argoModuleDir returns the directory of ArgoModule in the module cache.
//
// runtime/debug.ReadBuildInfo tells which version the test binary links but
// not where its files are: deriving the directory would mean reimplementing
// the go command's GOMODCACHE/GOPATH/'go env -w'/workspace/replace logic.
// So ask the go command (run in the test's package directory, i.e. in this
// module; 'go test' puts its own GOROOT/bin first in PATH), and use the build
// info only to check that both agree. The module is always in the cache:
// building the tests that use Argo's clientset downloaded it (whole, with its
// manifests).
func argoModuleDir(ctx context.Context) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{with .Replace}}{{.Path}}@{{.Version}}{{else}}{{.Path}}@{{.Version}}{{end}}\t{{with .Replace}}{{.Dir}}{{else}}{{.Dir}}{{end}}", ArgoModule)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("locate %s: go list -m: %w\n%s", ArgoModule, err, stderr.Bytes())
	}
	modVersion, dir, ok := strings.Cut(strings.TrimSpace(stdout.String()), "\t")
	if !ok || dir == "" {
		return "", fmt.Errorf("locate %s: go list -m gave no directory (%q); is the module vendored or not downloaded?", ArgoModule, stdout.String())
	}
	if linked := linkedModule(ArgoModule); linked != "" && linked != modVersion {
		return "", fmt.Errorf("locate %s: the test binary links %s but the go command resolves %s; rebuild the tests", ArgoModule, linked, modVersion)
	}
	return dir, nil
}

// linkedModule returns path@version (after any replacement) of the module
// path as linked into this binary, or "" if unknown.
func linkedModule(path string) string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, m := range bi.Deps {
		if m.Path != path {
			continue
		}
		if m.Replace != nil {
			if m.Replace.Version == "" { // a directory replacement
				return ""
			}
			m = m.Replace
		}
		return m.Path + "@" + m.Version
	}
	return ""
}

// readCRDs decodes every CustomResourceDefinition in dir's *.yaml files
// (kustomization.yaml and any other kind are skipped), in file name order.
func readCRDs(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	var crds []*unstructured.Unstructured
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			var obj map[string]any
			if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			u := &unstructured.Unstructured{Object: obj}
			if obj == nil || u.GetAPIVersion() != "apiextensions.k8s.io/v1" || u.GetKind() != "CustomResourceDefinition" {
				continue
			}
			crds = append(crds, u)
		}
	}
	for _, name := range argoRequiredCRDs {
		if !slices.ContainsFunc(crds, func(u *unstructured.Unstructured) bool { return u.GetName() == name }) {
			return nil, fmt.Errorf("%s: no CustomResourceDefinition %s among %d", dir, name, len(crds))
		}
	}
	return crds, nil
}

// applyCRD creates crd, or replaces the spec of an existing one with crd's.
// It waits out a CRD that is being deleted.
func applyCRD(ctx context.Context, client dynamic.NamespaceableResourceInterface, crd *unstructured.Unstructured) error {
	for {
		_, err := client.Create(ctx, crd.DeepCopy(), metav1.CreateOptions{})
		if err == nil || !apierrors.IsAlreadyExists(err) {
			return err
		}
		deleting := false
		err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur, err := client.Get(ctx, crd.GetName(), metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cur.GetDeletionTimestamp() != nil {
				deleting = true
				return nil
			}
			cur.Object["spec"] = crd.DeepCopy().Object["spec"]
			_, err = client.Update(ctx, cur, metav1.UpdateOptions{})
			return err
		})
		if apierrors.IsNotFound(err) {
			continue // deleted in between: create it
		}
		if err != nil || !deleting {
			return err
		}
		err = wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			_, err := client.Get(ctx, crd.GetName(), metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return false, err
		})
		if err != nil {
			return fmt.Errorf("wait for the CRD being deleted to go: %w", err)
		}
	}
}

// waitCRDServed waits until crd is Established, its resource appears in
// discovery and a list of it succeeds (Established alone can precede the
// handler by a moment).
func waitCRDServed(ctx context.Context, e *Env, dyn dynamic.Interface, crd *unstructured.Unstructured) error {
	group, _, _ := unstructured.NestedString(crd.Object, "spec", "group")
	plural, _, _ := unstructured.NestedString(crd.Object, "spec", "names", "plural")
	versions, _, _ := unstructured.NestedSlice(crd.Object, "spec", "versions")
	var served []string
	for _, v := range versions {
		m, _ := v.(map[string]any)
		name, _, _ := unstructured.NestedString(m, "name")
		if ok, _, _ := unstructured.NestedBool(m, "served"); ok && name != "" {
			served = append(served, name)
		}
	}
	if group == "" || plural == "" || len(served) == 0 {
		return errors.New("no group, plural or served version in the manifest")
	}

	var last error
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		cur, err := dyn.Resource(crdGVR).Get(ctx, crd.GetName(), metav1.GetOptions{})
		if err != nil {
			last = err
			return false, nil
		}
		if status, reason := crdCondition(cur, "NamesAccepted"); status == "False" {
			return false, fmt.Errorf("names not accepted: %s", reason)
		}
		if status, reason := crdCondition(cur, "Established"); status != "True" {
			last = fmt.Errorf("not Established (%s)", reason)
			return false, nil
		}
		for _, v := range served {
			gv := group + "/" + v
			rl, err := e.Clientset.Discovery().ServerResourcesForGroupVersion(gv)
			if err != nil {
				last = fmt.Errorf("discovery of %s: %w", gv, err)
				return false, nil
			}
			if !slices.ContainsFunc(rl.APIResources, func(r metav1.APIResource) bool { return r.Name == plural }) {
				last = fmt.Errorf("discovery of %s does not list %s yet", gv, plural)
				return false, nil
			}
			gvr := schema.GroupVersionResource{Group: group, Version: v, Resource: plural}
			if _, err := dyn.Resource(gvr).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
				last = fmt.Errorf("list %s: %w", gvr, err)
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil && last != nil {
		return fmt.Errorf("%w; last: %v", err, last)
	}
	return err
}

// crdCondition returns the status and reason/message of a CRD condition.
func crdCondition(crd *unstructured.Unstructured, typ string) (status, reason string) {
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == typ {
			s, _ := m["status"].(string)
			r, _ := m["reason"].(string)
			msg, _ := m["message"].(string)
			return s, strings.TrimSpace(r + ": " + msg)
		}
	}
	return "", "no " + typ + " condition"
}
