// Package server is the HTTP API: the exit-handler callback, the queries for
// failing jobs, health and metrics.
package server

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// Kicker is told when a job starts failing or recovers, so that the first
// entry goes out at once rather than at the next tick.
type Kicker interface {
	Kick()
}

// Config holds the server's settings.
type Config struct {
	// Token, when set, is required as "Authorization: Bearer <token>" on writes.
	Token string
	// ReadToken, when set, is required on reads (the REST reads and the
	// status page); Token is accepted there too.
	ReadToken string
	// ArgoURL, when set, is the Argo UI's base URL: the status page links
	// each run there.
	ArgoURL string
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Schedules adds watched jobs' schedules to their views; nil: none.
	Schedules api.ScheduleOf
	// Silences returns the stored silences, for the jobs' views; nil: the
	// store's.
	Silences func(ctx context.Context) ([]api.Silence, error)
	// JobSeries writes the per-job series of /metrics in the text format
	// (nothing when it fails); nil: none.
	JobSeries func(ctx context.Context, w io.Writer) error
	// MetricsAuth puts the per-job series behind the read token: a scrape
	// without it gets the other series only.
	MetricsAuth bool
	// InFlight caps the requests in flight per class; the zero value caps
	// none.
	InFlight InFlight
	// WriteDeadlines bounds each class's requests, answer included; the
	// zero value bounds none (the server's WriteTimeout only).
	WriteDeadlines WriteDeadlines
	// MetricsMaxAge is how old the /metrics body a scrape gets may be;
	// DefaultMetricsMaxAge when 0.
	MetricsMaxAge time.Duration
	// MissedGrace is --missed-grace: a job no watcher reads is shown late
	// with no result for twice its expected interval plus this.
	MissedGrace time.Duration
}

// MaxBodyBytes bounds a callback body: Argo's body is a few KiB.
const MaxBodyBytes = 64 << 10

// NewServer returns the HTTP handler of the whole API: a gin engine that
// recovers from panics and logs each request, with the routes of addRoutes.
func NewServer(logger *slog.Logger, store state.Store, kicker Kicker, gatherer prometheus.Gatherer, metrics *Metrics, cfg Config) http.Handler {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Schedules == nil {
		cfg.Schedules = func(string, string, string, time.Time) *api.Schedule { return nil }
	}
	if cfg.Silences == nil {
		cfg.Silences = store.Silences
	}
	if cfg.MetricsMaxAge == 0 {
		cfg.MetricsMaxAge = DefaultMetricsMaxAge
	}
	// gin's mode decides only whether gin prints debug lines (every route
	// as it is added) to stdout, where the stdout sink writes entries. It
	// is gin's, process-wide: set here, where every engine is made, it
	// holds for the binary and for every test and benchmark alike.
	gin.SetMode(gin.ReleaseMode)
	engine := gin.New()
	engine.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, recovered any) {
		logger.Error("panic in handler", "err", recovered, "path", c.Request.URL.Path)
		c.AbortWithStatus(http.StatusInternalServerError)
	}))
	engine.Use(accessLog(logger.With("component", "http")))
	addRoutes(engine, logger, store, kicker, gatherer, metrics, newCallbackReport(logger, metrics, cfg.Now), cfg)
	return engine
}

// accessLog logs every request at debug level, and failed ones as warnings.
func accessLog(logger *slog.Logger) gin.HandlerFunc {
	return func(c *gin.Context) {
		start := time.Now()
		c.Next()
		level := slog.LevelDebug
		if c.Writer.Status() >= 500 {
			level = slog.LevelWarn
		}
		logger.Log(c.Request.Context(), level, "request",
			"method", c.Request.Method, "path", c.Request.URL.Path,
			"status", c.Writer.Status(), "duration", time.Since(start))
	}
}

// Metrics counts what the server does.
type Metrics struct {
	Results *prometheus.CounterVec
	// Refused counts the callbacks refused (a 4xx: the run was not
	// recorded), by namespace (bounded: see NamespaceInvalid and
	// NamespaceOverflow) and reason.
	Refused *prometheus.CounterVec
	// Warnings counts the fields left out of recorded callbacks, by
	// top-level field.
	Warnings *prometheus.CounterVec
	// Throttled counts the requests refused past their class's cap of
	// requests in flight (InFlight), by class.
	Throttled *prometheus.CounterVec
}

// MetricCallbacksRefused is the counter of refused callbacks, which the
// shipped PromQL policy alerts on.
const MetricCallbacksRefused = "batchlatch_callbacks_refused_total"

// NewMetrics registers the server metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "batchlatch_results_total",
			Help: "Callbacks received, by outcome: a transition, duplicate, stale, rejected or error.",
		}, []string{"outcome"}),
		Refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricCallbacksRefused,
			Help: "Callbacks refused: the run was not recorded. By namespace (\"\" none could be read, \"invalid\" not a namespace, \"other\" past the first 100) and reason (the identity field to blame, malformed, unauthenticated, body_too_large, unsupported_media_type).",
		}, []string{"namespace", "reason"}),
		Warnings: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "batchlatch_callback_warnings_total",
			Help: "Fields left out of recorded callbacks (the run was recorded without them), by top-level field.",
		}, []string{"field"}),
	}
	m.Throttled = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "batchlatch_requests_throttled_total",
		Help: "Requests answered 429 because their class (scrapes, pages, reads, writes) had its cap of requests in flight.",
	}, []string{"class"})
	reg.MustRegister(m.Results, m.Refused, m.Warnings, m.Throttled)
	return m
}
