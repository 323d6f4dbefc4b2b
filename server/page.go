package server

import (
	"bytes"
	"crypto/rand"
	"embed"
	"fmt"
	"html/template"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// The status page and a job's page: HTML rendered here from templates built
// into the binary, with no script at all, so that it reads the same without
// JavaScript, in a terminal browser or on a phone, and refreshes itself with
// a meta refresh. Everything that came from a callback goes through
// html/template's contextual escaping, and the Content-Security-Policy
// forbids scripts in case anything ever slipped through.

//go:embed templates/*.html
var templateFS embed.FS

// pages holds one template set per page, each the layout plus that page's
// "title" and "content": parsed once, at start-up.
var pages = func() map[string]*template.Template {
	base := template.Must(template.New("layout.html").ParseFS(templateFS, "templates/layout.html"))
	out := map[string]*template.Template{}
	for _, name := range []string{"status.html", "job.html", "error.html"} {
		out[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, "templates/"+name))
	}
	return out
}()

// pageRefreshSeconds is how often the pages reload themselves.
const pageRefreshSeconds = 30

// page is what every page's layout shows.
type page struct {
	Nonce     string // of the inline style sheet, per response
	Refresh   int    // seconds; 0: no refresh
	Generated stamp
	Filter    string // the namespace the page is narrowed to, if any
}

// stamp is a time as the pages show it: relative to the page's now, and
// absolute (RFC 3339 in <time datetime>, readable in the text).
type stamp struct {
	Set bool
	Rel string // "3h 12m ago", "in 25m"
	Dur string // "3h 12m": how long ago (or ahead)
	ISO string // RFC 3339
	Abs string // "2026-11-24 01:47 UTC"
}

func stampOf(now, t time.Time) stamp {
	if t.IsZero() {
		return stamp{}
	}
	d := now.Sub(t)
	s := stamp{Set: true, ISO: t.UTC().Format(time.RFC3339), Abs: t.UTC().Format("2006-01-02 15:04 UTC")}
	switch {
	case d >= time.Minute:
		s.Dur = humanDuration(d)
		s.Rel = s.Dur + " ago"
	case d > -time.Minute:
		s.Dur = "under a minute"
		s.Rel = "just now"
	default:
		s.Dur = humanDuration(-d)
		s.Rel = "in " + s.Dur
	}
	return s
}

func stampPtr(now time.Time, t *time.Time) stamp {
	if t == nil {
		return stamp{}
	}
	return stampOf(now, *t)
}

// humanDuration is how the pages show a duration: as the entries'
// messages do (api.FormatDuration).
func humanDuration(d time.Duration) string { return api.FormatDuration(d) }

// card is one job as the pages show it.
type card struct {
	api.Job
	Name    string // the job's name, or what stands for the namespace as a whole
	Href    string // its own page
	APIHref string // its REST view
	NSHref  string // the status page narrowed to its namespace
	RunHref string // the last run in the Argo UI; "" without --argo-url or for a CronJob
	// Class and State say which section it is in: failing, below
	// (failing, below its threshold), silenced, healthy.
	Class, State   string
	BelowThreshold bool
	Since          stamp // failing since
	LastResult     stamp
	NextTick       stamp
	SilenceEnds    stamp
	// Message is the first failed step of the last run and what it said;
	// MoreFailures how many other steps failed (kept or not).
	Message      string
	MoreFailures int
	Failures     []failureRow
	// WarningAt is when the result that LastWarning is about was received.
	WarningAt stamp
	// Runs are the job's last runs, newest first; Strip the same oldest
	// first, as the strip of marks shows them (left to right).
	Runs, Strip []runMark
	// StripLabel says what the strip shows, for a screen reader.
	StripLabel string
	// Late: no result for twice its expected interval plus the missed
	// grace (Expected), since LateAt; Every is that interval.
	Late                bool
	SilentSince, LateAt stamp
	Every               string
}

// runMark is one run as the pages show it: a mark of the strip (its Class
// colours it, its Title says the rest on hover) or a row of the job page's
// table.
type runMark struct {
	Class    string // succeeded, failed, synthetic (a watcher's Missed, Stuck, …)
	Phase    api.Phase
	Source   string
	Finished stamp
	Tick     stamp // the tick it ran for, when known
	Took     string
	Title    string
}

