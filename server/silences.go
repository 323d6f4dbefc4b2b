package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/common/model"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// Bounds of what a silence carries: it is stored with the state.
const (
	maxSilenceReason    = api.MaxSilenceReason
	maxSilenceCreatedBy = api.MaxSilenceCreatedBy
	maxSilenceBody      = 8 << 10
)

func handleCreateSilence(logger *slog.Logger, views Views, kicker Kicker) gin.HandlerFunc {
	logger = logger.With("component", "silences")
	return func(c *gin.Context) {
		at := views.Now().UTC()
		req, err := readSilenceRequest(c)
		if err != nil {
			abortWithError(c, err)
			return
		}
		silence, err := newSilence(req, at)
		if err != nil {
			abortWithError(c, err)
			return
		}
		warnings, err := silenceWarnings(c.Request.Context(), views, silence, at)
		if err != nil {
			abortWithError(c, err)
			return
		}
		if err := views.Store.AddSilence(c.Request.Context(), silence, at); err != nil {
			abortWithError(c, err)
			return
		}
		kicker.Kick()
		logger.Info("silence created", "id", silence.ID, "namespace", silence.Namespace, "job", silence.Job, "kind", silence.Kind,
			"endsAt", silence.EndsAt, "reason", silence.Reason, "createdBy", silence.CreatedBy, "warnings", warnings)
		c.JSON(http.StatusCreated, api.SilenceCreated{Silence: silence, Warnings: warnings})
	}
}

// silenceWarnings names what s silences that batchlatch has never seen: a
// job none of whose runs was recorded and which no watcher reads, or a
// namespace none of whose jobs was. A silence may precede its job, so it is
// taken, but a mistyped name silences nothing while the real job alerts.
func silenceWarnings(ctx context.Context, views Views, s api.Silence, now time.Time) ([]string, error) {
	if s.Job != "" {
		_, err := getJob(ctx, views.Store, state.KeyFor(s.Kind, s.Namespace, s.Job))
		switch {
		case err == nil, errors.Is(err, state.ErrCorrupt): // stored, if unreadable
			return nil, nil
		case !errors.Is(err, state.ErrNotFound):
			return nil, err
		case views.Schedules(s.Kind, s.Namespace, s.Job, now) != nil: // watched, not run yet
			return nil, nil
		}
		return []string{fmt.Sprintf("batchlatch has never seen job %q (%s) of namespace %q: the silence mutes it once it reports, but a mistyped name mutes nothing", s.Job, s.Kind, s.Namespace)}, nil
	}
	jobs, err := listJobs(ctx, views.jobs, s.Namespace)
	if err != nil || len(jobs) > 0 {
		return nil, err
	}
	return []string{fmt.Sprintf("batchlatch has never seen a job of namespace %q: the silence mutes its jobs once they report, but a mistyped name mutes nothing", s.Namespace)}, nil
}

func handleListSilences(store state.Store, now func() time.Time) gin.HandlerFunc {
	return func(c *gin.Context) {
		all, err := store.Silences(c.Request.Context())
		if err != nil {
			abortWithError(c, err)
			return
		}
		active := state.InForce(all, now())
		slices.SortStableFunc(active, func(a, b api.Silence) int { return a.EndsAt.Compare(b.EndsAt) })
		c.JSON(http.StatusOK, api.SilenceList{Silences: append([]api.Silence{}, active...)})
	}
}

func handleDeleteSilence(logger *slog.Logger, store state.Store, kicker Kicker, now func() time.Time) gin.HandlerFunc {
	logger = logger.With("component", "silences")
	return func(c *gin.Context) {
		id := c.Param("id")
		if !silenceID(id) {
			abortWithError(c, &api.FieldError{Field: "{id}", Message: fmt.Sprintf("%s is not a silence ID (%d hexadecimal digits)", api.Quote(id), 2*silenceIDBytes)})
			return
		}
		if err := store.DeleteSilence(c.Request.Context(), id, now()); err != nil {
			abortWithError(c, err)
			return
		}
		kicker.Kick()
		logger.Info("silence deleted", "id", id)
		c.Status(http.StatusNoContent)
	}
}

