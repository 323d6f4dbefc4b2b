package server

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync/atomic"
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
// shared by every scrape (shared): scrapes that arrive during a build wait
// for it rather than start their own, and a scrape that ends does not cut
// the build short (metricsBuildTimeout bounds it). promhttp's
// CoalesceGather keeps a gather's every series as a dto.Metric for as long
// as any scrape still sends it (hundreds of MB at 100,000 jobs); this keeps
// the body gzipped (1.8 MiB for 65 MiB of text at 100,000 jobs), however
// many scrapes send it and however slowly.
type sharedMetrics struct {
	bodies *shared[*metricsBody]
	write  func(ctx context.Context, w io.Writer) error
	// lastSize is the last body's size, to size the next one's buffer.
	lastSize atomic.Int64
}

// metricsBody is one build's body, gzip-compressed.
type metricsBody struct {
	gzipped []byte
}

// newSharedBody shares the bodies write writes, gzip-compressed.
func newSharedBody(logger *slog.Logger, write func(ctx context.Context, w io.Writer) error, maxAge time.Duration) *sharedMetrics {
	s := &sharedMetrics{write: write}
	s.bodies = newShared(s.build, maxAge, metricsBuildTimeout)
	s.bodies.failed = func(err error) { logger.Warn("build /metrics", "err", err) }
	return s
}

// get returns a body at most maxAge old, building one when there is none.
func (s *sharedMetrics) get(ctx context.Context) (*metricsBody, error) {
	return s.bodies.get(ctx)
}

func (s *sharedMetrics) build(ctx context.Context) (*metricsBody, error) {
	var buf bytes.Buffer
	if last := int(s.lastSize.Load()); last > 0 {
		buf.Grow(last + last/8) // one allocation, not a doubling series
	}
	// BestSpeed: the text is the same labels over and over, which the
	// fastest level already shrinks some thirty times. klauspost/compress's
	// gzip (already in the module graph through client_golang) writes the
	// same format as compress/gzip's at about 1.2-1.8 times its speed: at
	// 100,000 jobs compressing the 65 MiB of text is a good part of a build.
	gz, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	err := s.write(ctx, gz)
	if closeErr := gz.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return nil, err
	}
	s.lastSize.Store(int64(buf.Len()))
	return &metricsBody{gzipped: bytes.Clone(buf.Bytes())}, nil
}

// newSharedMetrics is the /metrics body of cfg: the per-job series
// (cfg.JobSeries), then every series gatherer has, in the text format. The
// per-job series write nothing when they fail (the gatherer has the counter
// of those failures); a gatherer that fails fails the build, as promhttp
// fails the scrape.
func newSharedMetrics(logger *slog.Logger, gatherer prometheus.Gatherer, cfg Config) *sharedMetrics {
	write := func(ctx context.Context, w io.Writer) error {
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
	return newSharedBody(logger, write, cfg.MetricsMaxAge)
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
