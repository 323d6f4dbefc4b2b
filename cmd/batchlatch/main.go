// Command batchlatch keeps a failed batch job's alert open until the job
// succeeds again.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	// The IANA zones embedded, so schedules with a timezone read the same on
	// any host or image (Argo's controller does the same).
	_ "time/tzdata"

	argoclient "github.com/argoproj/argo-workflows/v3/pkg/client/clientset/versioned"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	batchv1client "k8s.io/client-go/kubernetes/typed/batch/v1"
	coordinationv1client "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"github.com/batchlatch/batchlatch/alarm"
	"github.com/batchlatch/batchlatch/api"
	batchlatchcli "github.com/batchlatch/batchlatch/internal/cli"
	"github.com/batchlatch/batchlatch/server"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/configmapstore"
	"github.com/batchlatch/batchlatch/state/filestore"
	argowatch "github.com/batchlatch/batchlatch/watch/argo"
	cronjobwatch "github.com/batchlatch/batchlatch/watch/cronjob"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		var exit batchlatchcli.ExitError
		if errors.As(err, &exit) { // a client command, which said why on stderr
			os.Exit(exit.Code)
		}
		fmt.Fprintln(os.Stderr, "batchlatch:", err)
		os.Exit(1)
	}
}

// serverArgs returns the server's flags when args (without the program
// name) run the server: nothing, flags, or "serve" and flags, so that bare
// `batchlatch` keeps serving as it always did. ok is false for a client
// command (or a word that is none).
func serverArgs(args []string) (flags []string, ok bool) {
	switch {
	case len(args) == 0 || strings.HasPrefix(args[0], "-"):
		return args, true
	case args[0] == "serve":
		return args[1:], true
	}
	return nil, false
}

