package schedule

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	// Argo only in the tests, to check Parse against Argo's own composition.
	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
	"github.com/robfig/cron/v3"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func formatted(ticks []time.Time) string {
	out := make([]string, 0, len(ticks))
	for _, t := range ticks {
		out = append(out, t.UTC().Format(time.RFC3339))
	}
	return strings.Join(out, " ")
}

func mustParse(t testing.TB, exprs []string, tz string) Schedule {
	t.Helper()
	s, err := Parse(exprs, tz)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// bruteTicks walks every tick forward from after, as Argo's operator does
// (workflow/cron/operator.go, shouldOutstandingWorkflowsBeRun), and keeps
// the latest max: what Ticks must return, without walking.
func bruteTicks(s Schedule, after, until time.Time, max int) ([]time.Time, bool) {
	var all []time.Time
	for _, p := range s.parsed {
		for t := p.Next(after); !t.IsZero() && !t.After(until); t = p.Next(t) {
			all = append(all, t)
		}
	}
	slices.SortFunc(all, func(a, b time.Time) int { return a.Compare(b) })
	all = slices.CompactFunc(all, time.Time.Equal)
	if len(all) > max {
		return all[len(all)-max:], true
	}
	return all, false
}

func TestTicks(t *testing.T) {
	tests := []struct {
		name          string
		exprs         []string
		tz            string
		after, until  string
		max           int
		want          string
		wantTruncated bool
	}{
		{name: "boundaries: after excluded, until included", exprs: []string{"0 * * * *"}, after: "2026-11-24T02:00:00Z", until: "2026-11-24T04:00:00Z", max: 10,
			want: "2026-11-24T03:00:00Z 2026-11-24T04:00:00Z"},
		{name: "boundaries: a nanosecond either side", exprs: []string{"0 * * * *"}, after: "2026-11-24T01:59:59.999999999Z", until: "2026-11-24T03:59:59.999999999Z", max: 10,
			want: "2026-11-24T02:00:00Z 2026-11-24T03:00:00Z"},
		{name: "empty window", exprs: []string{"* * * * *"}, after: "2026-11-24T02:00:00Z", until: "2026-11-24T02:00:00Z", max: 10},
		{name: "reversed window", exprs: []string{"* * * * *"}, after: "2026-11-24T03:00:00Z", until: "2026-11-24T02:00:00Z", max: 10},
		{name: "several schedules merged, the same instant once", exprs: []string{"0 2 * * *", "0 */12 * * *", "0 2 * * 2"}, after: "2026-11-23T23:00:00Z", until: "2026-11-24T13:00:00Z", max: 10,
			want: "2026-11-24T00:00:00Z 2026-11-24T02:00:00Z 2026-11-24T12:00:00Z"},
		{name: "merged schedules truncated to the latest", exprs: []string{"0 * * * *", "30 * * * *", "0 */2 * * *"}, after: "2026-11-24T00:00:00Z", until: "2026-11-24T12:00:00Z", max: 3,
			want: "2026-11-24T11:00:00Z 2026-11-24T11:30:00Z 2026-11-24T12:00:00Z", wantTruncated: true},
		{name: "@hourly", exprs: []string{"@hourly"}, after: "2026-11-24T00:30:00Z", until: "2026-11-24T03:00:00Z", max: 10,
			want: "2026-11-24T01:00:00Z 2026-11-24T02:00:00Z 2026-11-24T03:00:00Z"},
		{name: "@daily", exprs: []string{"@daily"}, after: "2026-11-23T12:00:00Z", until: "2026-11-25T12:00:00Z", max: 10,
			want: "2026-11-24T00:00:00Z 2026-11-25T00:00:00Z"},
		{name: "@weekly is Sunday midnight", exprs: []string{"@weekly"}, after: "2026-11-20T00:00:00Z", until: "2026-12-07T00:00:00Z", max: 10,
			want: "2026-11-22T00:00:00Z 2026-11-29T00:00:00Z 2026-12-06T00:00:00Z"},
		{name: "names and ? as robfig reads them", exprs: []string{"0 9 ? NOV MON-FRI"}, after: "2026-11-26T00:00:00Z", until: "2026-12-01T00:00:00Z", max: 10,
			want: "2026-11-26T09:00:00Z 2026-11-27T09:00:00Z 2026-11-30T09:00:00Z"},
		{name: "@every is stepped from after", exprs: []string{"@every 90m"}, after: "2026-11-24T00:00:17.5Z", until: "2026-11-24T06:00:00Z", max: 10,
			want: "2026-11-24T01:30:17Z 2026-11-24T03:00:17Z 2026-11-24T04:30:17Z"},
		{name: "@every truncated to the latest", exprs: []string{"@every 1s"}, after: "2026-11-23T00:00:00Z", until: "2026-11-24T00:00:00Z", max: 2,
			want: "2026-11-23T23:59:59Z 2026-11-24T00:00:00Z", wantTruncated: true},
		{name: "timezone argument, as Argo's CRON_TZ= prefix", exprs: []string{"0 2 * * *"}, tz: "Europe/Berlin", after: "2026-11-23T12:00:00Z", until: "2026-11-24T12:00:00Z", max: 10,
			want: "2026-11-24T01:00:00Z"},
		{name: "CRON_TZ= in the expression", exprs: []string{"CRON_TZ=Asia/Tokyo 0 9 * * *"}, after: "2026-11-23T12:00:00Z", until: "2026-11-24T12:00:00Z", max: 10,
			want: "2026-11-24T00:00:00Z"},
		{name: "TZ= in the expression (Kubernetes' composition)", exprs: []string{"TZ=America/New_York 0 9 * * *"}, after: "2026-11-23T15:00:00Z", until: "2026-11-24T18:00:00Z", max: 10,
			want: "2026-11-24T14:00:00Z"},
		{name: "expressions in different zones", exprs: []string{"0 9 * * *", "CRON_TZ=Asia/Tokyo 0 9 * * *"}, after: "2026-11-23T12:00:00Z", until: "2026-11-24T12:00:00Z", max: 10,
			want: "2026-11-24T00:00:00Z 2026-11-24T09:00:00Z"},
		{name: "every minute over 30 days: the latest kept", exprs: []string{"* * * * *"}, after: "2026-10-25T02:00:00Z", until: "2026-11-24T02:00:00Z", max: 3,
			want: "2026-11-24T01:58:00Z 2026-11-24T01:59:00Z 2026-11-24T02:00:00Z", wantTruncated: true},
		{name: "exactly max ticks: nothing dropped", exprs: []string{"@daily"}, after: "2026-11-01T00:00:00Z", until: "2026-11-03T00:00:00Z", max: 2,
			want: "2026-11-02T00:00:00Z 2026-11-03T00:00:00Z"},
		{name: "one more than max: dropped", exprs: []string{"@daily"}, after: "2026-10-31T23:59:59Z", until: "2026-11-03T00:00:00Z", max: 2,
			want: "2026-11-02T00:00:00Z 2026-11-03T00:00:00Z", wantTruncated: true},
		{name: "a long look-back of a rare schedule", exprs: []string{"0 0 1 1 *"}, after: "2020-06-01T00:00:00Z", until: "2026-11-24T00:00:00Z", max: 3,
			want: "2024-01-01T00:00:00Z 2025-01-01T00:00:00Z 2026-01-01T00:00:00Z", wantTruncated: true},
		{name: "after is the zero Time", exprs: []string{"0 0 1 1 *"}, after: "0001-01-01T00:00:00Z", until: "2026-11-24T00:00:00Z", max: 2,
			want: "2025-01-01T00:00:00Z 2026-01-01T00:00:00Z", wantTruncated: true},
		{name: "a dense burst far back (every minute of February)", exprs: []string{"* * * 2 *"}, after: "2025-01-01T00:00:00Z", until: "2026-12-31T00:00:00Z", max: 2,
			want: "2026-02-28T23:58:00Z 2026-02-28T23:59:00Z", wantTruncated: true},
		{name: "an impossible date never ticks", exprs: []string{"0 0 30 2 *"}, after: "2026-01-01T00:00:00Z", until: "2026-12-31T00:00:00Z", max: 3},
		{name: "max 0: nothing returned, drops reported", exprs: []string{"@hourly"}, after: "2026-11-24T00:00:00Z", until: "2026-11-24T02:00:00Z", max: 0, wantTruncated: true},

		// DST, as robfig/cron's SpecSchedule.Next computes it, and so Argo's
		// and Kubernetes' controllers (checked against robfig v3.0.1 by
		// hand; TestTicksAgreeWithAWalk and TestArgoOperatorMissedTime walk
		// the same windows with Next). Unlike Vixie cron, robfig neither
		// shifts a skipped time nor runs a repeated one only once.
		//
		// America/New_York springs forward on 2026-03-08, 02:00 EST -> 03:00
		// EDT: 02:30 does not exist that day and the 02:30 job does not run.
		{name: "New York spring forward: 02:30 skipped", exprs: []string{"30 2 * * *"}, tz: "America/New_York", after: "2026-03-06T12:00:00Z", until: "2026-03-09T12:00:00Z", max: 10,
			want: "2026-03-07T07:30:00Z 2026-03-09T06:30:00Z"},
		// Hourly: 01:00 EST then 03:00 EDT, one real hour apart.
		{name: "New York spring forward: hourly stays hourly", exprs: []string{"0 * * * *"}, tz: "America/New_York", after: "2026-03-08T05:30:00Z", until: "2026-03-08T08:00:00Z", max: 10,
			want: "2026-03-08T06:00:00Z 2026-03-08T07:00:00Z 2026-03-08T08:00:00Z"},
		// It falls back on 2026-11-01, 02:00 EDT -> 01:00 EST: 01:30 occurs
		// twice, and the 01:30 job runs twice (EDT and EST)...
		{name: "New York fall back: 01:30 runs twice", exprs: []string{"30 1 * * *"}, tz: "America/New_York", after: "2026-10-31T12:00:00Z", until: "2026-11-02T12:00:00Z", max: 10,
			want: "2026-11-01T05:30:00Z 2026-11-01T06:30:00Z 2026-11-02T06:30:00Z"},
		// ...while 02:30 occurs once, and runs once, 25 hours after the last.
		{name: "New York fall back: 02:30 runs once", exprs: []string{"30 2 * * *"}, tz: "America/New_York", after: "2026-10-31T00:00:00Z", until: "2026-11-02T12:00:00Z", max: 10,
			want: "2026-10-31T06:30:00Z 2026-11-01T07:30:00Z 2026-11-02T07:30:00Z"},
		// Hourly: 01:00 EDT, 01:00 EST, 02:00 EST: the repeated hour twice.
		{name: "New York fall back: hourly runs the repeated hour twice", exprs: []string{"@hourly"}, tz: "America/New_York", after: "2026-11-01T04:30:00Z", until: "2026-11-01T07:00:00Z", max: 10,
			want: "2026-11-01T05:00:00Z 2026-11-01T06:00:00Z 2026-11-01T07:00:00Z"},
		// Europe/Berlin springs forward on 2026-03-29, 02:00 CET -> 03:00 CEST.
		{name: "Berlin spring forward: 02:30 skipped", exprs: []string{"30 2 * * *"}, tz: "Europe/Berlin", after: "2026-03-27T12:00:00Z", until: "2026-03-30T12:00:00Z", max: 10,
			want: "2026-03-28T01:30:00Z 2026-03-30T00:30:00Z"},
		// 01:00 CET, 03:00 CEST, 04:00 CEST.
		{name: "Berlin spring forward: hourly stays hourly", exprs: []string{"0 * * * *"}, tz: "Europe/Berlin", after: "2026-03-28T23:30:00Z", until: "2026-03-29T02:00:00Z", max: 10,
			want: "2026-03-29T00:00:00Z 2026-03-29T01:00:00Z 2026-03-29T02:00:00Z"},
		// It falls back on 2026-10-25, 03:00 CEST -> 02:00 CET: 02:30 twice.
		{name: "Berlin fall back: 02:30 runs twice", exprs: []string{"30 2 * * *"}, tz: "Europe/Berlin", after: "2026-10-24T12:00:00Z", until: "2026-10-26T12:00:00Z", max: 10,
			want: "2026-10-25T00:30:00Z 2026-10-25T01:30:00Z 2026-10-26T01:30:00Z"},
		// 02:00 CEST, 02:00 CET, 03:00 CET.
		{name: "Berlin fall back: hourly runs the repeated hour twice", exprs: []string{"0 * * * *"}, tz: "Europe/Berlin", after: "2026-10-24T23:30:00Z", until: "2026-10-25T02:00:00Z", max: 10,
			want: "2026-10-25T00:00:00Z 2026-10-25T01:00:00Z 2026-10-25T02:00:00Z"},
		// Over a DST change the latest are still the latest.
		{name: "Berlin fall back: truncation keeps the repeated tick", exprs: []string{"30 2 * * *"}, tz: "Europe/Berlin", after: "2026-10-01T00:00:00Z", until: "2026-10-25T12:00:00Z", max: 2,
			want: "2026-10-25T00:30:00Z 2026-10-25T01:30:00Z", wantTruncated: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustParse(t, tt.exprs, tt.tz)
			after, until := utc(tt.after), utc(tt.until)
			got, truncated := s.Ticks(after, until, tt.max)
			if formatted(got) != tt.want || truncated != tt.wantTruncated {
				t.Errorf("Ticks = %s (truncated %v)\nwant    %s (truncated %v)", formatted(got), truncated, tt.want, tt.wantTruncated)
			}
			if tt.max > 0 && until.After(after) {
				brute, bruteTruncated := bruteTicks(s, after, until, tt.max)
				if formatted(got) != formatted(brute) || truncated != bruteTruncated {
					t.Errorf("Ticks = %s (truncated %v), walking every tick gives %s (truncated %v)", formatted(got), truncated, formatted(brute), bruteTruncated)
				}
			}
		})
	}
}

