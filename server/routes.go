package server

import (
	"log/slog"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/batchlatch/batchlatch/state"
)

// addRoutes is the whole API surface, in one place.
func addRoutes(r *gin.Engine, logger *slog.Logger, store state.Store, kicker Kicker, gatherer prometheus.Gatherer, metrics *Metrics, cfg Config) {
	auth := requireToken(cfg.Token)
	read := requireReadToken(cfg.ReadToken, cfg.Token)
	views := Views{Store: store, Now: cfg.Now, Schedules: cfg.Schedules, Silences: cfg.Silences}

	r.POST("/api/v1/results", auth, handleRecordResult(logger, store, kicker, metrics, views))
	r.GET("/api/v1/failures", read, handleListFailures(views))
	r.GET("/api/v1/jobs", read, handleListJobs(views))
	r.GET("/api/v1/jobs/:namespace", read, handleListJobs(views))
	r.GET("/api/v1/jobs/:namespace/:job", read, handleGetJob(views))
	r.DELETE("/api/v1/jobs/:namespace/:job", auth, handleDeleteJob(logger, store))
	r.POST("/api/v1/silences", auth, handleCreateSilence(logger, store, kicker, cfg.Now))
	r.GET("/api/v1/silences", read, handleListSilences(store, cfg.Now))
	r.DELETE("/api/v1/silences/:id", auth, handleDeleteSilence(logger, store, kicker, cfg.Now))

	r.GET("/", read, handleStatusPage(logger, views, cfg.ArgoURL))
	r.GET("/jobs/:namespace/:job", read, handleJobPage(logger, views, cfg.ArgoURL))

	r.GET("/healthz", handleHealthz())
	r.GET("/readyz", handleReadyz(store))
	r.GET("/metrics", gin.WrapH(promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})))
	r.GET("/api/openapi.yaml", handleOpenAPI())

	r.NoRoute(handleNotFound())
	r.NoMethod(handleMethodNotAllowed())
}