// run is the whole program: it returns when ctx is done (after an orderly
// shutdown) or when start-up fails.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	serverFlags, serve := serverArgs(args[1:])
	if !serve {
		return batchlatchcli.Run(ctx, batchlatchcli.Batchlatch, args[1:], getenv, stdout, stderr)
	}
	cfg, err := parseConfig(serverFlags, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	logger := newLogger(stderr, cfg.LogLevel)
	// client-go logs through klog, a process-wide logger: send it to ours.
	routeKlog(logger.With("component", "client-go"))
	setGCPercent(getenv)
	setMemoryLimit(cfg.MemoryLimit, getenv, logger)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	alarmMetrics := alarm.NewMetrics(reg)
	serverMetrics := server.NewMetrics(reg)

	var k kube
	if cfg.needsKube() {
		if k, err = connectKube(&cfg, getenv); err != nil {
			return err
		}
	}
	store, err := openStore(cfg, k, logger)
	if err != nil {
		return err
	}
	defer store.Close()
	// Per-job gauges, read from the shared state for /metrics (at most a
	// few seconds old): every replica exports them, and they agree.
	jobGauges := alarm.NewJobGauges(store, store.Silences)
	reg.MustRegister(jobGauges.Errors())

	sink, err := openSink(ctx, cfg, stdout, alarmMetrics, logger)
	if err != nil {
		return err
	}

	// The sources besides callbacks, and what they add to the jobs' views.
	var watcher *argowatch.Watcher
	var cronJobs *cronjobwatch.Watcher
	loopCfg := alarm.LoopConfig{Interval: cfg.Interval, RecoveryWindow: cfg.RecoveryWindow, PolicyWindow: cfg.PolicyWindow, Silences: store.Silences,
		MissedGrace: cfg.MissedGrace, Record: store.Record}
	var schedules []api.ScheduleOf
	if cfg.WatchArgo {
		if watcher, err = newArgoWatcher(cfg, k, store, logger); err != nil {
			return err
		}
		schedules = append(schedules, watcher.Schedule)
	}
	if cfg.WatchCronJobs {
		cronJobs = cronjobwatch.New(k.batch, store, cronjobwatch.Config{
			Namespaces:  cfg.CronJobNamespaces,
			MissedGrace: cfg.MissedGrace,
			MaxRuntime:  cfg.MaxRuntime,
			ForgetAfter: cfg.ForgetAfter,
		}, cronjobwatch.Hooks{}, logger)
		schedules = append(schedules, cronJobs.Schedule)
	}
	if len(schedules) > 0 {
		loopCfg.Schedules = firstSchedule(schedules)
	}
	// A forgotten job is kept until the loop has written its closing.
	loopCfg.Purge = func(ctx context.Context, key state.Key, forgottenAt time.Time) error {
		return store.Edit(ctx, key, state.PurgeForgotten(forgottenAt))
	}
	loop := alarm.NewLoop(store, sink, loopCfg, alarmMetrics, logger)
	forgot := func(context.Context, state.Job, string) { loop.Kick() }
	if watcher != nil {
		watcher.SetHooks(argowatch.Hooks{Kick: loop.Kick, Forgot: forgot})
	}
	if cronJobs != nil {
		cronJobs.SetHooks(cronjobwatch.Hooks{Kick: loop.Kick, Forgot: forgot})
	}
	token, err := batchlatchcli.ReadToken(cfg.TokenFile)
	if err != nil {
		return err
	}
	handler := server.NewServer(logger, store, loop, reg, serverMetrics, server.Config{
		Token: token, ReadToken: cfg.ReadToken, ArgoURL: cfg.ArgoURL, Schedules: loopCfg.Schedules, Silences: store.Silences,
		JobSeries: jobGauges.WriteText, MetricsAuth: cfg.MetricsAuth, InFlight: cfg.MaxInFlight, MissedGrace: cfg.MissedGrace,
		WriteDeadlines: server.DefaultWriteDeadlines,
	})

	// What only one replica does (with --leader-elect, the leader): write
	// entries and, with --watch-argo and --watch-cronjobs, watch.
	background := []func(context.Context){loop.Run}
	if watcher != nil {
		background = append(background, watcher.Run)
	}
	if cronJobs != nil {
		background = append(background, cronJobs.Run)
	}
	runBackground := func(ctx context.Context) {
		var wg sync.WaitGroup
		for _, fn := range background {
			wg.Go(func() { fn(ctx) })
		}
		wg.Wait()
	}

	listener, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	httpServer := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	logger.Info("listening", "addr", listener.Addr().String(), "state", cfg.State, "sink", cfg.Sink, "interval", cfg.Interval.String())

	serveErr := make(chan error, 1)
	go func() { serveErr <- httpServer.Serve(listener) }()

	loopCtx, stopLoop := context.WithCancel(context.WithoutCancel(ctx))
	var loopDone sync.WaitGroup
	// The loop and the watchers start once the state can be read (the
	// ConfigMap store prepares its shards first): a watcher's first pass
	// over it would otherwise fail and wait for its next evaluation, the
	// loop's for its next tick; and a replica that cannot read the state
	// does not run for the Lease (nor one that is not ready: runAsLeader).
	if cfg.LeaderElect {
		loopDone.Go(func() {
			if waitReadable(loopCtx, store) {
				runAsLeader(loopCtx, cfg, k, store.Ready, logger, runBackground)
			}
		})
	} else {
		loopDone.Go(func() {
			if waitReadable(loopCtx, store) {
				runBackground(loopCtx)
			}
		})
	}

	select {
	case <-ctx.Done():
	case err = <-serveErr:
		err = fmt.Errorf("serve: %w", err)
	}

	// Shutdown order: stop taking callbacks and finish those in flight, then
	// stop the loop, then flush the sink; the store closes last (deferred).
	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownGrace)
	defer cancel()
	if shutdownErr := httpServer.Shutdown(shutdownCtx); shutdownErr != nil {
		logger.Warn("http shutdown", "err", shutdownErr)
	}
	stopLoop()
	loopDone.Wait()
	if closeErr := sink.Close(shutdownCtx); closeErr != nil {
		logger.Warn("flush sink", "err", closeErr)
	}
	logger.Info("stopped")
	return err
}

