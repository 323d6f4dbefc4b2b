package server

// The status page as a person sees it: in headless Chromium (Debian's
// chromium package, which hack/test.sh installs), driven with chromedp. When
// chromium is missing the test skips, or fails if CI is set.
//
// Screenshots go to $BATCHLATCH_ARTIFACTS (else the test's temporary
// directory); BATCHLATCH_SCREENSHOT=docs/status-page.png (relative to the
// repository's root) also writes the README's screenshot:
//
//	BATCHLATCH_SCREENSHOT=docs/status-page.png go test -run InChromium ./server/

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	cdppage "github.com/chromedp/cdproto/page"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium returns the browser's path, or skips the test (fails it in CI).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found (CI is set, so this fails instead of skipping): hack/test.sh installs Debian's chromium package")
	}
	t.Skip("chromium not found: apt-get install chromium, or run hack/test.sh")
	return ""
}

// browser starts a headless Chromium that can reach nothing but loopback,
// and returns a tab's context.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		// Tests run as root in CI, where Chromium's sandbox cannot start.
		chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		// Every name but the loopback address fails to resolve, and no
		// proxy is asked: the browser reaches 127.0.0.1 only.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.WindowSize(1200, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	return ctx
}

// consoleLog gathers what a tab writes to its console (calls of the console
// API, uncaught exceptions, the browser's own log: CSP violations, failed
// loads) and any dialog a script opens.
type consoleLog struct {
	mu       sync.Mutex
	messages []string
}

func listenConsole(t *testing.T, ctx context.Context) *consoleLog {
	t.Helper()
	c := &consoleLog{}
	add := func(format string, args ...any) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.messages = append(c.messages, fmt.Sprintf(format, args...))
	}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			add("console.%s: %s", ev.Type, strings.Join(args, " "))
		case *runtime.EventExceptionThrown:
			add("exception: %s", ev.ExceptionDetails.Text)
		case *log.EventEntryAdded:
			add("log %s (%s): %s %s", ev.Entry.Level, ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
		case *cdppage.EventJavascriptDialogOpening:
			add("dialog %s: %s", ev.Type, ev.Message)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// problems are the messages at the levels that matter: errors, warnings,
// exceptions and dialogs.
func (c *consoleLog) problems() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, m := range c.messages {
		if !strings.HasPrefix(m, "console.log") && !strings.HasPrefix(m, "console.info") && !strings.HasPrefix(m, "console.debug") &&
			!strings.HasPrefix(m, "log info") && !strings.HasPrefix(m, "log verbose") {
			out = append(out, m)
		}
	}
	return out
}

// shownJob is a job's card as the browser laid out the page.
type shownJob struct {
	Section  string `json:"section"`
	Name     string `json:"name"`
	Class    string `json:"class"`
	Badge    string `json:"badge"`
	Duration string `json:"duration"`
	Message  string `json:"message"`
	Text     string `json:"text"`
}

type shownPage struct {
	Jobs        []shownJob `json:"jobs"`
	Scripts     int        `json:"scripts"`
	Images      int        `json:"images"`
	Title       string     `json:"title"`
	HeaderColor string     `json:"headerColor"`
	ScrollWidth int        `json:"scrollWidth"`
	InnerWidth  int        `json:"innerWidth"`
}

const readPage = `(() => {
	const text = (el, sel) => { const e = el.querySelector(sel); return e ? e.textContent : ""; };
	return {
		jobs: [...document.querySelectorAll("li.job")].map(li => ({
			section: li.closest("section").id,
			name: text(li, ".name"),
			class: li.className,
			badge: text(li, ".badge"),
			duration: text(li, ".duration"),
			message: text(li, "pre.msg"),
			text: li.textContent,
		})),
		scripts: document.scripts.length,
		images: document.images.length,
		title: document.title,
		headerColor: getComputedStyle(document.querySelector(".top")).backgroundColor,
		scrollWidth: document.documentElement.scrollWidth,
		innerWidth: window.innerWidth,
	};
})()`

