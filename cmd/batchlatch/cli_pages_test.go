package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/batchlatch/batchlatch/api"
)

// The CLI lists everything however the server pages it: it follows
// continue until a page has none, keeping the query (the namespace).
func TestCLIFollowsContinue(t *testing.T) {
	const jobs = 7
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		// Pages of 3, whatever limit was asked; the token is where the next starts.
		start := 0
		if c := q.Get("continue"); c != "" {
			if _, err := fmt.Sscanf(c, "from-%d", &start); err != nil {
				http.Error(w, `{"error":{"code":"invalid_argument","message":"bad token","field":"continue"}}`, 400)
				return
			}
		}
		if r.URL.Path == "/api/v1/failures" && q.Get("namespace") != "ml" {
			http.Error(w, `{"error":{"code":"invalid_argument","message":"namespace lost","field":"namespace"}}`, 400)
			return
		}
		var page []api.Job
		for i := start; i < min(start+3, jobs); i++ {
			since := api.Job{}.LastResultAt
			page = append(page, api.Job{Namespace: "ml", Job: fmt.Sprintf("job-%d", i), Kind: api.KindWorkflow, Failing: true, FailingSince: &since, ConsecutiveFailures: 1, FailureThreshold: 1, Alerting: true})
		}
		next := ""
		if start+3 < jobs {
			next = fmt.Sprintf("from-%d", start+3)
		}
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/api/v1/failures" {
			json.NewEncoder(w).Encode(api.FailureList{Failures: page, Continue: next})
		} else {
			json.NewEncoder(w).Encode(api.JobList{Jobs: page, Continue: next})
		}
	}))
	t.Cleanup(srv.Close)
	env := map[string]string{"BATCHLATCH_SERVER": srv.URL}

	r := cli(t, env, "jobs", "-o", "json")
	var list api.JobList
	if err := json.Unmarshal([]byte(r.stdout), &list); err != nil || r.code != 0 || len(list.Jobs) != jobs || list.Continue != "" {
		t.Errorf("jobs -o json: exit %d, %v, %d jobs (continue %q), want %d\n%s", r.code, err, len(list.Jobs), list.Continue, jobs, r.stderr)
	}
	r = cli(t, env, "failures", "ml")
	if r.code != exitFailing || strings.Count(r.stdout, "job-") != jobs || !strings.Contains(r.stdout, "job-6") {
		t.Errorf("failures ml: exit %d, want %d jobs listed\n%s%s", r.code, jobs, r.stdout, r.stderr)
	}
}