// gcPercent is the collector's GOGC unless GOGC says otherwise: the heap
// may grow to 1.2 times what is live instead of the default's 2. Under the
// reliability suite's load at 10,000 jobs the live heap is 35-50 MB on
// the leader, and what the heap may grow to above it decides whether a
// replica stays within 128 MiB. The price is CPU: each callback costs the
// replica about half as much again as at 50 (docs/performance.md), which
// at a batch job's rate of callbacks is little; set GOGC to trade back.
const gcPercent = 20

// setGCPercent sets the collector's target to gcPercent, unless GOGC set one.
func setGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

// setMemoryLimit sets the Go runtime's soft memory limit from the
// container's (--memory-limit), unless GOMEMLIMIT set one already.
func setMemoryLimit(containerLimit int64, getenv func(string) string, logger *slog.Logger) {
	if containerLimit <= 0 || getenv("GOMEMLIMIT") != "" {
		return
	}
	soft := softMemoryLimit(containerLimit)
	debug.SetMemoryLimit(soft)
	logger.Info("memory limit", "container", containerLimit, "goSoftLimit", soft)
}

// softMemoryLimit is the Go runtime's share of a container's memory limit:
// three quarters. The rest is for what the runtime does not count but the
// container's limit does: the binary's own pages (35 MiB idle, 45-50 MB
// under the reliability suite's load). A soft limit below a replica's working
// set makes the GC run all the time, so this one is a guard against being
// killed in a burst. Lower limits keep RSS low only while they stay above it:
// at 10,000 jobs, 80 MiB held the leader within 128 MiB at the CPU it takes
// without (docs/performance.md), but no fixed value fits every size.
func softMemoryLimit(containerLimit int64) int64 {
	return containerLimit / 4 * 3
}

// newLogger logs JSON lines with the field names GKE's agent reads
// ("severity", "message").
func newLogger(w io.Writer, level string) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(level)) // validated in Config.validate
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{
		Level: lvl,
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) > 0 {
				return a
			}
			switch a.Key {
			case slog.LevelKey:
				a.Key = "severity"
			case slog.MessageKey:
				a.Key = "message"
			}
			return a
		},
	}))
}

// kube is how the service reaches the Kubernetes API: for the ConfigMap store
// and leader election.
type kube struct {
	core      corev1client.CoreV1Interface
	batch     batchv1client.BatchV1Interface
	config    *rest.Config
	namespace string
}

// connectKube finds the API server the way kubectl does (KUBECONFIG, then
// ~/.kube/config, then the in-cluster service account). It does not contact
// the server: an unreachable one only delays readiness.
func connectKube(cfg *Config, getenv func(string) string) (kube, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if path := getenv("KUBECONFIG"); path != "" {
		rules.Precedence = filepath.SplitList(path)
	}
	clientConfig := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{})
	restConfig, err := clientConfig.ClientConfig()
	if err != nil {
		return kube{}, fmt.Errorf("find the Kubernetes API server (KUBECONFIG, ~/.kube/config or in-cluster): %w", err)
	}
	restConfig = configmapstore.TuneClient(restConfig)
	restConfig.UserAgent = "batchlatch"
	// The typed clients of the groups used, not kubernetes.NewForConfig:
	// the whole clientset links every API group's client into the binary.
	core, err := corev1client.NewForConfig(restConfig)
	if err != nil {
		return kube{}, err
	}
	batch, err := batchv1client.NewForConfig(restConfig)
	if err != nil {
		return kube{}, err
	}
	if cfg.Namespace == "" {
		if cfg.Namespace, _, err = clientConfig.Namespace(); err != nil || cfg.Namespace == "" {
			return kube{}, fmt.Errorf("--namespace: not set and not found in the kubeconfig or the pod: %v", err)
		}
	}
	return kube{core: core, batch: batch, config: restConfig, namespace: cfg.Namespace}, nil
}

