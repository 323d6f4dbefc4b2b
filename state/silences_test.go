package state

import (
	"fmt"
	"testing"

	"github.com/batchlatch/batchlatch/api"
)

func silenceAt(id, job string, start, end int) api.Silence {
	return api.Silence{ID: id, Namespace: "ml", Job: job, StartsAt: at(start), EndsAt: at(end), Reason: "test " + id}
}

// InForce: started and not ended.
func TestInForce(t *testing.T) {
	all := []api.Silence{silenceAt("past", "", 0, 10), silenceAt("now", "", 5, 20), silenceAt("future", "", 15, 30)}
	for _, tc := range []struct {
		hour int
		want string
	}{{0, "[past]"}, {5, "[past now]"}, {10, "[now]"}, {15, "[now future]"}, {20, "[future]"}, {30, "[]"}} {
		var ids []string
		for _, x := range InForce(all, at(tc.hour)) {
			ids = append(ids, x.ID)
		}
		if got := fmt.Sprint(ids); got != tc.want {
			t.Errorf("hour %d: %s, want %s", tc.hour, got, tc.want)
		}
	}
}
