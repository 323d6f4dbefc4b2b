package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/internal/buildtags"
	"github.com/batchlatch/batchlatch/internal/procstat"
	"github.com/batchlatch/batchlatch/internal/storetest"
)

var (
	loadJobs     = flag.String("load.jobs", "10000,100000", "BenchmarkLoadRSS: comma-separated numbers of failing jobs")
	loadClients  = flag.Int("load.clients", 64, "BenchmarkLoadRSS: concurrent clients, each of the kinds of -load.mix in turn")
	loadMix      = flag.String("load.mix", "scrape-gzip,scrape,page,slow-metrics,slow-page", "BenchmarkLoadRSS: the kinds of clients: scrape-gzip, scrape (no gzip), page (the status page's pages in turn, gzip), slow-metrics and slow-page (read 1 KiB every 100 ms, no gzip)")
	loadDuration = flag.Duration("load.duration", 30*time.Second, "BenchmarkLoadRSS: how long the clients run")
	loadArgs     = flag.String("load.args", "", "BenchmarkLoadRSS: more flags for the service, space-separated (--max-in-flight=pages=2)")
)

// BenchmarkLoadRSS starts the binary on a state file of failing jobs, with
// the chart's memory limit (256 MiB) and the default caps, and measures
// what the issue of unbounded memory per request measured: its RSS once
// ready, the time of one scrape of /metrics that builds the body (gzip, as
// Prometheus asks), then the peak RSS while -load.clients clients, for
// -load.duration, scrape /metrics (with gzip and without), load the status
// page's pages in turn (every page, not only the first) and read /metrics
// or a page slowly (1 KiB every 100 ms). It logs
// the answers by status: past the caps they are 429s. Last, the time of a
// scrape that builds the body again after the load. Run it with
//
//	go test ./cmd/batchlatch -run '^$' -bench LoadRSS -benchtime 1x -timeout 30m
func BenchmarkLoadRSS(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("/proc is Linux's")
	}
	bin := filepath.Join(b.TempDir(), "batchlatch")
	if out, err := exec.Command("go", "build", "-tags", buildtags.Tags, "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	for _, field := range strings.Split(*loadJobs, ",") {
		jobs, err := strconv.Atoi(strings.TrimSpace(field))
		if err != nil {
			b.Fatalf("-load.jobs: %v", err)
		}
		b.Run(fmt.Sprintf("jobs=%d", jobs), func(b *testing.B) {
			stateFile := filepath.Join(b.TempDir(), "state.json")
			writeFailingJobs(b, stateFile, jobs)
			var ready, peak, scrape, late, perScrape float64
			for b.Loop() {
				r := loadOnce(b, bin, stateFile, jobs)
				b.Logf("jobs=%d run: ready %.1f MiB, first scrape %.2f s (%.2f s CPU, %.2f MiB gzipped), peak %.1f MiB, scrape after the load %.2f s (%.2f s CPU); load average %s", jobs, r.readyMiB, r.coldScrape.Seconds(), r.coldCPU, r.scrapeMiB, r.peakMiB, r.lateScrape.Seconds(), r.lateCPU, r.loadAverage)
				b.Logf("jobs=%d answers: %s", jobs, answers(r.counts))
				ready, peak, scrape, perScrape = ready+r.readyMiB, peak+r.peakMiB, scrape+r.coldScrape.Seconds(), perScrape+r.scrapeMiB
				late += r.lateScrape.Seconds()
			}
			n := float64(b.N)
			b.ReportMetric(ready/n, "ready-rss-MiB")
			b.ReportMetric(peak/n, "peak-rss-MiB")
			b.ReportMetric(scrape/n, "first-scrape-s")
			b.ReportMetric(late/n, "late-scrape-s")
			b.ReportMetric(perScrape/n, "scrape-gzip-MiB")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// writeFailingJobs writes a state file of n failing jobs of the realistic
// shape (storetest.RealisticJob), as the file store writes it.
func writeFailingJobs(b *testing.B, path string, n int) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriter(f)
	fmt.Fprint(w, `{"format":"batchlatch-state","version":1,"jobs":{`)
	template := storetest.RealisticJob(0, true)
	for i := range n {
		job := template
		job.Name = storetest.CronName(i)
		value, err := json.Marshal(job)
		if err != nil {
			b.Fatal(err)
		}
		key, _ := json.Marshal(job.Key().String())
		if i > 0 {
			w.WriteByte(',')
		}
		w.Write(key)
		w.WriteByte(':')
		w.Write(value)
	}
	fmt.Fprint(w, "}}")
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
}

type loadResult struct {
	readyMiB   float64 // RSS once ready, before the first scrape
	peakMiB    float64
	coldScrape time.Duration
	lateScrape time.Duration // after the load, once the first's body is too old
	scrapeMiB  float64       // one gzip scrape's body
	counts     map[string]int
	// coldCPU and lateCPU are the CPU seconds the service used during the
	// first scrape and the one after the load (the alarm loop's too, when
	// it ran meanwhile): what the wall times would be on an idle core.
	coldCPU, lateCPU float64
	// loadAverage is /proc/loadavg's 1-minute figure at the start and the
	// end of the run: the machine may be shared.
	loadAverage string
}

// loadAverage1 is the 1-minute load average, "?" when unknown.
func loadAverage1() string {
	data, err := os.ReadFile("/proc/loadavg")
	if fields := strings.Fields(string(data)); err == nil && len(fields) > 0 {
		return fields[0]
	}
	return "?"
}

// serviceCPU is the user and system CPU seconds of process pid so far, from
// /proc/<pid>/stat (in USER_HZ, 100 a second on Linux); 0 when unknown.
func serviceCPU(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command (field 2) is in parentheses and may hold spaces: the
	// fields after it start at the last ')'.
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	if len(fields) < 13 {
		return 0
	}
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100
}

// answers is counts in one line, sorted.
func answers(counts map[string]int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var line []string
	for _, k := range keys {
		line = append(line, fmt.Sprintf("%s %d", k, counts[k]))
	}
	return strings.Join(line, ", ")
}

// loadOnce runs the binary on stateFile, of jobs jobs, through one round of
// load.
func loadOnce(b *testing.B, bin, stateFile string, jobs int) loadResult {
	startLoad := loadAverage1()
	addr := freePort(b)
	url := "http://" + addr
	args := append([]string{"--listen", addr, "--state-file", stateFile, "--memory-limit", strconv.Itoa(256 << 20)}, strings.Fields(*loadArgs)...)
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"GCE_METADATA_HOST=127.0.0.1:1"}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("not ready within 5 minutes: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}

	readyRSS, err := procstat.RSS(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	// One scrape that builds the body: the first.
	cpu := serviceCPU(cmd.Process.Pid)
	start := time.Now()
	size, status := scrapeOnce(url, true)
	cold := time.Since(start)
	coldCPU := serviceCPU(cmd.Process.Pid) - cpu
	if status != 200 {
		b.Fatalf("first scrape: %d", status)
	}

	var peak atomic.Int64
	sample := func() {
		if rss, err := procstat.RSS(cmd.Process.Pid); err == nil && rss > peak.Load() {
			peak.Store(rss)
		}
	}
	sample()
	ctx, cancel := context.WithTimeout(context.Background(), *loadDuration)
	defer cancel()
	var mu sync.Mutex
	counts := map[string]int{}
	count := func(kind string, status int) {
		mu.Lock()
		defer mu.Unlock()
		counts[fmt.Sprintf("%s:%d", kind, status)]++
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for ctx.Err() == nil {
			sample()
			time.Sleep(100 * time.Millisecond)
		}
	})
	// The status page's pages, in turn across the clients: 100 jobs a page.
	var pageTurn atomic.Int64
	pages := int64(max(1, (jobs+99)/100))
	nextPage := func() string {
		if n := pageTurn.Add(1)%pages + 1; n > 1 {
			return "/?page=" + strconv.FormatInt(n, 10)
		}
		return "/"
	}
	kinds := strings.Split(*loadMix, ",")
	for i := range *loadClients {
		kind := strings.TrimSpace(kinds[i%len(kinds)])
		wg.Go(func() {
			for ctx.Err() == nil {
				switch kind {
				case "scrape-gzip":
					_, status := scrapeOnce(url, true)
					count(kind, status)
				case "scrape":
					_, status := scrapeOnce(url, false)
					count(kind, status)
				case "page":
					count(kind, getOnce(url+nextPage()))
				case "slow-metrics":
					count(kind, slowRead(ctx, addr, "/metrics"))
				case "slow-page":
					count(kind, slowRead(ctx, addr, nextPage()))
				default:
					b.Errorf("-load.mix: no client kind %q", kind)
					return
				}
			}
		})
	}
	wg.Wait()
	sample()
	// One scrape that builds the body again, once the body of the load is
	// too old and nothing else runs but the alarm loop.
	time.Sleep(6 * time.Second)
	cpu = serviceCPU(cmd.Process.Pid)
	start = time.Now()
	if _, status := scrapeOnce(url, true); status != 200 {
		b.Fatalf("scrape after the load: %d", status)
	}
	late := time.Since(start)
	lateCPU := serviceCPU(cmd.Process.Pid) - cpu
	return loadResult{coldCPU: coldCPU, lateCPU: lateCPU, loadAverage: startLoad + "–" + loadAverage1(), lateScrape: late, readyMiB: float64(readyRSS) / (1 << 20), peakMiB: float64(peak.Load()) / (1 << 20), coldScrape: cold, scrapeMiB: float64(size) / (1 << 20), counts: counts}
}

// loadClient has no pool limit of its own: each client keeps its
// connection, as a scraper does.
var loadClient = &http.Client{Transport: &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 256}, Timeout: 2 * time.Minute}

// scrapeOnce GETs /metrics, asking for gzip or not, and returns the body's
// size as sent and the status (0: no answer).
func scrapeOnce(url string, gzip bool) (int64, int) {
	req, _ := http.NewRequest("GET", url+"/metrics", nil)
	if gzip {
		req.Header.Set("Accept-Encoding", "gzip")
	}
	resp, err := loadClient.Do(req)
	if err != nil {
		return 0, 0
	}
	defer resp.Body.Close()
	n, _ := io.Copy(io.Discard, resp.Body)
	if resp.StatusCode == 429 {
		time.Sleep(100 * time.Millisecond) // a client that is told to wait, waits a little
	}
	return n, resp.StatusCode
}

// getOnce GETs url with gzip, as a browser asks, and returns the status.
func getOnce(url string) int {
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := loadClient.Do(req)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode == 429 {
		time.Sleep(100 * time.Millisecond)
	}
	return resp.StatusCode
}

// slowRead GETs path and reads 1 KiB of the answer every 100 ms through a
// small socket buffer, until the answer ends, the server gives up on it,
// or ctx ends; it returns the status.
func slowRead(ctx context.Context, addr, path string) int {
	d := net.Dialer{Control: nil}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return 0
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n", path, addr)
	r := bufio.NewReaderSize(conn, 1024)
	status := 0
	if line, err := r.ReadString('\n'); err == nil {
		if fields := strings.Fields(line); len(fields) >= 2 {
			status, _ = strconv.Atoi(fields[1])
		}
	}
	buf := make([]byte, 1024)
	for ctx.Err() == nil {
		if _, err := r.Read(buf); err != nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	if status == 429 {
		time.Sleep(100 * time.Millisecond)
	}
	return status
}
