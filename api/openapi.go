package api

import _ "embed"

// OpenAPI is the OpenAPI 3 description of every route, body and error of
// the server, built into the binary so that the server serves the very
// document its tests check it against.
//
//go:embed openapi.yaml
var OpenAPI []byte
