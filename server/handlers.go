package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// namespaceJob is how a path names the job that stands for a namespace as a
// whole (its name is empty); "-" can never be a Kubernetes object name.
const namespaceJob = "-"

// requireToken rejects requests without "Authorization: Bearer <token>" (or
// the token in api.TokenHeader) when a token is configured.
func requireToken(token string) gin.HandlerFunc {
	return func(c *gin.Context) {
		if token == "" {
			return
		}
		given, ok := requestToken(c.Request)
		if !ok || subtle.ConstantTimeCompare([]byte(given), []byte(token)) != 1 {
			c.Header("WWW-Authenticate", `Bearer realm="batchlatch"`)
			abortWithError(c, errUnauthorized)
		}
	}
}

// requireReadToken checks reads when a read token is set: the read token or
// the write token, as "Authorization: Bearer <token>" (or in
// api.TokenHeader), or as the password of HTTP Basic authentication (any
// user name), so that a browser can open the status page. Without a read
// token reads are open.
func requireReadToken(readToken, writeToken string) gin.HandlerFunc {
	authorized := hasReadToken(readToken, writeToken)
	return func(c *gin.Context) {
		if !authorized(c.Request) {
			c.Header("WWW-Authenticate", `Basic realm="batchlatch"`)
			abortWithError(c, errUnauthorized)
		}
	}
}

// hasReadToken reports whether a request may read: it carries readToken or
// writeToken, as a bearer token (or in api.TokenHeader) or a Basic
// password, or readToken is empty.
func hasReadToken(readToken, writeToken string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		if readToken == "" {
			return true
		}
		given := ""
		if bearer, ok := requestToken(r); ok {
			given = bearer
		} else if _, password, ok := r.BasicAuth(); ok {
			given = password
		}
		for _, token := range []string{readToken, writeToken} {
			if token != "" && subtle.ConstantTimeCompare([]byte(given), []byte(token)) == 1 {
				return true
			}
		}
		return false
	}
}

// requestToken returns the bearer token of the Authorization header, else
// the token of api.TokenHeader: the way through the Kubernetes API server's
// service proxy (kubectl batchlatch), which authenticates its caller with
// Authorization and removes it before proxying. The header is compared as
// the bearer token is: it grants nothing the token does not.
func requestToken(r *http.Request) (string, bool) {
	if token, ok := bearerToken(r); ok {
		return token, true
	}
	if token := r.Header.Get(api.TokenHeader); token != "" {
		return token, true
	}
	return "", false
}

// bearerToken returns the credentials of "Authorization: Bearer <token>".
// The scheme is case-insensitive and followed by one or more spaces (RFC
// 9110, 11.4), as net/http's BasicAuth reads "basic" too; net/http has no
// such reader for Bearer.
func bearerToken(r *http.Request) (string, bool) {
	scheme, credentials, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimLeft(credentials, " "), true
}

// limitBody lets the handlers read at most n bytes of a request's body:
// reading more fails with an *http.MaxBytesError, which readBody answers as
// 413. gin has no limit of its own (MaxMultipartMemory is for forms only).
func limitBody(n int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, n)
	}
}

// readBody reads the request's body, bounded by limitBody in routes.go.
func readBody(c *gin.Context) ([]byte, error) {
	body, err := io.ReadAll(c.Request.Body)
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return nil, errBodyTooLarge
		}
		return nil, &api.FieldError{Message: "read body: " + err.Error()}
	}
	return body, nil
}

// requireJSONBody reports errUnsupportedMedia unless the request says its
// body is JSON (any parameters, such as a charset, are fine).
func requireJSONBody(c *gin.Context) error {
	if mediaType, _, err := mime.ParseMediaType(c.GetHeader("Content-Type")); err != nil || mediaType != "application/json" {
		return errUnsupportedMedia
	}
	return nil
}