func runMarkOf(r api.Run, now time.Time) runMark {
	m := runMark{Class: "failed", Phase: r.Phase, Source: r.Source, Finished: stampOf(now, r.FinishedAt), Tick: stampPtr(now, r.ScheduledAt), Took: "—"}
	switch {
	case r.Phase == api.PhaseSucceeded:
		m.Class = "succeeded"
	case (api.Result{Phase: r.Phase}).Synthetic():
		m.Class = "synthetic"
	}
	title := []string{string(r.Phase), m.Finished.Abs + " (" + m.Finished.Rel + ")"}
	if r.DurationSeconds != nil {
		m.Took = humanDuration(time.Duration(*r.DurationSeconds * float64(time.Second)))
		title = append(title, "took "+m.Took)
	}
	if m.Tick.Set {
		title = append(title, "tick "+m.Tick.Abs)
	}
	m.Title = strings.Join(append(title, "from "+r.Source), " · ")
	return m
}

type failureRow struct {
	api.Failure
	FinishedAt stamp
}

// newCard is job j as the pages show it, runs its last runs (newest first).
func newCard(j api.Job, runs []api.Run, now time.Time, argoURL string) card {
	c := card{
		Job:        j,
		Name:       j.Job,
		Href:       jobPath("/jobs/", j),
		APIHref:    jobPath("/api/v1/jobs/", j),
		NSHref:     "/?namespace=" + url.QueryEscape(j.Namespace),
		Since:      stampPtr(now, j.FailingSince),
		LastResult: stampOf(now, j.LastResultAt),
	}
	if j.Job == "" {
		c.Name = "(whole namespace)"
	}
	if argoURL != "" && j.Kind != api.KindCronJob && j.LastWorkflow != "" {
		c.RunHref = strings.TrimRight(argoURL, "/") + "/workflows/" + url.PathEscape(j.Namespace) + "/" + url.PathEscape(j.LastWorkflow)
	}
	if j.Schedule != nil {
		c.NextTick = stampPtr(now, j.Schedule.NextTick)
	}
	if j.Silenced != nil {
		c.SilenceEnds = stampOf(now, j.Silenced.EndsAt)
	}
	if j.LastWarning != nil {
		c.WarningAt = stampOf(now, j.LastWarning.At)
	}
	if e := j.Expected; e != nil {
		c.Late, c.SilentSince, c.LateAt = e.Late, stampOf(now, e.SilentSince), stampPtr(now, e.LateAt)
		if e.EverySeconds != nil {
			c.Every = humanDuration(time.Duration(*e.EverySeconds * float64(time.Second)))
		}
	}
	for _, f := range j.LastFailures {
		var finished stamp
		if t, err := api.ParseTime(f.FinishedAt); err == nil {
			finished = stampOf(now, t)
		}
		c.Failures = append(c.Failures, failureRow{Failure: f, FinishedAt: finished})
	}
	if j.Failing && len(j.LastFailures) > 0 {
		f := j.LastFailures[0]
		c.Message = f.Message
		if f.DisplayName != "" {
			c.Message = f.DisplayName + ": " + f.Message
		}
		c.MoreFailures = len(j.LastFailures) - 1 + j.LastFailuresOmitted
	}
	for i, r := range runs {
		c.Runs = append(c.Runs, runMarkOf(r, now))
		if i == 0 {
			c.StripLabel = fmt.Sprintf("last %d run%s, latest %s", len(runs), plural(len(runs)), r.Phase)
		}
	}
	c.Strip = slices.Clone(c.Runs)
	slices.Reverse(c.Strip)
	c.BelowThreshold = belowThreshold(j)
	switch {
	case j.Silenced != nil:
		c.Class, c.State = "silenced", "silenced"
	case j.Unreadable != "" && !j.Failing:
		c.Class, c.State = "unreadable", "unreadable"
	case c.BelowThreshold:
		c.Class, c.State = "below", "failing, below threshold"
	case j.Failing:
		c.Class, c.State = "failing", "failing"
	default:
		c.Class, c.State = "healthy", "healthy"
	}
	return c
}

// jobPath is the job's path under prefix: /jobs/{namespace}/{job}, with "-"
// for the namespace as a whole and ?kind=CronJob for a CronJob's job, as
// pathKey reads it.
func jobPath(prefix string, j api.Job) string {
	name := j.Job
	if name == "" {
		name = namespaceJob
	}
	p := prefix + url.PathEscape(j.Namespace) + "/" + url.PathEscape(name)
	if j.Kind == api.KindCronJob {
		p += "?kind=" + api.KindCronJob
	}
	return p
}

// statusPageSize is how many jobs one page of the status page shows: a
// page's cost stays bounded however many jobs there are (a few hundred KB at
// 10,000 failing jobs, 20-30 KB compressed: docs/performance.md).
const statusPageSize = 100

