//go:build unix

package alarm

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/fakelogging"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/filestore"
)

// tickJobs is the scale of issue 12: this many failing jobs.
const tickJobs = 10_000

// tickClock is the benchmark's clock: the loop's passes are an interval apart.
type tickClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *tickClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *tickClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tickFailureMessage is a failure message of a few hundred bytes, as Argo
// renders a failed step's (the store keeps the first 200 bytes).
func tickFailureMessage(i int) string {
	return fmt.Sprintf("Error (exit code 1): Traceback (most recent call last): File \"/app/train.py\", line %d, in <module> main() "+
		"File \"/app/train.py\", line 88, in main dataset = load(args.input) File \"/app/data.py\", line 31, in load raise "+
		"FileNotFoundError(f\"no such object: gs://bucket-%d/input/part-%05d.parquet\") FileNotFoundError: no such object", 100+i%900, i%37, i)
}

// tickJobStore is a file store in dir holding n failing jobs, built with
// state.Apply from realistic results: each job failed twice, recovered two
// days before now, and has failed three times in a row since, with two failed
// steps. The file is written once (Record would make each of the 60,000
// results durable on its own).
func tickJobStore(tb testing.TB, dir string, n int, now time.Time) *filestore.Store {
	tb.Helper()
	jobs := make(map[string]state.Job, n)
	for i := range n {
		namespace := fmt.Sprintf("team-%02d", i%50)
		name := fmt.Sprintf("nightly-etl-%05d", i)
		var job state.Job
		existing := false
		run := func(k int, at time.Time, phase api.Phase) {
			wf := fmt.Sprintf("%s-%d", name, at.Unix())
			r := api.Result{
				Namespace:       namespace,
				WorkflowName:    wf,
				UID:             fmt.Sprintf("4f1c2f7e-9a1b-4c55-%04x-%012x", k, i),
				Phase:           phase,
				ScheduledTime:   at.Add(-10 * time.Minute).Format(time.RFC3339),
				CreatedAt:       at.Add(-10 * time.Minute).Format(time.RFC3339),
				DurationSeconds: 600,
				Labels: map[string]string{
					api.LabelCronWorkflow:       name,
					"app.kubernetes.io/part-of": "data-platform",
					"team":                      namespace,
				},
			}
			if phase != api.PhaseSucceeded {
				r.Failures = []api.Failure{
					{DisplayName: wf + "[0].extract", Message: tickFailureMessage(i), TemplateName: "extract", Phase: "Failed", PodName: wf + "-extract-2914834615"},
					{DisplayName: wf + "[1].notify", Message: "child 'notify' failed: " + tickFailureMessage(i+1), TemplateName: "notify", Phase: "Error", PodName: wf + "-notify-1186328044"},
				}
			}
			var out state.Outcome
			job, out = state.Apply(job, existing, r, at)
			existing = true
			if out.Duplicate || out.Stale {
				tb.Fatalf("job %s/%s run %d: %+v", namespace, name, k, out)
			}
		}
		day := 24 * time.Hour
		run(0, now.Add(-4*day), api.PhaseFailed)
		run(1, now.Add(-3*day), api.PhaseFailed)
		run(2, now.Add(-2*day), api.PhaseSucceeded)
		run(3, now.Add(-3*time.Hour), api.PhaseFailed)
		run(4, now.Add(-2*time.Hour), api.PhaseError)
		run(5, now.Add(-time.Hour), api.PhaseFailed)
		if !job.Alerting() || job.LastStreak == nil {
			tb.Fatalf("job %s/%s is not a failing job with a past streak: %+v", namespace, name, job)
		}
		jobs[job.Key().String()] = job
	}
	data, err := json.Marshal(map[string]any{"format": "batchlatch-state", "version": 1, "jobs": jobs})
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, "state.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
	store, err := filestore.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = store.Close() })
	list, err := store.List(context.Background())
	if err != nil || len(list) != n {
		tb.Fatalf("store lists %d jobs (%v), want %d", len(list), err, n)
	}
	return store
}

// cpuTime is the process's user+system CPU time so far (getrusage: this file
// builds on unix only).
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// tickFigures is what one tick cost.
type tickFigures struct {
	cpu      time.Duration // this process: the service, and the fake API when in process
	passCPU  time.Duration // of which up to the pass's last Write (bundles already go out meanwhile)
	apiCPU   time.Duration // the fake API's process, when apart
	wall     time.Duration
	handed   int     // entries handed to the sink
	accepted int     // entries the fake API accepted
	requests int     // WriteLogEntries requests
	errors   float64 // sink errors (overflow, failed requests), as onError saw them
	peakHeap uint64  // the most the heap grew during the tick (the fake API's too when in process)
	alloc    uint64  // bytes allocated during the tick (the fake API's too when in process)
}

