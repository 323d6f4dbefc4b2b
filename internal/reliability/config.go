package reliability

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Config is what a run does and for how long. Each setting is a flag of the
// test binary (hack/reliability.sh passes its arguments on) and an
// environment variable RELIABILITY_<NAME> (a flag wins); -short picks the
// smoke run's values for those set by neither.
type Config struct {
	Short bool

	Load     time.Duration // the load phase
	Clients  int           // concurrent clients
	Readers  int           // concurrent scrapes and page loads during the load
	Jobs     int           // distinct jobs (0: 10,000 on the sharded store, else 1,000)
	Spread   int           // Argo namespaces the jobs are spread over
	Shards   int           // --state-shards (0: the binary's default)
	Interval time.Duration // --interval of the replicas
	Lease    time.Duration // --lease-duration of the replicas
	Sample   time.Duration // RSS sampling period

	Faults        []string      // which faults, in order
	Settle        time.Duration // steady load before each fault, and after its recovery
	Down          time.Duration // how long kube-apiserver and etcd stay down
	Outage        time.Duration // how long Cloud Logging answers Unavailable
	RecoverWithin time.Duration // a fault not recovered by then fails the run

	FuzzExecs         int // executions of the fuzz target
	HostileNamespaces int // distinct namespaces one hostile client creates
	SlowConns         int // concurrent slow-body connections

	Phases map[string]bool // which phases run (AllPhases)

	Out string // where the Markdown report is written
}

// AllPhases are the suite's phases, in the order they run.
var AllPhases = []string{"load", "faults", "bad-input", "fuzz"}

// AllFaults are the faults, in the order they run.
var AllFaults = []string{"apiserver", "logging", "leader", "etcd"}

type setting struct {
	name, usage string
	full, short string
	set         func(string) error
	value       *string
}

// Settings registers the flags on fs and returns a function that resolves
// them (flag, else environment, else the mode's default) once fs is parsed.
func Settings(fs *flag.FlagSet) func(short bool) (Config, error) {
	var cfg Config
	dur := func(d *time.Duration) func(string) error {
		return func(s string) (err error) { *d, err = time.ParseDuration(s); return }
	}
	num := func(n *int) func(string) error {
		return func(s string) (err error) { *n, err = strconv.Atoi(strings.ReplaceAll(s, "_", "")); return }
	}
	settings := []*setting{
		{name: "load", usage: "duration of the load phase", full: "5m", short: "30s", set: dur(&cfg.Load)},
		{name: "clients", usage: "concurrent clients", full: "64", short: "64", set: num(&cfg.Clients)},
		{name: "readers", usage: "clients scraping /metrics and loading the status page of the replicas during the load (0: none)", full: "16", short: "16", set: num(&cfg.Readers)},
		{name: "jobs", usage: "distinct jobs (0: 10000 on the sharded store, else 1000)", full: "0", short: "0", set: num(&cfg.Jobs)},
		{name: "spread", usage: "Argo namespaces the jobs are spread over", full: "20", short: "20", set: num(&cfg.Spread)},
		{name: "shards", usage: "--state-shards of the replicas (0: the binary's default)", full: "0", short: "0", set: num(&cfg.Shards)},
		{name: "interval", usage: "--interval of the replicas", full: "2s", short: "2s", set: dur(&cfg.Interval)},
		{name: "lease", usage: "--lease-duration of the replicas", full: "4s", short: "4s", set: dur(&cfg.Lease)},
		{name: "sample", usage: "RSS sampling period", full: "10s", short: "10s", set: dur(&cfg.Sample)},
		{name: "faults", usage: "comma-separated faults to inject, in order: " + strings.Join(AllFaults, ",") + " (none: -faults=-)", full: strings.Join(AllFaults, ","), short: strings.Join(AllFaults, ","), set: func(s string) error {
			cfg.Faults = nil
			for _, f := range strings.Split(s, ",") {
				if f = strings.TrimSpace(f); f == "" || f == "-" {
					continue
				}
				known := false
				for _, a := range AllFaults {
					known = known || a == f
				}
				if !known {
					return fmt.Errorf("unknown fault %q (known: %s)", f, strings.Join(AllFaults, ", "))
				}
				cfg.Faults = append(cfg.Faults, f)
			}
			return nil
		}},
		{name: "settle", usage: "steady load before each fault and after its recovery", full: "20s", short: "5s", set: dur(&cfg.Settle)},
		{name: "down", usage: "how long kube-apiserver and etcd stay down", full: "15s", short: "5s", set: dur(&cfg.Down)},
		{name: "outage", usage: "how long Cloud Logging answers Unavailable", full: "2m", short: "15s", set: dur(&cfg.Outage)},
		{name: "recover-within", usage: "a fault not recovered within this after it ends fails the run", full: "2m", short: "1m", set: dur(&cfg.RecoverWithin)},
		{name: "fuzz-execs", usage: "executions of FuzzDecodeResult (0: skip)", full: "1000000", short: "20000", set: num(&cfg.FuzzExecs)},
		{name: "hostile-namespaces", usage: "distinct namespaces the hostile client creates", full: "10000", short: "2000", set: num(&cfg.HostileNamespaces)},
		{name: "slow-conns", usage: "concurrent slow-body connections", full: "200", short: "50", set: num(&cfg.SlowConns)},
		{name: "phases", usage: "comma-separated phases to run: " + strings.Join(AllPhases, ","), full: strings.Join(AllPhases, ","), short: strings.Join(AllPhases, ","), set: func(s string) error {
			cfg.Phases = map[string]bool{}
			for _, p := range strings.Split(s, ",") {
				if p = strings.TrimSpace(p); p == "" {
					continue
				}
				known := false
				for _, a := range AllPhases {
					known = known || a == p
				}
				if !known {
					return fmt.Errorf("unknown phase %q (known: %s)", p, strings.Join(AllPhases, ", "))
				}
				cfg.Phases[p] = true
			}
			return nil
		}},
		{name: "out", usage: "file the Markdown report is written to", full: filepath.Join(os.TempDir(), "reliability.md"), short: filepath.Join(os.TempDir(), "reliability.md"), set: func(s string) error { cfg.Out = s; return nil }},
	}
	for _, s := range settings {
		s.value = fs.String(s.name, "", s.usage+" (env RELIABILITY_"+envName(s.name)+"; default "+s.full+", -short "+s.short+")")
	}
	return func(short bool) (Config, error) {
		cfg.Short = short
		for _, s := range settings {
			v, from := *s.value, "-"+s.name
			if v == "" {
				v, from = os.Getenv("RELIABILITY_"+envName(s.name)), "RELIABILITY_"+envName(s.name)
			}
			if v == "" {
				v, from = s.full, "default of -"+s.name
				if short {
					v = s.short
				}
			}
			if err := s.set(v); err != nil {
				return Config{}, fmt.Errorf("%s=%q: %v", from, v, err)
			}
		}
		switch {
		case cfg.Clients < 1:
			return Config{}, fmt.Errorf("-clients: must be at least 1")
		case cfg.Spread < 1:
			return Config{}, fmt.Errorf("-spread: must be at least 1")
		case cfg.Load <= 0 || cfg.Interval <= 0 || cfg.Sample <= 0:
			return Config{}, fmt.Errorf("-load, -interval and -sample must be positive")
		}
		return cfg, nil
	}
}

func envName(flag string) string { return strings.ToUpper(strings.ReplaceAll(flag, "-", "_")) }
