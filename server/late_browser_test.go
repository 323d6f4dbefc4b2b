package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// shownLate is what readLate reads of a page.
type shownLate struct {
	Badges      []string `json:"badges"` // the late badges' cards, by job name
	Facts       []string `json:"facts"`  // the Late facts' text
	Scripts     int      `json:"scripts"`
	ScrollWidth int      `json:"scrollWidth"`
	InnerWidth  int      `json:"innerWidth"`
}

const readLate = `(() => {
	const visible = e => e.getBoundingClientRect().width > 0 && getComputedStyle(e).visibility !== 'hidden';
	return {
		badges: [...document.querySelectorAll('.badge.late')].filter(visible).map(b => (b.closest('h3, h1').querySelector('.name') || b.closest('h1')).textContent.trim()),
		facts: [...document.querySelectorAll('.facts .late dd')].filter(visible).map(d => d.textContent.replace(/\s+/g, ' ').trim()),
		scripts: document.scripts.length,
		scrollWidth: document.documentElement.scrollWidth,
		innerWidth: window.innerWidth,
	};
})()`

// Late jobs in Chromium, on a desktop and a phone: the status page marks
// both late jobs and says since when, the job page too; nothing wider than
// the screen, no script.
func TestLateInChromium(t *testing.T) {
	ctx := browser(t)
	srv := lateServer(t)
	ctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	console := listenConsole(t, ctx)
	inEachViewport(t, ctx, func(viewport viewport) {
		read := func(name, path string) shownLate {
			t.Helper()
			if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+path)); err != nil {
				t.Fatal(err)
			}
			shown, err := chromedp.Run(ctx, chromedp.Evaluate[shownLate](readLate))
			if err != nil {
				t.Fatal(err)
			}
			if shown.Scripts != 0 || shown.InnerWidth != viewport.width || shown.ScrollWidth > shown.InnerWidth {
				t.Errorf("%s %s: %d scripts, page %d px in a %d px viewport", viewport.name, path, shown.Scripts, shown.ScrollWidth, shown.InnerWidth)
			}
			shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			writeArtifact(t, "late-"+name+"-"+viewport.name+".png", shot)
			return shown
		}
		status := read("status", "/")
		if strings.Join(status.Badges, ",") != "export,sync" || len(status.Facts) != 2 ||
			!strings.HasPrefix(status.Facts[0], "no result since 20h 59m ago") || !strings.Contains(status.Facts[1], "shown only") {
			t.Errorf("%s: the status page shows %+v", viewport.name, status)
		}
		page := read("job", "/jobs/ops/export")
		if len(page.Badges) != 1 || len(page.Facts) != 1 || !strings.Contains(page.Facts[0], "expected every 1h") {
			t.Errorf("%s: the job page shows %+v", viewport.name, page)
		}
	})
	if problems := console.problems(); len(problems) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(problems, "\n"))
	}
}