func (f *tickFigures) add(g tickFigures) {
	f.cpu += g.cpu
	f.passCPU += g.passCPU
	f.apiCPU += g.apiCPU
	f.wall += g.wall
	f.requests += g.requests
	f.accepted += g.accepted
	f.handed += g.handed
	f.errors += g.errors
	f.peakHeap = max(f.peakHeap, g.peakHeap)
	f.alloc += g.alloc
}

func (f tickFigures) report(b *testing.B, n int) {
	b.Helper()
	per := func(v float64) float64 { return v / float64(n) }
	ms := func(d time.Duration) float64 { return per(float64(d.Microseconds()) / 1e3) }
	b.ReportMetric(ms(f.cpu), "cpu-ms/tick")
	b.ReportMetric(ms(f.passCPU), "pass-cpu-ms/tick")
	if f.apiCPU > 0 {
		b.ReportMetric(ms(f.apiCPU), "fakeapi-cpu-ms/tick")
	}
	b.ReportMetric(ms(f.wall), "wall-ms/tick")
	b.ReportMetric(per(float64(f.requests)), "requests/tick")
	b.ReportMetric(per(float64(f.accepted)), "entries/tick")
	b.ReportMetric(per(float64(f.handed-f.accepted)), "lost/tick")
	b.ReportMetric(per(f.errors), "sink-errors/tick")
	if f.requests > 0 {
		b.ReportMetric(float64(f.accepted)/float64(f.requests), "entries/request")
	}
	b.ReportMetric(float64(f.peakHeap)/(1<<20), "tick-heap-MiB")
	b.ReportMetric(per(float64(f.alloc))/(1<<20), "alloc-MiB/tick")
	b.ReportMetric(0, "ns/op") // the tick figures say it better
}

// tickAPI is the fake Cloud Logging API the benchmark writes to.
type tickAPI interface {
	options() []option.ClientOption
	// stats: requests, rejected requests, entries accepted, and the CPU
	// time of the API's process when it runs apart (else 0).
	stats(tb testing.TB) (requests, rejected, accepted int, cpu time.Duration)
}

// inProcessAPI is fakelogging in this process: its CPU time is counted in
// the tick's.
type inProcessAPI struct{ srv *fakelogging.Server }

func (a inProcessAPI) options() []option.ClientOption { return a.srv.ClientOptions() }
func (a inProcessAPI) stats(testing.TB) (int, int, int, time.Duration) {
	requests, rejected, _ := a.srv.Stats()
	return requests, rejected, a.srv.Accepted(), 0
}

// apartAPI is fakelogging in a child process (this test binary running
// TestTickFakeAPIProcess), on 127.0.0.1 still: the tick's CPU time is then
// the service's alone, and the API's is read from the child.
type apartAPI struct {
	addr string
	mu   sync.Mutex
	in   io.Writer
	out  *bufio.Reader
}

const tickAPIEnv = "BATCHLATCH_TICK_FAKE_API"

func startApartAPI(tb testing.TB) *apartAPI {
	tb.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTickFakeAPIProcess$", "-test.count=1", "-test.v=false")
	cmd.Env = append(os.Environ(), tickAPIEnv+"=1", "GCE_METADATA_HOST=127.0.0.1:1")
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		in.Close() // the child stops at EOF
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	a := &apartAPI{in: in, out: bufio.NewReader(out)}
	line, err := a.out.ReadString('\n')
	if err != nil {
		tb.Fatalf("fake API process: %v", err)
	}
	a.addr = strings.TrimSpace(strings.TrimPrefix(line, "addr "))
	if !strings.HasPrefix(a.addr, "127.0.0.1:") {
		tb.Fatalf("fake API process says %q", line)
	}
	return a
}

func (a *apartAPI) options() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(a.addr),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

func (a *apartAPI) stats(tb testing.TB) (requests, rejected, accepted int, cpu time.Duration) {
	tb.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, err := io.WriteString(a.in, "stats\n"); err != nil {
		tb.Fatal(err)
	}
	line, err := a.out.ReadString('\n')
	if err != nil {
		tb.Fatal(err)
	}
	var ns int64
	if _, err := fmt.Sscanf(line, "stats %d %d %d %d", &requests, &rejected, &accepted, &ns); err != nil {
		tb.Fatalf("fake API process says %q: %v", line, err)
	}
	return requests, rejected, accepted, time.Duration(ns)
}

