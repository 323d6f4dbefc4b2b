package main

import (
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/batchlatch/batchlatch/alarm"
	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/server"
	"github.com/batchlatch/batchlatch/state/configmapstore"
	"github.com/batchlatch/batchlatch/watch/cronrules"
)

// Config is every setting of the service. Each flag --some-flag can also be
// given as the environment variable BATCHLATCH_SOME_FLAG; a flag wins over
// the environment.
type Config struct {
	Listen         string
	State          string
	StateFile      string
	ConfigMap      string
	StateShards    int
	Namespace      string
	Sink           string
	Project        string
	LogName        string
	Interval       time.Duration
	RecoveryWindow time.Duration
	PolicyWindow   time.Duration
	TokenFile      string
	ReadToken      string // required on reads when set
	MetricsAuth    bool   // the per-job series of /metrics need ReadToken
	ArgoURL        string // the Argo UI, for the status page's links
	LeaderElect    bool
	LeaseName      string
	LeaseDuration  time.Duration
	PodName        string
	Instance       string
	Cluster        string
	Location       string
	ContainerName  string
	WriteTimeout   time.Duration
	ShutdownGrace  time.Duration
	MaxInFlight    server.InFlight // requests served at once, per class
	LogLevel       string
	// MemoryLimit is the container's memory limit in bytes (0: none): the
	// Go runtime's soft limit is derived from it (softMemoryLimit).
	MemoryLimit int64

	// LoggingEndpoint is a Cloud Logging API emulator's host:port (hidden
	// flag, for tests and emulators only): plain-text gRPC, no credentials.
	LoggingEndpoint string

	// The rules of watched jobs, one flag per rule for both watchers: a
	// CronWorkflow's job and a CronJob's are missed, stuck and forgotten
	// alike.
	MissedGrace time.Duration
	MaxRuntime  time.Duration // 0: off
	ForgetAfter time.Duration

	// The Argo watcher (see "What if the exit handler never runs?").
	WatchArgo         bool
	ArgoNamespaces    []string // empty: all
	ReconcileInterval time.Duration

	// The CronJob watcher (see "CronJobs").
	WatchCronJobs     bool
	CronJobNamespaces []string // empty: all
}

// loggingEndpointFlag points the Cloud Logging sink at an emulator (such as
// internal/fakelogging) in plain text and without credentials: for tests and
// emulators only, so --help does not list it.
const loggingEndpointFlag = "logging-endpoint"

// defaultListen is the address served with no --listen: loopback only,
// because writes and reads are open until --token-file and --read-token are
// set. In a pod the chart and the image pass --listen=:8080.
const defaultListen = "127.0.0.1:8080"

