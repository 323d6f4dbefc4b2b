package reliability

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/storetest"
)

// maxAttempts is how often a client sends one callback before it gives up,
// each time to the next replica (as a Service would route a retry): the
// shipped exit handler's retryStrategy (limit 5, backoff 10s, factor 2), with
// the backoff scaled down ten times (retryBackoff).
const maxAttempts = 6

// retryBackoff is the wait before the retry after attempt (0-based): 1 s,
// 2 s, 4 s, 8 s, 16 s, 31 s in all.
func retryBackoff(attempt int) time.Duration { return time.Second << attempt }

// probeBackoff is the probe client's wait between attempts: it retries its
// callback every 0.1 s until it is acknowledged (or the phase ends), so that
// when callbacks are answered again shows to 0.1 s, whatever the other
// clients' backoff.
const probeBackoff = 100 * time.Millisecond

// Load is the callback generator: clients post failed runs of Jobs jobs
// spread over Spread namespaces to the replicas in turn. Every run has its
// own uid and the same createdAt, so none is stale and each stored one adds
// exactly one consecutive failure: a job's consecutiveFailures is the
// number of its runs the store counted, at least the acknowledged ones and
// at most the ones sent.
type Load struct {
	targets []string
	clients int
	jobs    int
	spread  int
	client  *http.Client

	created   time.Time // every run's createdAt
	uidPrefix string
	seq       atomic.Uint64

	sent  []atomic.Int32 // per job: runs sent at least once
	acked []atomic.Int32 // per job: runs answered 2xx

	lastMu sync.Mutex
	last   [][]byte // per job: the body of the last acknowledged run

	mu   sync.Mutex
	cur  *Stats
	stop atomic.Bool
	wg   sync.WaitGroup
}

// Stats is what a phase of the load saw.
type Stats struct {
	Name       string
	Start, End time.Time
	Callbacks  int            // runs sent (each once or more)
	Acked      int            // runs answered 2xx
	Unacked    int            // runs never answered 2xx, after maxAttempts
	Attempts   int            // requests
	Errors     int            // requests not answered 2xx
	Outcomes   map[string]int // of the requests not answered 2xx: status or error
	Latencies  []time.Duration
	AckTimes   []time.Time // when each acknowledgement arrived
}

