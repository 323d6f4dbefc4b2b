package cronrules

import "testing"

// A bad annotation is reported once per version of its object and key.
func TestWarnedOncePerVersion(t *testing.T) {
	var w Warned
	for _, tc := range []struct {
		uid, version, key string
		want              bool
	}{
		{"u1", "7", "a", true},
		{"u1", "7", "a", false},
		{"u1", "7", "b", true},
		{"u1", "8", "a", true},
		{"u2", "7", "a", true},
	} {
		if got := w.First(tc.uid, tc.version, tc.key); got != tc.want {
			t.Errorf("First(%s, %s, %s) = %v, want %v", tc.uid, tc.version, tc.key, got, tc.want)
		}
	}
}