// envPrefix starts the environment variable of every flag.
const envPrefix = "BATCHLATCH_"

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func newFlagSet(cfg *Config, output io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("batchlatch", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.Listen, "listen", defaultListen, "address the HTTP API, the status page and /metrics listen on: the default takes local connections only; :8080 takes them on every interface (the chart and the image pass it)")
	fs.StringVar(&cfg.State, "state", "auto", "where job state is kept: auto (configmap in a cluster, else file), configmap or file")
	fs.StringVar(&cfg.StateFile, "state-file", "batchlatch-state.json", "state file, for --state file")
	fs.StringVar(&cfg.ConfigMap, "configmap", "batchlatch-state", "ConfigMap holding the state, for --state configmap")
	fs.IntVar(&cfg.StateShards, "state-shards", 32, "ConfigMaps the jobs are spread over, <configmap>-0 … <configmap>-<n-1>, written through <configmap>-journal-0 … (one for every eight), for --state configmap; fixed once the state is written")
	fs.StringVar(&cfg.Namespace, "namespace", "", "the service's own namespace (ConfigMap, Lease); in a pod, from the Downward API")
	fs.StringVar(&cfg.Sink, "sink", "auto", "where entries go: auto (cloudlogging when --project is set, else stdout), cloudlogging or stdout")
	fs.StringVar(&cfg.Project, "project", "", "Google Cloud project the entries are written to")
	fs.StringVar(&cfg.LogName, "log-name", "batchlatch", "Cloud Logging log name of the entries")
	fs.DurationVar(&cfg.Interval, "interval", alarm.DefaultInterval, "how often an entry is written per failing job (half the alert's alignment period)")
	fs.DurationVar(&cfg.RecoveryWindow, "recovery-window", alarm.DefaultRecoveryWindow, "how long after a recovery entries with failing 0 are written (at least --policy-window plus 15m, the metric's ingestion lag)")
	fs.DurationVar(&cfg.PolicyWindow, "policy-window", alarm.DefaultPolicyWindow, "the alert policy's alignment window: a job's change of state is written as enough entries to outweigh a window of the old state (0: one entry)")
	fs.StringVar(&cfg.TokenFile, "token-file", "", "file holding the bearer token that writes must carry (none: writes are open)")
	fs.StringVar(&cfg.ReadToken, "read-token", "", "token that reads (REST reads and the status page) must carry, as a bearer token or a Basic password; the write token works too (none: reads are open)")
	fs.BoolVar(&cfg.MetricsAuth, "metrics-auth", false, "the per-job series of /metrics (every job's namespace, name and state) need the read token; without it a scrape gets the service's own series only (needs --read-token)")
	fs.StringVar(&cfg.ArgoURL, "argo-url", "", "base URL of the Argo UI (https://argo.example.com): the status page links each run there")
	fs.BoolVar(&cfg.LeaderElect, "leader-elect", false, "elect one replica to write entries, through a Lease (needs --state configmap)")
	fs.StringVar(&cfg.LeaseName, "lease-name", "batchlatch-leader", "Lease used for leader election")
	fs.DurationVar(&cfg.LeaseDuration, "lease-duration", 15*time.Second, "how long a leader's lease lasts; a new leader takes over within it")
	fs.StringVar(&cfg.PodName, "pod-name", "", "this pod's name: monitored-resource label and leader identity")
	fs.StringVar(&cfg.Instance, "instance", "batchlatch", "this installation's name, the same on every replica: monitored-resource label pod_name of the entries (one time series per job across leader changes)")
	fs.StringVar(&cfg.Cluster, "cluster", "", "GKE cluster name: monitored-resource label cluster_name")
	fs.StringVar(&cfg.Location, "location", "", "GKE cluster location: monitored-resource label location")
	fs.StringVar(&cfg.ContainerName, "container-name", "batchlatch", "monitored-resource label container_name")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", 10*time.Second, "bound on one Cloud Logging write, retries included")
	cfg.MaxInFlight = server.DefaultInFlight
	fs.Var(inFlightFlag{&cfg.MaxInFlight}, "max-in-flight", "requests served at once, per class: scrapes (/metrics), pages (the status page), reads (the REST reads), writes; past it a request is answered 429 with Retry-After. A class left out keeps its default; 0: no cap")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", 20*time.Second, "how long shutdown waits for requests in flight and the final flush")
	fs.StringVar(&cfg.LoggingEndpoint, loggingEndpointFlag, "", "for tests and emulators only: host:port of a Cloud Logging API emulator, reached in plain-text gRPC without credentials (hidden from --help)")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.Int64Var(&cfg.MemoryLimit, "memory-limit", 0, "the container's memory limit in bytes (in a pod, from the Downward API): the Go runtime's soft memory limit is set to 3/4 of it, so that the GC works harder before the container is killed; GOMEMLIMIT, when set, wins (0: none)")
	fs.BoolVar(&cfg.WatchArgo, "watch-argo", false, "watch Argo CronWorkflows and Workflows for runs that never report: missed ticks, unsubmittable runs, lost callbacks, stuck runs, deleted CronWorkflows")
	fs.Func("argo-namespaces", "comma-separated namespaces the Argo watcher reads (default all)", namespaceList("--argo-namespaces", &cfg.ArgoNamespaces))
	fs.DurationVar(&cfg.ReconcileInterval, "reconcile-interval", 5*time.Minute, "how often the Argo watcher looks for completed runs whose callback never came")
	fs.BoolVar(&cfg.WatchCronJobs, "watch-cronjobs", false, "latch Kubernetes CronJobs: read their Jobs' results from the API server (no hook needed), missed ticks, stuck Jobs, deleted CronJobs")
	fs.Func("cronjob-namespaces", "comma-separated namespaces the CronJob watcher reads (default all)", namespaceList("--cronjob-namespaces", &cfg.CronJobNamespaces))
	fs.DurationVar(&cfg.MissedGrace, "missed-grace", 10*time.Minute, "watched jobs (CronWorkflows and CronJobs): a tick with no run this long after it is a missed run, from 10s to 720h (annotation batchlatch.io/missed-grace overrides it); other jobs: late with no result for twice their expected interval plus this")
	fs.DurationVar(&cfg.MaxRuntime, "max-runtime", 0, "watched jobs: a run still running this long is stuck, up to 720h (0: off; annotation batchlatch.io/max-runtime overrides it, or learns it from the job's usual duration with auto)")
	fs.DurationVar(&cfg.ForgetAfter, "forget-after", 10*time.Minute, "watched jobs: the job of a deleted CronWorkflow or CronJob is forgotten this long after the deletion, up to 720h")
	fs.Usage = func() {
		fmt.Fprintf(output, "Usage: batchlatch [serve] [flags]\n\nKeeps a failed batch job's alert open until the job succeeds again.\nEvery flag can also be set through the environment variable shown.\n`batchlatch help` lists the client commands (failures, jobs, silence, …).\n\n")
		fs.VisitAll(func(f *flag.Flag) {
			if f.Name == loggingEndpointFlag {
				return // hidden: for tests and emulators only
			}
			def := f.DefValue
			if def == "" {
				def = `""`
			}
			fmt.Fprintf(output, "  --%s (%s, default %s)\n        %s\n", f.Name, envName(f.Name), def, f.Usage)
		})
	}
	return fs
}