// NewLoad makes a generator for the replicas at targets (base URLs).
func NewLoad(targets []string, clients, jobs, spread int) *Load {
	tr := &http.Transport{
		Proxy:               nil, // loopback only, never through a proxy
		MaxIdleConns:        4 * clients,
		MaxIdleConnsPerHost: 2 * clients,
		IdleConnTimeout:     30 * time.Second,
		DialContext:         (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
	}
	l := &Load{
		targets: targets, clients: clients, jobs: jobs, spread: spread,
		// The server answers a callback within 15 s (its store deadline).
		client:    &http.Client{Transport: tr, Timeout: 20 * time.Second},
		created:   time.Now().Add(-time.Hour).Truncate(time.Second).UTC(),
		uidPrefix: fmt.Sprintf("%08x-%04x-4%03x-8%03x", rand.Uint32(), rand.Uint32()&0xffff, rand.Uint32()&0xfff, rand.Uint32()&0xfff),
		sent:      make([]atomic.Int32, jobs),
		acked:     make([]atomic.Int32, jobs),
		last:      make([][]byte, jobs),
	}
	return l
}

// JobName is job j's namespace and CronWorkflow.
func (l *Load) JobName(j int) (namespace, cron string) {
	return fmt.Sprintf("team-%02d", j%l.spread), fmt.Sprintf("hourly-feature-etl-%05d", j)
}

type callbackBody struct {
	Namespace       string            `json:"namespace"`
	WorkflowName    string            `json:"workflowName"`
	UID             string            `json:"uid"`
	CronWorkflow    string            `json:"cronWorkflow"`
	Phase           string            `json:"phase"`
	ScheduledTime   string            `json:"scheduledTime"`
	CreatedAt       string            `json:"createdAt"`
	DurationSeconds float64           `json:"durationSeconds"`
	Failures        string            `json:"failures"`
	Labels          map[string]string `json:"labels"`
}

// body is a realistic exit-handler callback of a failed run of job j: a
// 35-character workflow name, a uid, one failed node with a 120-character
// message (Argo's {{workflow.failures}}, a JSON string), Argo's labels.
func (l *Load) body(j int, seq uint64) []byte {
	ns, cron := l.JobName(j)
	wf := cron + "-" + strconv.FormatInt(l.created.Unix()+int64(seq%1_000_000), 10)
	finished := l.created.Add(754 * time.Second).Format(time.RFC3339)
	failures, _ := json.Marshal([]api.Failure{storetest.RealisticFailure(wf, finished)})
	b, _ := json.Marshal(callbackBody{
		Namespace:       ns,
		WorkflowName:    wf,
		UID:             fmt.Sprintf("%s-%012x", l.uidPrefix, seq),
		CronWorkflow:    cron,
		Phase:           "Failed",
		ScheduledTime:   l.created.Format(time.RFC3339),
		CreatedAt:       l.created.Format(time.RFC3339),
		DurationSeconds: 754.218377,
		Failures:        string(failures),
		Labels: map[string]string{
			api.LabelCronWorkflow:             cron,
			"workflows.argoproj.io/phase":     "Failed",
			"workflows.argoproj.io/completed": "true",
		},
	})
	return b
}

// Start starts the clients; their figures go to a new Stats named name
// until Stop.
func (l *Load) Start(name string) {
	l.mu.Lock()
	l.cur = &Stats{Name: name, Start: time.Now(), Outcomes: map[string]int{}}
	l.mu.Unlock()
	l.stop.Store(false)
	for c := range l.clients {
		rng := rand.New(rand.NewPCG(rand.Uint64(), uint64(c)))
		l.wg.Go(func() { l.runClient(c, func() (int, bool) { return rng.IntN(l.jobs), true }) })
	}
}

// Prefill sends one failed run of every job, in order, and returns when all
// are answered: the load then runs on a store of constant size.
func (l *Load) Prefill() *Stats {
	l.mu.Lock()
	l.cur = &Stats{Name: "prefill", Start: time.Now(), Outcomes: map[string]int{}}
	l.mu.Unlock()
	l.stop.Store(false)
	var next atomic.Int64
	for c := range l.clients {
		l.wg.Go(func() {
			l.runClient(c, func() (int, bool) {
				j := int(next.Add(1) - 1)
				return j, j < l.jobs
			})
		})
	}
	return l.finish()
}

// Stop lets every client finish the callback it is sending and returns the
// phase's figures.
func (l *Load) Stop() *Stats {
	l.stop.Store(true)
	return l.finish()
}

// finish waits for the clients and returns the phase's figures.
func (l *Load) finish() *Stats {
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.cur
	s.End = time.Now()
	sort.Slice(s.AckTimes, func(i, k int) bool { return s.AckTimes[i].Before(s.AckTimes[k]) })
	return s
}

// AckTimesSince is the current phase's acknowledgement times from t on, sorted.
func (l *Load) AckTimesSince(t time.Time) []time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []time.Time
	for _, a := range l.cur.AckTimes {
		if !a.Before(t) {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return out
}

// runClient sends callbacks until Stop; client 0 is the probe.
func (l *Load) runClient(c int, pick func() (int, bool)) {
	probe := c == 0
	turn := c
	for !l.stop.Load() {
		j, ok := pick()
		if !ok {
			return
		}
		seq := l.seq.Add(1)
		body := l.body(j, seq)
		l.sent[j].Add(1)
		l.record(func(s *Stats) { s.Callbacks++ })
		acked, giveUp := false, false
		for attempt := 0; !acked && !giveUp; attempt++ {
			turn++
			target := l.targets[turn%len(l.targets)]
			start := time.Now()
			code, _, err := l.post(target, body)
			took := time.Since(start)
			if err == nil && code/100 == 2 {
				acked = true
				l.acked[j].Add(1)
				l.lastMu.Lock()
				l.last[j] = body
				l.lastMu.Unlock()
				now := time.Now()
				l.record(func(s *Stats) {
					s.Attempts++
					s.Acked++
					s.Latencies = append(s.Latencies, took)
					s.AckTimes = append(s.AckTimes, now)
				})
				break
			}
			outcome := strconv.Itoa(code)
			if err != nil {
				outcome = errorKind(err)
			}
			l.record(func(s *Stats) { s.Attempts++; s.Errors++; s.Outcomes[outcome]++ })
			switch {
			case err == nil && !retryable(code): // a permanent answer
				giveUp = true
			case probe:
				giveUp = l.stop.Load()
				time.Sleep(probeBackoff)
			case attempt+1 < maxAttempts:
				time.Sleep(retryBackoff(attempt))
			default:
				giveUp = true
			}
		}
		if !acked {
			l.record(func(s *Stats) { s.Unacked++ })
			time.Sleep(probeBackoff)
		}
	}
}

func retryable(code int) bool {
	return code == http.StatusServiceUnavailable || code == http.StatusTooManyRequests ||
		code == http.StatusInternalServerError || code == http.StatusBadGateway || code == http.StatusGatewayTimeout
}

func (l *Load) record(f func(*Stats)) {
	l.mu.Lock()
	f(l.cur)
	l.mu.Unlock()
}

// post sends one callback body and returns the answer.
func (l *Load) post(target string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, target+"/api/v1/results", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, data, err
}

// errorKind names a transport error for the outcome counts.
func errorKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection reset"
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return "client timeout"
	}
	return "error"
}