type statusPage struct {
	page
	// This page's jobs, by section. Unreadable: jobs whose stored value
	// cannot be read and whose last readable copy (if any) is not failing;
	// one that is stays in Failing.
	Failing, Silenced, Unreadable, Healthy []card
	// How many jobs each section holds on every page, and where it starts
	// (a link to its page and anchor).
	Counts sectionCounts
	Starts sectionLinks
	Below  int // failing jobs below their threshold
	Total  int
	Pages  pager
	// Refused is how many callbacks this replica refused in the last hour;
	// Refusals the latest of them.
	Refused  int
	Refusals []refusalRow
}

type sectionCounts struct{ Failing, Silenced, Unreadable, Healthy int }

type sectionLinks struct{ Failing, Silenced, Unreadable, Healthy string }

// pager says which page this is and links the others; Count is 1 when one
// page holds every job.
type pager struct {
	Number, Count          int
	From, To               int // the jobs shown, counted from 1
	First, Prev, Next, End string
}

type refusalRow struct {
	refusal
	When stamp
}

// handleStatusPage serves GET /[?namespace=ns][&page=n]: failing jobs first
// (those that alert before those below their threshold, longest-failing
// first), then silenced jobs, then unreadable ones, then healthy ones, in
// pages of statusPageSize. Pages are numbered, not continued by a token as
// the REST lists are: a person jumps to the last page or back, and the order
// (by failing time) is not a key a link could hold.
func handleStatusPage(logger *slog.Logger, views Views, report *callbackReport, argoURL string) gin.HandlerFunc {
	logger = logger.With("component", "page")
	return func(c *gin.Context) {
		now := views.Now()
		p := newPage(now)
		namespace, err := optionalNamespace("namespace", c.Query("namespace"))
		if err != nil {
			renderError(c, logger, p, err)
			return
		}
		number, err := pageNumber(c)
		if err != nil {
			renderError(c, logger, p, err)
			return
		}
		p.Filter = namespace
		// The stored jobs are sorted into sections as they are, and only
		// the page's are made views and cards of: a page's cost is the
		// store's list, not 10,000 views.
		jobs, err := listJobs(c.Request.Context(), views.jobs, namespace)
		if err != nil {
			renderError(c, logger, p, err)
			return
		}
		silences, err := views.silences(c.Request.Context(), now)
		if err != nil {
			renderError(c, logger, p, err)
			return
		}
		data := statusPage{page: p, Total: len(jobs)}
		var refusals []refusal
		data.Refused, refusals = report.recentRefusals()
		for _, f := range refusals {
			data.Refusals = append(data.Refusals, refusalRow{refusal: f, When: stampOf(now, f.At)})
		}
		// Each section holds indexes into jobs, which List ordered by key.
		var failing, silenced, unreadable, healthy []int
		isSilenced := make([]bool, len(jobs))
		for i, j := range jobs {
			isSilenced[i] = state.SilenceOf(j.Key(), silences) != nil
			switch {
			case isSilenced[i]:
				silenced = append(silenced, i)
			case j.Unreadable != "" && !j.Failing():
				unreadable = append(unreadable, i)
			case j.Failing():
				failing = append(failing, i)
				if !j.Alerting() {
					data.Below++
				}
			default:
				healthy = append(healthy, i)
			}
		}
		// Sorting stably keeps the key's order among equals. Those below
		// their threshold after those that alert (as newCard's
		// BelowThreshold says), longest-failing first.
		slices.SortStableFunc(failing, func(a, b int) int {
			if jobs[a].Alerting() != jobs[b].Alerting() {
				if jobs[a].Alerting() {
					return -1
				}
				return 1
			}
			return jobs[a].FailingSince.Compare(*jobs[b].FailingSince)
		})
		slices.SortStableFunc(silenced, func(a, b int) int {
			if jobs[a].Failing() != jobs[b].Failing() {
				if jobs[a].Failing() {
					return -1
				}
				return 1
			}
			return 0
		})
		data.Counts = sectionCounts{Failing: len(failing), Silenced: len(silenced), Unreadable: len(unreadable), Healthy: len(healthy)}

		// The page's share of each section, in that order.
		count := max(1, (len(jobs)+statusPageSize-1)/statusPageSize)
		// A page beyond the last (jobs were forgotten since the link was
		// made, or the page refreshed itself) shows the last one.
		number = min(number, count)
		start, end := (number-1)*statusPageSize, min(number*statusPageSize, len(jobs))
		data.Pages = pager{Number: number, Count: count, From: start + 1, To: end}
		if number > 1 {
			data.Pages.First, data.Pages.Prev = statusHref(namespace, 1, ""), statusHref(namespace, number-1, "")
		}
		if number < count {
			data.Pages.Next, data.Pages.End = statusHref(namespace, number+1, ""), statusHref(namespace, count, "")
		}
		offset := 0
		share := func(section []int, anchor string, href *string) []card {
			first := offset/statusPageSize + 1
			if len(section) == 0 || first == number {
				*href = "#" + anchor
			} else {
				*href = statusHref(namespace, first, anchor)
			}
			// This page's jobs of the section, by their place in it.
			from := min(max(start-offset, 0), len(section))
			to := max(min(end-offset, len(section)), from)
			offset += len(section)
			var cards []card
			for _, i := range section[from:to] {
				cards = append(cards, newCard(views.of(jobs[i], now, silences), jobs[i].RunViews(), now, argoURL))
			}
			return cards
		}
		data.Failing = share(failing, "failing", &data.Starts.Failing)
		data.Silenced = share(silenced, "silenced", &data.Starts.Silenced)
		data.Unreadable = share(unreadable, "unreadable", &data.Starts.Unreadable)
		data.Healthy = share(healthy, "healthy", &data.Starts.Healthy)
		render(c, logger, http.StatusOK, "status.html", data)
	}
}

