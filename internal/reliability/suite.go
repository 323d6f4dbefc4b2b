package reliability

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/batchlatch/batchlatch/internal/fakelogging"
	"github.com/batchlatch/batchlatch/internal/kubetest"
)

// Suite is one run: the cluster, the fake, the replicas, the load and what
// was measured.
type Suite struct {
	t   testing.TB
	cfg Config
	env *kubetest.Env

	root, dir, bin string
	sharded        bool
	shards         int // the replicas' shards (0: one ConfigMap)

	fake     *fakelogging.Server
	ns       string
	replicas []*Replica
	load     *Load

	rss     *Sampler
	Report  Report
	started time.Time
}

// NewSuite builds the binary, starts the fake and two replicas in a fresh
// namespace of env, and waits until they are ready and one of them writes
// entries.
func NewSuite(t testing.TB, cfg Config, env *kubetest.Env) *Suite {
	t.Helper()
	s := &Suite{t: t, cfg: cfg, env: env, started: time.Now()}
	var err error
	if s.root, err = RepoRoot(); err != nil {
		t.Fatal(err)
	}
	if s.dir, err = os.MkdirTemp("", "batchlatch-reliability-"); err != nil {
		t.Fatal(err)
	}
	t.Logf("binary, replica logs: %s (removed if the run passes)", s.dir)
	t.Cleanup(func() {
		if !t.Failed() {
			os.RemoveAll(s.dir)
		}
	})
	if s.bin, err = Build(context.Background(), s.root, s.dir); err != nil {
		t.Fatal(err)
	}
	var defaultShards int
	s.sharded, defaultShards = ShardsOf(s.bin)
	if s.sharded {
		s.shards = defaultShards
		if cfg.Shards > 0 {
			s.shards = cfg.Shards
		}
	}
	if s.cfg.Jobs == 0 {
		s.cfg.Jobs = 1000 // what one ConfigMap holds with room to spare
		if s.sharded {
			s.cfg.Jobs = 10000
		}
	}

	if s.fake, err = fakelogging.New(); err != nil {
		t.Fatal(err)
	}
	s.fake.Discard() // minutes of entries: count them, keep only when they came
	t.Cleanup(s.fake.Close)

	s.ns = env.NewNamespace(t)
	for _, name := range []string{"replica-a", "replica-b"} {
		r, err := NewReplica(s.bin, name, filepath.Join(s.dir, name+".log"), ReplicaEnv(env.Kubeconfig), s.replicaArgs(s.ns, true)...)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Stop)
		s.replicas = append(s.replicas, r)
	}
	for _, r := range s.replicas {
		if err := r.WaitStatus("/readyz", 200, 60*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	s.rss = StartSampler(cfg.Sample)
	for _, r := range s.replicas {
		s.rss.Watch(r)
	}
	t.Cleanup(s.rss.Stop)
	if err := s.waitEntries(time.Now().Add(-time.Minute), "", 2*cfg.Interval+30*time.Second); err != nil {
		t.Fatalf("no replica writes entries: %v", err)
	}
	targets := make([]string, len(s.replicas))
	for i, r := range s.replicas {
		targets[i] = r.URL
	}
	s.load = NewLoad(targets, cfg.Clients, s.cfg.Jobs, cfg.Spread)
	s.Report.Setup = s.setup()
	return s
}

// replicaArgs are a replica's flags after --listen and --pod-name.
func (s *Suite) replicaArgs(namespace string, leaderElect bool) []string {
	args := []string{
		"--state", "configmap", "--namespace", namespace,
		"--sink", "cloudlogging", "--project", "test-project", "--logging-endpoint", s.fake.Addr(),
		"--cluster", "reliability", "--location", "local",
		"--interval", s.cfg.Interval.String(),
		// One entry per failing job and pass (the policy window would
		// announce each change many times), no recoveries to follow.
		"--policy-window", "0", "--recovery-window", "1m",
		"--shutdown-grace", "10s",
	}
	if s.shards > 0 && s.cfg.Shards > 0 {
		args = append(args, "--state-shards", strconv.Itoa(s.shards))
	}
	if leaderElect {
		args = append(args, "--leader-elect", "--lease-duration", s.cfg.Lease.String())
	}
	return args
}

func (s *Suite) setup() string {
	store := "one ConfigMap (this binary has no --state-shards)"
	if s.sharded {
		store = fmt.Sprintf("%d ConfigMap shards", s.shards)
	}
	return fmt.Sprintf("2 replicas (`--leader-elect --lease-duration %s --interval %s --policy-window 0`), state in %s on a real kube-apiserver + etcd, "+
		"entries to a Cloud Logging fake over gRPC; %s jobs in %d namespaces, all failing; %d clients, each callback a new failed run of a random job, "+
		"retried as the shipped exit handler does, 10 times faster (%d attempts, backoff 1 s·2ⁿ, alternating replicas; one probe client retries every 0.1 s); "+
		"API server, etcd, replicas, fake and load generator on one %d-core machine",
		s.cfg.Lease, s.cfg.Interval, store, thousands(s.cfg.Jobs), s.cfg.Spread, s.cfg.Clients, maxAttempts, runtime.NumCPU())
}

// entryTimes are when the fake accepted entries (sorted), from writers other
// than exclude.
func (s *Suite) entryTimes(since time.Time, exclude string) []time.Time {
	var out []time.Time
	for _, w := range s.fake.Writes() {
		if w.Code != codes.OK || w.Entries == 0 || w.At.Before(since) {
			continue
		}
		if exclude != "" && w.Labels["writer"] == exclude {
			continue
		}
		out = append(out, w.At)
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

func (s *Suite) waitEntries(since time.Time, exclude string, within time.Duration) error {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if len(s.entryTimes(since, exclude)) > 0 {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("no entries within %s", within)
}

// leader is the replica holding the Lease.
func (s *Suite) leader() (*Replica, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lease, err := s.env.Clientset.CoordinationV1().Leases(s.ns).Get(ctx, "batchlatch-leader", metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	holder := ""
	if lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	for _, r := range s.replicas {
		if r.Name == holder {
			return r, nil
		}
	}
	return nil, fmt.Errorf("lease held by %q, not a replica", holder)
}

// readStore reads every job from a live replica, after the store's
// one-second cache has expired; if acknowledged runs seem lost, it reads
// again twice, so that a stale cache is not taken for a loss.
func (s *Suite) account() (Accounting, error) {
	var acc Accounting
	var err error
	for try := range 3 {
		time.Sleep(time.Duration(2+2*try) * time.Second)
		var r *Replica
		for _, c := range s.replicas {
			if c.Alive() {
				r = c
				break
			}
		}
		if r == nil {
			return acc, fmt.Errorf("no replica alive")
		}
		jobs, e := GetJobs(r.URL)
		if e != nil {
			err = e
			continue
		}
		acc, err = s.load.Account(jobs), nil
		if acc.Lost == 0 && acc.Extra == 0 {
			break
		}
	}
	return acc, err
}

// cpu reads the machine's CPU time and the suite's: the replicas, the
// cluster and this process.
func (s *Suite) cpu() CPU {
	procs := map[string]int{"load generator and fake": os.Getpid()}
	clusterPIDs(s.env.Dir, procs)
	for _, r := range s.replicas {
		procs[r.Name] = r.PID()
	}
	return readCPU(procs)
}

// metrics is a metric of each running replica.
func (s *Suite) metrics(name string) map[string]float64 {
	m := map[string]float64{}
	for _, r := range s.replicas {
		if r.Alive() {
			m[r.Name] = r.Metric(name)
		}
	}
	return m
}

// RunLoad is the load phase, after one failed run of each job (so that the
// store's size stays the same throughout the load, and RSS growth means a
// leak).
func (s *Suite) RunLoad() {
	s.t.Logf("prefill: one failed run of each of %d jobs", s.cfg.Jobs)
	s.rss.SetPhase("prefill")
	pre := s.load.Prefill()
	s.Report.Load.Prefill = pre
	s.t.Logf("prefill: %d acknowledged in %s", pre.Acked, pre.End.Sub(pre.Start).Round(time.Second))
	s.t.Logf("load: %s, %d clients, %d jobs", s.cfg.Load, s.cfg.Clients, s.cfg.Jobs)
	s.rss.SetPhase("load")
	cpu0 := s.cpu()
	s.load.Start("load")
	var readers *Readers
	if s.cfg.Readers > 0 {
		readers = StartReaders(s.replicas, s.cfg.Readers)
	}
	time.Sleep(s.cfg.Load)
	st := s.load.Stop()
	var readersResult ReadersResult
	if readers != nil {
		readersResult = readers.Stop()
	}
	cpu1 := s.cpu()
	suiteCPU, othersCPU := cpu1.Share(cpu0)
	leader := "?"
	if l, err := s.leader(); err == nil {
		leader = l.Name
	}
	s.rss.SetPhase("")
	acc, err := s.account()
	if err != nil {
		s.t.Errorf("load: read the store: %v", err)
	}
	entries := s.entryTimes(st.Start, "")
	s.Report.Load = LoadResult{
		Prefill: pre, Stats: st, Acc: acc,
		EntryGap: LongestGap(entries, st.Start, st.End),
		RSS:      s.rss.Between(st.Start, st.End.Add(time.Second)),
		RSSEvery: s.cfg.Sample,
		SuiteCPU: suiteCPU, OthersCPU: othersCPU, CPUByProcess: cpu1.ProcShares(cpu0), Leader: leader,
		Readers: readersResult,
	}
	s.Report.Cumulative = acc
	s.t.Logf("load: %d acknowledged (%.0f/s), %d errors, lost %d", st.Acked, float64(st.Acked)/st.End.Sub(st.Start).Seconds(), st.Errors, acc.Lost)
}

// RunFaults injects each configured fault during a stream of callbacks.
func (s *Suite) RunFaults() {
	for _, f := range s.cfg.Faults {
		switch f {
		case "apiserver":
			s.fault("apiserver", "kube-apiserver killed (SIGKILL), restarted after "+s.cfg.Down.String(), func() (time.Time, time.Time, string, func()) {
				start := time.Now()
				s.env.KillAPIServer(s.t)
				time.Sleep(s.cfg.Down)
				s.env.StartAPIServer(s.t)
				return start, time.Now(), "", nil
			})
		case "logging":
			s.fault("logging", "Cloud Logging answers Unavailable for "+s.cfg.Outage.String(), func() (time.Time, time.Time, string, func()) {
				start := time.Now()
				until := start.Add(s.cfg.Outage)
				s.fake.FailUntil(codes.Unavailable, until)
				time.Sleep(time.Until(until))
				return start, until, "", nil
			})
		case "leader":
			s.fault("leader", "the leader SIGKILLed (restarted after it was replaced)", func() (time.Time, time.Time, string, func()) {
				leader, err := s.leader()
				if err != nil {
					s.t.Fatalf("leader: %v", err)
				}
				start := time.Now()
				if err := leader.Signal(syscall.SIGKILL); err != nil {
					s.t.Fatal(err)
				}
				return start, start, leader.Name, func() {
					if err := leader.Start(); err != nil {
						s.t.Fatal(err)
					}
					if err := leader.WaitStatus("/readyz", 200, time.Minute); err != nil {
						s.t.Fatal(err)
					}
				}
			})
		case "etcd":
			s.fault("etcd", "etcd killed (SIGKILL), restarted after "+s.cfg.Down.String(), func() (time.Time, time.Time, string, func()) {
				start := time.Now()
				s.env.StopEtcd(s.t, true)
				time.Sleep(s.cfg.Down)
				s.env.StartEtcd(s.t)
				return start, time.Now(), "", nil
			})
		}
	}
}

// fault runs one fault: steady load, inject (which returns when the fault
// began and ended, a writer whose entries do not count as recovery, and
// what to do once the figures are taken), wait for callbacks and entries to
// come back, steady load again, then the figures.
func (s *Suite) fault(key, name string, inject func() (start, end time.Time, exclude string, after func())) {
	s.t.Logf("fault: %s (steady load first)", name)
	for _, r := range s.replicas {
		if err := r.WaitStatus("/readyz", 200, time.Minute); err != nil {
			s.t.Fatalf("before %s: %v", name, err)
		}
	}
	s.rss.SetPhase(name)
	defer s.rss.SetPhase("")
	s.load.Start(name)
	time.Sleep(s.cfg.Settle)
	sinkErrors := s.metrics("batchlatch_sink_errors_total")
	start, end, exclude, after := inject()
	s.t.Logf("fault: %s from %s to %s", name, start.Format("15:04:05.000"), end.Format("15:04:05.000"))
	deadline := end.Add(s.cfg.RecoverWithin)
	for time.Now().Before(deadline) {
		if len(s.load.AckTimesSince(end)) > 0 && len(s.entryTimes(end, exclude)) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(s.cfg.Settle)
	st := s.load.Stop()
	acc, err := s.account()
	if err != nil {
		s.t.Errorf("%s: read the store: %v", name, err)
	}
	entries := s.entryTimes(st.Start, exclude)
	res := FaultResult{Key: key, Name: name, Stats: st, Acc: acc, Start: start, End: end}
	for name, v := range s.metrics("batchlatch_sink_errors_total") {
		res.SinkErrors += max(0, v-sinkErrors[name]) // a replica killed meanwhile: its count is gone
	}
	res.Lost = acc.Lost - s.Report.Cumulative.Lost
	res.Extra = acc.Extra - s.Report.Cumulative.Extra
	res.CallbackGap = LongestGap(st.AckTimes, start, st.End)
	res.EntryGap = LongestGap(entries, start, st.End)
	res.CallbacksBack, res.CallbacksBackOK = FirstAfter(st.AckTimes, end)
	res.EntriesBack, res.EntriesBackOK = FirstAfter(entries, end)
	s.Report.Cumulative = acc
	s.Report.Faults = append(s.Report.Faults, res)
	s.t.Logf("fault %s: lost %d, %d s without 2xx, %d s without entries, back after %.1f s / %.1f s",
		name, res.Lost, int(res.CallbackGap.Seconds()), int(res.EntryGap.Seconds()), res.CallbacksBack.Seconds(), res.EntriesBack.Seconds())
	if after != nil {
		after()
	}
}

// Finish redelivers each job's last acknowledged run (each must be a
// duplicate), takes the final accounting and stops the replicas with
// SIGTERM (each must exit 0).
func (s *Suite) Finish() {
	var target string
	for _, r := range s.replicas {
		if r.Alive() {
			target = r.URL
			break
		}
	}
	n, notDup, examples := s.load.Redeliver(target, s.cfg.Clients)
	acc, err := s.account()
	if err != nil {
		s.t.Errorf("final: read the store: %v", err)
	}
	s.Report.Final = FinalResult{Redelivered: n, NotDuplicate: notDup, Examples: examples, Acc: acc}
	for _, r := range s.replicas {
		r.Stop()
		if err := r.ExitErr(); err != nil {
			s.Report.Final.Shutdown = append(s.Report.Final.Shutdown, fmt.Sprintf("%s: %v", r.Name, err))
		}
		if r.LogContains("panic") {
			s.Report.Final.Panics = append(s.Report.Final.Panics, r.Name)
		}
	}
}

// Sampler reads the watched replicas' RSS every period.
type Sampler struct {
	mu       sync.Mutex
	replicas []*Replica
	phase    string
	samples  []Sample
	stop     chan struct{}
	done     chan struct{}
}

// Sample is one RSS reading.
type Sample struct {
	At      time.Time
	Replica string
	Phase   string
	Bytes   int64
}

// StartSampler starts sampling every period.
func StartSampler(period time.Duration) *Sampler {
	s := &Sampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-tick.C:
				s.SampleNow()
			}
		}
	}()
	return s
}

// SampleNow takes one reading of every watched replica that runs.
func (s *Sampler) SampleNow() {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	for _, r := range s.replicas {
		if b, err := r.RSS(); err == nil {
			s.samples = append(s.samples, Sample{At: now, Replica: r.Name, Phase: s.phase, Bytes: b})
		}
	}
}

// Watch adds a replica.
func (s *Sampler) Watch(r *Replica) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.replicas = append(s.replicas, r)
}

// SetPhase labels the following samples.
func (s *Sampler) SetPhase(p string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.phase = p
}

// Between is the samples taken in [from, to].
func (s *Sampler) Between(from, to time.Time) []Sample {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Sample
	for _, x := range s.samples {
		if !x.At.Before(from) && !x.At.After(to) {
			out = append(out, x)
		}
	}
	return out
}

// Stop stops sampling.
func (s *Sampler) Stop() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
		<-s.done
	}
}
