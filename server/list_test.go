package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// listStore holds jobs in memory, for the lists' tests: only what the
// lists and the pages read. Set changes them between two pages.
type listStore struct {
	state.Store // nil: any other method panics
	mu          sync.Mutex
	jobs        []state.Job
}

func (s *listStore) List(context.Context) ([]state.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := slices.Clone(s.jobs)
	state.SortByKey(out)
	return out, nil
}

func (s *listStore) Silences(context.Context) ([]api.Silence, error) { return nil, nil }

func (s *listStore) add(j state.Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.jobs = append(s.jobs, j)
}

// manyJobs are n jobs over three namespaces: every third failing (some
// since the same time, so that the key breaks the tie), the rest healthy.
func manyJobs(n int) []state.Job {
	var jobs []state.Job
	for i := range n {
		j := state.Job{Namespace: []string{"etl", "ml", "web"}[i%3], Name: fmt.Sprintf("job-%04d", i), LastResultAt: now.Add(-time.Hour), LastPhase: api.PhaseSucceeded}
		if i%7 == 0 {
			j.Kind = api.KindCronJob
		}
		if i%3 == 0 {
			since := now.Add(-time.Duration(i%50) * time.Minute)
			j.FailingSince, j.ConsecutiveFailures, j.LastPhase = &since, 1, api.PhaseFailed
		}
		jobs = append(jobs, j)
	}
	return jobs
}

func listServer(t *testing.T, store state.Store, silences []api.Silence) *httptest.Server {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{Now: func() time.Time { return now }, Silences: func(context.Context) ([]api.Silence, error) { return silences, nil }}
	srv := httptest.NewServer(NewServer(slog.New(slog.DiscardHandler), store, &countingKicker{}, reg, NewMetrics(reg), cfg))
	t.Cleanup(srv.Close)
	return srv
}

// keyOf names a job of a list.
func keyOf(j api.Job) string { return j.Namespace + "/" + j.Job + "/" + j.Kind }

// follow reads every page of a list from path, limit at a time, and returns
// the jobs and how many pages it took.
func follow[T any](t *testing.T, srv *httptest.Server, path, limit string, jobs func(T) ([]api.Job, string)) ([]api.Job, int) {
	t.Helper()
	var all []api.Job
	token, pages := "", 0
	for {
		q := url.Values{}
		if limit != "" {
			q.Set("limit", limit)
		}
		if token != "" {
			q.Set("continue", token)
		}
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		code, _, body := get(t, srv, path+sep+q.Encode())
		if code != 200 {
			t.Fatalf("GET %s (page %d): %d %s", path, pages+1, code, body)
		}
		page, next := jobs(decode[T](t, []byte(body)))
		all = append(all, page...)
		pages++
		if next == "" {
			return all, pages
		}
		if pages > 100 {
			t.Fatalf("GET %s: more than 100 pages", path)
		}
		token = next
	}
}

func jobsOf(l api.JobList) ([]api.Job, string)         { return l.Jobs, l.Continue }
func failuresOf(l api.FailureList) ([]api.Job, string) { return l.Failures, l.Continue }