// The ticks come back in until's location (the instants are what count).
func TestTicksLocation(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	s := mustParse(t, []string{"0 2 * * *", "@every 1h"}, "")
	ticks, _ := s.Ticks(utc("2026-11-24T00:00:00Z"), utc("2026-11-24T03:00:00Z").In(berlin), 10)
	if len(ticks) != 3 {
		t.Fatalf("ticks %s", formatted(ticks))
	}
	for _, tick := range ticks {
		if tick.Location() != berlin {
			t.Errorf("%s is not in until's location", tick)
		}
	}
}

func TestNext(t *testing.T) {
	for _, tt := range []struct {
		exprs    []string
		tz, from string
		want     string // "" for the zero Time
	}{
		{[]string{"0 2 * * *", "30 14 * * *"}, "", "2026-11-24T02:00:00Z", "2026-11-24T14:30:00Z"}, // strictly after
		{[]string{"0 2 * * *", "30 14 * * *"}, "", "2026-11-24T01:59:59Z", "2026-11-24T02:00:00Z"},
		{[]string{"@daily"}, "Europe/Berlin", "2026-11-24T12:00:00Z", "2026-11-24T23:00:00Z"},
		{[]string{"30 2 * * *"}, "America/New_York", "2026-03-07T08:00:00Z", "2026-03-09T06:30:00Z"}, // the skipped day
		{[]string{"@every 1h"}, "", "2026-11-24T12:00:00.25Z", "2026-11-24T13:00:00Z"},
		{[]string{"0 0 30 2 *"}, "", "2026-01-01T00:00:00Z", ""}, // February 30
		{[]string{"0 0 31 4,6,9,11 *"}, "", "2026-01-01T00:00:00Z", ""},
		{[]string{"0 0 29 2 *"}, "", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"},
	} {
		s := mustParse(t, tt.exprs, tt.tz)
		got := s.Next(utc(tt.from))
		if (tt.want == "" && !got.IsZero()) || (tt.want != "" && !got.Equal(utc(tt.want))) {
			t.Errorf("%q in %q: Next(%s) = %s, want %q", tt.exprs, tt.tz, tt.from, got, tt.want)
		}
	}
	if got := (Schedule{}).Next(utc("2026-01-01T00:00:00Z")); !got.IsZero() {
		t.Errorf("the zero Schedule ticks at %s", got)
	}
}

func TestLast(t *testing.T) {
	s := mustParse(t, []string{"0 2 * * *", "30 14 * * *"}, "")
	for _, tt := range []struct {
		after, atOrBefore string
		want              string // "" for none
	}{
		{"2026-11-23T00:00:00Z", "2026-11-24T14:29:59Z", "2026-11-24T02:00:00Z"},
		{"2026-11-23T00:00:00Z", "2026-11-24T14:30:00Z", "2026-11-24T14:30:00Z"}, // atOrBefore included
		{"2026-11-24T02:00:00Z", "2026-11-24T14:00:00Z", ""},                     // after excluded
		{"2026-11-24T01:59:59Z", "2026-11-24T14:00:00Z", "2026-11-24T02:00:00Z"},
		{"2020-01-01T00:00:00Z", "2026-11-24T01:00:00Z", "2026-11-23T14:30:00Z"},
	} {
		got, ok := s.Last(utc(tt.after), utc(tt.atOrBefore))
		if ok != (tt.want != "") || (ok && !got.Equal(utc(tt.want))) {
			t.Errorf("Last(%s, %s) = %s, %v; want %q", tt.after, tt.atOrBefore, got, ok, tt.want)
		}
	}
	never := mustParse(t, []string{"0 0 30 2 *"}, "")
	if got, ok := never.Last(utc("2020-01-01T00:00:00Z"), utc("2026-12-31T00:00:00Z")); ok {
		t.Errorf("February 30 ticked at %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		exprs    []string
		tz       string
		mentions []string
	}{
		{[]string{"0 2 * *"}, "", []string{`cron schedule "0 2 * *" cannot be parsed`, "expected exactly 5 fields, found 4"}},
		{[]string{"0 0 2 * * *"}, "", []string{`"0 0 2 * * *"`, "found 6", "minute hour day-of-month month day-of-week"}}, // no seconds field
		{[]string{"0 2 * * *", "61 * * * *"}, "", []string{`cron schedule 2 of 2, "61 * * * *", cannot be parsed`, "above maximum"}},
		{[]string{"0 25 * * *"}, "Europe/Berlin", []string{`"0 25 * * *"`, "above maximum"}},
		{[]string{"@reboot"}, "", []string{`"@reboot"`, "unrecognized descriptor"}},
		{[]string{"@every fortnight"}, "", []string{`"@every fortnight"`, "failed to parse duration"}},
		{[]string{"0 2 * * *"}, "Mars/Olympus", []string{`timezone "Mars/Olympus" is not a known IANA time zone`}},
		{[]string{"CRON_TZ=Mars/Olympus 0 2 * * *"}, "", []string{`"CRON_TZ=Mars/Olympus 0 2 * * *" has an unknown time zone`}},
		{[]string{"CRON_TZ=Asia/Tokyo 0 9 * * *"}, "Europe/Berlin", []string{`"CRON_TZ=Asia/Tokyo 0 9 * * *" sets its own time zone`, `"Europe/Berlin"`, "one place"}},
		{[]string{"CRON_TZ=UTC"}, "", []string{`"CRON_TZ=UTC" has a time zone prefix but no schedule`}}, // robfig would panic
		{[]string{"TZ=UTC\t0\t*\t*\t*\t*"}, "", []string{"no schedule after it"}},                       // robfig would panic
		{[]string{"  "}, "", []string{`cron schedule "  " is empty`}},
		{nil, "", []string{"no cron schedule"}},
	} {
		s, err := Parse(tt.exprs, tt.tz)
		if err == nil {
			t.Errorf("Parse(%q, %q) succeeded", tt.exprs, tt.tz)
			continue
		}
		for _, m := range tt.mentions {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("Parse(%q, %q) = %v\nwant it to mention %s", tt.exprs, tt.tz, err, m)
			}
		}
		if len(s.parsed) != 0 || !s.Next(utc("2026-01-01T00:00:00Z")).IsZero() {
			t.Errorf("Parse(%q, %q) failed but returned a ticking Schedule", tt.exprs, tt.tz)
		}
	}
	// A zone set twice really is what Argo cannot parse.
	if _, err := cron.ParseStandard(compose("CRON_TZ=Asia/Tokyo 0 9 * * *", "Europe/Berlin")); err == nil {
		t.Error("robfig parses a doubled zone: Parse should too")
	}
}

func TestStringsAndLocation(t *testing.T) {
	exprs := []string{"0 2 * * *", "@hourly"}
	s := mustParse(t, exprs, "Europe/Berlin")
	got := s.Strings()
	got[0] = "changed"
	if strings.Join(s.Strings(), ",") != "0 2 * * *,@hourly" || s.Location().String() != "Europe/Berlin" {
		t.Errorf("Strings %q, Location %s", s.Strings(), s.Location())
	}
	exprs[1] = "changed"
	if s.Strings()[1] != "@hourly" {
		t.Error("Parse kept the caller's slice")
	}
	if loc := mustParse(t, []string{"@hourly"}, "").Location(); loc != time.UTC {
		t.Errorf("no timezone: Location %s", loc)
	}
	if loc := (Schedule{}).Location(); loc != time.UTC {
		t.Errorf("zero Schedule: Location %s", loc)
	}
}

// No zone means the controller's, which in a cluster is UTC: the host's zone
// and the zone of the times given do not matter.
func TestNoZoneIsUTC(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	saved := time.Local
	time.Local = tokyo
	t.Cleanup(func() { time.Local = saved })
	for _, c := range []struct{ expr, tz string }{{"0 9 * * *", ""}, {"0 9 * * *", "Local"}, {"CRON_TZ=Local 0 9 * * *", ""}, {"CRON_TZ=UTC 0 9 * * *", ""}} {
		s := mustParse(t, []string{c.expr}, c.tz)
		from := utc("2026-11-24T00:00:00Z").In(tokyo)
		if got := s.Next(from); !got.Equal(utc("2026-11-24T09:00:00Z")) {
			t.Errorf("%q in %q: Next = %s, want 09:00 UTC", c.expr, c.tz, got.UTC())
		}
		if last, ok := s.Last(from, from.Add(24*time.Hour)); !ok || !last.Equal(utc("2026-11-24T09:00:00Z")) {
			t.Errorf("%q in %q: Last = %s", c.expr, c.tz, last.UTC())
		}
	}
}

// Parse composes exactly what Argo's controller parses: for a spec, Parse of
// GetSchedules with the timezone builds GetSchedulesWithTimezone.
func TestParseComposesLikeArgo(t *testing.T) {
	ctx := context.Background()
	for _, spec := range []wfv1.CronWorkflowSpec{
		{Schedules: []string{"0 2 * * *", "30 14 * * 1-5"}, Timezone: "Europe/Berlin"},
		{Schedule: "0 2 * * *", Timezone: "America/New_York"}, // the deprecated field
		{Schedules: []string{"@hourly", "@every 90m"}},
		{Schedules: []string{"CRON_TZ=Asia/Tokyo 0 9 * * *"}},
		{Schedules: []string{"TZ=Asia/Tokyo 0 9 * * *", "0 9 * * *"}, Timezone: ""},
	} {
		s, err := Parse(spec.GetSchedules(ctx), spec.Timezone)
		if err != nil {
			t.Fatalf("%+v: %v", spec, err)
		}
		argos := spec.GetSchedulesWithTimezone(ctx)
		if !slices.Equal(s.specs, argos) {
			t.Errorf("Parse builds %q, Argo %q", s.specs, argos)
		}
		// And parsing Argo's composition directly ticks the same.
		direct := mustParse(t, argos, "")
		after, until := utc("2026-03-20T00:00:00Z"), utc("2026-04-05T00:00:00Z")
		a, _ := s.Ticks(after, until, 1000)
		b, _ := direct.Ticks(after, until, 1000)
		if len(a) == 0 || formatted(a) != formatted(b) {
			t.Errorf("%q: ours %s\nArgo's %s", argos, formatted(a), formatted(b))
		}
	}
}

// argoMissedTime is the loop of Argo v3.7.18's
// workflow/cron/operator.go shouldOutstandingWorkflowsBeRun for one
// schedule: from the last scheduled time, step Next while before now; the
// last one stepped over is the missed execution.
func argoMissedTime(t *testing.T, schedule string, lastScheduled, now time.Time) time.Time {
	cronSchedule, err := cron.ParseStandard(schedule)
	if err != nil {
		t.Fatal(err)
	}
	var missedExecutionTime time.Time
	nextScheduledRunTime := cronSchedule.Next(lastScheduled)
	for i := 0; nextScheduledRunTime.Before(now); i++ {
		if i > 100_000 {
			t.Fatal("runaway")
		}
		missedExecutionTime = nextScheduledRunTime
		nextScheduledRunTime = cronSchedule.Next(missedExecutionTime)
	}
	return missedExecutionTime
}

// Last(lastScheduled, now-1ns) is the missed execution Argo's controller
// computes (it looks strictly before now), across both DST changes.
func TestArgoOperatorMissedTime(t *testing.T) {
	ctx := context.Background()
	spec := wfv1.CronWorkflowSpec{Schedules: []string{"30 2 * * *", "0 * * * *"}, Timezone: "Europe/Berlin"}
	for _, window := range [][2]string{
		{"2026-03-28T00:00:00Z", "2026-03-30T06:00:00Z"},
		{"2026-10-24T00:00:00Z", "2026-10-26T06:00:00Z"},
	} {
		start, end := utc(window[0]), utc(window[1])
		for i, schedule := range spec.GetSchedules(ctx) {
			ours := mustParse(t, []string{schedule}, spec.Timezone)
			argos := spec.GetSchedulesWithTimezone(ctx)[i]
			for last := start; last.Before(end); last = last.Add(23 * time.Minute) {
				for now := last.Add(time.Minute); now.Before(end); now = now.Add(47 * time.Minute) {
					want := argoMissedTime(t, argos, last, now)
					got, ok := ours.Last(last, now.Add(-time.Nanosecond))
					if ok == want.IsZero() || (ok && !got.Equal(want)) {
						t.Fatalf("%q, last %s, now %s: Last = %s %v, Argo's operator %s", argos, last, now, got, ok, want)
					}
				}
			}
		}
	}
}

// Ticks, which looks back from until, agrees with walking every tick from
// after, over random windows around the DST changes and several schedules.
func TestTicksAgreeWithAWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	schedules := []struct {
		exprs []string
		tz    string
	}{
		{[]string{"30 2 * * *"}, "Europe/Berlin"},
		{[]string{"30 1 * * *", "0 * * * *"}, "America/New_York"},
		{[]string{"*/7 1-3 * * *"}, "Europe/Berlin"},
		{[]string{"* 2 * * *"}, "America/New_York"},
		{[]string{"0 0 * * 0", "@daily", "0 12 1 * *"}, ""},
		{[]string{"@every 37m"}, ""},
		{[]string{"* * 8 3 *", "0 0 1 1 *"}, "America/New_York"},
	}
	centres := []time.Time{utc("2026-03-08T07:00:00Z"), utc("2026-11-01T06:00:00Z"), utc("2026-03-29T01:00:00Z"), utc("2026-10-25T01:00:00Z")}
	for i := 0; i < 3000; i++ {
		sc := schedules[rng.IntN(len(schedules))]
		s := mustParse(t, sc.exprs, sc.tz)
		centre := centres[rng.IntN(len(centres))]
		after := centre.Add(-time.Duration(rng.Int64N(int64(5 * 24 * time.Hour))))
		until := centre.Add(time.Duration(rng.Int64N(int64(5 * 24 * time.Hour))))
		max := 1 + rng.IntN(20)
		got, truncated := s.Ticks(after, until, max)
		want, wantTruncated := bruteTicks(s, after, until, max)
		if formatted(got) != formatted(want) || truncated != wantTruncated {
			t.Fatalf("%q in %q, (%s, %s], max %d:\nTicks %s (truncated %v)\nwalk  %s (truncated %v)",
				sc.exprs, sc.tz, after, until, max, formatted(got), truncated, formatted(want), wantTruncated)
		}
	}
}

