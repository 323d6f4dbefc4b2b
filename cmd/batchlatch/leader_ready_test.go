package main

import (
	"context"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/batchlatch/batchlatch/internal/kubetest"
)

// replicaAccount is one replica's ServiceAccount and Role: the Lease always,
// the state's ConfigMaps while allowed. Taking the ConfigMaps away makes the
// replica's store not ready (it cannot read nor write the state) while it
// can still run for the Lease: the case of a replica started with another
// --state-shards, which can reach the Lease but never the state.
type replicaAccount struct {
	t          *testing.T
	env        *kubetest.Env
	ns, name   string
	kubeconfig string
}

func newReplicaAccount(t *testing.T, env *kubetest.Env, ns, name string) *replicaAccount {
	t.Helper()
	ctx := context.Background()
	r := &replicaAccount{t: t, env: env, ns: ns, name: name}
	if _, err := env.Clientset.RbacV1().Roles(ns).Create(ctx, r.role(true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	binding := &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: name, Namespace: ns}},
	}
	if _, err := env.Clientset.RbacV1().RoleBindings(ns).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token := env.TokenFor(t, ns, name)
	restConfig := env.RESTConfigForToken(token)
	kc := clientcmdapi.NewConfig()
	kc.Clusters["test"] = &clientcmdapi.Cluster{Server: restConfig.Host, CertificateAuthority: restConfig.CAFile, CertificateAuthorityData: restConfig.CAData}
	kc.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: name, Namespace: ns}
	kc.CurrentContext = "test"
	r.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, r.kubeconfig); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *replicaAccount) role(configMaps bool) *rbacv1.Role {
	rules := []rbacv1.PolicyRule{{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}}}
	if configMaps {
		rules = append(rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch"}})
	}
	return &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: r.name, Namespace: r.ns}, Rules: rules}
}

// allowState grants or takes away the state's ConfigMaps.
func (r *replicaAccount) allowState(allow bool) {
	r.t.Helper()
	if _, err := r.env.Clientset.RbacV1().Roles(r.ns).Update(context.Background(), r.role(allow), metav1.UpdateOptions{}); err != nil {
		r.t.Fatal(err)
	}
}

// leaseHolder is who holds the replicas' Lease now ("" none, or no Lease).
func leaseHolder(t *testing.T, env *kubetest.Env, ns string) string {
	t.Helper()
	leases, err := env.Clientset.CoordinationV1().Leases(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range leases.Items {
		if l.Spec.HolderIdentity != nil {
			return *l.Spec.HolderIdentity
		}
	}
	return ""
}

// waitLeaseHolder waits until holder holds the Lease.
func waitLeaseHolder(t *testing.T, env *kubetest.Env, ns, holder string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for leaseHolder(t, env, ns) != holder {
		if time.Now().After(deadline) {
			t.Fatalf("the Lease is held by %q after %s, want %q", leaseHolder(t, env, ns), within, holder)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// readyLeaderArgs are the replicas' flags: a lease long enough that a busy
// machine's slow renewals never lose it.
func readyLeaderArgs(ns string, lease time.Duration) []string {
	return []string{"--state", "configmap", "--namespace", ns, "--interval", "100ms", "--leader-elect", "--lease-duration", lease.String()}
}

// A replica that is not ready never takes the Lease, even when the leader
// dies and the Lease runs out; once ready again, it does.
func TestNotReadyReplicaNeverLeads(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	const lease = 10 * time.Second
	args := readyLeaderArgs(ns, lease)
	a := newReplicaAccount(t, env, ns, "replica-a")
	b := newReplicaAccount(t, env, ns, "replica-b")
	leader := startChild(t, []string{"KUBECONFIG=" + a.kubeconfig, "POD_NAME=replica-a"}, args...)
	waitLeaseHolder(t, env, ns, "replica-a", lease+patience)
	follower := start(t, kubeEnv(b.kubeconfig, "POD_NAME", "replica-b"), args...)
	waitHTTP(t, follower, "/readyz", 200)

	b.allowState(false)
	waitHTTP(t, follower, "/readyz", 503)
	// SIGKILL: the Lease is not released and runs out after lease.
	leader.cmd.Process.Signal(syscall.SIGKILL)
	killed := time.Now()
	// Three leases: the old code took it within one (and a retry).
	for time.Since(killed) < 3*lease {
		if h := leaseHolder(t, env, ns); h == "replica-b" {
			t.Fatalf("the replica that is not ready took the Lease %s after the leader was killed", time.Since(killed).Round(time.Second))
		}
		time.Sleep(100 * time.Millisecond)
	}

	b.allowState(true)
	waitHTTP(t, follower, "/readyz", 200)
	waitLeaseHolder(t, env, ns, "replica-b", lease+patience)
}

// A leader whose store stops being ready for longer than the Lease gives it
// up, and the ready replica takes it.
func TestLeaderNotReadyGivesUpTheLease(t *testing.T) {
	env := kubetest.Get(t)
	ns := env.NewNamespace(t)
	const lease = 10 * time.Second
	args := readyLeaderArgs(ns, lease)
	a := newReplicaAccount(t, env, ns, "replica-a")
	b := newReplicaAccount(t, env, ns, "replica-b")
	leader := start(t, kubeEnv(a.kubeconfig, "POD_NAME", "replica-a"), args...)
	waitLeaseHolder(t, env, ns, "replica-a", lease+patience)
	follower := start(t, kubeEnv(b.kubeconfig, "POD_NAME", "replica-b"), args...)
	waitHTTP(t, follower, "/readyz", 200)

	a.allowState(false)
	waitHTTP(t, leader, "/readyz", 503)
	unready := time.Now()
	// The leader gives the Lease up after a lease of not being ready; the
	// follower takes it at its next try.
	waitLeaseHolder(t, env, ns, "replica-b", 2*lease+patience)
	t.Logf("the ready replica took the Lease %s after the leader turned not ready (lease %s)", time.Since(unready).Round(time.Millisecond), lease)
}
