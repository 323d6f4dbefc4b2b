package api

import (
	"testing"
	"time"
)

func TestParseExpectedEveryDegradesInCallbacks(t *testing.T) {
	at := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	for v, ok := range map[string]bool{"auto": true, "1h": true, "90s": true, "30s": false, "721h": false, "hourly": false, "": false} {
		body := `{"namespace":"ml","workflowName":"w","phase":"Succeeded","annotations":{"` + AnnotationExpectedEvery + `":"` + v + `"}}`
		r, err := DecodeResult([]byte(body), at)
		if err != nil {
			t.Fatalf("%q refused the run: %v", v, err)
		}
		if got := r.ExpectedEvery() != ""; got != ok || (len(r.Warnings) == 0) != ok {
			t.Errorf("%q: kept %v, warnings %v; want kept %v", v, got, r.Warnings, ok)
		}
	}
}
