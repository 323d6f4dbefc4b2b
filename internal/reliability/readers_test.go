package reliability

import (
	"fmt"
	"testing"
)

// The readers load every replica alike: as many page loads, gzip scrapes
// and plain scrapes on each, so that their RSS figures compare.
func TestReadersLoadEveryReplicaAlike(t *testing.T) {
	for _, replicas := range []int{1, 2, 4} {
		counts := map[string]int{}
		for i := range 16 {
			r := readerOf(i, replicas)
			counts[fmt.Sprintf("%d %s gzip=%t", r.replica, r.kind, r.gzip)]++
		}
		for replica := range replicas {
			for _, kind := range []string{"page gzip=false", "scrape gzip=true", "scrape gzip=false"} {
				want := 16 / 4 / replicas
				if kind == "scrape gzip=false" {
					want *= 2
				}
				if got := counts[fmt.Sprintf("%d %s", replica, kind)]; got != want {
					t.Errorf("%d replicas: replica %d has %d readers of %s, want %d (%v)", replicas, replica, got, kind, want, counts)
				}
			}
		}
	}
}
