package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// The chart's name and its Service's port name (charts/batchlatch).
const (
	chartName   = "batchlatch"
	servicePort = "http"
)

// kubeOptions are the flags that reach the server through the Kubernetes
// API server's service proxy, as kubectl's would.
type kubeOptions struct {
	kubeconfig string
	context    string
	namespace  string
	release    string
	service    string
}

// kubeFlags are the flags that choose the service proxy.
var kubeFlags = []string{"kubeconfig", "context", "namespace", "release", "service"}

func (k *kubeOptions) addFlags(fs *pflag.FlagSet, withEnv func(name, usage string) string) {
	fs.StringVar(&k.kubeconfig, "kubeconfig", "", "kubeconfig file, as kubectl's (default $KUBECONFIG, else ~/.kube/config)")
	fs.StringVar(&k.context, "context", "", "kubeconfig context (default its current context)")
	// No BATCHLATCH_NAMESPACE: the server's pods have it set to their own
	// namespace, and a client run there must keep using --server.
	fs.StringVarP(&k.namespace, "namespace", "n", "", "namespace batchlatch is installed in (default the context's, as kubectl)")
	fs.StringVar(&k.release, "release", chartName, withEnv("release", "Helm release of batchlatch: its Service is the chart's for that release"))
	fs.StringVar(&k.service, "service", "", "the Service's name, instead of the release's (for a chart installed with fullnameOverride)")
}

// viaProxy decides how the client reaches the server: a flag on the command
// line wins over the environment, which wins over the program's default
// (the plugin goes through the service proxy). --server and a kube flag at
// the same level contradict each other.
func (k *kubeOptions) viaProxy(p Program, given, fromEnv map[string]bool) (bool, error) {
	for _, set := range []map[string]bool{given, fromEnv} {
		kube := ""
		for _, name := range kubeFlags {
			if set[name] {
				kube = name
				break
			}
		}
		switch {
		case set["server"] && kube != "":
			return false, fmt.Errorf("--server and --%s: give the server's URL or how to find its service, not both", kube)
		case set["server"]:
			return false, nil
		case kube != "":
			return true, nil
		}
	}
	return p.Plugin, nil
}

// ServiceForRelease is the name of the chart's Service for a Helm release:
// the chart's fullname (charts/batchlatch/templates/_helpers.tpl) without
// fullnameOverride or nameOverride.
func ServiceForRelease(release string) string {
	name := release
	if !strings.Contains(release, chartName) {
		name = release + "-" + chartName
	}
	if len(name) > 63 {
		name = name[:63]
	}
	return strings.TrimSuffix(name, "-")
}

// serviceProxy is the way to the server through the API server's proxy:
// /api/v1/namespaces/{namespace}/services/http:{service}:http/proxy/…
type serviceProxy struct {
	base      string // the proxy's URL, to which the REST paths are appended
	apiServer string
	context   string
	namespace string
	service   string
	http      *http.Client
}

// serviceProxy reads the kubeconfig as kubectl does (clientcmd's loading
// rules: --kubeconfig, else $KUBECONFIG, else ~/.kube/config) and lets
// client-go's transport carry the credentials, exec plugins and TLS.
func (k *kubeOptions) serviceProxy(timeout time.Duration) (*serviceProxy, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = k.kubeconfig
	overrides := &clientcmd.ConfigOverrides{CurrentContext: k.context}
	overrides.Context.Namespace = k.namespace
	loader := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, overrides)
	cfg, err := loader.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	namespace, _, err := loader.Namespace()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	raw, err := loader.RawConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	context := k.context
	if context == "" {
		context = raw.CurrentContext
	}
	cfg.Timeout = timeout
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	server, _, err := rest.DefaultServerUrlFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	service := k.service
	if service == "" {
		service = ServiceForRelease(k.release)
	}
	p := &serviceProxy{apiServer: server.String(), context: context, namespace: namespace, service: service, http: hc}
	p.base = strings.TrimSuffix(server.String(), "/") + ProxyPath(namespace, service)
	return p, nil
}

// ProxyPath is the path of a service's proxy on the API server, to which
// the REST paths are appended: the chart's port, by its name, over HTTP.
func ProxyPath(namespace, service string) string {
	return "/api/v1/namespaces/" + url.PathEscape(namespace) + "/services/" +
		url.PathEscape("http:"+service+":"+servicePort) + "/proxy"
}

func (p *serviceProxy) String() string {
	return fmt.Sprintf("service %s/%s through the API server %s (context %s)", p.namespace, p.service, p.apiServer, p.context)
}

// refused explains an answer of the API server itself (a Status, not
// batchlatch's error), or returns nil for any other answer.
func (p *serviceProxy) refused(code int, data []byte) error {
	var status metav1.Status
	if json.Unmarshal(data, &status) != nil || status.Kind != "Status" {
		return nil
	}
	msg := "the Kubernetes API server: " + status.Message
	switch code {
	case http.StatusUnauthorized:
		return fmt.Errorf("%s: the credentials of context %s were refused (kubectl would fail too)", msg, p.context)
	case http.StatusForbidden:
		return fmt.Errorf("%s: reaching batchlatch through the API server needs get on services/proxy of service %s in namespace %s (create and delete too for silence, unsilence, forget): ask for the Role in docs/kubectl-plugin.md, or use --server", msg, p.service, p.namespace)
	case http.StatusNotFound:
		return fmt.Errorf("%s: no service %s in namespace %s; name the namespace batchlatch is installed in with -n, its Helm release with --release (or the Service with --service)", msg, p.service, p.namespace)
	case http.StatusServiceUnavailable:
		return fmt.Errorf("%s: no batchlatch pod is ready behind service %s/%s (kubectl -n %s get pods)", msg, p.namespace, p.service, p.namespace)
	}
	return errors.New(msg)
}
