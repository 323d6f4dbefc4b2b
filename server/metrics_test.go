package server

import (
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/internal/testwait"
	"github.com/batchlatch/batchlatch/state"
	"github.com/batchlatch/batchlatch/state/filestore"
)

// patience bounds every wait for the server to do something: generous, as
// it only matters when it fails to.
const patience = time.Minute

// metricsServer serves a file store with cfg, and serviceSeries.
func metricsServer(t *testing.T, cfg Config) *httptest.Server {
	t.Helper()
	store, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(prometheus.NewCounter(prometheus.CounterOpts{Name: serviceSeries, Help: "One of the service's own series."}))
	srv := httptest.NewServer(NewServer(discardLogger(), store, &countingKicker{}, reg, NewMetrics(reg), cfg))
	t.Cleanup(srv.Close)
	return srv
}

// serviceSeries is a series of the registry, not a per-job one.
const serviceSeries = "batchlatch_test_total"

const jobLine = `batchlatch_job_failing{job="nightly",kind="Workflow",namespace="ml"} 1`

func writeJobLine(_ context.Context, w io.Writer) error {
	_, err := fmt.Fprintf(w, "# TYPE batchlatch_job_failing gauge\n%s\n", jobLine)
	return err
}

// scrape GETs /metrics with the headers given as name, value pairs, without
// the transport's own gzip handling: it returns the body as sent.
func scrape(t *testing.T, url string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url+"/metrics", nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	client := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	resp, err := client.Do(req)
	if err != nil {
		t.Error(err)
		return nil, nil
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Error(err)
	}
	return resp, data
}

// Scrapes that arrive while the body is being built wait for that build
// rather than start their own, and the body is shared until it is too old.
func TestConcurrentScrapesShareOneBuild(t *testing.T) {
	var builds atomic.Int32
	release := make(chan struct{})
	srv := metricsServer(t, Config{
		MetricsMaxAge: time.Hour,
		JobSeries: func(ctx context.Context, w io.Writer) error {
			builds.Add(1)
			<-release
			return writeJobLine(ctx, w)
		},
	})
	const scrapes = 16
	var wg sync.WaitGroup
	bodies := make([]string, scrapes)
	for i := range scrapes {
		wg.Go(func() {
			resp, data := scrape(t, srv.URL)
			if resp == nil || resp.StatusCode != 200 {
				t.Errorf("scrape %d: %v %s", i, resp, data)
			}
			bodies[i] = string(data)
		})
	}
	// Every scrape is sent before the build is let go; the first build
	// holds them all.
	if ok, _ := testwait.Poll(t.Context(), patience, func(context.Context) (bool, string, error) { return builds.Load() > 0, "", nil }); !ok {
		close(release)
		t.Fatalf("no scrape started a build within %s", patience)
	}
	close(release)
	wg.Wait()
	if n := builds.Load(); n != 1 {
		t.Fatalf("%d concurrent scrapes built the body %d times, want once", scrapes, n)
	}
	for i, body := range bodies {
		if !strings.Contains(body, jobLine+"\n") || !strings.Contains(body, serviceSeries) {
			t.Fatalf("scrape %d lacks the per-job or the service's series:\n%s", i, body)
		}
	}
}

// A body older than the maximum age is built again; a build that fails is
// not kept.
func TestSharedMetricsRebuildWhenOld(t *testing.T) {
	var builds atomic.Int32
	fail := false
	clock := time.Unix(0, 0)
	shared := newSharedBody(discardLogger(), func(ctx context.Context, w io.Writer) error {
		builds.Add(1)
		if fail {
			return fmt.Errorf("unreadable")
		}
		return writeJobLine(ctx, w)
	}, 5*time.Second)
	shared.bodies.now = func() time.Time { return clock }
	get := func() error {
		_, err := shared.get(context.Background())
		return err
	}
	for i, step := range []struct {
		advance time.Duration
		fail    bool
		builds  int32
		err     bool
	}{
		{0, false, 1, false},
		{4 * time.Second, false, 1, false}, // 4 s old: shared
		{time.Second, false, 2, false},     // 5 s old: built again
		{5 * time.Second, true, 3, true},   // the build fails
		{0, false, 4, false},               // and was not kept
	} {
		clock, fail = clock.Add(step.advance), step.fail
		if err := get(); (err != nil) != step.err || builds.Load() != step.builds {
			t.Fatalf("step %d: err %v, %d builds; want error %v, %d builds", i, err, builds.Load(), step.err, step.builds)
		}
	}
}

