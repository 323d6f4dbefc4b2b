package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"
)

// Config is every setting of the service. Each flag --some-flag can also be
// given as the environment variable BATCHLATCH_SOME_FLAG; a flag wins over
// the environment.
type Config struct {
	Listen         string
	State          string
	StateFile      string
	ConfigMap      string
	Namespace      string
	Sink           string
	Project        string
	LogName        string
	Interval       time.Duration
	RecoveryWindow time.Duration
	TokenFile      string
	LeaderElect    bool
	LeaseName      string
	LeaseDuration  time.Duration
	PodName        string
	Cluster        string
	Location       string
	ContainerName  string
	WriteTimeout   time.Duration
	ShutdownGrace  time.Duration
	LogLevel       string
}

// envPrefix starts the environment variable of every flag.
const envPrefix = "BATCHLATCH_"

// envName is the environment variable that sets flag name.
func envName(name string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

func newFlagSet(cfg *Config, output io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("batchlatch", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.Listen, "listen", ":8080", "address the HTTP API listens on")
	fs.StringVar(&cfg.State, "state", "auto", "where job state is kept: auto (configmap in a cluster, else file), configmap or file")
	fs.StringVar(&cfg.StateFile, "state-file", "batchlatch-state.json", "state file, for --state file")
	fs.StringVar(&cfg.ConfigMap, "configmap", "batchlatch-state", "ConfigMap holding the state, for --state configmap")
	fs.StringVar(&cfg.Namespace, "namespace", "", "the service's own namespace (ConfigMap, Lease); in a pod, from the Downward API")
	fs.StringVar(&cfg.Sink, "sink", "auto", "where entries go: auto (cloudlogging when --project is set, else stdout), cloudlogging or stdout")
	fs.StringVar(&cfg.Project, "project", "", "Google Cloud project the entries are written to")
	fs.StringVar(&cfg.LogName, "log-name", "batchlatch", "Cloud Logging log name of the entries")
	fs.DurationVar(&cfg.Interval, "interval", 60*time.Second, "how often an entry is written per failing job (half the alert's alignment period)")
	fs.DurationVar(&cfg.RecoveryWindow, "recovery-window", 30*time.Minute, "how long after a recovery entries with failing 0 are written")
	fs.StringVar(&cfg.TokenFile, "token-file", "", "file holding the bearer token that writes must carry (none: writes are open)")
	fs.BoolVar(&cfg.LeaderElect, "leader-elect", false, "elect one replica to write entries, through a Lease (needs --state configmap)")
	fs.StringVar(&cfg.LeaseName, "lease-name", "batchlatch-leader", "Lease used for leader election")
	fs.DurationVar(&cfg.LeaseDuration, "lease-duration", 15*time.Second, "how long a leader's lease lasts; a new leader takes over within it")
	fs.StringVar(&cfg.PodName, "pod-name", "", "this pod's name: monitored-resource label and leader identity")
	fs.StringVar(&cfg.Cluster, "cluster", "", "GKE cluster name: monitored-resource label cluster_name")
	fs.StringVar(&cfg.Location, "location", "", "GKE cluster location: monitored-resource label location")
	fs.StringVar(&cfg.ContainerName, "container-name", "batchlatch", "monitored-resource label container_name")
	fs.DurationVar(&cfg.WriteTimeout, "write-timeout", 10*time.Second, "bound on one Cloud Logging write, retries included")
	fs.DurationVar(&cfg.ShutdownGrace, "shutdown-grace", 20*time.Second, "how long shutdown waits for requests in flight and the final flush")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.Usage = func() {
		fmt.Fprintf(output, "Usage: batchlatch [flags]\n\nKeeps a failed batch job's alert open until the job succeeds again.\nEvery flag can also be set through the environment variable shown.\n\n")
		fs.VisitAll(func(f *flag.Flag) {
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
	return cfg, cfg.validate()
}

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
	if c.Sink == "cloudlogging" && c.Project == "" {
		errs = append(errs, errors.New("--sink cloudlogging: needs --project"))
	}
	if c.LeaseDuration < 2*time.Second {
		errs = append(errs, fmt.Errorf("--lease-duration: must be at least 2s, got %s", c.LeaseDuration))
	}
	return errors.Join(errs...)
}
