package procstat

import (
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
