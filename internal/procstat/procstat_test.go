package procstat

import (
	"os"
	"runtime"
	"testing"
)

// This process's resident set grows when it touches memory.
func TestSelfRSS(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	before := SelfRSS()
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = byte(i)
	}
	after := SelfRSS()
	runtime.KeepAlive(buf)
	if before <= 0 || after-before < 32<<20 {
		t.Fatalf("RSS %d before touching 64 MiB, %d after", before, after)
	}
	if _, err := RSS(1 << 30); err == nil {
		t.Fatal("RSS of a process that does not exist: no error")
	}
}

// The split adds up: anonymous and file pages are part of the total.
func TestMemory(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc is Linux's")
	}
	r, err := Memory(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if r.Anon <= 0 || r.File <= 0 || r.Anon+r.File > r.Total {
		t.Fatalf("resident %+v: want anonymous and file pages within the total", r)
	}
}