// The body is gzip-compressed for a client that asks, plain for one that
// does not (or refuses gzip).
func TestMetricsGzipWhenAsked(t *testing.T) {
	srv := metricsServer(t, Config{JobSeries: writeJobLine})
	for _, tc := range []struct {
		acceptEncoding string
		gzipped        bool
	}{
		{"", false},
		{"gzip", true},
		{"br;q=1.0, gzip;q=0.8", true},
		{"*", true},
		{"gzip;q=0", false},
		{"*, gzip;q=0", false},
		{"identity", false},
	} {
		resp, data := scrape(t, srv.URL, "Accept-Encoding", tc.acceptEncoding)
		if resp == nil {
			continue
		}
		if got := resp.Header.Get("Content-Encoding") == "gzip"; got != tc.gzipped {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q", tc.acceptEncoding, resp.Header.Get("Content-Encoding"))
			continue
		}
		if tc.gzipped {
			r, err := gzip.NewReader(strings.NewReader(string(data)))
			if err != nil {
				t.Fatalf("Accept-Encoding %q: %v", tc.acceptEncoding, err)
			}
			if data, err = io.ReadAll(r); err != nil {
				t.Fatal(err)
			}
		}
		if !strings.Contains(string(data), jobLine+"\n") || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
			t.Errorf("Accept-Encoding %q: %s\n%s", tc.acceptEncoding, resp.Header.Get("Content-Type"), data)
		}
	}
}

// With MetricsAuth the per-job series need the read token (or the write
// token); the service's own series stay open.
func TestMetricsAuthHidesPerJobSeries(t *testing.T) {
	srv := metricsServer(t, Config{JobSeries: writeJobLine, Token: "w", ReadToken: "r", MetricsAuth: true})
	for _, tc := range []struct {
		name    string
		header  []string
		perJobs bool
	}{
		{"no token", nil, false},
		{"wrong token", []string{"Authorization", "Bearer nope"}, false},
		{"read token", []string{"Authorization", "Bearer r"}, true},
		{"read token as Basic password", []string{"Authorization", "Basic " + basic("prometheus", "r")}, true},
		{"write token", []string{"Authorization", "Bearer w"}, true},
	} {
		resp, data := scrape(t, srv.URL, tc.header...)
		if resp == nil {
			continue
		}
		if resp.StatusCode != 200 || !strings.Contains(string(data), serviceSeries) {
			t.Errorf("%s: %d, want 200 with the service's series:\n%s", tc.name, resp.StatusCode, data)
		}
		if got := strings.Contains(string(data), "batchlatch_job_"); got != tc.perJobs {
			t.Errorf("%s: per-job series %v, want %v:\n%s", tc.name, got, tc.perJobs, data)
		}
	}
	// Without MetricsAuth a read token guards the reads, not /metrics.
	open := metricsServer(t, Config{JobSeries: writeJobLine, ReadToken: "r"})
	if _, data := scrape(t, open.URL); !strings.Contains(string(data), jobLine) {
		t.Errorf("without MetricsAuth the per-job series need no token:\n%s", data)
	}
}

func basic(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
}

// gateStore blocks List and Record while its gate is shut, counting the
// calls waiting.
type gateStore struct {
	state.Store
	gate    chan struct{} // closed: open
	waiting atomic.Int32
}

func (s *gateStore) wait() {
	s.waiting.Add(1)
	defer s.waiting.Add(-1)
	<-s.gate
}

func (s *gateStore) List(ctx context.Context) ([]state.Job, error) {
	s.wait()
	return s.Store.List(ctx)
}