func handleRecordResult(logger *slog.Logger, store state.Store, kicker Kicker, metrics *Metrics, report *callbackReport, views Views) gin.HandlerFunc {
	logger = logger.With("component", "results")
	return func(c *gin.Context) {
		receivedAt := views.Now()
		result, err := readResult(c, receivedAt)
		if err != nil {
			metrics.Results.WithLabelValues("rejected").Inc()
			// What could be read of the run, for noteRefusals.
			c.Set(refusalRunKey, result)
			abortWithError(c, err)
			return
		}
		ctx, cancel := context.WithTimeout(c.Request.Context(), recordTimeout)
		defer cancel()
		rec, err := store.Record(ctx, result, receivedAt)
		if err != nil {
			metrics.Results.WithLabelValues("error").Inc()
			logger.Warn("record result", "err", err, "namespace", result.Namespace, "workflow", result.WorkflowName)
			abortWithError(c, err)
			return
		}
		report.degraded(result)
		outcome := string(rec.Outcome.Transition)
		switch {
		case rec.Outcome.Duplicate:
			outcome = "duplicate"
		case rec.Outcome.Stale:
			outcome = "stale"
		case rec.Outcome.Retry:
			outcome = "retry-" + outcome
		}
		metrics.Results.WithLabelValues(outcome).Inc()
		if rec.Outcome.Announces(rec.Job) {
			kicker.Kick()
		}
		logger.Info("result", "namespace", result.Namespace, "job", rec.Job.Name, "workflow", result.WorkflowName,
			"phase", result.Phase, "outcome", outcome, "consecutiveFailures", rec.Job.ConsecutiveFailures)
		job, err := views.One(c.Request.Context(), rec.Job)
		if err != nil {
			abortWithError(c, err)
			return
		}
		c.JSON(http.StatusOK, api.ResultResponse{
			Duplicate: rec.Outcome.Duplicate,
			Stale:     rec.Outcome.Stale,
			Retry:     rec.Outcome.Retry,
			Job:       job,
			Warnings:  result.Warnings,
		})
	}
}

// recordTimeout bounds how long a callback waits for its result to be
// stored (conflicts with other replicas are retried meanwhile): below the
// shipped exit handler's timeoutSeconds (20), so that it gets an answer.
const recordTimeout = 15 * time.Second

// readResult checks the content type, reads and decodes the callback body,
// received at receivedAt.
func readResult(c *gin.Context, receivedAt time.Time) (api.Result, error) {
	if err := requireJSONBody(c); err != nil {
		return api.Result{}, err
	}
	body, err := readBody(c)
	if err != nil {
		return api.Result{}, err
	}
	return api.DecodeResult(body, receivedAt)
}

// handleListFailures serves /failures[?namespace=][&limit=][&continue=], a
// page at a time (list.go).
func handleListFailures(views Views) gin.HandlerFunc {
	return func(c *gin.Context) {
		namespace, err := optionalNamespace("namespace", c.Query("namespace"))
		if err != nil {
			abortWithError(c, err)
			return
		}
		limit, from, err := listQuery(c, listOfFailures, namespace)
		if err != nil {
			abortWithError(c, err)
			return
		}
		failing, more, err := views.FailingPage(c.Request.Context(), namespace, from, limit)
		if err != nil {
			abortWithError(c, err)
			return
		}
		list := api.FailureList{Failures: failing}
		if more {
			list.Continue = continueToken(listOfFailures, namespace, failing[len(failing)-1])
		}
		respondJSON(c, http.StatusOK, list)
	}
}

// handleListJobs serves both /jobs and /jobs/:namespace, a page at a time
// (?limit=, ?continue=: list.go).
func handleListJobs(views Views) gin.HandlerFunc {
	return func(c *gin.Context) {
		namespace, err := optionalNamespace("{namespace}", c.Param("namespace"))
		if err != nil {
			abortWithError(c, err)
			return
		}
		limit, from, err := listQuery(c, listOfJobs, namespace)
		if err != nil {
			abortWithError(c, err)
			return
		}
		jobs, more, err := views.ListPage(c.Request.Context(), namespace, from, limit)
		if err != nil {
			abortWithError(c, err)
			return
		}
		list := api.JobList{Jobs: jobs}
		if more {
			list.Continue = continueToken(listOfJobs, namespace, jobs[len(jobs)-1])
		}
		respondJSON(c, http.StatusOK, list)
	}
}

// listJobs returns all jobs, or those of one namespace when it is not
// empty; forgotten jobs (kept for the alarm) are not among them. The jobs
// are shared with other requests (sharedJobs): never modify them.
func listJobs(ctx context.Context, shared *sharedJobs, namespace string) ([]state.Job, error) {
	l, err := shared.list(ctx)
	if err != nil {
		return nil, err
	}
	jobs := l.jobs
	if namespace == "" {
		return jobs, nil
	}
	var inNamespace []state.Job
	for _, j := range jobs {
		if j.Namespace == namespace {
			inNamespace = append(inNamespace, j)
		}
	}
	return inNamespace, nil
}

