package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// Errors the handlers raise themselves; the stores' and api's sentinels are
// mapped alongside them in errorResponse.
var (
	errUnauthorized     = errors.New("missing or wrong bearer token")
	errBodyTooLarge     = errors.New("body too large")
	errUnsupportedMedia = errors.New("Content-Type must be application/json")
	errRouteNotFound    = errors.New("no such route")
	errMethodNotAllowed = errors.New("method not allowed")
	errTooManyRequests  = errors.New("too many requests of this kind in flight; retry later")
)

// retryAfterSeconds is what a client is told to wait while the store is down.
const retryAfterSeconds = "5"

// errorResponse maps every error to its status and body: the one place that
// decides what a failure looks like on the wire.
func errorResponse(err error) (int, api.ErrorDetail) {
	var field *api.FieldError
	switch {
	case errors.As(err, &field):
		return http.StatusBadRequest, api.ErrorDetail{Code: "invalid_argument", Message: err.Error(), Field: field.Field}
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized, api.ErrorDetail{Code: "unauthenticated", Message: err.Error(), Field: "Authorization"}
	case errors.Is(err, errBodyTooLarge):
		return http.StatusRequestEntityTooLarge, api.ErrorDetail{Code: "body_too_large", Message: err.Error()}
	case errors.Is(err, errUnsupportedMedia):
		return http.StatusUnsupportedMediaType, api.ErrorDetail{Code: "unsupported_media_type", Message: err.Error(), Field: "Content-Type"}
	case errors.Is(err, state.ErrNotFound), errors.Is(err, state.ErrSilenceNotFound):
		return http.StatusNotFound, api.ErrorDetail{Code: "not_found", Message: err.Error()}
	case errors.Is(err, errRouteNotFound):
		return http.StatusNotFound, api.ErrorDetail{Code: "not_found", Message: err.Error()}
	case errors.Is(err, errMethodNotAllowed):
		return http.StatusMethodNotAllowed, api.ErrorDetail{Code: "method_not_allowed", Message: err.Error()}
	case errors.Is(err, errTooManyRequests):
		return http.StatusTooManyRequests, api.ErrorDetail{Code: "too_many_requests", Message: err.Error()}
	case errors.Is(err, state.ErrCorrupt):
		return http.StatusInternalServerError, api.ErrorDetail{Code: "corrupt_state", Message: err.Error() + "; fix or delete that key of the state ConfigMap"}
	case errors.Is(err, state.ErrFull):
		return http.StatusInsufficientStorage, api.ErrorDetail{Code: "store_full", Message: err.Error()}
	case errors.Is(err, state.ErrUnavailable), errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, api.ErrorDetail{Code: "unavailable", Message: err.Error()}
	default:
		return http.StatusInternalServerError, api.ErrorDetail{Code: "internal", Message: "internal error"}
	}
}

// abortWithError answers err (its status and the API's error body) and
// stops the handler chain. The error stays on the context (c.Errors) for
// the middleware before: noteRefusals reports it.
func abortWithError(c *gin.Context, err error) {
	_ = c.Error(err)
	status, detail := errorResponse(err)
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", retryAfterSeconds)
	}
	c.AbortWithStatusJSON(status, api.ErrorBody{Error: detail})
}

// handleError answers every request with err: what gin's NoRoute and
// NoMethod get (gin has set the Allow header of a 405 already).
func handleError(err error) gin.HandlerFunc {
	return func(c *gin.Context) { abortWithError(c, err) }
}
