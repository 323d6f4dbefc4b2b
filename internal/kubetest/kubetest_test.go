package kubetest_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/batchlatch/batchlatch/internal/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// TestRBACIsEnforced proves that the cluster authorizes requests: a service
// account bound to no role cannot read a ConfigMap, the admin can.
func TestRBACIsEnforced(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := t.Context()

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe"}}
	if _, err := env.Clientset.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatalf("admin: create configmap: %v", err)
	}
	if _, err := env.Clientset.CoreV1().ConfigMaps(ns).Get(ctx, "probe", metav1.GetOptions{}); err != nil {
		t.Fatalf("admin: get configmap: %v", err)
	}

	token := env.TokenFor(t, ns, "nobody")
	cs, err := kubernetes.NewForConfig(env.RESTConfigForToken(token))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().ConfigMaps(ns).Get(ctx, "probe", metav1.GetOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("service account without a role: get configmap: got %v, want 403 Forbidden", err)
	}
	// Denied as the service account (the token authenticated), not as anonymous.
	if user := "system:serviceaccount:" + ns + ":nobody"; !strings.Contains(err.Error(), user) {
		t.Fatalf("got %v, want a denial for %s", err, user)
	}
}

// TestAPIServerOutage stops kube-apiserver and brings it back on the same
// address; existing clients work again afterwards.
func TestAPIServerOutage(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	ctx := t.Context()
	cms := env.Clientset.CoreV1().ConfigMaps(ns)

	env.StopAPIServer(t)
	if _, err := cms.List(ctx, metav1.ListOptions{}); err == nil {
		t.Fatal("list configmaps succeeded while kube-apiserver was stopped")
	}
	env.StartAPIServer(t)
	if _, err := cms.List(ctx, metav1.ListOptions{}); err != nil {
		t.Fatalf("list configmaps after restart: %v", err)
	}
}