// belowThreshold: failing, but not yet as many times in a row as its
// threshold asks before it alerts.
func belowThreshold(j api.Job) bool {
	return j.Failing && j.ConsecutiveFailures < j.FailureThreshold
}

// pageNumber reads ?page=, a number from 1 (1 when absent).
func pageNumber(c *gin.Context) (int, error) {
	s, ok := c.GetQuery("page")
	if !ok {
		return 1, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, &api.FieldError{Field: "page", Message: fmt.Sprintf("%s is not a page number (1, 2, ...)", api.Quote(s))}
	}
	return n, nil
}

// statusHref links page number of the status page narrowed to namespace
// (none: every namespace), at anchor if any.
func statusHref(namespace string, number int, anchor string) string {
	q := url.Values{}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	if number > 1 {
		q.Set("page", strconv.Itoa(number))
	}
	href := "/"
	if len(q) > 0 {
		href += "?" + q.Encode()
	}
	if anchor != "" {
		href += "#" + anchor
	}
	return href
}

type jobPage struct {
	page
	card
	// Streaks are the finished failure streaks, newest first.
	Streaks []streakRow
	Chart   *runChart // nil without a run
	// Interval is how often it usually runs, when that is known.
	Interval string
}

// runChart draws the durations of a job's runs as an inline SVG, oldest on
// the left: one bar per run, as high as it took (a stub when that is not
// known), with the usual range (median to 90th percentile of its
// successful runs) shaded when enough of them are known. Drawn here, not
// by a script: the pages run none.
type runChart struct {
	Width, Height int // the viewBox
	Bars          []chartBar
	Band          *chartBand
	Longest       string // the longest run
	CutAt         string // where taller bars are cut, if they are
	Usual         string // "12m 30s to 13m", when known
	UsualNote     string // why it is not, when it is not
}

type chartBar struct {
	X, Y, W, H int
	Class      string
	Title      string
}

type chartBand struct{ Y, H int }

// Its geometry, in viewBox units: a slot per run a history can hold.
const (
	chartWidth, chartHeight = 600, 120
	chartSlot               = chartWidth / api.MaxRuns
	chartStub               = 3 // the height of a bar whose duration is not known
)