func openStore(cfg Config, k kube, logger *slog.Logger) (state.Store, error) {
	if cfg.State == "file" {
		store, err := filestore.Open(cfg.StateFile)
		if err != nil {
			return nil, fmt.Errorf("--state-file: %w", err)
		}
		logger.Info("state in file", "path", cfg.StateFile)
		return store, nil
	}
	logger.Info("state in configmaps", "namespace", k.namespace, "configmap", cfg.ConfigMap, "shards", cfg.StateShards)
	return configmapstore.NewSharded(k.core.ConfigMaps(k.namespace), cfg.ConfigMap, cfg.StateShards, configmapstore.Options{}, logger), nil
}

// waitReadable waits until store lists the jobs; false when ctx ended
// first. Readable, not ready: a file store on a full disk cannot take
// writes, and its failing jobs must still be announced.
func waitReadable(ctx context.Context, store state.Store) bool {
	for {
		if _, err := store.List(ctx); err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// runAsLeader runs fn while this replica holds the Lease, campaigning again
// whenever it loses it, until ctx is done. On shutdown it releases the Lease
// so that another replica takes over at once.
//
// Only a ready replica (ready: the store's Ready, what /readyz answers)
// runs for the Lease: one that cannot write the state, such as one started
// with another --state-shards than the state's, would hold the Lease and
// write nothing while a healthy replica follows. A follower stops
// campaigning as soon as it is not ready, and campaigns again once it is; a
// leader that stays not ready for longer than the Lease gives it up
// (released, so that a ready replica takes it at once), while a shorter blip
// (an API server restart) keeps it. client-go's elector has no such
// condition of its own, hence the watch beside it.
func runAsLeader(ctx context.Context, cfg Config, k kube, ready func(context.Context) error, logger *slog.Logger, fn func(context.Context)) {
	identity := cfg.PodName
	logger = logger.With("component", "leader-election", "identity", identity)
	// A request to the Lease that hangs (etcd gone, the API server waiting
	// on it) must not outlast a renewal: bound each one to half the renew
	// deadline, as kube-controller-manager does, or taking the Lease again
	// after an outage waits for the API server to give up.
	leaseConfig := rest.CopyConfig(k.config)
	leaseConfig.Timeout = cfg.LeaseDuration / 3
	leaseClient, err := coordinationv1client.NewForConfig(leaseConfig)
	if err != nil {
		logger.Error("lease client", "err", err)
		return
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: cfg.LeaseName, Namespace: k.namespace},
		Client:     leaseClient,
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}
	retry := cfg.LeaseDuration / 5
	// Readiness is checked more often than the elector retries, so that a
	// follower that turns not ready stops before its next try.
	poll := min(retry/2, time.Second)
	check := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, cfg.LeaseDuration/3)
		defer cancel()
		return ready(ctx)
	}
	for ctx.Err() == nil {
		if !waitReady(ctx, check, poll, logger) {
			return
		}
		campaign, stopCampaign := context.WithCancel(ctx)
		var leading atomic.Bool
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock:            lock,
			LeaseDuration:   cfg.LeaseDuration,
			RenewDeadline:   cfg.LeaseDuration * 2 / 3,
			RetryPeriod:     retry,
			ReleaseOnCancel: true,
			Name:            "batchlatch",
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					leading.Store(true)
					logger.Info("leading: writing entries")
					fn(ctx)
				},
				OnStoppedLeading: func() {
					leading.Store(false)
					logger.Info("not leading")
				},
				OnNewLeader: func(leader string) {
					if leader != identity {
						logger.Info("following", "leader", leader)
					}
				},
			},
		})
		if err != nil { // only a bad config; validated durations make it unreachable
			stopCampaign()
			logger.Error("leader election", "err", err)
			return
		}
		var watching sync.WaitGroup
		watching.Go(func() {
			stopWhenNotReady(campaign, check, poll, cfg.LeaseDuration, leading.Load, logger)
			stopCampaign()
		})
		elector.Run(campaign)
		stopCampaign()
		watching.Wait()
	}
}