// TestTickFakeAPIProcess is the child process of apartAPI; skipped otherwise.
// It serves fakelogging on 127.0.0.1, says "addr <host:port>", answers
// "stats" lines with "stats <requests> <rejected> <accepted> <cpu ns>", and
// stops when its input ends.
func TestTickFakeAPIProcess(t *testing.T) {
	if os.Getenv(tickAPIEnv) != "1" {
		t.Skip("the fake API process of BenchmarkAlarmTick")
	}
	srv, err := fakelogging.New()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	srv.Discard()
	fmt.Printf("addr %s\n", srv.Addr())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() != "stats" {
			t.Fatalf("unknown command %q", in.Text())
		}
		requests, rejected, _ := srv.Stats()
		fmt.Printf("stats %d %d %d %d\n", requests, rejected, srv.Accepted(), int64(cpuTime(t)))
	}
}

// tickRig is a loop over tickJobs failing jobs writing to the Cloud Logging
// sink against the fake API.
type tickRig struct {
	api     tickAPI
	sink    *CloudLoggingSink
	metrics *Metrics
	loop    *Loop
	clock   *tickClock
}

func newTickRig(b *testing.B, apart bool) *tickRig {
	b.Helper()
	b.Setenv("GCE_METADATA_HOST", "127.0.0.1:1") // never probe a metadata server
	var api tickAPI
	if apart {
		api = startApartAPI(b)
	} else {
		srv := clServer(b)
		srv.Discard()
		api = inProcessAPI{srv}
	}
	clock := &tickClock{t: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)}
	store := tickJobStore(b, b.TempDir(), tickJobs, clock.Now())
	metrics := clMetrics()
	// The production configuration: default bundling (1 s, 1,000 entries)
	// and write timeout; the monitored resource is always explicit.
	sink, err := NewCloudLoggingSink(context.Background(), clConfig(), metrics, slog.New(slog.DiscardHandler), api.options()...)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = sink.Close(ctx)
	})
	loop := NewLoop(store, sink, LoopConfig{
		Interval:       DefaultInterval,
		RecoveryWindow: DefaultRecoveryWindow,
		PolicyWindow:   DefaultPolicyWindow,
		Now:            clock.Now,
	}, metrics, slog.New(slog.DiscardHandler))
	return &tickRig{api: api, sink: sink, metrics: metrics, loop: loop, clock: clock}
}

func (r *tickRig) handed() int {
	var n float64
	for _, sev := range []Severity{SeverityError, SeverityNotice, SeverityInfo} {
		n += testutil.ToFloat64(r.metrics.EntriesWritten.WithLabelValues(string(sev)))
	}
	return int(n)
}

// tick runs one pass of the loop and waits until the fake API has what it
// wrote: the sink's flush sends what the client holds at once instead of
// after its delay, and returns when every bundle is answered.
func (r *tickRig) tick(b *testing.B, w *writer) tickFigures {
	b.Helper()
	runtime.GC() // the previous tick's garbage is not this one's cost
	requests0, rejected0, accepted0, api0 := r.api.stats(b)
	handed0, errors0 := r.handed(), clSinkErrors(r.metrics)
	alloc0 := heapAllocs()
	stopSampling := samplePeakHeap()
	cpu0, start := cpuTime(b), time.Now()
	r.loop.pass(context.Background(), w, false)
	passCPU := cpuTime(b) - cpu0
	r.sink.flush() // errors are counted by onError
	f := tickFigures{cpu: cpuTime(b) - cpu0, wall: time.Since(start), passCPU: passCPU, peakHeap: stopSampling()}
	f.alloc = heapAllocs() - alloc0
	requests, rejected, accepted, api := r.api.stats(b)
	f.requests, f.accepted, f.apiCPU = requests-requests0, accepted-accepted0, api-api0
	f.handed = r.handed() - handed0
	f.errors = clSinkErrors(r.metrics) - errors0
	if rejected != rejected0 {
		b.Fatalf("the fake API rejected %d requests", rejected-rejected0)
	}
	return f
}