// counting counts the Next calls of a schedule.
type counting struct {
	cron.Schedule
	calls *int
}

func (c counting) Next(t time.Time) time.Time { *c.calls++; return c.Schedule.Next(t) }

// Ticks never walks the whole window.
func TestTicksStayBounded(t *testing.T) {
	for _, tt := range []struct {
		expr         string
		after, until string
		max          int
		maxCalls     int
	}{
		// 43,200 ticks in the window; the first look-back (10 minutes) holds 10.
		{"* * * * *", "2026-10-25T00:00:00Z", "2026-11-24T00:00:00Z", 10, 15},
		{"* * * * *", "0001-01-01T00:00:00Z", "2026-11-24T00:00:00Z", 10, 15},
		// The look-back doubles from 10 minutes to reach New Year's Day.
		{"0 0 1 1 *", "0001-01-01T00:00:00Z", "2026-11-24T00:00:00Z", 10, 60},
		// 40,320 ticks in February, none for ten months after it: the
		// doubling overshoots into the burst, and the bisection finds it.
		{"* * * 2 *", "2025-01-01T00:00:00Z", "2026-12-31T00:00:00Z", 10, 1000},
		{"* * * 2 *", "2025-01-01T00:00:00Z", "2026-12-31T00:00:00Z", 1000, 15000},
	} {
		p, err := cron.ParseStandard(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		calls := 0
		after, until := utc(tt.after), utc(tt.until)
		got, truncated := latestTicks(counting{p, &calls}, after, until, tt.max)
		if calls > tt.maxCalls || len(got) != tt.max || !truncated {
			t.Errorf("%q over (%s, %s], max %d: %d ticks (truncated %v) for %d Next calls, want %d ticks for at most %d calls",
				tt.expr, tt.after, tt.until, tt.max, len(got), truncated, calls, tt.max, tt.maxCalls)
		}
		t.Logf("%q, max %d: %d Next calls", tt.expr, tt.max, calls)
	}
	// A caller's max beyond MaxTicks is capped, and says so.
	s := mustParse(t, []string{"* * * * *"}, "")
	ticks, truncated := s.Ticks(utc("2026-01-01T00:00:00Z"), utc("2026-02-01T00:00:00Z"), 1<<40)
	if len(ticks) != MaxTicks || !truncated || !ticks[len(ticks)-1].Equal(utc("2026-02-01T00:00:00Z")) {
		t.Errorf("max 1<<40: %d ticks, truncated %v", len(ticks), truncated)
	}
	allocs := testing.AllocsPerRun(100, func() {
		s.Ticks(utc("2026-10-25T00:00:00Z"), utc("2026-11-24T00:00:00Z"), 10)
	})
	if allocs > 20 {
		t.Errorf("an every-minute month with max 10 allocates %v times", allocs)
	}
}

func BenchmarkTicksEveryMinuteOverAMonth(b *testing.B) {
	s := mustParse(b, []string{"* * * * *"}, "")
	after, until := utc("2026-10-25T00:00:00Z"), utc("2026-11-24T00:00:00Z")
	for b.Loop() {
		s.Ticks(after, until, 10)
	}
}

func BenchmarkTicksDenseBurst(b *testing.B) {
	s := mustParse(b, []string{"* * * 2 *"}, "Europe/Berlin")
	after, until := utc("2025-01-01T00:00:00Z"), utc("2026-12-31T00:00:00Z")
	for b.Loop() {
		s.Ticks(after, until, 10)
	}
}

func Example() {
	s, err := Parse([]string{"30 2 * * *"}, "Europe/Berlin")
	if err != nil {
		panic(err)
	}
	// The fall-back night: 02:30 happens twice and the job runs twice.
	ticks, truncated := s.Ticks(time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC), time.Date(2026, 10, 25, 12, 0, 0, 0, time.UTC), 10)
	for _, tick := range ticks {
		fmt.Println(tick.In(s.Location()).Format("2006-01-02 15:04 MST"))
	}
	fmt.Println("truncated:", truncated)
	// Output:
	// 2026-10-25 02:30 CEST
	// 2026-10-25 02:30 CET
	// truncated: false
}