// The REST lists come in pages of at most limit (500 without one), and
// following continue gives every job once, in the list's order.
func TestListsComeInPages(t *testing.T) {
	store := &listStore{jobs: manyJobs(1234)}
	srv := listServer(t, store, nil)
	everyJob, _ := store.List(context.Background())
	var wantJobs, wantFailing, wantML []string
	for _, j := range everyJob {
		wantJobs = append(wantJobs, keyOf(j.View(now)))
		if j.Namespace == "ml" {
			wantML = append(wantML, keyOf(j.View(now)))
		}
	}
	for _, j := range state.Failing(everyJob) {
		wantFailing = append(wantFailing, keyOf(j.View(now)))
	}
	keys := func(jobs []api.Job) []string {
		var out []string
		for _, j := range jobs {
			out = append(out, keyOf(j))
		}
		return out
	}
	for _, c := range []struct {
		path, limit string
		pages       int
		want        []string
		list        func(t *testing.T, path, limit string) ([]api.Job, int)
	}{
		{"/api/v1/jobs", "", 3, wantJobs, nil},
		{"/api/v1/jobs", "100", 13, wantJobs, nil},
		{"/api/v1/jobs", "1000", 2, wantJobs, nil},
		{"/api/v1/jobs/ml", "7", (len(wantML) + 6) / 7, wantML, nil},
		{"/api/v1/failures", "", 1, wantFailing, nil},
		{"/api/v1/failures", "50", (len(wantFailing) + 49) / 50, wantFailing, nil},
	} {
		var got []api.Job
		var pages int
		if strings.HasPrefix(c.path, "/api/v1/failures") {
			got, pages = follow(t, srv, c.path, c.limit, failuresOf)
		} else {
			got, pages = follow(t, srv, c.path, c.limit, jobsOf)
		}
		if !slices.Equal(keys(got), c.want) || pages != c.pages {
			t.Errorf("GET %s?limit=%s: %d jobs in %d pages, want %d in %d (or out of order)", c.path, c.limit, len(got), pages, len(c.want), c.pages)
		}
	}

	// A job added before the position of the next page repeats nothing
	// and hides nothing that was there.
	code, _, body := get(t, srv, "/api/v1/jobs?limit=400")
	first := decode[api.JobList](t, []byte(body))
	if code != 200 || len(first.Jobs) != 400 || first.Continue == "" {
		t.Fatalf("first page: %d, %d jobs, continue %q", code, len(first.Jobs), first.Continue)
	}
	store.add(state.Job{Namespace: "aaa", Name: "early", LastResultAt: now})
	_, _, body = get(t, srv, "/api/v1/jobs?limit=1000&continue="+url.QueryEscape(first.Continue))
	rest := decode[api.JobList](t, []byte(body))
	if got := append(keys(first.Jobs), keys(rest.Jobs)...); !slices.Equal(got, wantJobs) || rest.Continue != "" {
		t.Errorf("pages around an added job: %d jobs, want the %d there before", len(got), len(wantJobs))
	}
}

func TestListPagesRefuseBadLimitsAndTokens(t *testing.T) {
	srv := listServer(t, &listStore{jobs: manyJobs(30)}, nil)
	_, _, body := get(t, srv, "/api/v1/jobs?limit=5")
	jobsToken := decode[api.JobList](t, []byte(body)).Continue
	_, _, body = get(t, srv, "/api/v1/failures?limit=2")
	failuresToken := decode[api.FailureList](t, []byte(body)).Continue
	if jobsToken == "" || failuresToken == "" {
		t.Fatalf("no continue: jobs %q, failures %q", jobsToken, failuresToken)
	}
	for _, c := range []struct{ path, field string }{
		{"/api/v1/jobs?limit=0", "limit"},
		{"/api/v1/jobs?limit=-3", "limit"},
		{"/api/v1/jobs?limit=1001", "limit"},
		{"/api/v1/jobs?limit=ten", "limit"},
		{"/api/v1/jobs?limit=", "limit"},
		{"/api/v1/failures?limit=99999999999999999999", "limit"},
		{"/api/v1/jobs?continue=", "continue"},
		{"/api/v1/jobs?continue=not+a+token", "continue"},
		{"/api/v1/jobs?continue=" + url.QueryEscape(`{"list":"jobs"}`), "continue"},
		// Well-formed, but not what this server writes.
		{"/api/v1/jobs?continue=eyJsaXN0Ijoiam9icyIsImV4dHJhIjoxfQ", "continue"},
		// A token of another list, or of the same list narrowed otherwise.
		{"/api/v1/jobs?continue=" + failuresToken, "continue"},
		{"/api/v1/failures?continue=" + jobsToken, "continue"},
		{"/api/v1/jobs/ml?continue=" + jobsToken, "continue"},
		{"/api/v1/failures?namespace=ml&continue=" + failuresToken, "continue"},
	} {
		code, _, body := get(t, srv, c.path)
		e := decode[api.ErrorBody](t, []byte(body))
		if code != 400 || e.Error.Code != "invalid_argument" || e.Error.Field != c.field {
			t.Errorf("GET %s: %d %s, want 400 naming %s", c.path, code, body, c.field)
		}
	}
}

