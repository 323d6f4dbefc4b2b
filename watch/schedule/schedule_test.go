package schedule

import (
	"context"
	"strings"
	"testing"
	"time"

	wfv1 "github.com/argoproj/argo-workflows/v3/pkg/apis/workflow/v1alpha1"
)

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func formatted(ticks []time.Time) string {
	var out []string
	for _, t := range ticks {
		out = append(out, t.UTC().Format(time.RFC3339))
	}
	return strings.Join(out, " ")
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
		{name: "several schedules merged, the same instant once", exprs: []string{"0 2 * * *", "0 */12 * * *", "0 2 * * 2"}, after: "2026-11-23T23:00:00Z", until: "2026-11-24T13:00:00Z", max: 10,
			want: "2026-11-24T00:00:00Z 2026-11-24T02:00:00Z 2026-11-24T12:00:00Z"},
		{name: "descriptors", exprs: []string{"@daily"}, after: "2026-11-23T12:00:00Z", until: "2026-11-25T12:00:00Z", max: 10,
			want: "2026-11-24T00:00:00Z 2026-11-25T00:00:00Z"},
		{name: "timezone argument, as Argo's CRON_TZ= prefix", exprs: []string{"0 2 * * *"}, tz: "Europe/Berlin", after: "2026-11-23T12:00:00Z", until: "2026-11-24T12:00:00Z", max: 10,
			want: "2026-11-24T01:00:00Z"},
		{name: "CRON_TZ in the expression", exprs: []string{"CRON_TZ=Asia/Tokyo 0 9 * * *"}, after: "2026-11-23T12:00:00Z", until: "2026-11-24T12:00:00Z", max: 10,
			want: "2026-11-24T00:00:00Z"},
		{name: "the latest kept when there are more", exprs: []string{"* * * * *"}, after: "2026-10-24T00:00:00Z", until: "2026-11-24T02:00:00Z", max: 3,
			want: "2026-11-24T01:58:00Z 2026-11-24T01:59:00Z 2026-11-24T02:00:00Z", wantTruncated: true},
		{name: "a long look-back of a rare schedule", exprs: []string{"0 0 1 1 *"}, after: "2020-06-01T00:00:00Z", until: "2026-11-24T00:00:00Z", max: 3,
			want: "2024-01-01T00:00:00Z 2025-01-01T00:00:00Z 2026-01-01T00:00:00Z", wantTruncated: true},
		{name: "an impossible date never ticks", exprs: []string{"0 0 30 2 *"}, after: "2026-01-01T00:00:00Z", until: "2026-12-31T00:00:00Z", max: 3},
		// DST, as robfig/cron (and so Argo's controller) computes it: on the
		// spring-forward day a 02:30 job does not run (02:30 does not exist)…
		{name: "DST spring forward skips a 02:30 job", exprs: []string{"30 2 * * *"}, tz: "America/New_York", after: "2026-03-06T12:00:00Z", until: "2026-03-09T12:00:00Z", max: 10,
			want: "2026-03-07T07:30:00Z 2026-03-09T06:30:00Z"},
		// …and on the fall-back day a 01:30 job runs twice, in EDT and EST.
		{name: "DST fall back runs a 01:30 job twice", exprs: []string{"30 1 * * *"}, tz: "America/New_York", after: "2026-10-31T12:00:00Z", until: "2026-11-02T12:00:00Z", max: 10,
			want: "2026-11-01T05:30:00Z 2026-11-01T06:30:00Z 2026-11-02T06:30:00Z"},
		{name: "DST: an hourly job stays hourly in UTC (spring)", exprs: []string{"0 * * * *"}, tz: "America/New_York", after: "2026-03-08T05:30:00Z", until: "2026-03-08T08:00:00Z", max: 10,
			want: "2026-03-08T06:00:00Z 2026-03-08T07:00:00Z 2026-03-08T08:00:00Z"},
		{name: "DST: an hourly job stays hourly in UTC (fall)", exprs: []string{"0 * * * *"}, tz: "Europe/Berlin", after: "2026-10-24T23:30:00Z", until: "2026-10-25T02:00:00Z", max: 10,
			want: "2026-10-25T00:00:00Z 2026-10-25T01:00:00Z 2026-10-25T02:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse(tt.exprs, tt.tz)
			if err != nil {
				t.Fatal(err)
			}
			got, truncated := s.Ticks(utc(tt.after), utc(tt.until), tt.max)
			if formatted(got) != tt.want || truncated != tt.wantTruncated {
				t.Errorf("Ticks = %s (truncated %v)\nwant   %s (truncated %v)", formatted(got), truncated, tt.want, tt.wantTruncated)
			}
		})
	}
}