// Account compares what the store holds (jobs, as GET /api/v1/jobs lists
// them) with what was sent and acknowledged: lost is the acknowledged runs
// missing, summed over the jobs (max(0, acked - stored) each), extra the
// runs counted beyond those sent (a double count), unconfirmed the runs
// sent but never acknowledged (each may or may not be stored).
type Accounting struct {
	Sent, Acked, Stored      int
	Lost, Extra, Unconfirmed int
	MissingJobs              int      // jobs with acknowledged runs that are not stored at all
	Examples                 []string // a few jobs with lost or extra runs
}

func (l *Load) Account(jobs []api.Job) Accounting {
	stored := make(map[string]int, len(jobs))
	for _, j := range jobs {
		stored[j.Namespace+"."+j.Job] = j.ConsecutiveFailures
	}
	var a Accounting
	for j := range l.jobs {
		ns, cron := l.JobName(j)
		sent, acked := int(l.sent[j].Load()), int(l.acked[j].Load())
		got, ok := stored[ns+"."+cron]
		a.Sent += sent
		a.Acked += acked
		a.Stored += got
		a.Unconfirmed += sent - acked
		if acked > 0 && !ok {
			a.MissingJobs++
		}
		if got < acked {
			a.Lost += acked - got
			if len(a.Examples) < 5 {
				a.Examples = append(a.Examples, fmt.Sprintf("%s.%s: %d stored, %d acknowledged, %d sent", ns, cron, got, acked, sent))
			}
		}
		if got > sent {
			a.Extra += got - sent
			if len(a.Examples) < 5 {
				a.Examples = append(a.Examples, fmt.Sprintf("%s.%s: %d stored, only %d sent", ns, cron, got, sent))
			}
		}
	}
	return a
}

// Redeliver posts again the last acknowledged run of every job, as Argo's
// at-least-once delivery may: each must be recognized as a duplicate (the
// store remembers a job's last 8 runs), which proves the last acknowledged
// run of every job is stored. It returns how many were redelivered and how
// many were not answered duplicate (with a few examples).
func (l *Load) Redeliver(target string, clients int) (n, notDuplicate int, examples []string) {
	l.lastMu.Lock()
	bodies := slices.Clone(l.last)
	l.lastMu.Unlock()
	var mu sync.Mutex
	next := make(chan []byte)
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for body := range next {
				code, data, err := l.post(target, body)
				mu.Lock()
				n++
				if err != nil || code != 200 || !bytes.Contains(data, []byte(`"duplicate":true`)) {
					notDuplicate++
					if len(examples) < 3 {
						examples = append(examples, fmt.Sprintf("%d %v %.200s", code, err, data))
					}
				}
				mu.Unlock()
			}
		})
	}
	for _, b := range bodies {
		if b != nil {
			next <- b
		}
	}
	close(next)
	wg.Wait()
	return n, notDuplicate, examples
}

// GetJobs reads GET /api/v1/jobs from target, every page of it.
func GetJobs(target string) ([]api.Job, error) {
	client := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{Proxy: nil}}
	var jobs []api.Job
	token := ""
	for {
		u := target + "/api/v1/jobs?limit=1000"
		if token != "" {
			u += "&continue=" + url.QueryEscape(token)
		}
		list, err := getJobList(client, u)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, list.Jobs...)
		if list.Continue == "" {
			return jobs, nil
		}
		token = list.Continue
	}
}

func getJobList(client *http.Client, u string) (api.JobList, error) {
	resp, err := client.Get(u)
	if err != nil {
		return api.JobList{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		data, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return api.JobList{}, fmt.Errorf("GET %s: %s %s", u, resp.Status, data)
	}
	var list api.JobList
	err = json.NewDecoder(resp.Body).Decode(&list)
	return list, err
}

// Percentile is the nearest-rank p-quantile (0 < p ≤ 1) of d (sorted here).
func Percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(float64(len(d))*p+0.999999) - 1
	return d[max(0, min(i, len(d)-1))]
}

// LongestGap is the longest stretch of [from, to] holding none of times
// (sorted).
func LongestGap(times []time.Time, from, to time.Time) time.Duration {
	prev, longest := from, time.Duration(0)
	for _, t := range times {
		if t.Before(from) {
			continue
		}
		if t.After(to) {
			break
		}
		longest = max(longest, t.Sub(prev))
		prev = t
	}
	return max(longest, to.Sub(prev))
}

// FirstAfter is how long after t the first of times (sorted) came, and
// whether one did.
func FirstAfter(times []time.Time, t time.Time) (time.Duration, bool) {
	i := sort.Search(len(times), func(i int) bool { return !times[i].Before(t) })
	if i == len(times) {
		return 0, false
	}
	return times[i].Sub(t), true
}