var (
	pageLink  = regexp.MustCompile(`<a href="([^"]*)" rel="(first|prev|next|last)">`)
	cardNames = regexp.MustCompile(`<a class="name" href="[^"]*">([^<]*)</a>`)
)

// The status page shows failing and silenced jobs first, then the rest, a
// page of statusPageSize at a time, each job on exactly one page; its links
// keep the namespace filter.
func TestStatusPageIsPaginated(t *testing.T) {
	jobs := manyJobs(3 * (statusPageSize + 17)) // 117 failing (the first 100 on page 1), 234 healthy
	silence := api.Silence{ID: "s", Namespace: "web", Job: "job-0002", Kind: api.KindWorkflow, StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour)}
	srv := listServer(t, &listStore{jobs: jobs}, []api.Silence{silence})
	failing, healthy := 0, 0
	for _, j := range jobs {
		if j.Failing() {
			failing++
		} else if j.Name != "job-0002" {
			healthy++
		}
	}
	pages := (len(jobs) + statusPageSize - 1) / statusPageSize

	seen := map[string]int{}
	var order []string // sections in the order shown
	for n := 1; n <= pages; n++ {
		path := fmt.Sprintf("/?page=%d", n)
		code, _, body := get(t, srv, path)
		if code != 200 {
			t.Fatalf("GET %s: %d", path, code)
		}
		for _, m := range cardNames.FindAllStringSubmatch(body, -1) {
			seen[m[1]]++
		}
		if got := strings.Count(body, `<li class="job`); got != min(statusPageSize, len(jobs)-(n-1)*statusPageSize) {
			t.Errorf("page %d shows %d jobs", n, got)
		}
		for _, id := range []string{"failing", "silenced", "healthy"} {
			if strings.Contains(body, `<section id="`+id+`">`) && (len(order) == 0 || order[len(order)-1] != id) {
				order = append(order, id)
			}
		}
		// The counts are of every page, not this one's.
		for class, count := range map[string]int{"failing": failing, "silenced": 1, "healthy": healthy} {
			if !regexp.MustCompile(`<a class="` + class + `" href="[^"]*"><b>` + fmt.Sprint(count) + `</b>`).MatchString(body) {
				t.Errorf("page %d does not count %d %s jobs", n, count, class)
			}
		}
		links := map[string]string{}
		for _, m := range pageLink.FindAllStringSubmatch(body, -1) {
			links[m[2]] = m[1]
		}
		want := map[string]string{}
		if n > 1 {
			want["first"], want["prev"] = "/", strings.Replace(fmt.Sprintf("/?page=%d", n-1), "/?page=1", "/", 1)
		}
		if n < pages {
			want["next"], want["last"] = fmt.Sprintf("/?page=%d", n+1), fmt.Sprintf("/?page=%d", pages)
		}
		if fmt.Sprint(links) != fmt.Sprint(want) {
			t.Errorf("page %d links %v, want %v", n, links, want)
		}
		if !strings.Contains(body, fmt.Sprintf("Page %d of %d", n, pages)) {
			t.Errorf("page %d does not say which page it is", n)
		}
	}
	if len(seen) != len(jobs) {
		t.Errorf("%d jobs shown over %d pages, want %d", len(seen), pages, len(jobs))
	}
	for name, times := range seen {
		if times != 1 {
			t.Errorf("%s shown %d times", name, times)
		}
	}
	if !slices.Equal(order, []string{"failing", "silenced", "healthy"}) {
		t.Errorf("sections in order %v", order)
	}

	// The summary links where a section starts.
	_, _, body := get(t, srv, "/")
	if !strings.Contains(body, `<a class="silenced" href="/?page=2#silenced">`) || !strings.Contains(body, `<a class="failing" href="#failing">`) {
		t.Errorf("summary links:\n%s", body[:min(len(body), 3000)])
	}
	// A page beyond the last shows the last; a page that is no number is a 400.
	if _, _, body := get(t, srv, "/?page=99"); !strings.Contains(body, fmt.Sprintf("Page %d of %d", pages, pages)) {
		t.Error("page 99 is not the last page")
	}
	for _, bad := range []string{"0", "-1", "two", ""} {
		if code, _, _ := get(t, srv, "/?page="+bad); code != 400 {
			t.Errorf("GET /?page=%s: %d, want 400", bad, code)
		}
	}
	// Narrowed to a namespace, the links keep it.
	_, _, body = get(t, srv, "/?namespace=ml")
	if !strings.Contains(body, `href="/?namespace=ml&amp;page=2" rel="next"`) || strings.Contains(body, ">etl<") {
		t.Errorf("namespace ml: links lose the filter or other namespaces shown")
	}
}

