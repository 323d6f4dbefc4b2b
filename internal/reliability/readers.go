package reliability

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// Readers scrape /metrics (a quarter of them asking for gzip, as Prometheus
// does, half not) and load the status page (a quarter) of every replica
// while the load runs, and sample the replicas' RSS often enough to catch
// their peak: what requests' memory costs, which the caps on requests in
// flight (--max-in-flight) bound.
type Readers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	n      int

	mu      sync.Mutex
	answers map[string]int   // "scrape 200", "page 429", …
	peak    map[string]int64 // replica → RSS bytes
	started time.Time
}

// readerClient keeps one connection per reader, as a scraper does.
var readerClient = &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 256}, Timeout: time.Minute}

// StartReaders starts n readers spread over replicas.
func StartReaders(replicas []*Replica, n int) *Readers {
	ctx, cancel := context.WithCancel(context.Background())
	r := &Readers{cancel: cancel, n: n, answers: map[string]int{}, peak: map[string]int64{}}
	r.wg.Go(func() {
		for ctx.Err() == nil {
			for _, rep := range replicas {
				if rss, err := rep.RSS(); err == nil {
					r.mu.Lock()
					r.peak[rep.Name] = max(r.peak[rep.Name], rss)
					r.mu.Unlock()
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(250 * time.Millisecond):
			}
		}
	})
	for i := range n {
		reader := readerOf(i, len(replicas))
		target := replicas[reader.replica].URL
		r.wg.Go(func() {
			for ctx.Err() == nil {
				kind, path, gzip := reader.kind, reader.path, reader.gzip
				status := r.get(ctx, target+path, gzip)
				r.mu.Lock()
				r.answers[fmt.Sprintf("%s %d", kind, status)]++
				r.mu.Unlock()
				if status != 200 { // refused or failed: a client waits before it retries
					select {
					case <-ctx.Done():
					case <-time.After(100 * time.Millisecond):
					}
				}
			}
		})
	}
	return r
}

// reader is what the i-th reader reads.
type reader struct {
	replica    int // its index
	kind, path string
	gzip       bool
}

// readerOf is what the i-th of the readers of replicas replicas reads: by
// i%4, a quarter load the page, a quarter scrape asking for gzip, half
// scrape plain; in groups of four, so that each replica gets as many of
// each kind (by i%replicas, every page load went to the same one of two).
func readerOf(i, replicas int) reader {
	r := reader{replica: (i / 4) % replicas, kind: "scrape", path: "/metrics", gzip: i%4 == 0}
	if i%4 == 3 {
		r.kind, r.path = "page", "/"
	}
	return r
}

func (r *Readers) get(ctx context.Context, url string, gzip bool) int {
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	if gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := readerClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return 0
	}
	return resp.StatusCode
}

// Stop stops the readers and returns what they saw.
func (r *Readers) Stop() ReadersResult {
	r.cancel()
	r.wg.Wait()
	r.mu.Lock()
	defer r.mu.Unlock()
	return ReadersResult{Readers: r.n, Answers: maps.Clone(r.answers), PeakRSS: maps.Clone(r.peak)}
}

// ReadersResult is what the readers saw.
type ReadersResult struct {
	Readers int
	Answers map[string]int   // "scrape 200": count (status 0: no answer)
	PeakRSS map[string]int64 // replica → the highest RSS sampled
}

// Summary is the answers and the replicas' peak RSS in a sentence's words.
func (r ReadersResult) Summary() string {
	var peaks []string
	for _, name := range slices.Sorted(maps.Keys(r.PeakRSS)) {
		peaks = append(peaks, fmt.Sprintf("%s %s", strings.TrimPrefix(name, "replica-"), mb(r.PeakRSS[name])))
	}
	return fmt.Sprintf("answers %s; the replicas' RSS peaked at %s (sampled every 250 ms)", outcomes(r.Answers), strings.Join(peaks, ", "))
}
