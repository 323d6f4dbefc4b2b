package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/batchlatch/batchlatch/internal/testwait"
	"github.com/batchlatch/batchlatch/state/filestore"
)

// A reader too slow to take its answer within its class's write deadline is
// cut there: the server closes its connection and frees the request's slot,
// so that the next request of the class is served rather than refused. The
// client is a real one over TCP, with a small receive buffer, that reads a
// few bytes of the answer and stops.
func TestSlowReaderIsCutAtItsClassDeadline(t *testing.T) {
	const deadline = 2 * time.Second
	// More than the sockets' buffers hold (4 MiB at most, autotuned): the
	// server's writes block.
	bigSeries := func(_ context.Context, w io.Writer) error {
		bw := bufio.NewWriter(w)
		fmt.Fprintln(bw, "# TYPE batchlatch_job_failing gauge")
		for i := range 150_000 { // 11 MB of text
			fmt.Fprintf(bw, "batchlatch_job_failing{job=\"job-%07d\",kind=\"Workflow\",namespace=\"ml\"} 1\n", i)
		}
		return bw.Flush()
	}
	store, err := filestore.Open(filepath.Join(t.TempDir(), "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv := httptest.NewUnstartedServer(NewServer(discardLogger(), store, &countingKicker{}, reg, NewMetrics(reg), Config{
		InFlight:       InFlight{Scrapes: 1},
		WriteDeadlines: WriteDeadlines{Scrapes: deadline, Pages: time.Hour, Reads: time.Hour, Writes: time.Hour},
		JobSeries:      bigSeries,
	}))
	// The server's side of each connection, when it closed.
	var mu sync.Mutex
	closed := map[string]time.Time{}
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			mu.Lock()
			closed[c.RemoteAddr().String()] = time.Now()
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()

	// The body is built once, then shared: build it first, so that the
	// slow reader's time is all sending. On a slow machine (the race
	// detector, a loaded CI) the build may take longer than the deadline,
	// which then cuts the scrape that waits for it; the build goes on, and
	// a scrape after it gets its body.
	testwait.Until(t, patience, "a first scrape to build the body", func(ctx context.Context) (bool, string, error) {
		req, err := http.NewRequestWithContext(ctx, "GET", srv.URL+"/metrics", nil)
		if err != nil {
			return false, "", err
		}
		req.Header.Set("Accept-Encoding", "gzip")
		resp, err := (&http.Client{Transport: &http.Transport{DisableCompression: true}}).Do(req)
		if err != nil {
			return false, "", err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return false, "", err
		}
		return resp.StatusCode == http.StatusOK, resp.Status, nil
	})

	// The slow reader: its request may still find the first scrape's slot
	// taken (the handler ends after its answer's last byte): it asks again.
	var conn net.Conn
	var start time.Time
	for asked := time.Now(); ; {
		c, err := net.DialTimeout("tcp", addr, patience)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() }) // runs before srv.Close, which waits for the handler
		_ = c.(*net.TCPConn).SetReadBuffer(4096)
		start = time.Now()
		// No gzip: the handler inflates the body on the way.
		if _, err := fmt.Fprintf(c, "GET /metrics HTTP/1.1\r\nHost: %s\r\n\r\n", addr); err != nil {
			t.Fatal(err)
		}
		head := make([]byte, 16)
		_ = c.SetReadDeadline(time.Now().Add(patience))
		if _, err := io.ReadFull(c, head); err != nil {
			t.Fatalf("the slow reader got no answer: %v", err)
		}
		if strings.HasPrefix(string(head), "HTTP/1.1 200") {
			conn = c
			break
		}
		if !strings.HasPrefix(string(head), "HTTP/1.1 429") || time.Since(asked) > patience {
			t.Fatalf("the slow reader's answer: %q", head)
		}
		c.Close()
		time.Sleep(20 * time.Millisecond)
	}

	// The slot is held while the answer is being written; it must come
	// back once the deadline has passed, not when the reader ends.
	var freed time.Duration
	for {
		resp, _ := scrape(t, srv.URL, "Accept-Encoding", "gzip")
		if resp == nil {
			t.FailNow()
		}
		if resp.StatusCode == http.StatusOK {
			freed = time.Since(start)
			break
		}
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("a scrape while the slow reader holds the slot: %d", resp.StatusCode)
		}
		if time.Since(start) > patience {
			t.Fatalf("the slow reader still holds the only scrape slot after %s (deadline %s)", time.Since(start), deadline)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if freed < deadline {
		t.Errorf("the slot came back after %s, before the deadline %s: the reader was not slow enough to test anything", freed, deadline)
	}

	// The server closed its side (what its socket's buffer still holds
	// trickles to the reader through its small window, without the
	// server).
	for {
		mu.Lock()
		at, ok := closed[conn.LocalAddr().String()]
		mu.Unlock()
		if ok {
			if at.Sub(start) < deadline {
				t.Errorf("closed after %s, before the deadline %s", at.Sub(start), deadline)
			}
			t.Logf("slot freed after %s, connection closed after %s (deadline %s)", freed, at.Sub(start), deadline)
			break
		}
		if time.Since(start) > patience {
			t.Fatalf("the server has not closed the slow reader's connection %s after the deadline", patience)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