func TestNextAndLast(t *testing.T) {
	s, err := Parse([]string{"0 2 * * *", "30 14 * * *"}, "")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Next(utc("2026-11-24T02:00:00Z")); !got.Equal(utc("2026-11-24T14:30:00Z")) {
		t.Errorf("Next = %s", got)
	}
	if got, ok := s.Last(utc("2026-11-23T00:00:00Z"), utc("2026-11-24T14:29:59Z")); !ok || !got.Equal(utc("2026-11-24T02:00:00Z")) {
		t.Errorf("Last = %s, %v", got, ok)
	}
	if _, ok := s.Last(utc("2026-11-24T02:00:00Z"), utc("2026-11-24T14:00:00Z")); ok {
		t.Error("Last found a tick in a window without one")
	}
	never, _ := Parse([]string{"0 0 30 2 *"}, "")
	if got := never.Next(utc("2026-01-01T00:00:00Z")); !got.IsZero() {
		t.Errorf("Next of February 30 = %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tt := range []struct {
		exprs   []string
		tz      string
		mention string
	}{
		{[]string{"0 2 * *"}, "", `"0 2 * *"`},
		{[]string{"0 2 * * *", "61 * * * *"}, "", `"61 * * * *"`},
		{[]string{"0 2 * * *"}, "Mars/Olympus", `"Mars/Olympus"`},
		{nil, "", "no schedule"},
	} {
		if _, err := Parse(tt.exprs, tt.tz); err == nil || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("Parse(%q, %q) = %v, want an error naming %s", tt.exprs, tt.tz, err, tt.mention)
		}
	}
}

// The expressions Parse builds are the ones Argo's controller parses:
// GetSchedulesWithTimezone prefixes CRON_TZ=<timezone>.
func TestParseAgreesWithArgo(t *testing.T) {
	spec := wfv1.CronWorkflowSpec{Schedules: []string{"0 2 * * *", "30 14 * * 1-5"}, Timezone: "Europe/Berlin"}
	ours, err := Parse(spec.Schedules, spec.Timezone)
	if err != nil {
		t.Fatal(err)
	}
	argos, err := Parse(spec.GetSchedulesWithTimezone(context.Background()), "")
	if err != nil {
		t.Fatal(err)
	}
	after, until := utc("2026-11-20T00:00:00Z"), utc("2026-11-30T00:00:00Z")
	a, _ := ours.Ticks(after, until, 100)
	b, _ := argos.Ticks(after, until, 100)
	if formatted(a) != formatted(b) || len(a) != 10+6 {
		t.Fatalf("ours %s\nargo's %s", formatted(a), formatted(b))
	}
	// The deprecated single schedule is read the same way.
	old := wfv1.CronWorkflowSpec{Schedule: "0 2 * * *", Timezone: "Europe/Berlin"}
	if got := old.GetSchedulesWithTimezone(context.Background()); len(got) != 1 || got[0] != "CRON_TZ=Europe/Berlin 0 2 * * *" {
		t.Fatalf("Argo composes %q", got)
	}
}

func BenchmarkTicksEveryMinuteOverAMonth(b *testing.B) {
	s, _ := Parse([]string{"* * * * *"}, "")
	after, until := utc("2026-10-24T00:00:00Z"), utc("2026-11-24T00:00:00Z")
	for b.Loop() {
		s.Ticks(after, until, 10)
	}
}
