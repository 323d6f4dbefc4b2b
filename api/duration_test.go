package api

import (
	"testing"
	"time"
)

func TestFormatDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second:                    "0s",
		0:                               "0s",
		999 * time.Millisecond:          "0s",
		45 * time.Second:                "45s",
		time.Minute:                     "1m",
		99 * time.Second:                "1m 39s", // a page once said "1m" where the NOTICE said 1m39s
		12*time.Minute + 5*time.Second:  "12m 5s",
		59*time.Minute + 59*time.Second: "59m 59s",
		3 * time.Hour:                   "3h",
		3*time.Hour + 30*time.Second:    "3h",
		3*time.Hour + 12*time.Minute:    "3h 12m",
		49 * time.Hour:                  "2d 1h",
		48*time.Hour + 59*time.Minute:   "2d",
		40 * 24 * time.Hour:             "40d",
	} {
		if got := FormatDuration(d); got != want {
			t.Errorf("FormatDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
