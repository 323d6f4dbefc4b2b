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

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// namespaceJob is how a path names the job that stands for a namespace as a
// whole (its name is empty); "-" can never be a Kubernetes object name.
const namespaceJob = "-"

// requireToken rejects requests without "Authorization: Bearer <token>" when a
// token is configured.
func requireToken(token string) func(http.Handler) http.Handler {
	want := []byte("Bearer " + token)
	return func(next http.Handler) http.Handler {
		if token == "" {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			got := []byte(r.Header.Get("Authorization"))
			if subtle.ConstantTimeCompare(got, want) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="batchlatch"`)
				writeError(w, errUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// requireReadToken checks reads when a read token is set: the read token or
// the write token, as "Authorization: Bearer <token>", or as the password of
// HTTP Basic authentication (any user name), so that a browser can open the
// status page. Without a read token reads are open.
func requireReadToken(readToken, writeToken string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if readToken == "" {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			given := ""
			if bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
				given = bearer
			} else if _, password, ok := r.BasicAuth(); ok {
				given = password
			}
			for _, token := range []string{readToken, writeToken} {
				if token != "" && subtle.ConstantTimeCompare([]byte(given), []byte(token)) == 1 {
					next.ServeHTTP(w, r)
					return
				}
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="batchlatch"`)
			writeError(w, errUnauthorized)
		})
	}
}

func handleRecordResult(logger *slog.Logger, store state.Store, kicker Kicker, metrics *Metrics, views Views) http.HandlerFunc {
	logger = logger.With("component", "results")
	return func(w http.ResponseWriter, r *http.Request) {
		receivedAt := views.Now()
		result, err := readResult(w, r, receivedAt)
		if err != nil {
			metrics.Results.WithLabelValues("rejected").Inc()
			writeError(w, err)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), recordTimeout)
		defer cancel()
		rec, err := store.Record(ctx, result, receivedAt)
		if err != nil {
			metrics.Results.WithLabelValues("error").Inc()
			logger.Warn("record result", "err", err, "namespace", result.Namespace, "workflow", result.WorkflowName)
			writeError(w, err)
			return
		}
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
		job, err := views.One(r.Context(), rec.Job)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, api.ResultResponse{
			Duplicate: rec.Outcome.Duplicate,
			Stale:     rec.Outcome.Stale,
			Retry:     rec.Outcome.Retry,
			Job:       job,
		})
	}
}

// recordTimeout bounds how long a callback waits for its result to be
// stored (conflicts with other replicas are retried meanwhile): below the
// shipped exit handler's timeoutSeconds (20), so that it gets an answer.
const recordTimeout = 15 * time.Second

// readResult checks the content type, reads at most MaxBodyBytes and decodes
// the callback body, received at receivedAt.
func readResult(w http.ResponseWriter, r *http.Request, receivedAt time.Time) (api.Result, error) {
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/json" {
		return api.Result{}, errUnsupportedMedia
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return api.Result{}, errBodyTooLarge
		}
		return api.Result{}, &api.FieldError{Message: "read body: " + err.Error()}
	}
	return api.DecodeResult(body, receivedAt)
}

func handleListFailures(views Views) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		namespace, err := optionalNamespace("namespace", r.URL.Query().Get("namespace"))
		if err != nil {
			writeError(w, err)
			return
		}
		failing, err := views.Failing(r.Context(), namespace)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, api.FailureList{Failures: failing})
	}
}

// handleListJobs serves both /jobs and /jobs/{namespace}.
func handleListJobs(views Views) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		namespace, err := optionalNamespace("{namespace}", r.PathValue("namespace"))
		if err != nil {
			writeError(w, err)
			return
		}
		jobs, err := views.List(r.Context(), namespace)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, api.JobList{Jobs: jobs})
	}
}

// listJobs returns all jobs, or those of one namespace when it is not empty.
func listJobs(ctx context.Context, store state.Store, namespace string) ([]state.Job, error) {
	jobs, err := store.List(ctx)
	if err != nil || namespace == "" {
		return jobs, err
	}
	var inNamespace []state.Job
	for _, j := range jobs {
		if j.Namespace == namespace {
			inNamespace = append(inNamespace, j)
		}
	}
	return inNamespace, nil
}

func handleGetJob(views Views) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, err := pathKey(r)
		if err != nil {
			writeError(w, err)
			return
		}
		job, err := views.Get(r.Context(), key)
		if err != nil {
			writeError(w, notFoundNames(err, key))
			return
		}
		writeJSON(w, http.StatusOK, job)
	}
}

func handleDeleteJob(logger *slog.Logger, store state.Store) http.HandlerFunc {
	logger = logger.With("component", "jobs")
	return func(w http.ResponseWriter, r *http.Request) {
		key, err := pathKey(r)
		if err != nil {
			writeError(w, err)
			return
		}
		if err := store.Delete(r.Context(), key); err != nil {
			writeError(w, notFoundNames(err, key))
			return
		}
		logger.Info("job deleted", "namespace", key.Namespace, "job", key.Name)
		w.WriteHeader(http.StatusNoContent)
	}
}

// pathKey is the job named by /jobs/{namespace}/{job}[?kind=…], checked
// with the rules a callback's body is checked with, so that no path reaches
// one job under another's name. The kind is Workflow unless ?kind=CronJob.
func pathKey(r *http.Request) (state.Key, error) {
	namespace, name := r.PathValue("namespace"), r.PathValue("job")
	if err := api.ValidateNamespace("{namespace}", namespace); err != nil {
		return state.Key{}, err
	}
	kind := api.KindWorkflow
	if given, ok := r.URL.Query()["kind"]; ok && len(given) > 0 {
		kind = given[0] // ?kind= with no value is refused below, not taken as the default
	}
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

func handleHealthz() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

func handleReadyz(store state.Store) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := store.Ready(ctx); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
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