// readSilenceRequest reads and decodes the body (api.DecodeSilenceRequest).
func readSilenceRequest(c *gin.Context) (api.SilenceRequest, error) {
	if err := requireJSONBody(c); err != nil {
		return api.SilenceRequest{}, err
	}
	body, err := readBody(c)
	if err != nil {
		return api.SilenceRequest{}, err
	}
	return api.DecodeSilenceRequest(body)
}

// newSilence checks req at now and makes the silence it asks for.
func newSilence(req api.SilenceRequest, now time.Time) (api.Silence, error) {
	if err := api.ValidateNamespace("namespace", req.Namespace); err != nil {
		return api.Silence{}, err
	}
	kind := req.Kind
	switch {
	case req.Job == "" && kind != "":
		return api.Silence{}, &api.FieldError{Field: "kind", Message: "is set without job: a silence of a namespace mutes every kind"}
	case req.Job != "":
		if kind == "" {
			kind = api.KindWorkflow
		}
		if err := api.ValidateJob("job", kind, req.Namespace, req.Job); err != nil {
			return api.Silence{}, err
		}
	}
	var ends time.Time
	switch {
	case req.EndsAt != "" && req.For != "":
		return api.Silence{}, &api.FieldError{Field: "for", Message: "is set with endsAt: give one of them"}
	case req.EndsAt != "":
		t, err := api.ParseTime(req.EndsAt)
		if err != nil {
			return api.Silence{}, &api.FieldError{Field: "endsAt", Message: fmt.Sprintf("%s is not an RFC 3339 time", api.Quote(req.EndsAt))}
		}
		ends = t.UTC()
	case req.For != "":
		d, err := parseSilenceDuration(req.For)
		if err != nil || d <= 0 {
			return api.Silence{}, &api.FieldError{Field: "for", Message: fmt.Sprintf("%s is not a positive duration such as \"90m\", \"2h\" or \"2d12h\"", api.Quote(req.For))}
		}
		if d > api.MaxSilence {
			return api.Silence{}, &api.FieldError{Field: "for", Message: fmt.Sprintf("is %s: a silence lasts at most %s", model.Duration(d), model.Duration(api.MaxSilence))}
		}
		ends = now.Add(d).Truncate(time.Second)
	default:
		return api.Silence{}, &api.FieldError{Field: "endsAt", Message: "is required (or for): a silence must end"}
	}
	field := "endsAt"
	if req.For != "" {
		field = "for"
	}
	if !ends.After(now) {
		return api.Silence{}, &api.FieldError{Field: field, Message: "is not in the future"}
	}
	if ends.Sub(now) > api.MaxSilence {
		return api.Silence{}, &api.FieldError{Field: field, Message: fmt.Sprintf("is more than %s ahead", api.MaxSilence)}
	}
	if strings.TrimSpace(req.Reason) == "" {
		return api.Silence{}, &api.FieldError{Field: "reason", Message: "is required: say why the alarm is muted"}
	}
	for field, v := range map[string]struct {
		value string
		max   int
	}{"reason": {req.Reason, maxSilenceReason}, "createdBy": {req.CreatedBy, maxSilenceCreatedBy}} {
		if len(v.value) > v.max || !utf8.ValidString(v.value) {
			return api.Silence{}, &api.FieldError{Field: field, Message: fmt.Sprintf("must be valid UTF-8 of at most %d bytes", v.max)}
		}
	}
	id := make([]byte, silenceIDBytes)
	if _, err := rand.Read(id); err != nil {
		return api.Silence{}, err
	}
	if req.Job == "" {
		kind = ""
	}
	return api.Silence{
		ID: hex.EncodeToString(id), Namespace: req.Namespace, Job: req.Job, Kind: kind,
		StartsAt: now.Truncate(time.Second), EndsAt: ends, Reason: req.Reason, CreatedBy: req.CreatedBy,
	}, nil
}

// parseSilenceDuration reads a silence's length as Alertmanager's amtool
// does (Prometheus' durations: "1d", "2d12h", "1w"), or as a Go duration
// ("1.5h"), which the API took before days.
func parseSilenceDuration(s string) (time.Duration, error) {
	if d, err := time.ParseDuration(s); err == nil {
		return d, nil
	}
	d, err := model.ParseDuration(s)
	return time.Duration(d), err
}

const silenceIDBytes = 8

func silenceID(s string) bool {
	if len(s) != 2*silenceIDBytes {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil && strings.ToLower(s) == s
}
