package server

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/batchlatch/batchlatch/api"
)

// handleOpenAPI serves the API's OpenAPI description. It needs no token: it
// says nothing a client could not learn by calling, and a client generator
// must be able to fetch it.
func handleOpenAPI() gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Data(http.StatusOK, "application/yaml", api.OpenAPI)
	}
}