func newRunChart(runs []api.Run, usual *api.Usual, marks []runMark) *runChart {
	if len(runs) == 0 || usual == nil {
		return nil
	}
	c := &runChart{Width: chartWidth, Height: chartHeight}
	var median, p90 time.Duration
	ok := usual.MedianSeconds != nil && usual.P90Seconds != nil
	if ok {
		median, p90 = seconds(*usual.MedianSeconds), seconds(*usual.P90Seconds)
	}
	longest := p90.Seconds()
	for _, r := range runs {
		if r.DurationSeconds != nil {
			longest = max(longest, *r.DurationSeconds)
		}
	}
	// Room above the longest bar, so that it does not look cut; but a run
	// far past the usual (a Stuck one) would flatten the others and the
	// range to a line: past 3 times the 90th percentile, bars are cut.
	top := max(longest*1.1, 1)
	if ok && longest > 3*p90.Seconds() {
		top = 3 * p90.Seconds()
		c.CutAt = humanDuration(seconds(top))
	}
	height := func(seconds float64) int { return int(math.Round(seconds / top * chartHeight)) }
	c.Longest = humanDuration(time.Duration(longest * float64(time.Second)))
	if ok {
		c.Usual = humanDuration(median) + " to " + humanDuration(p90)
		y := chartHeight - height(p90.Seconds())
		c.Band = &chartBand{Y: y, H: max(chartHeight-height(median.Seconds())-y, 1)}
	} else {
		n := usual.SuccessfulRuns
		c.UsualNote = fmt.Sprintf("%d successful run%s of known duration; %d needed to tell the usual range", n, plural(n), api.MinRunsForUsual)
	}
	for i := range runs {
		r, m := runs[len(runs)-1-i], marks[len(runs)-1-i] // oldest first
		bar := chartBar{X: i*chartSlot + 2, W: chartSlot - 4, H: chartStub, Class: m.Class, Title: m.Title}
		if r.DurationSeconds != nil {
			bar.H = max(height(*r.DurationSeconds), 1)
			if bar.H > chartHeight {
				bar.H = chartHeight
				bar.Class += " cut"
			}
		} else {
			bar.Class += " unknown"
		}
		bar.Y = chartHeight - bar.H
		c.Bars = append(c.Bars, bar)
	}
	return c
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

type streakRow struct {
	Since, Until stamp
	Lasted       string
	Failures     int
}

// handleJobPage serves GET /jobs/{namespace}/{job}[?kind=CronJob]: one job
// in full, with its last streaks.
func handleJobPage(logger *slog.Logger, views Views, argoURL string) gin.HandlerFunc {
	logger = logger.With("component", "page")
	return func(c *gin.Context) {
		now := views.Now()
		p := newPage(now)
		key, err := pathKey(c)
		if err != nil {
			renderError(c, logger, p, err)
			return
		}
		j, err := views.Get(c.Request.Context(), key)
		if err != nil {
			renderError(c, logger, p, err)
			return
		}
		data := jobPage{page: p, card: newCard(j.Job, j.Runs, now, argoURL)}
		data.Chart = newRunChart(j.Runs, j.Usual, data.Runs)
		if u := j.Usual; u != nil && u.IntervalSeconds != nil {
			data.Interval = humanDuration(seconds(*u.IntervalSeconds))
		}
		for _, s := range j.Streaks {
			data.Streaks = append(data.Streaks, streakRow{
				Since:    stampOf(now, s.Since),
				Until:    stampOf(now, s.Until),
				Lasted:   humanDuration(time.Duration(s.Seconds * float64(time.Second))),
				Failures: s.Failures,
			})
		}
		render(c, logger, http.StatusOK, "job.html", data)
	}
}

type errorPage struct {
	page
	Status  int
	Text    string // the status's name
	Message string
}

// renderError answers a page request with err as HTML: the same status and
// message as the REST API's, mapped by errorResponse.
func renderError(c *gin.Context, logger *slog.Logger, p page, err error) {
	status, detail := errorResponse(err)
	if status >= 500 {
		logger.Warn("page", "err", err, "path", c.Request.URL.Path)
	}
	if status == http.StatusServiceUnavailable {
		c.Header("Retry-After", retryAfterSeconds)
	} else {
		p.Refresh = 0 // a bad path or a missing job will not get better by itself
	}
	render(c, logger, status, "error.html", errorPage{page: p, Status: status, Text: http.StatusText(status), Message: detail.Message})
}

func newPage(now time.Time) page {
	return page{
		// A fresh nonce per response: an injected <style> could not guess it.
		Nonce:     rand.Text(),
		Refresh:   pageRefreshSeconds,
		Generated: stampOf(now, now),
	}
}

// render writes the page name with data. It renders into a buffer first, so
// that a template error is a clean 500 rather than half a page.
func render(c *gin.Context, logger *slog.Logger, status int, name string, data interface{ nonce() string }) {
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		logger.Error("render page", "err", err, "page", name)
		c.AbortWithStatus(http.StatusInternalServerError)
		return
	}
	h := c.Writer.Header()
	// No script may run, whatever the data; styles only with this
	// response's nonce; images only inline (the empty favicon).
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'nonce-"+data.nonce()+"'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	// Job data can be behind --read-token: no shared cache keeps it.
	h.Set("Cache-Control", "no-store")
	respond(c, status, "text/html; charset=utf-8", buf.Bytes())
}

func (p page) nonce() string { return p.Nonce }