// heapAllocs is how many bytes this process allocated on the heap so far.
func heapAllocs() uint64 {
	sample := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// samplePeakHeap reads the heap's objects every 2 ms until the function it
// returns is called, which returns the most it saw above the first reading:
// what a tick adds to the heap at its peak (the entries the sink holds until
// they are sent), the jobs already held left out.
func samplePeakHeap() func() uint64 {
	done, peak := make(chan struct{}), make(chan uint64)
	go func() {
		sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		metrics.Read(sample)
		base, most := sample[0].Value.Uint64(), uint64(0)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			metrics.Read(sample)
			most = max(most, sample[0].Value.Uint64()-min(base, sample[0].Value.Uint64()))
			select {
			case <-done:
				peak <- most
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-peak }
}

// BenchmarkAlarmTick measures the alarm loop's pass over 10,000 failing jobs
// into the Cloud Logging sink against the fake API on 127.0.0.1, delivery
// included: CPU time (getrusage, user+system), wall time, write requests and
// entries, the heap's peak during the tick and what it allocated.
//
//   - first: the first pass of a run (a restart, a new leader), which
//     announces every streak with TransitionWeight entries;
//   - steady: every later tick, one ERROR entry per job and a heartbeat.
//     Issue 12's targets: at most 200 ms of CPU and 11 write requests.
//
// The fake API runs in this process (cpu-ms counts it too) or, for the
// "apart" variants, in a child process: cpu-ms is then the service's alone
// and fakeapi-cpu-ms the API's.
func BenchmarkAlarmTick(b *testing.B) {
	for _, apart := range []bool{false, true} {
		suffix := ""
		if apart {
			suffix = "-apart"
		}
		b.Run("first"+suffix, func(b *testing.B) {
			r := newTickRig(b, apart)
			var sum tickFigures
			for range b.N {
				// A new run each time: it announces everything again.
				r.clock.Add(DefaultInterval)
				w := writer{announced: Announced{}, started: r.clock.Now(), failures: r.metrics.SinkFailures()}
				sum.add(r.tick(b, &w))
			}
			sum.report(b, b.N)
		})
		b.Run("steady"+suffix, func(b *testing.B) {
			r := newTickRig(b, apart)
			w := writer{announced: Announced{}, started: r.clock.Now(), failures: r.metrics.SinkFailures()}
			first := r.tick(b, &w)
			if first.errors != 0 || first.accepted != first.handed {
				b.Logf("first pass: %d entries handed, %d accepted, %v sink errors", first.handed, first.accepted, first.errors)
			}
			// Sink errors of the first pass would make the next pass see
			// writes failing and the one after announce everything again:
			// not the steady state measured here (first says what is lost).
			w.failures, w.failing = r.metrics.SinkFailures(), false
			var sum tickFigures
			for range b.N {
				r.clock.Add(DefaultInterval)
				f := r.tick(b, &w)
				if f.handed != tickJobs+1 || f.accepted != f.handed || f.errors != 0 {
					b.Fatalf("steady tick: %d entries handed (want %d), %d accepted, %v sink errors", f.handed, tickJobs+1, f.accepted, f.errors)
				}
				sum.add(f)
			}
			sum.report(b, b.N)
			// In process, the fake API's decoding of every entry is
			// counted too (more than the service's own share).
			if cpu := sum.cpu / time.Duration(b.N); apart && cpu > 200*time.Millisecond {
				b.Logf("over issue 12's target: %s of CPU per steady tick, want at most 200ms", cpu.Round(time.Millisecond))
			}
			if req := float64(sum.requests) / float64(b.N); req > 11 {
				b.Logf("over issue 12's target: %.1f write requests per steady tick, want at most 11", req)
			}
		})
	}
}

// TestPayloadWireIsFitPayload: the sink's fast encoding of a payload is the
// Struct fitPayload makes of it through JSON, to the byte count (so the size
// limit applies alike), whatever the payload holds. A field added to Payload
// or api.Job, and not to appendPayloadWire, fails it (every field is filled).
func TestPayloadWireIsFitPayload(t *testing.T) {
	now := time.Date(2026, 3, 2, 9, 0, 0, 123456789, time.UTC)
	job := clFailingJob("ml", "nightly")
	odd := clFailingJob("odd", "chars")
	odd.LastFailures = []api.Failure{
		{DisplayName: `quote " backslash \ slash / <b>&amp;</b>`, Message: "tab\tnl\nnul\x00 bell\x07 del\x7f ls\u2028ps\u2029 bad\xffutf8 \xe2\x82 \xed\xa0\x80 emoji 😀 é", Phase: "Failed"},
		{DisplayName: "", Message: strings.Repeat("ü", 3000)},
	}
	odd.LastStreak = &api.Streak{Since: now.Add(-time.Hour).In(time.FixedZone("x", 5*3600+1800)), Until: now, Seconds: 1e21, Failures: 1 << 62}
	odd.EarlierStreaks = []api.Streak{{Seconds: -3.25, Failures: -7}, {Seconds: 0.1, Failures: 123456789012345678}, {Seconds: math.Copysign(0, -1)}}
	recovered := recoveredJob("back", now.Add(-time.Minute))
	silence := &api.Silence{ID: "s1", Namespace: "ml", StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), Reason: "maintenance \"window\""}
	sched := &api.Schedule{Kind: "CronWorkflow", Schedules: []string{"0 * * * *", "30 2 * * *"}, Timezone: "Europe/Paris", NextTick: &now}
	empty := &api.Schedule{Kind: "CronWorkflow", Schedules: []string{}}
	var filled Payload
	fillValue(reflect.ValueOf(&filled).Elem(), new(int))
	payloads := []Payload{
		filled,
		failingEntry(job, nil, now).Payload,
		failingEntry(job, sched, now).Payload,
		failingEntry(job, empty, now).Payload,
		failingEntry(job, &api.Schedule{}, now).Payload,
		failingEntry(odd, nil, now).Payload,
		recoveredEntry(recovered, now).Payload,
		healthyEntry(recovered, now).Payload,
		silencedEntry(job, silence, now).Payload,
		forgottenEntry(forgottenJob(job, now)).Payload,
		healthyEntry(forgottenJob(job, now), now).Payload,
		heartbeatEntry(10000, 9999, now).Payload,
		{},
		{JobView: &JobView{}},
		{Message: "bad \xff byte", Failing: new(int)},
	}
	for i := range 20 {
		payloads = append(payloads, failingEntry(tickJobLike(i, now), nil, now).Payload)
	}
	for i, p := range payloads {
		want, err := fitPayload(p, maxPayloadBytes)
		if err != nil {
			t.Fatal(err)
		}
		got, size, err := encodePayload(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.GetFields()) != 0 {
			t.Errorf("payload %d: not encoded the fast way", i)
		}
		if g, w := proto.Size(got), proto.Size(want); g != w || size != w {
			t.Errorf("payload %d: %d bytes (said %d), fitPayload's %d", i, g, size, w)
		}
		wire, err := proto.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		decoded := &structpb.Struct{}
		if err := proto.Unmarshal(wire, decoded); err != nil {
			t.Fatalf("payload %d: %v", i, err)
		}
		if !proto.Equal(decoded, want) {
			t.Errorf("payload %d: appendPayloadWire decodes to\n%v\nfitPayload makes\n%v", i, decoded.AsMap(), want.AsMap())
		}
	}

	// What does not fit is left to fitPayload, and so is what JSON refuses.
	huge := clFailingJob("huge", "message")
	huge.LastFailures = []api.Failure{{DisplayName: "step", Message: strings.Repeat("x", 300<<10)}}
	p := failingEntry(huge, nil, now).Payload
	p.Message = strings.Repeat("y", 300<<10)
	got, size, err := encodePayload(p)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := fitPayload(p, maxPayloadBytes)
	if !proto.Equal(got, want) || size != proto.Size(want) || got.GetFields()[fieldTruncated].GetBoolValue() != true {
		t.Errorf("oversized payload not cut as fitPayload does")
	}
	for _, bad := range []func(*JobView){
		func(v *JobView) { v.FailingSeconds = math.NaN() },
		func(v *JobView) { v.LastStreak = &api.Streak{Seconds: math.Inf(1)} },
		func(v *JobView) { v.LastResultAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
	} {
		p := failingEntry(job, nil, now).Payload
		bad(p.JobView)
		if _, ok := appendPayloadWire(nil, p); ok {
			t.Errorf("appendPayloadWire accepted what json.Marshal refuses: %+v", p.JobView)
		}
		if _, _, err := encodePayload(p); err == nil {
			t.Errorf("encodePayload accepted what json.Marshal refuses: %+v", p.JobView)
		}
	}
}

// fillValue sets every field reachable from v to a non-zero value, distinct
// ones as *n counts up: pointers and maps are made, slices get two items.
func fillValue(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.String:
		v.SetString(fmt.Sprintf("s%d \"é\" \xff", *n))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	case reflect.Float32, reflect.Float64:
		v.SetFloat(float64(*n) + 0.25)
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fillValue(v.Elem(), n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fillValue(v.Index(i), n)
		}
	case reflect.Map:
		v.Set(reflect.MakeMap(v.Type()))
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fillValue(k, n)
		fillValue(e, n)
		v.SetMapIndex(k, e)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, *n*1000+7, time.UTC)))
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fillValue(v.Field(i), n)
			}
		}
	default:
		panic(fmt.Sprintf("fillValue: %s", v.Type()))
	}
}