func handleGetJob(views Views) gin.HandlerFunc {
	return func(c *gin.Context) {
		key, err := pathKey(c)
		if err != nil {
			abortWithError(c, err)
			return
		}
		job, err := views.Get(c.Request.Context(), key)
		if err != nil {
			abortWithError(c, notFoundNames(err, key))
			return
		}
		c.JSON(http.StatusOK, job)
	}
}

// forgetReason is what the entries say of a job deleted through the API.
const forgetReason = "deleted through the API (DELETE /api/v1/jobs)"

// handleDeleteJob forgets a job: one whose incident may be open is kept
// for the alarm until it has written the incident's closing
// (state.ForgetAt), which the kick starts at once.
func handleDeleteJob(logger *slog.Logger, store state.Store, kicker Kicker, now func() time.Time) gin.HandlerFunc {
	logger = logger.With("component", "jobs")
	return func(c *gin.Context) {
		key, err := pathKey(c)
		if err != nil {
			abortWithError(c, err)
			return
		}
		if err := state.Forget(c.Request.Context(), store, key, now(), forgetReason); err != nil {
			abortWithError(c, notFoundNames(err, key))
			return
		}
		kicker.Kick()
		logger.Info("job deleted", "namespace", key.Namespace, "job", key.Name, "kind", key.KindName())
		c.Status(http.StatusNoContent)
	}
}

// getJob returns one job, or state.ErrNotFound, also for a forgotten job
// (kept for the alarm).
func getJob(ctx context.Context, store state.Store, key state.Key) (state.Job, error) {
	j, err := store.Get(ctx, key)
	if err == nil && j.Forgotten() {
		return state.Job{}, state.ErrNotFound
	}
	return j, err
}

// pathKey is the job named by /jobs/:namespace/:job[?kind=…], checked with
// the rules a callback's body is checked with, so that no path reaches one
// job under another's name. The kind is Workflow unless ?kind=CronJob.
func pathKey(c *gin.Context) (state.Key, error) {
	namespace, name := c.Param("namespace"), c.Param("job")
	if err := api.ValidateNamespace("{namespace}", namespace); err != nil {
		return state.Key{}, err
	}
	// ?kind= with no value is refused below, not taken as the default.
	kind := c.DefaultQuery("kind", api.KindWorkflow)
	if kind != api.KindWorkflow && kind != api.KindCronJob {
		return state.Key{}, &api.FieldError{Field: "kind", Message: fmt.Sprintf("%s is not a kind of job; accepted values: %s, %s", api.Quote(kind), api.KindWorkflow, api.KindCronJob)}
	}
	if name == namespaceJob && kind == api.KindWorkflow {
		return state.Key{Namespace: namespace}, nil
	}
	if name == "" || name == namespaceJob {
		return state.Key{}, &api.FieldError{Field: "{job}", Message: fmt.Sprintf("is required: a CronWorkflow or CronJob name, or %q for the namespace as a whole (of kind %s)", namespaceJob, api.KindWorkflow)}
	}
	if err := api.ValidateJob("{job}", kind, namespace, name); err != nil {
		return state.Key{}, err
	}
	return state.KeyFor(kind, namespace, name), nil
}

// optionalNamespace checks a namespace that narrows a list, if one is given.
func optionalNamespace(field, namespace string) (string, error) {
	if namespace == "" {
		return "", nil
	}
	return namespace, api.ValidateNamespace(field, namespace)
}

func handleHealthz() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.JSON(http.StatusOK, gin.H{"status": "ok"})
	}
}

func handleReadyz(store state.Store) gin.HandlerFunc {
	return func(c *gin.Context) {
		ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
		defer cancel()
		if err := store.Ready(ctx); err != nil {
			abortWithError(c, err)
			return
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
	}
}

// notFoundNames says which job was not found: the stores' ErrNotFound does
// not, and a CLI user mistyping a name wants to see what was asked for.
func notFoundNames(err error, key state.Key) error {
	if !errors.Is(err, state.ErrNotFound) {
		return err
	}
	return fmt.Errorf("%w: no %s %s/%s", err, key.KindName(), key.Namespace, key.Name)
}
