package api

import (
	"bytes"
	"encoding/json"
	"io"
	"reflect"
	"strings"
)

var silenceRequestShape = &shape{fields: fieldsOf(reflect.TypeFor[SilenceRequest](), nil)}

// DecodeSilenceRequest decodes the body of POST /api/v1/silences as strictly
// as DecodeResult does a callback's: one JSON object with nothing after it,
// no key twice and no key that names a field only when case is ignored
// (checkKeys). Unlike a callback, an unknown key is refused too: a misspelt
// "endsAt" must not silence for nothing. The error is a *FieldError.
func DecodeSilenceRequest(body []byte) (SilenceRequest, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	var req SilenceRequest
	if err := dec.Decode(&req); err != nil {
		// encoding/json has no typed error for an unknown field.
		if field, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return SilenceRequest{}, &FieldError{Field: strings.Trim(field, `"`), Message: "is not a field of a silence (namespace, job, kind, endsAt, for, reason, createdBy)"}
		}
		return SilenceRequest{}, decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return SilenceRequest{}, decodeError(errTrailingData)
	}
	if err := checkKeys(body, silenceRequestShape, ""); err != nil {
		return SilenceRequest{}, err
	}
	return req, nil
}

// SilenceCreated answers POST /api/v1/silences: the silence, and warnings
// that did not stop it, such as a job or namespace batchlatch has never seen
// (a silence may precede its job, but a mistyped name silences nothing).
type SilenceCreated struct {
	Silence
	Warnings []string `json:"warnings,omitempty"`
}
