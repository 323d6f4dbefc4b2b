package server

import (
	"net/http"

	"github.com/batchlatch/batchlatch/api"
)

// handleOpenAPI serves the API's OpenAPI description. It needs no token: it
// says nothing a client could not learn by calling, and a client generator
// must be able to fetch it.
func handleOpenAPI() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeData(w, http.StatusOK, "application/yaml", api.OpenAPI)
	}
}
