package server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/klauspost/compress/gzip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/expfmt"
)

// DefaultMetricsMaxAge is how old the /metrics body a scrape gets may be:
// well under any scrape interval (the chart's is 15 or 20 s), and long
// enough that a burst of scrapes costs one build.
const DefaultMetricsMaxAge = 5 * time.Second

// metricsBuildTimeout bounds one build of the /metrics body, which no
// single scrape's context may cut short: every scrape waiting shares it.
const metricsBuildTimeout = time.Minute

// sharedMetrics is the /metrics body, built at most once per maxAge and
// shared by every scrape: scrapes that arrive during a build wait for it
// rather than start their own. x/sync/singleflight would share a build in
// progress but not keep its result, and promhttp's CoalesceGather keeps a
// gather's every series as a dto.Metric for as long as any scrape still
// sends it (hundreds of MB at 100,000 jobs); this keeps the body gzipped
// (1.8 MiB for 65 MiB of text at 100,000 jobs), however many scrapes send
// it and however slowly.
type sharedMetrics struct {
	build  func(ctx context.Context, w io.Writer) error
	maxAge time.Duration
	now    func() time.Time
	logger *slog.Logger

	mu      sync.Mutex
	last    *metricsBody
	pending *metricsBuild
}

// metricsBody is one build's body, gzip-compressed.
type metricsBody struct {
	gzipped []byte
	started time.Time
}

// metricsBuild is a build in progress; done is closed when body or err is
// set.
type metricsBuild struct {
	done chan struct{}
	body *metricsBody
	err  error
}

// get returns a body at most maxAge old, building one when there is none.
func (s *sharedMetrics) get(ctx context.Context) (*metricsBody, error) {
	s.mu.Lock()
	if s.last != nil && s.now().Sub(s.last.started) < s.maxAge {
		body := s.last
		s.mu.Unlock()
		return body, nil
	}
	b := s.pending
	if b == nil {
		b = &metricsBuild{done: make(chan struct{})}
		s.pending = b
		go s.run(b)
	}
	s.mu.Unlock()
	select {
	case <-b.done:
		return b.body, b.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *sharedMetrics) run(b *metricsBuild) {
	ctx, cancel := context.WithTimeout(context.Background(), metricsBuildTimeout)
	defer cancel()
	started := s.now()
	var buf bytes.Buffer
	if last := s.lastBody(); last != nil {
		buf.Grow(len(last.gzipped) + len(last.gzipped)/8) // one allocation, not a doubling series
	}
	// BestSpeed: the text is the same labels over and over, which the
	// fastest level already shrinks some thirty times. klauspost/compress's
	// gzip (already in the module graph through client_golang) writes the
	// same format as compress/gzip's at about 1.2-1.8 times its speed: at
	// 100,000 jobs compressing the 65 MiB of text is a good part of a build.
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	err := s.buildRecovered(ctx, gz)
	if closeErr := gz.Close(); err == nil {
		err = closeErr
	}
	s.mu.Lock()
	if err == nil {
		b.body = &metricsBody{gzipped: bytes.Clone(buf.Bytes()), started: started}
		s.last = b.body
	} else {
		s.logger.Warn("build /metrics", "err", err)
		b.err = err
	}
	s.pending = nil
	s.mu.Unlock()
	close(b.done)
}

// buildRecovered is build, a panic in it an error: it runs in a goroutine
// of its own, where gin's recovery does not reach.
func (s *sharedMetrics) buildRecovered(ctx context.Context, w io.Writer) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v", p)
		}
	}()
	return s.build(ctx, w)
}

func (s *sharedMetrics) lastBody() *metricsBody {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// newSharedMetrics is the /metrics body of cfg: the per-job series
// (cfg.JobSeries), then every series gatherer has, in the text format. The
// per-job series write nothing when they fail (the gatherer has the counter
// of those failures); a gatherer that fails fails the build, as promhttp
// fails the scrape.
func newSharedMetrics(logger *slog.Logger, gatherer prometheus.Gatherer, cfg Config) *sharedMetrics {
	build := func(ctx context.Context, w io.Writer) error {
		if cfg.JobSeries != nil {
			if err := cfg.JobSeries(ctx, w); err != nil {
				logger.Warn("per-job series left out of /metrics", "err", err)
			}
		}
		families, err := gatherer.Gather()
		if err != nil {
			return err
		}
		enc := expfmt.NewEncoder(w, metricsFormat)
		for _, f := range families {
			if err := enc.Encode(f); err != nil {
				return err
			}
		}
		return nil
	}
	return &sharedMetrics{build: build, maxAge: cfg.MetricsMaxAge, now: time.Now, logger: logger}
}

// metricsFormat is the format of the shared body: the classic text format,
// which every Prometheus (and Google Managed Prometheus) reads whatever it
// asks for.
var metricsFormat = expfmt.NewFormat(expfmt.TypeTextPlain)

// handleMetrics serves the shared body: as it is to a client that takes
// gzip, decompressed on the way to one that does not. With public (not
// nil), a scrape without the read token gets public instead: the series
// but the per-job ones.
func handleMetrics(shared *sharedMetrics, public http.Handler, authorized func(*http.Request) bool) gin.HandlerFunc {
	return func(c *gin.Context) {
		if public != nil && !authorized(c.Request) {
			public.ServeHTTP(c.Writer, c.Request)
			return
		}
		body, err := shared.get(c.Request.Context())
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				c.String(http.StatusInternalServerError, "An error has occurred while building the metrics: %v\n", err)
			}
			return
		}
		h := c.Writer.Header()
		h.Set("Content-Type", string(metricsFormat))
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(c.Request.Header) {
			h.Set("Content-Encoding", "gzip")
			h.Set("Content-Length", strconv.Itoa(len(body.gzipped)))
			c.Status(http.StatusOK)
			_, _ = c.Writer.Write(body.gzipped)
			return
		}
		text, err := gzip.NewReader(bytes.NewReader(body.gzipped))
		if err != nil { // it was written by gzip.Writer above
			c.String(http.StatusInternalServerError, "%v\n", err)
			return
		}
		c.Status(http.StatusOK)
		_, _ = io.Copy(c.Writer, text)
	}
}

// publicMetrics is what a scrape without the read token gets with
// cfg.MetricsAuth: every series of gatherer (not the per-job ones), through
// promhttp. Nil without cfg.MetricsAuth: every scrape gets every series.
func publicMetrics(gatherer prometheus.Gatherer, cfg Config) http.Handler {
	if !cfg.MetricsAuth {
		return nil
	}
	return promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})
}
