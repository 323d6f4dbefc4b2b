// Package server is the HTTP API: the exit-handler callback, the queries for
// failing jobs, health and metrics.
package server

import (
	"context"
	"log/slog"
	"net/http"
	"time"

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
}

// MaxBodyBytes bounds a callback body: Argo's body is a few KiB.
const MaxBodyBytes = 64 << 10

// NewServer returns the HTTP handler of the whole API.
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
	h := http.Handler(newRouter(routes(logger, store, kicker, gatherer, metrics, cfg)))
	h = accessLog(logger.With("component", "http"), h)
	return recoverPanics(logger, h)
}

// recoverPanics answers 500 to a request whose handler panicked, and logs
// it, rather than leaving the client with a dropped connection.
func recoverPanics(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			recovered := recover()
			if recovered == nil {
				return
			}
			if recovered == http.ErrAbortHandler { // the handler's way to drop the connection
				panic(recovered)
			}
			logger.Error("panic in handler", "err", recovered, "path", r.URL.Path)
			w.WriteHeader(http.StatusInternalServerError)
		}()
		next.ServeHTTP(w, r)
	})
}

// accessLog logs every request at debug level, and failed ones as warnings.
func accessLog(logger *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(sw, r)
		level := slog.LevelDebug
		if sw.status >= 500 {
			level = slog.LevelWarn
		}
		logger.Log(r.Context(), level, "request",
			"method", r.Method, "path", r.URL.Path,
			"status", sw.status, "duration", time.Since(start))
	})
}

// statusWriter remembers the status a handler answered, for the access log.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(status int) {
	if !w.wrote {
		w.status, w.wrote = status, true
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Metrics counts what the server does.
type Metrics struct {
	Results *prometheus.CounterVec
}

// NewMetrics registers the server metrics on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Results: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "batchlatch_results_total",
			Help: "Callbacks received, by outcome: a transition, duplicate, stale, rejected or error.",
		}, []string{"outcome"}),
	}
	reg.MustRegister(m.Results)
	return m
}
