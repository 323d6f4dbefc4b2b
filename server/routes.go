package server

import (
	"log/slog"
	"net/http"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/batchlatch/batchlatch/state"
)

// route is one operation the API serves: a method, an http.ServeMux path
// pattern ({name} is a path segment) and its handler.
type route struct {
	method, path string
	handler      http.Handler
}

// routes is the whole API surface, in one place.
func routes(logger *slog.Logger, store state.Store, kicker Kicker, gatherer prometheus.Gatherer, metrics *Metrics, cfg Config) []route {
	auth := requireToken(cfg.Token)
	read := requireReadToken(cfg.ReadToken, cfg.Token)
	views := Views{Store: store, Now: cfg.Now, Schedules: cfg.Schedules, Silences: cfg.Silences}

	return []route{
		{"POST", "/api/v1/results", auth(handleRecordResult(logger, store, kicker, metrics, views))},
		{"GET", "/api/v1/failures", read(handleListFailures(views))},
		{"GET", "/api/v1/jobs", read(handleListJobs(views))},
		{"GET", "/api/v1/jobs/{namespace}", read(handleListJobs(views))},
		{"GET", "/api/v1/jobs/{namespace}/{job}", read(handleGetJob(views))},
		{"DELETE", "/api/v1/jobs/{namespace}/{job}", auth(handleDeleteJob(logger, store))},
		{"POST", "/api/v1/silences", auth(handleCreateSilence(logger, store, kicker, cfg.Now))},
		{"GET", "/api/v1/silences", read(handleListSilences(store, cfg.Now))},
		{"DELETE", "/api/v1/silences/{id}", auth(handleDeleteSilence(logger, store, kicker, cfg.Now))},

		{"GET", "/", read(handleStatusPage(logger, views, cfg.ArgoURL))},
		{"GET", "/jobs/{namespace}/{job}", read(handleJobPage(logger, views, cfg.ArgoURL))},

		{"GET", "/healthz", handleHealthz()},
		{"GET", "/readyz", handleReadyz(store)},
		{"GET", "/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})},
		{"GET", "/api/openapi.yaml", handleOpenAPI()},
	}
}

// router serves the routes, and answers a path it does not serve with the
// API's JSON error: 404, or 405 with the methods it allows there.
type router struct {
	mux *http.ServeMux
}

// methods are those the API serves on any path (HEAD rides on GET).
var methods = []string{http.MethodGet, http.MethodPost, http.MethodDelete}

func newRouter(rs []route) router {
	mux := http.NewServeMux()
	for _, r := range rs {
		path := r.path
		if path == "/" {
			path = "/{$}" // the status page only, not every path below it
		}
		mux.Handle(r.method+" "+path, r.handler)
	}
	return router{mux: mux}
}

func (rt router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// ServeMux names no pattern only when it would answer 404 or 405 in
	// plain text; a redirect to the clean path has one.
	if _, pattern := rt.mux.Handler(r); pattern != "" {
		rt.mux.ServeHTTP(w, r)
		return
	}
	if trimmed := strings.TrimSuffix(r.URL.Path, "/"); trimmed != r.URL.Path && trimmed != "" && rt.serves(r, r.Method, trimmed) {
		// A stray trailing slash is redirected, as the API always did.
		status := http.StatusTemporaryRedirect
		if r.Method == http.MethodGet {
			status = http.StatusMovedPermanently
		}
		target := *r.URL
		target.Path, target.RawPath = trimmed, ""
		http.Redirect(w, r, target.RequestURI(), status)
		return
	}
	var allowed []string
	for _, m := range methods {
		if rt.serves(r, m, r.URL.Path) {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) == 0 {
		writeError(w, errRouteNotFound)
		return
	}
	w.Header().Set("Allow", strings.Join(allowed, ", "))
	writeError(w, errMethodNotAllowed)
}

// serves reports whether a route matches r with method and path instead of
// its own.
func (rt router) serves(r *http.Request, method, path string) bool {
	probe := r.Clone(r.Context())
	probe.Method = method
	probe.URL.Path, probe.URL.RawPath = path, ""
	_, pattern := rt.mux.Handler(probe)
	return pattern != ""
}