// tickJobLike is a job as tickJobStore makes them, without a store.
func tickJobLike(i int, now time.Time) state.Job {
	j := clFailingJob(fmt.Sprintf("team-%02d", i%50), fmt.Sprintf("nightly-etl-%05d", i))
	j.LastFailures = []api.Failure{{DisplayName: j.LastWorkflow + "[0].extract", Message: tickFailureMessage(i)[:200], PodName: j.LastWorkflow + "-extract-2914834615"}}
	j.LastStreak = &api.Streak{Since: now.Add(-96 * time.Hour), Until: now.Add(-48 * time.Hour), Seconds: 172800, Failures: 2}
	return j
}

// TestCloudLoggingSinkPacesABurst: a burst of twice the client's buffer,
// from two writers, arrives whole in full bundles instead of overflowing the
// buffer (what a first pass at 10,000 jobs did: ErrOverflow).
func TestCloudLoggingSinkPacesABurst(t *testing.T) {
	srv := clServer(t)
	srv.Discard()
	metrics := clMetrics()
	// Bundles leave full or when flushed, never because a slow machine
	// took the client's delay (1 s) to fill one.
	cfg := clConfig()
	cfg.delayThreshold = time.Hour
	sink := clSink(t, srv, cfg, metrics, nil)
	e := failingEntry(clFailingJob("ml", "nightly"), nil, time.Now())
	// 3 KiB: a bundle of 1,000 entries stays under the fake server's 4 MiB
	// limit on a request (gRPC's default; the API takes 10 MB).
	e.Payload.Message = strings.Repeat("m", 3<<10)
	const n = 2 * (bufferedBytes / (3 << 10))
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for range n / 2 {
				if err := sink.Write(context.Background(), e); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	sink.flush()
	requests, _, _ := srv.Stats()
	if got := srv.Accepted(); got != n {
		t.Errorf("%d of %d entries arrived", got, n)
	}
	if errs := clSinkErrors(metrics); errs != 0 {
		t.Errorf("%v sink errors", errs)
	}
	// One more than full bundles for the diagnostic entry's request, and a
	// few for the two writers' entries around each pacing flush.
	if most := n/bundleEntries + 6; requests > most {
		t.Errorf("%d write requests, want at most %d", requests, most)
	}
}

// TestCloudLoggingSinkPacingGivesUp: when the API does not answer, a burst
// waits at most the write timeout, then overflows as without pacing
// (counted), until the client's flush ends.
func TestCloudLoggingSinkPacingGivesUp(t *testing.T) {
	srv := clServer(t)
	srv.Discard()
	srv.SetError(codes.Unavailable) // retried until the write timeout
	metrics := clMetrics()
	cfg := clConfig()
	cfg.WriteTimeout = 300 * time.Millisecond
	sink := clSink(t, srv, cfg, metrics, nil)
	e := failingEntry(clFailingJob("ml", "nightly"), nil, time.Now())
	e.Payload.Message = strings.Repeat("m", 8<<10)
	start := time.Now()
	for range 2 * bufferedBytes / (8 << 10) {
		if err := sink.Write(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	// One wait of the write timeout, then none until the flush ends (its
	// bundles time out one after the other): far less than a wait for each
	// of the thousands of entries over the buffer.
	if elapsed := time.Since(start); elapsed > 100*cfg.WriteTimeout {
		t.Errorf("the burst took %s", elapsed)
	}
	// The client reports errors from a goroutine of its own.
	clWait(t, patience, "the entries over the buffer counted", func() bool { return clSinkErrors(metrics) > 0 })
}

// forgottenJob is j forgotten at now.
func forgottenJob(j state.Job, now time.Time) state.Job {
	forgotten, _, _ := state.ForgetAt(now, "deleted through the API (DELETE /api/v1/jobs)")(j)
	return forgotten
}
