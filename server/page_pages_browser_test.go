package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/batchlatch/batchlatch/api"
)

// shownPages is the status page's pagination as the browser laid it out.
type shownPages struct {
	Jobs        int      `json:"jobs"`
	Sections    []string `json:"sections"`
	Navs        int      `json:"navs"`
	Links       []string `json:"links"`
	At          string   `json:"at"`
	Search      string   `json:"search"`
	ScrollWidth int      `json:"scrollWidth"`
	InnerWidth  int      `json:"innerWidth"`
	NavWidth    int      `json:"navWidth"`
}

const readPages = `(() => {
	const nav = document.querySelector("nav.pages");
	return {
		jobs: document.querySelectorAll("li.job").length,
		sections: [...document.querySelectorAll("section[id]")].map(s => s.id),
		navs: document.querySelectorAll("nav.pages").length,
		links: nav ? [...nav.querySelectorAll("a")].map(a => a.rel + " " + a.textContent) : [],
		at: nav ? nav.querySelector(".at").textContent : "",
		search: location.search,
		scrollWidth: document.documentElement.scrollWidth,
		innerWidth: window.innerWidth,
		navWidth: nav ? Math.ceil(nav.getBoundingClientRect().right) : 0,
	};
})()`

// The status page's pages in Chromium: a person follows "Next" from the
// first page, on a desktop and on a phone, and nothing is wider than the
// screen.
func TestStatusPagePagesInChromium(t *testing.T) {
	ctx := browser(t)
	jobs := manyJobs(3 * (statusPageSize + 17)) // 351 jobs: 4 pages
	silence := api.Silence{ID: "s", Namespace: "web", Job: "job-0002", Kind: api.KindWorkflow, StartsAt: now.Add(-time.Hour), EndsAt: now.Add(time.Hour), Reason: "upstream migration"}
	srv := listServer(t, &listStore{jobs: jobs}, []api.Silence{silence})
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	console := listenConsole(t, ctx)

	for _, viewport := range []struct {
		name  string
		width int
		phone bool
	}{{"desktop", 1200, false}, {"phone", 390, true}} {
		actions := []chromedp.Action[chromedp.Void]{}
		if viewport.phone {
			actions = append(actions, chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
		}
		actions = append(actions, chromedp.Navigate(srv.URL+"/"))
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatal(err)
		}
		first, err := chromedp.Run(ctx, chromedp.Evaluate[shownPages](readPages))
		if err != nil {
			t.Fatal(err)
		}
		if first.Jobs != statusPageSize || first.Navs != 2 || first.At != "Page 1 of 4 · jobs 1–100" ||
			strings.Join(first.Links, "|") != "next Next ›|last Last »" || strings.Join(first.Sections, ",") != "failing" {
			t.Errorf("%s, first page: %+v", viewport.name, first)
		}
		// Follow "Next" as a person does.
		if err := chromedp.Do(ctx, chromedp.Click(`nav.pages a[rel="next"]`, chromedp.NodeVisible), chromedp.WaitVisible(`section#healthy`)); err != nil {
			t.Fatal(err)
		}
		second, err := chromedp.Run(ctx, chromedp.Evaluate[shownPages](readPages))
		if err != nil {
			t.Fatal(err)
		}
		if second.Search != "?page=2" || second.Jobs != statusPageSize || second.At != "Page 2 of 4 · jobs 101–200" ||
			strings.Join(second.Sections, ",") != "failing,silenced,healthy" || len(second.Links) != 4 {
			t.Errorf("%s, second page: %+v", viewport.name, second)
		}
		if second.InnerWidth != viewport.width || second.ScrollWidth > second.InnerWidth || second.NavWidth > second.InnerWidth {
			t.Errorf("%s: page %d px, nav %d px wide in a %d px viewport", viewport.name, second.ScrollWidth, second.NavWidth, second.InnerWidth)
		}
		// What the screen shows: the top (the counts, the links), where
		// the silenced jobs start, and the links at the bottom.
		for _, at := range []struct{ name, sel string }{{"top", "header.top"}, {"silenced", "section#silenced"}, {"bottom", "footer"}} {
			if err := chromedp.Do(ctx, chromedp.ScrollIntoView(at.sel)); err != nil {
				t.Fatal(err)
			}
			shot, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
			if err != nil {
				t.Fatal(err)
			}
			writeArtifact(t, "status-page-2-"+viewport.name+"-"+at.name+".png", shot)
		}
	}
	if problems := console.problems(); len(problems) > 0 {
		t.Errorf("console errors:\n%s", strings.Join(problems, "\n"))
	}
}
