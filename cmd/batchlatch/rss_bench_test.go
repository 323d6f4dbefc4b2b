package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/batchlatch/batchlatch/internal/buildtags"
	"github.com/batchlatch/batchlatch/internal/procstat"
)

// BenchmarkIdleRSS builds the binary and reports what an idle replica holds
// (file store, stdout sink, no jobs) a second after it serves: its resident
// set, split into anonymous memory (heap, stacks, the runtime) and pages of
// the binary itself, which every package linked in adds to whether or not
// its code runs (on kernels that map file pages in large folios, nearly all
// of the code and read-only data are resident). Run it with -benchtime=3x.
func BenchmarkIdleRSS(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("/proc is Linux's")
	}
	dir := b.TempDir()
	bin := filepath.Join(dir, "batchlatch")
	if out, err := exec.Command("go", "build", "-tags", buildtags.Tags, "-o", bin, ".").CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	info, err := os.Stat(bin)
	if err != nil {
		b.Fatal(err)
	}
	var sum procstat.Resident
	for i := 0; b.Loop(); i++ {
		dropCached(b, bin)
		r := idleResident(b, bin, filepath.Join(dir, "state.json"))
		sum.Total, sum.Anon, sum.File = sum.Total+r.Total, sum.Anon+r.Anon, sum.File+r.File
	}
	mb := func(v int64) float64 { return float64(v) / float64(b.N) / (1 << 20) }
	b.ReportMetric(mb(sum.Total), "rss-MiB")
	b.ReportMetric(mb(sum.Anon), "rss-anon-MiB")
	b.ReportMetric(mb(sum.File), "rss-file-MiB")
	b.ReportMetric(float64(info.Size())/(1<<20), "binary-MiB")
	b.ReportMetric(0, "ns/op")
}

// dropCached drops path's pages from the page cache, so that the process
// reads the binary as one started from a fresh image does: what it touches
// (and the kernel's readahead around it), not the folios the linker wrote,
// which made the figure vary by several MiB from build to build.
func dropCached(b *testing.B, path string) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		b.Fatal(err)
	}
}

// idleResident starts bin, waits until it serves and a second more, and
// reads its resident set.
func idleResident(b *testing.B, bin, stateFile string) procstat.Resident {
	addr := freePort(b)
	cmd := exec.Command(bin, "--listen", addr, "--state-file", stateFile)
	cmd.Env = []string{"GCE_METADATA_HOST=127.0.0.1:1"}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b.Fatalf("not serving within 20s: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(time.Second)
	r, err := procstat.Memory(cmd.Process.Pid)
	if err != nil {
		b.Fatal(err)
	}
	return r
}