func (s *gateStore) Record(ctx context.Context, r api.Result, at time.Time) (state.Recorded, error) {
	s.wait()
	return s.Store.Record(ctx, r, at)
}

// Past its class's cap of requests in flight a request is answered 429 with
// Retry-After at once, while other classes and the health checks are
// served; once the requests in flight end the class is served again.
func TestInFlightCapPerClass(t *testing.T) {
	for _, tc := range []struct {
		class        string
		method, path string
		body         string
	}{
		{"scrapes", "GET", "/metrics", ""},
		{"pages", "GET", "/", ""},
		{"reads", "GET", "/api/v1/failures", ""},
		{"writes", "POST", "/api/v1/results", result("nightly", "u1", "Failed", now)},
	} {
		t.Run(tc.class, func(t *testing.T) {
			files, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
			if err != nil {
				t.Fatal(err)
			}
			store := &gateStore{Store: files, gate: make(chan struct{})}
			var building atomic.Int32
			reg := prometheus.NewRegistry()
			metrics := NewMetrics(reg)
			srv := httptest.NewServer(NewServer(discardLogger(), store, &countingKicker{}, reg, metrics, Config{
				Now:           func() time.Time { return now },
				InFlight:      InFlight{Scrapes: 1, Pages: 1, Reads: 1, Writes: 1},
				MetricsMaxAge: time.Nanosecond,
				JobSeries: func(ctx context.Context, w io.Writer) error {
					building.Add(1)
					defer building.Add(-1)
					<-store.gate
					return writeJobLine(ctx, w)
				},
			}))
			t.Cleanup(srv.Close)
			open := sync.OnceFunc(func() { close(store.gate) })
			t.Cleanup(open) // before srv.Close, which waits for the requests in flight
			call := func(method, path, body string) (int, http.Header, string) {
				req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				// Bounded: without the cap the second request would wait for
				// the store as long as the first.
				resp, err := (&http.Client{Timeout: patience}).Do(req)
				if err != nil {
					t.Error(err)
					return 0, nil, ""
				}
				defer resp.Body.Close()
				data, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, resp.Header, string(data)
			}

			// One request of the class in flight, held by the store (or
			// the build of /metrics).
			first := make(chan int, 1)
			go func() {
				code, _, _ := call(tc.method, tc.path, tc.body)
				first <- code
			}()
			testwait.True(t, patience, "the first request to reach the store", func() bool { return store.waiting.Load()+building.Load() > 0 })

			code, header, body := call(tc.method, tc.path, tc.body)
			if code != 429 || header.Get("Retry-After") == "" || !strings.Contains(body, `"too_many_requests"`) {
				t.Fatalf("past the cap: %d Retry-After %q %s; want 429 with Retry-After", code, header.Get("Retry-After"), body)
			}
			if n := testutil.ToFloat64(metrics.Throttled.WithLabelValues(tc.class)); n != 1 {
				t.Errorf("throttled %s = %v, want 1", tc.class, n)
			}
			if code, _, _ := call("GET", "/healthz", ""); code != 200 {
				t.Errorf("healthz while %s are capped: %d", tc.class, code)
			}
			if tc.class != "reads" { // another class is served (the read waits for the store otherwise)
				if code, _, _ := call("GET", "/api/openapi.yaml", ""); code != 200 {
					t.Errorf("a read while %s are capped: %d", tc.class, code)
				}
			}

			open()
			select {
			case code := <-first:
				if code != 200 {
					t.Fatalf("the request in flight: %d", code)
				}
			case <-time.After(patience):
				t.Fatal("the request in flight never ended")
			}
			// The slot comes back when the handler ends, just after the
			// answer's last byte: a request right after may still find it
			// taken.
			for deadline := time.Now().Add(patience); ; time.Sleep(10 * time.Millisecond) {
				code, _, body := call(tc.method, tc.path, tc.body)
				if code == 200 {
					break
				}
				if code != 429 || time.Now().After(deadline) {
					t.Fatalf("after the requests in flight ended: %d %s", code, body)
				}
			}
		})
	}
}
