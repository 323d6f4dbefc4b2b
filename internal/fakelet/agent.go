package fakelet

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/argoproj/argo-workflows/v3/workflow/common"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/batchlatch/batchlatch/internal/subprocess"
)

// agents are the 'argoexec agent main' processes of Argo's agent pods, one
// per pod (key namespace/name).
type agents struct {
	cfg *Config
	// exited is called with a pod's key when its agent exits.
	exited func(key string)

	mu      sync.Mutex
	running map[string]*agent
}

type agent struct {
	proc *subprocess.Process
	uid  string
}

func newAgents(cfg *Config, exited func(key string)) *agents {
	return &agents{cfg: cfg, exited: exited, running: map[string]*agent{}}
}

// syncAgent starts the agent of a running agent pod, and ends the pod's
// main container with the agent's exit code once it exits.
func (f *Fakelet) syncAgent(ctx context.Context, pod *corev1.Pod, now time.Time) (time.Duration, error) {
	key := pod.Namespace + "/" + pod.Name
	main := -1
	for i, cs := range pod.Status.ContainerStatuses {
		if cs.Name == common.MainContainerName {
			main = i
		}
	}
	if main < 0 || pod.Status.ContainerStatuses[main].State.Running == nil {
		return 0, nil
	}
	if f.cfg.Argoexec == "" {
		return 0, nil // documented: without argoexec the agent never ends
	}
	if a := f.agents.get(key, string(pod.UID)); a == nil {
		if err := f.agents.start(ctx, pod); err != nil {
			f.cfg.Logf("fakelet: agent pod %s: %v", key, err)
			pod.Status.Message = "fakelet: " + err.Error()
			cs := &pod.Status.ContainerStatuses[main]
			f.terminate(pod, cs, now, 1)
			cs.State.Terminated.Message = err.Error()
			f.stopAll(pod, now, exitCodeSIGKILL)
			return 0, f.updateStatus(ctx, pod)
		}
		return 0, nil
	}
	a := f.agents.get(key, string(pod.UID))
	select {
	case <-a.proc.Done():
	default:
		return 0, nil // the exit will bring the pod back
	}
	code := 0
	if err := a.proc.Err(); err != nil {
		code = 1
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() >= 0 {
			code = ee.ExitCode()
		}
	}
	f.terminate(pod, &pod.Status.ContainerStatuses[main], now, code)
	f.stopAll(pod, now, exitCodeSIGKILL) // plugin sidecars, if any
	if err := f.updateStatus(ctx, pod); err != nil {
		return 0, err
	}
	f.agents.stop(key)
	return 0, nil
}

// get returns the pod's agent, or nil if none was started for this pod
// (an agent of an earlier pod of the same name is stopped).
func (as *agents) get(key, uid string) *agent {
	as.mu.Lock()
	a := as.running[key]
	as.mu.Unlock()
	if a != nil && a.uid != uid {
		as.stop(key)
		return nil
	}
	return a
}

// start runs 'argoexec agent main' as the pod's main container would run:
// with its environment and its service account's token (read from the
// Secret Argo mounts into the pod), against the test API server.
func (as *agents) start(ctx context.Context, pod *corev1.Pod) error {
	var main *corev1.Container
	for i := range pod.Spec.Containers {
		if pod.Spec.Containers[i].Name == common.MainContainerName {
			main = &pod.Spec.Containers[i]
		}
	}
	if main == nil {
		return fmt.Errorf("no %s container", common.MainContainerName)
	}
	token, err := as.token(ctx, pod, main)
	if err != nil {
		return err
	}
	dir := as.cfg.AgentLogDir
	if dir == "" {
		dir = os.TempDir()
	}
	base := filepath.Join(dir, fmt.Sprintf("agent-%s-%s", pod.Namespace, pod.Name))
	kubeconfig, err := as.writeKubeconfig(base+".kubeconfig", pod.Namespace, token)
	if err != nil {
		return err
	}
	logFile, err := os.OpenFile(base+".log", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{}, main.Args...)
	if len(args) == 0 || args[0] != "agent" {
		logFile.Close()
		return fmt.Errorf("the agent's main container runs %q, not argoexec agent", append(main.Command, main.Args...))
	}
	cmd := exec.Command(as.cfg.Argoexec, append(args, "--kubeconfig="+kubeconfig)...)
	// The pod's environment only, plus the tests' (e.g. a proxy that keeps
	// requests on the machine): not the test binary's.
	cmd.Env = []string{"HOME=" + dir}
	for _, e := range main.Env {
		if e.ValueFrom == nil {
			cmd.Env = append(cmd.Env, e.Name+"="+e.Value)
		}
	}
	cmd.Env = append(cmd.Env, as.cfg.AgentEnv...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	fmt.Fprintf(logFile, "==== fakelet: starting %s %v for pod %s/%s\n", as.cfg.Argoexec, cmd.Args[1:], pod.Namespace, pod.Name)
	proc, err := subprocess.Start(cmd)
	if err != nil {
		logFile.Close()
		return err
	}
	key := pod.Namespace + "/" + pod.Name
	as.mu.Lock()
	as.running[key] = &agent{proc: proc, uid: string(pod.UID)}
	as.mu.Unlock()
	go func() {
		<-proc.Done()
		logFile.Close()
		as.exited(key)
	}()
	return nil
}

// token reads the service account token from the Secret volume Argo mounts
// at the service account path of the main container.
func (as *agents) token(ctx context.Context, pod *corev1.Pod, main *corev1.Container) (string, error) {
	var volume string
	for _, m := range main.VolumeMounts {
		if m.MountPath == common.ServiceAccountTokenMountPath {
			volume = m.Name
		}
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name != volume || v.Secret == nil {
			continue
		}
		secret, err := as.cfg.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("the service account token of the agent: %w", err)
		}
		token := string(secret.Data[corev1.ServiceAccountTokenKey])
		if token == "" {
			return "", fmt.Errorf("the service account token Secret %s has no %q (nothing fills it in here: create it with a token)", secret.Name, corev1.ServiceAccountTokenKey)
		}
		return token, nil
	}
	return "", fmt.Errorf("no Secret volume mounted at %s in the agent's main container", common.ServiceAccountTokenMountPath)
}

func (as *agents) writeKubeconfig(path, namespace, token string) (string, error) {
	rc := as.cfg.RESTConfig
	ca := rc.TLSClientConfig.CAData
	if len(ca) == 0 && rc.TLSClientConfig.CAFile != "" {
		var err error
		if ca, err = os.ReadFile(rc.TLSClientConfig.CAFile); err != nil {
			return "", err
		}
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: rc.Host, CertificateAuthorityData: ca}
	cfg.AuthInfos["agent"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["agent"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "agent", Namespace: namespace}
	cfg.CurrentContext = "agent"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return "", err
	}
	return path, nil
}

// stop ends the pod's agent, if any (TERM, then KILL after 5 s).
func (as *agents) stop(key string) {
	as.mu.Lock()
	a := as.running[key]
	delete(as.running, key)
	as.mu.Unlock()
	if a != nil {
		terminate(a.proc)
	}
}

func (as *agents) stopAll() {
	as.mu.Lock()
	keys := make([]string, 0, len(as.running))
	for k := range as.running {
		keys = append(keys, k)
	}
	as.mu.Unlock()
	for _, k := range keys {
		as.stop(k)
	}
}

func terminate(p *subprocess.Process) {
	select {
	case <-p.Done():
		return
	default:
	}
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.Done():
	case <-time.After(5 * time.Second):
		_ = p.Cmd.Process.Kill()
		<-p.Done()
	}
}