// parseConfig reads flags from args (without the program name) over the
// environment over the defaults.
func parseConfig(args []string, getenv func(string) string, output io.Writer) (Config, error) {
	var cfg Config
	fs := newFlagSet(&cfg, output)
	var envErrs []error
	fs.VisitAll(func(f *flag.Flag) {
		if v := getenv(envName(f.Name)); v != "" {
			if err := f.Value.Set(v); err != nil {
				envErrs = append(envErrs, fmt.Errorf("%s=%q: %v", envName(f.Name), v, err))
			}
		}
	})
	if err := errors.Join(envErrs...); err != nil {
		return Config{}, err
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if err := cfg.validate(); err != nil {
		return Config{}, err
	}
	return cfg, cfg.resolve(getenv)
}

// metricLag is how late a log-based metric's points are taken to be: Google
// says "may take up to 10 minutes", which is no bound (FACTS.md).
const metricLag = 15 * time.Minute

func (c Config) validate() error {
	var errs []error
	oneOf := func(name, value string, allowed ...string) {
		for _, a := range allowed {
			if value == a {
				return
			}
		}
		errs = append(errs, fmt.Errorf("--%s: %q is not one of %s", name, value, strings.Join(allowed, ", ")))
	}
	oneOf("state", c.State, "auto", "configmap", "file")
	oneOf("sink", c.Sink, "auto", "cloudlogging", "stdout")
	oneOf("log-level", c.LogLevel, "debug", "info", "warn", "error")
	if c.Interval <= 0 {
		errs = append(errs, fmt.Errorf("--interval: must be positive, got %s", c.Interval))
	}
	if c.RecoveryWindow < 0 {
		errs = append(errs, fmt.Errorf("--recovery-window: must not be negative, got %s", c.RecoveryWindow))
	}
	switch {
	case c.PolicyWindow < 0:
		errs = append(errs, fmt.Errorf("--policy-window: must not be negative, got %s", c.PolicyWindow))
	case c.PolicyWindow > 0 && c.RecoveryWindow < c.PolicyWindow+metricLag:
		errs = append(errs, fmt.Errorf("--recovery-window: must be at least --policy-window plus %s (the metric's ingestion lag), %s, got %s: the policy must see a whole window of failing 0 after a recovery", metricLag, c.PolicyWindow+metricLag, c.RecoveryWindow))
	}
	if c.Instance == "" {
		errs = append(errs, errors.New("--instance: must not be empty"))
	}
	if c.MetricsAuth && c.ReadToken == "" {
		errs = append(errs, errors.New("--metrics-auth: needs --read-token"))
	}
	if c.MemoryLimit < 0 {
		errs = append(errs, fmt.Errorf("--memory-limit: must not be negative, got %d", c.MemoryLimit))
	}
	if c.Sink == "cloudlogging" && c.Project == "" {
		errs = append(errs, errors.New("--sink cloudlogging: needs --project"))
	}
	if c.LoggingEndpoint != "" {
		if _, port, err := net.SplitHostPort(c.LoggingEndpoint); err != nil || port == "" {
			errs = append(errs, fmt.Errorf("--%s: %q is not host:port", loggingEndpointFlag, c.LoggingEndpoint))
		}
	}
	if c.LeaseDuration < 2*time.Second {
		errs = append(errs, fmt.Errorf("--lease-duration: must be at least 2s, got %s", c.LeaseDuration))
	}
	positive := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("--%s: must be positive, got %s", name, d))
		}
	}
	if c.StateShards < 1 || c.StateShards > configmapstore.MaxShards {
		errs = append(errs, fmt.Errorf("--state-shards: must be from 1 to %d, got %d", configmapstore.MaxShards, c.StateShards))
	}
	if c.ArgoURL != "" {
		if u, err := url.Parse(c.ArgoURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--argo-url: %q is not an http(s) URL such as https://argo.example.com", c.ArgoURL))
		}
	}
	positive("reconcile-interval", c.ReconcileInterval)
	// The same checks as the annotations that override them.
	for _, rule := range []struct {
		flag  string
		value time.Duration
		check func(time.Duration) error
	}{
		{"missed-grace", c.MissedGrace, cronrules.CheckMissedGrace},
		{"max-runtime", c.MaxRuntime, cronrules.CheckMaxRuntime},
		{"forget-after", c.ForgetAfter, cronrules.CheckForgetAfter},
	} {
		if err := rule.check(rule.value); err != nil {
			errs = append(errs, fmt.Errorf("--%s: %w", rule.flag, err))
		}
	}
	return errors.Join(errs...)
}

