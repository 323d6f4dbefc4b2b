package server

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/gin-gonic/gin"
)

// The pages and the lists are gzip-compressed when the client accepts it (a
// page of 100 failing jobs: 110 KiB, 12 KiB compressed). Both are rendered
// into memory before a byte is sent (a template error or a panic is then a
// clean 500, not half an answer), so compressing that buffer is a few lines
// of the standard library's compress/gzip. A middleware (gin-contrib/gzip)
// would wrap the writer instead, and its deferred flush answers 200 with an
// empty body when the handler panics, before gin's recovery can answer 500;
// it would also sit on the routes in routes.go. Only reading Accept-Encoding
// is hand-written: net/http does it for clients only.

// minCompressBytes: below it, gzip's own framing is not worth it.
const minCompressBytes = 1024

// gzipWriters keeps deflate's state (about 800 KB each) between responses:
// allocating it per page would cost more than the page. A pool, like the
// parsed templates (pages), holds no data between responses.
var gzipWriters = sync.Pool{New: func() any {
	w, _ := gzip.NewWriterLevel(nil, gzip.DefaultCompression) // a valid level: no error
	return w
}}

// respond answers body (already rendered) with status and contentType,
// gzip-compressed when the request accepts it.
func respond(c *gin.Context, status int, contentType string, body []byte) {
	c.Writer.Header().Add("Vary", "Accept-Encoding")
	if len(body) < minCompressBytes || !acceptsGzip(c.Request.Header) {
		c.Data(status, contentType, body)
		return
	}
	var buf bytes.Buffer
	buf.Grow(len(body) / 4)
	zw := gzipWriters.Get().(*gzip.Writer)
	zw.Reset(&buf)
	_, _ = zw.Write(body) // into memory: cannot fail
	_ = zw.Close()
	gzipWriters.Put(zw)
	c.Header("Content-Encoding", "gzip")
	c.Data(status, contentType, buf.Bytes())
}

// respondJSON answers v as JSON, as c.JSON would (encoding/json, as gin
// uses it), compressed as respond does.
func respondJSON(c *gin.Context, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		abortWithError(c, err)
		return
	}
	respond(c, status, "application/json; charset=utf-8", data)
}

// acceptsGzip reads Accept-Encoding (RFC 9110, 12.5.3): gzip (or x-gzip)
// listed with a weight above 0, or else "*" with one; an explicit gzip;q=0
// refuses it whatever "*" says.
func acceptsGzip(h http.Header) bool {
	star := false
	for _, value := range h.Values("Accept-Encoding") {
		for _, part := range strings.Split(value, ",") {
			coding, params, _ := strings.Cut(part, ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "x-gzip" && coding != "*" {
				continue
			}
			q := 1.0
			for _, param := range strings.Split(params, ";") {
				name, v, ok := strings.Cut(param, "=")
				if !ok || !strings.EqualFold(strings.TrimSpace(name), "q") {
					continue
				}
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				} else {
					q = 0 // unreadable: not a preference for it
				}
			}
			if coding != "*" {
				return q > 0
			}
			star = q > 0
		}
	}
	return star
}
