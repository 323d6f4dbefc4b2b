package api

import (
	"fmt"
	"time"
)

// FormatDuration is how batchlatch shows a duration to people, the same on
// the pages and in the entries' messages: whole seconds, in its two largest
// units ("45s", "1m 39s", "3h 12m", "2d 4h"); more only slows the reader. A
// negative duration is shown as 0s.
func FormatDuration(d time.Duration) string {
	d = max(d, 0).Truncate(time.Second)
	days, hours := int(d/(24*time.Hour)), int(d/time.Hour)%24
	minutes, seconds := int(d/time.Minute)%60, int(d/time.Second)%60
	pair := func(big int, bigUnit string, small int, smallUnit string) string {
		if small == 0 {
			return fmt.Sprintf("%d%s", big, bigUnit)
		}
		return fmt.Sprintf("%d%s %d%s", big, bigUnit, small, smallUnit)
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", seconds)
	case d < time.Hour:
		return pair(minutes, "m", seconds, "s")
	case d < 24*time.Hour:
		return pair(hours, "h", minutes, "m")
	}
	return pair(days, "d", hours, "h")
}