// resolve settles what the flags leave to the environment, once, right after
// parsing: the state and sink kinds ("auto") and the pod name. The own
// namespace needs the kubeconfig and is settled by connectKube.
func (c *Config) resolve(getenv func(string) string) error {
	if c.State == "auto" {
		c.State = "file"
		if inCluster(getenv) {
			c.State = "configmap"
		}
	}
	if c.Sink == "auto" {
		c.Sink = "stdout"
		if c.Project != "" {
			c.Sink = "cloudlogging"
		}
	}
	if c.PodName == "" {
		c.PodName = getenv("POD_NAME")
	}
	if c.PodName == "" {
		// Two processes on one host must not share a leader identity.
		host, _ := os.Hostname()
		c.PodName = host + "-" + rand.Text()[:8]
	}
	if c.LeaderElect && c.State != "configmap" {
		return errors.New("--leader-elect: needs --state configmap (replicas must share their state)")
	}
	return nil
}

// needsKube reports whether the service talks to the Kubernetes API.
func (c Config) needsKube() bool { return c.State == "configmap" || c.WatchArgo || c.WatchCronJobs }

// namespaceList parses a flag's comma-separated namespaces into *dst.
func namespaceList(flag string, dst *[]string) func(string) error {
	return func(v string) error {
		*dst = nil
		for _, ns := range strings.Split(v, ",") {
			if ns = strings.TrimSpace(ns); ns != "" {
				if err := api.ValidateNamespace(flag, ns); err != nil {
					return err
				}
				*dst = append(*dst, ns)
			}
		}
		return nil
	}
}

// inCluster reports whether the process runs in a Kubernetes pod.
func inCluster(getenv func(string) string) bool {
	return getenv("KUBERNETES_SERVICE_HOST") != ""
}

// inFlightFlag is --max-in-flight: class=n pairs, comma-separated
// ("scrapes=8,pages=4"); a class left out keeps its value.
type inFlightFlag struct{ caps *server.InFlight }

func (f inFlightFlag) String() string {
	if f.caps == nil { // the flag package's zero value
		return ""
	}
	return fmt.Sprintf("scrapes=%d,pages=%d,reads=%d,writes=%d", f.caps.Scrapes, f.caps.Pages, f.caps.Reads, f.caps.Writes)
}

func (f inFlightFlag) Set(v string) error {
	for _, pair := range strings.Split(v, ",") {
		if pair = strings.TrimSpace(pair); pair == "" {
			continue
		}
		class, value, ok := strings.Cut(pair, "=")
		n, err := strconv.Atoi(strings.TrimSpace(value))
		if !ok || err != nil || n < 0 {
			return fmt.Errorf("%q is not class=n with n a whole number from 0", pair)
		}
		switch strings.TrimSpace(class) {
		case "scrapes":
			f.caps.Scrapes = n
		case "pages":
			f.caps.Pages = n
		case "reads":
			f.caps.Reads = n
		case "writes":
			f.caps.Writes = n
		default:
			return fmt.Errorf("%q: the classes are scrapes, pages, reads and writes", class)
		}
	}
	return nil
}
