package server

import (
	"log/slog"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/batchlatch/batchlatch/state"
)

// addRoutes is the whole API surface, in one place: every route with its
// middleware, and what a path or a method no route serves gets.
func addRoutes(r *gin.Engine, logger *slog.Logger, store state.Store, kicker Kicker, gatherer prometheus.Gatherer, metrics *Metrics, report *callbackReport, cfg Config) {
	write := requireToken(cfg.Token)
	read := requireReadToken(cfg.ReadToken, cfg.Token)
	// Every write goes through shared, so that the reads it shares see them.
	shared := newSharedJobs(store, sharedListMaxAge)
	store = shared
	views := Views{Store: store, jobs: shared, Now: cfg.Now, Schedules: cfg.Schedules, Silences: cfg.Silences, MissedGrace: cfg.MissedGrace}
	// get serves GET and HEAD: gin, unlike net/http's ServeMux, does not
	// answer HEAD with a GET route, and HTTP wants a GET resource to answer
	// HEAD too (net/http drops the body).
	get := func(path string, handlers ...gin.HandlerFunc) {
		r.Match([]string{http.MethodGet, http.MethodHead}, path, handlers...)
	}

	// First, so that they hold for every route below: the deadline before
	// the slot, which it frees.
	r.Use(limitWriteTime(cfg.WriteDeadlines, logger))
	r.Use(limitInFlight(cfg.InFlight, metrics))

	// noteRefusals first: it reports a callback refused for its token too.
	r.POST("/api/v1/results", noteRefusals(report), write, limitBody(MaxBodyBytes), handleRecordResult(logger, store, kicker, metrics, report, views))
	get("/api/v1/failures", read, handleListFailures(views))
	get("/api/v1/jobs", read, handleListJobs(views))
	get("/api/v1/jobs/:namespace", read, handleListJobs(views))
	get("/api/v1/jobs/:namespace/:job", read, handleGetJob(views))
	r.DELETE("/api/v1/jobs/:namespace/:job", write, handleDeleteJob(logger, store, kicker, cfg.Now))
	r.POST("/api/v1/silences", write, limitBody(maxSilenceBody), handleCreateSilence(logger, views, kicker))
	get("/api/v1/silences", read, handleListSilences(store, cfg.Now))
	r.DELETE("/api/v1/silences/:id", write, handleDeleteSilence(logger, store, kicker, cfg.Now))

	get("/", read, handleStatusPage(logger, views, report, cfg.ArgoURL))
	get("/jobs/:namespace/:job", read, handleJobPage(logger, views, cfg.ArgoURL))

	get("/healthz", handleHealthz())
	get("/readyz", handleReadyz(store))
	get("/metrics", handleMetrics(newSharedMetrics(logger, gatherer, cfg), publicMetrics(gatherer, cfg), hasReadToken(cfg.ReadToken, cfg.Token)))
	get("/api/openapi.yaml", handleOpenAPI())

	// Any other path is 404; a method a path does not serve is 405 with
	// Allow. Both with the API's error body.
	r.HandleMethodNotAllowed = true
	r.NoRoute(handleError(errRouteNotFound))
	r.NoMethod(handleError(errMethodNotAllowed))
	// A stray trailing slash, a doubled slash or a dot segment is
	// redirected to the route (301 for GET, 307 otherwise, which keeps a
	// POST's body): a base URL that ends in "/" still reaches the API.
	r.RedirectTrailingSlash = true
	r.RedirectFixedPath = true
	// Routes match the escaped path (its parameters are unescaped), so that
	// an escaped "/" stays in its segment and fails the segment's check
	// (400), as in a body.
	r.UseRawPath = true
}
