package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

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

// writeError writes err's response: its status and the API's error body.
func writeError(w http.ResponseWriter, err error) {
	status, detail := errorResponse(err)
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", retryAfterSeconds)
	}
	writeJSON(w, status, api.ErrorBody{Error: detail})
}

// writeJSON writes v as a JSON body with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil { // only a type that cannot be JSON: a bug
		panic(fmt.Sprintf("encode %T: %v", v, err))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeData writes body with status and contentType.
func writeData(w http.ResponseWriter, status int, contentType string, body []byte) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