// waitReady waits until ready answers nil; false when ctx ended first.
func waitReady(ctx context.Context, ready func(context.Context) error, poll time.Duration, logger *slog.Logger) bool {
	logged := false
	for {
		err := ready(ctx)
		if err == nil {
			return true
		}
		if !logged {
			logger.Warn("not ready: not running for the Lease until the state can take writes", "err", err)
			logged = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(poll):
		}
	}
}

// stopWhenNotReady returns when ctx ends or when this replica should stop
// campaigning: at once when it is not ready and not leading, when it has
// been not ready for longer than lease while leading.
func stopWhenNotReady(ctx context.Context, ready func(context.Context) error, poll, lease time.Duration, leading func() bool, logger *slog.Logger) {
	var notReadySince time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(poll):
		}
		err := ready(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			notReadySince = time.Time{}
			continue
		}
		if notReadySince.IsZero() {
			notReadySince = time.Now()
		}
		if !leading() {
			logger.Warn("not ready: no longer running for the Lease", "err", err)
			return
		}
		if time.Since(notReadySince) > lease {
			logger.Warn("not ready for longer than the Lease: giving it up", "err", err, "since", notReadySince)
			return
		}
	}
}

func openSink(ctx context.Context, cfg Config, stdout io.Writer, metrics *alarm.Metrics, logger *slog.Logger) (alarm.Sink, error) {
	if cfg.Sink == "stdout" {
		return alarm.NewStdoutSink(stdout, metrics), nil
	}
	return alarm.NewCloudLoggingSink(ctx, alarm.CloudLoggingConfig{
		Project:       cfg.Project,
		LogName:       cfg.LogName,
		Cluster:       cfg.Cluster,
		Location:      cfg.Location,
		Instance:      cfg.Instance,
		PodName:       cfg.PodName,
		ContainerName: cfg.ContainerName,
		OwnNamespace:  cfg.Namespace,
		WriteTimeout:  cfg.WriteTimeout,
	}, metrics, logger, loggingEmulator(cfg.LoggingEndpoint)...)
}

// loggingEmulator are the client options that point the Cloud Logging sink
// at an emulator at endpoint (--logging-endpoint, for tests and emulators):
// plain-text gRPC, no credentials. None when endpoint is empty. The
// monitored resource is passed explicitly either way, so the client never
// probes the metadata server.
func loggingEmulator(endpoint string) []option.ClientOption {
	if endpoint == "" {
		return nil
	}
	return []option.ClientOption{
		option.WithEndpoint(endpoint),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// newArgoWatcher builds the Argo source on the service's Kubernetes
// connection: Argo's clientset for CronWorkflows, metadata only for Workflows.
func newArgoWatcher(cfg Config, k kube, store state.Store, logger *slog.Logger) (*argowatch.Watcher, error) {
	argo, err := argoclient.NewForConfig(k.config)
	if err != nil {
		return nil, fmt.Errorf("--watch-argo: %w", err)
	}
	meta, err := metadata.NewForConfig(k.config)
	if err != nil {
		return nil, fmt.Errorf("--watch-argo: %w", err)
	}
	return argowatch.New(argo, meta, store, argowatch.Config{
		Namespaces:        cfg.ArgoNamespaces,
		MissedGrace:       cfg.MissedGrace,
		ReconcileInterval: cfg.ReconcileInterval,
		MaxRuntime:        cfg.MaxRuntime,
		ForgetAfter:       cfg.ForgetAfter,
	}, argowatch.Hooks{}, logger), nil
}

// firstSchedule asks each watcher in turn: each answers only for the kind of
// job it reads.
func firstSchedule(watchers []api.ScheduleOf) api.ScheduleOf {
	return func(kind, namespace, name string, now time.Time) *api.Schedule {
		for _, of := range watchers {
			if s := of(kind, namespace, name, now); s != nil {
				return s
			}
		}
		return nil
	}
}