func TestStatusPageInChromium(t *testing.T) {
	ctx := browser(t)
	srv := pageServer(t, "")
	if u, _ := url.Parse(srv.URL); u.Hostname() != "127.0.0.1" {
		t.Fatalf("the test server is at %s, not on 127.0.0.1", srv.URL)
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	console := listenConsole(t, ctx)

	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/")); err != nil {
		t.Fatal(err)
	}
	shown, err := chromedp.Run(ctx, chromedp.Evaluate[shownPage](readPage))
	if err != nil {
		t.Fatal(err)
	}

	// Failing first, longest first, those below their threshold last; then
	// silenced; then healthy.
	want := []struct{ section, name, class string }{
		{"failing", "nightly-train", "failing"},
		{"failing", hostileJob, "failing"},
		{"failing", "invoice-export", "below"},
		{"silenced", "weekly-digest", "silenced"},
		{"healthy", "ledger-sync", "healthy"},
		{"healthy", "(whole namespace)", "healthy"},
		{"healthy", "feature-refresh", "healthy"},
	}
	if len(shown.Jobs) != len(want) {
		t.Fatalf("%d jobs shown, want %d: %+v", len(shown.Jobs), len(want), shown.Jobs)
	}
	for i, w := range want {
		if got := shown.Jobs[i]; got.Section != w.section || got.Name != w.name || got.Class != "job "+w.class {
			t.Errorf("job %d: %s %q %q, want %s %q %q", i, got.Section, got.Name, got.Class, w.section, w.name, "job "+w.class)
		}
	}
	first := shown.Jobs[0]
	if first.Duration != "3h 13m" || !strings.Contains(first.Message, "OOMKilled (exit code 137)") || !strings.Contains(first.Text, "2026-11-24 01:47 UTC") {
		t.Errorf("the longest-failing job lacks its duration, start or message: %+v", first)
	}
	// The hostile data is there as text, and nothing of it became an element.
	if hostile := shown.Jobs[1]; !strings.Contains(hostile.Message, "<script>alert(1)</script>") || !strings.Contains(hostile.Message, hostileStep) {
		t.Errorf("hostile message not shown as text: %q", hostile.Message)
	}
	if shown.Scripts != 0 || shown.Images != 0 {
		t.Errorf("%d script and %d img elements on the page, want none", shown.Scripts, shown.Images)
	}
	if below := shown.Jobs[2]; !strings.Contains(below.Text, "below threshold (1 of 3)") {
		t.Errorf("below-threshold job: %q", below.Text)
	}
	if silenced := shown.Jobs[3]; silenced.Badge != "silenced" || !strings.Contains(silenced.Text, hostileReason) {
		t.Errorf("silenced job: %+v", silenced)
	}
	if !strings.Contains(shown.Jobs[6].Text, "Next expected run") || !strings.Contains(shown.Jobs[6].Text, "in 30m") {
		t.Errorf("watched job: %q", shown.Jobs[6].Text)
	}
	if shown.Title != "(3 failing) batchlatch" {
		t.Errorf("title %q", shown.Title)
	}
	// The style sheet applied: the CSP's nonce lets it through.
	if shown.HeaderColor != "rgb(31, 35, 41)" {
		t.Errorf("header background %q: the style sheet did not apply", shown.HeaderColor)
	}

	desktop, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	writeArtifact(t, "status-page.png", desktop)
	if path := os.Getenv("BATCHLATCH_SCREENSHOT"); path != "" {
		if !filepath.IsAbs(path) {
			path = filepath.Join(repoRoot(t), path)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, desktop, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", path)
	}

	// A job's own page: the running streak and the two before it.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/jobs/ml/nightly-train")); err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#streaks tbody tr").length`))
	if err != nil {
		t.Fatal(err)
	}
	if rows != 3 {
		t.Errorf("%d streaks shown, want 3", rows)
	}
	if shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatal(err)
	} else {
		writeArtifact(t, "job-page.png", shot)
	}

	// On a phone: nothing wider than the screen.
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(srv.URL+"/"),
	); err != nil {
		t.Fatal(err)
	}
	phone, err := chromedp.Run(ctx, chromedp.Evaluate[shownPage](readPage))
	if err != nil {
		t.Fatal(err)
	}
	if phone.InnerWidth != 390 || phone.ScrollWidth > phone.InnerWidth || len(phone.Jobs) != len(want) {
		t.Errorf("on a phone: %d jobs, page %d px wide in a %d px viewport", len(phone.Jobs), phone.ScrollWidth, phone.InnerWidth)
	}
	shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	writeArtifact(t, "status-page-phone.png", shot)

	// A job's own page, from its link, on the phone too.
	if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/jobs/web/"+hostileJob)); err != nil {
		t.Fatal(err)
	}
	failures, err := chromedp.Run(ctx, chromedp.TextContent("#failures"))
	if err != nil {
		t.Fatal(err)
	}
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(failures, "<script>alert(1)</script>") || width > 390 {
		t.Errorf("job page: %d px wide, failures %q", width, failures)
	}
	if shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
		t.Fatal(err)
	}
	writeArtifact(t, "job-page-phone.png", shot)

	// Let late messages (a favicon, a blocked style) arrive, then make sure
	// the listener hears an error at all before trusting its silence.
	if err := chromedp.Do(ctx, chromedp.Sleep(300*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	problems := console.problems()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[any](`console.error("probe")`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for len(console.problems()) == len(problems) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if got := console.problems(); len(got) != len(problems)+1 || !strings.Contains(got[len(got)-1], "probe") {
		t.Fatalf("the console listener did not hear a console.error: %q", got)
	}
	if len(problems) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(problems, "\n"))
	}
}

// viewport is a screen the pages are checked on.
type viewport struct {
	name  string
	width int // CSS pixels
}

// inEachViewport runs check on a desktop, then on a phone (emulated, from
// then on in ctx).
func inEachViewport(t *testing.T, ctx context.Context, check func(viewport)) {
	t.Helper()
	check(viewport{"desktop", 1200})
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile)); err != nil {
		t.Fatal(err)
	}
	check(viewport{"phone", 390})
}

// writeArtifact keeps a screenshot in $BATCHLATCH_ARTIFACTS, else in the
// test's temporary directory.
func writeArtifact(t *testing.T, name string, data []byte) {
	t.Helper()
	dir := os.Getenv("BATCHLATCH_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("artifact: %s (%d bytes)", path, len(data))
}

// repoRoot is the directory holding go.mod, above the test's directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