// The page and the lists are compressed for a client that accepts gzip,
// and only then.
func TestPagesAndListsAreCompressed(t *testing.T) {
	srv := listServer(t, &listStore{jobs: manyJobs(300)}, nil)
	for _, path := range []string{"/", "/?page=2", "/api/v1/jobs", "/api/v1/failures?namespace=etl"} {
		plainCode, plainHeader, plain := get(t, srv, path, "Accept-Encoding", "identity")
		// Setting Accept-Encoding turns off the client's own decompression.
		code, header, zipped := get(t, srv, path, "Accept-Encoding", "gzip")
		if plainCode != 200 || code != 200 || plainHeader.Get("Content-Encoding") != "" || header.Get("Content-Encoding") != "gzip" ||
			!strings.Contains(header.Get("Vary"), "Accept-Encoding") {
			t.Errorf("GET %s: %d %q, with gzip %d %q (Vary %q)", path, plainCode, plainHeader.Get("Content-Encoding"), code, header.Get("Content-Encoding"), header.Get("Vary"))
			continue
		}
		r, err := gzip.NewReader(strings.NewReader(zipped))
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		unzipped, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		// The page's nonce differs per response.
		nonce := regexp.MustCompile(`nonce="[^"]*"|'nonce-[^']*'`)
		if !bytes.Equal(nonce.ReplaceAll(unzipped, nil), nonce.ReplaceAll([]byte(plain), nil)) {
			t.Errorf("GET %s: the compressed answer is not the plain one", path)
		}
		if len(zipped)*3 > len(plain) {
			t.Errorf("GET %s: %d bytes compressed, %d plain", path, len(zipped), len(plain))
		}
	}
	// Accept-Encoding as RFC 9110 reads it: weights, "*", any letter case.
	for header, compressed := range map[string]bool{
		"gzip": true, "GZip": true, "x-gzip": true, "br, gzip;q=0.5": true, "*": true, "*;q=0, gzip": true, "gzip, *;q=0": true,
		"br": false, "gzip;q=0": false, "gzip;q=0, *": false, "*;q=0": false, "identity": false, "gzip;q=bad": false,
	} {
		_, h, _ := get(t, srv, "/", "Accept-Encoding", header)
		if got := h.Get("Content-Encoding") == "gzip"; got != compressed {
			t.Errorf("Accept-Encoding %q: compressed %v, want %v", header, got, compressed)
		}
	}
	// An error's JSON is small and not compressed.
	code, header, body := get(t, srv, "/api/v1/jobs?limit=0", "Accept-Encoding", "gzip")
	if code != 400 || header.Get("Content-Encoding") != "" || !strings.Contains(body, `"field":"limit"`) {
		t.Errorf("a 400 with gzip accepted: %d %q %s", code, header.Get("Content-Encoding"), body)
	}
}
