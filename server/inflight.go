package server

import (
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
)

// InFlight caps the requests served at once, per class of request: beyond
// its cap a request is answered 429 with Retry-After at once, as the
// Kubernetes API server answers past its --max-requests-inflight. A class
// costs memory for as long as its requests are served (a scrape sends the
// shared /metrics body, a page renders every job), so the caps, not the
// number of clients, bound what the service holds. 0: no cap.
type InFlight struct {
	Scrapes int // GET /metrics
	Pages   int // the status page and the job pages
	Reads   int // the REST reads (and the OpenAPI document)
	Writes  int // callbacks, deletions, silences
}

// DefaultInFlight fits the chart's 256 MiB memory limit at 10,000 jobs
// (docs/performance.md has the figures). A scrape sends the shared body,
// holding tens of KiB of its own (a gzip reader when it takes no gzip), so
// slow scrapers may hold many slots and leave room for Prometheus; a page
// is rendered for each request, so few. Writes cost at most a 64 KiB body
// each; their cap is high enough that the slow-body clients of the
// reliability suite (200 connections) do not hold every slot.
var DefaultInFlight = InFlight{Scrapes: 32, Pages: 4, Reads: 8, Writes: 256}

// WriteDeadlines bounds, per class of request, how long a request may take
// from its admission to the last byte of its answer: past it the
// connection's writes fail, the handler returns, the connection is closed
// and the request's slot (InFlight) and buffers are freed. A reader too slow
// to take an answer in that time cannot hold them longer. 0: the server's
// own WriteTimeout only.
type WriteDeadlines struct {
	Scrapes time.Duration
	Pages   time.Duration
	Reads   time.Duration
	Writes  time.Duration
}

// DefaultWriteDeadlines are sized for what each class sends, on a busy node:
//   - scrapes: the shared body (1.8 MiB gzipped at 100,000 jobs, 65 MiB to a
//     client that takes no gzip), after waiting for a build of up to a few
//     seconds; 20 s is twice the scrape timeout Prometheus and Google
//     Managed Prometheus take by default (10 s), past which they have given
//     up on the scrape;
//   - pages: 100 jobs (about 110 KiB, 12 KiB gzipped) or one job's page,
//     rendered after one list of the store (about a second at 100,000 jobs);
//   - reads: a REST page of at most 1,000 jobs (about 1 MB), after the same
//     list;
//   - writes: an answer of well under 1 KiB, which fits the socket's buffer,
//     but only once the body has arrived: the body has the server's
//     ReadTimeout (30 s), then the store's write has 10 s.
var DefaultWriteDeadlines = WriteDeadlines{Scrapes: 20 * time.Second, Pages: 15 * time.Second, Reads: 15 * time.Second, Writes: 40 * time.Second}

// requestClass is what limitInFlight counts a request against.
type requestClass int

const (
	classNone requestClass = iota // health checks, unknown routes: never refused
	classScrape
	classPage
	classRead
	classWrite
)

// classOf sorts a matched route (gin's FullPath) into its class. Health
// checks are never refused: the kubelet would restart a busy replica.
func classOf(method, route string) requestClass {
	switch {
	case route == "" || route == "/healthz" || route == "/readyz":
		return classNone
	case route == "/metrics":
		return classScrape
	case method != http.MethodGet && method != http.MethodHead:
		return classWrite
	case strings.HasPrefix(route, "/api/"):
		return classRead
	default:
		return classPage
	}
}

// retryAfterBusySeconds is what a client refused for the caps is told to
// wait: requests in flight end within seconds.
const retryAfterBusySeconds = "1"

// limitInFlight refuses a request while its class has its cap of requests
// in flight. It runs for every route, after routing (gin adds middleware
// to each route's chain), so that it can tell the route's class.
func limitInFlight(caps InFlight, metrics *Metrics) gin.HandlerFunc {
	slots := map[requestClass]chan struct{}{}
	for class, n := range map[requestClass]int{classScrape: caps.Scrapes, classPage: caps.Pages, classRead: caps.Reads, classWrite: caps.Writes} {
		if n > 0 {
			slots[class] = make(chan struct{}, n)
		}
	}
	names := map[requestClass]string{classScrape: "scrapes", classPage: "pages", classRead: "reads", classWrite: "writes"}
	return func(c *gin.Context) {
		class := classOf(c.Request.Method, c.FullPath())
		slot, ok := slots[class]
		if !ok {
			return
		}
		select {
		case slot <- struct{}{}:
			defer func() { <-slot }()
			c.Next()
		default:
			metrics.Throttled.WithLabelValues(names[class]).Inc()
			c.Header("Retry-After", retryAfterBusySeconds)
			abortWithError(c, errTooManyRequests)
		}
	}
}

// limitWriteTime sets the write deadline of a request's connection from
// its class (WriteDeadlines), in place of the server's WriteTimeout, which is
// one for every class. net/http clears it after each request. It runs
// before limitInFlight, so that a request waiting nowhere but in the
// socket's buffer is cut in time to give its slot back.
func limitWriteTime(deadlines WriteDeadlines, logger *slog.Logger) gin.HandlerFunc {
	byClass := map[requestClass]time.Duration{classScrape: deadlines.Scrapes, classPage: deadlines.Pages, classRead: deadlines.Reads, classWrite: deadlines.Writes}
	return func(c *gin.Context) {
		d := byClass[classOf(c.Request.Method, c.FullPath())]
		if d <= 0 {
			return
		}
		// gin's writer unwraps to net/http's, which takes deadlines (as
		// does HTTP/2's); a writer that does not keeps the server's.
		if err := http.NewResponseController(c.Writer).SetWriteDeadline(time.Now().Add(d)); err != nil {
			logger.Debug("write deadline not set", "err", err, "path", c.Request.URL.Path)
		}
	}
}
