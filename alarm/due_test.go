package alarm

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/api"
	"github.com/batchlatch/batchlatch/state"
)

// scenario drives Due minute by minute over a job's results, as the loop
// does with a fake clock, and keeps every entry with the minute it was due.
type scenario struct {
	t         *testing.T
	cfg       DueConfig // zero: shippedDue
	start     time.Time
	job       state.Job
	exists    bool
	announced Announced
	written   []timedEntry
	// annotations go on every result (a failure threshold).
	annotations map[string]string
}

type timedEntry struct {
	minute int
	entry  Entry
}

func (s *scenario) at(minute int) time.Time { return s.start.Add(time.Duration(minute) * time.Minute) }

// result applies a result received at minute, then the kick it causes.
func (s *scenario) result(minute int, uid string, phase api.Phase) {
	r := api.Result{Namespace: "ml", CronWorkflow: "nightly", WorkflowName: "nightly-" + uid, UID: uid, Phase: phase,
		CreatedAt: s.at(minute).Add(-time.Minute).Format(time.RFC3339), DurationSeconds: 60, Annotations: s.annotations}
	job, outcome := state.Apply(s.job, s.exists, r, s.at(minute))
	s.job, s.exists = job, true
	if outcome.Announces(job) {
		s.pass(minute, true)
	}
}

func (s *scenario) pass(minute int, kicked bool) {
	cfg := s.cfg
	if cfg.Interval == 0 {
		cfg = shippedDue
	}
	cfg.Kicked = kicked
	entries, next := Due([]state.Job{s.job}, s.announced, s.at(minute), cfg)
	s.announced = next
	for _, e := range entries {
		s.written = append(s.written, timedEntry{minute, e})
	}
}

// shippedDue is the loop's configuration with the defaults the shipped
// policy is built on.
var shippedDue = DueConfig{Interval: DefaultInterval, RecoveryWindow: DefaultRecoveryWindow, PolicyWindow: DefaultPolicyWindow}

// The contract the shipped policy relies on, minute by minute over a
// streak: every minute of the streak has a failing 1 entry, and its first
// minute enough of them to outweigh a window; after the success, no failing
// 1 entry, exactly one NOTICE, and failing 0 entries every minute for the
// recovery window, at least the policy's window plus the metric's lag (10
// minutes), its first minute weighted the same way.
func TestDueEntryStreamOfAStreak(t *testing.T) {
	s := &scenario{t: t, start: time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)}
	// Failures at minutes 0, 60 and 120, the success at 180; a pass every
	// minute (--interval 60s) until minute 240.
	results := map[int]api.Phase{0: api.PhaseFailed, 60: api.PhaseFailed, 120: api.PhaseFailed, 180: api.PhaseSucceeded}
	for minute := 0; minute <= 240; minute++ {
		if phase, ok := results[minute]; ok {
			s.result(minute, "run-"+string(rune('a'+minute/60)), phase)
		}
		s.pass(minute, false)
	}

	failingMinutes := map[int]int{}
	healthyMinutes := map[int]int{}
	heartbeats := map[int]int{}
	notices := 0
	for _, w := range s.written {
		switch {
		case w.entry.Payload.Heartbeat:
			heartbeats[w.minute]++
		case w.entry.Severity == SeverityError && failingValue(w.entry) == 1:
			failingMinutes[w.minute]++
		case w.entry.Severity == SeverityNotice && failingValue(w.entry) == 0:
			notices++
			if w.minute != 180 || w.entry.Payload.LastStreak == nil || w.entry.Payload.LastStreak.Failures != 3 {
				t.Errorf("NOTICE at minute %d: %+v", w.minute, w.entry.Payload)
			}
		case w.entry.Severity == SeverityInfo && failingValue(w.entry) == 0:
			healthyMinutes[w.minute]++
		default:
			t.Errorf("unexpected entry at minute %d: %+v", w.minute, w.entry)
		}
	}
	// The weight: a window's passes and two more.
	weight := int(DefaultPolicyWindow/DefaultInterval) + 2
	// Every minute of the streak has a failing 1 entry: one per pass; the
	// kick at its start writes the weight at once.
	for minute := 0; minute < 180; minute++ {
		if want := 1 + (weight * boolInt(minute == 0)); failingMinutes[minute] != want {
			t.Errorf("minute %d of the streak: %d failing entries, want %d", minute, failingMinutes[minute], want)
		}
	}
	// …none after the success, which has exactly one NOTICE…
	for minute := 180; minute <= 240; minute++ {
		if failingMinutes[minute] != 0 {
			t.Errorf("minute %d after the success: a failing entry", minute)
		}
	}
	if notices != 1 {
		t.Errorf("%d NOTICEs for one streak, want 1", notices)
	}
	// …then failing 0 every minute of the recovery window (the weight at
	// once), and nothing after it.
	if DefaultRecoveryWindow < DefaultPolicyWindow+15*time.Minute {
		t.Errorf("the recovery window %s is shorter than the policy's window plus the metric's lag", DefaultRecoveryWindow)
	}
	recoveryEnd := 180 + int(DefaultRecoveryWindow/time.Minute)
	for minute := 180; minute < recoveryEnd; minute++ {
		if want := 1 + weight*boolInt(minute == 180); healthyMinutes[minute] != want {
			t.Errorf("minute %d of the recovery window: %d failing 0 entries, want %d", minute, healthyMinutes[minute], want)
		}
	}
	for minute := recoveryEnd + 1; minute <= 240; minute++ {
		if healthyMinutes[minute] != 0 {
			t.Errorf("minute %d, after the recovery window: an entry", minute)
		}
	}
	// One heartbeat per pass, none on the kicks.
	for minute := 0; minute <= 240; minute++ {
		if heartbeats[minute] != 1 {
			t.Errorf("minute %d: %d heartbeats, want 1", minute, heartbeats[minute])
		}
	}
}

// window counts the entries with failing value v in the policy window
// that ends with minute end: minutes (end-window, end].
func (s *scenario) window(end int, v int) int {
	n := 0
	span := int(DefaultPolicyWindow / time.Minute)
	for _, w := range s.written {
		if w.minute > end-span && w.minute <= end && !w.entry.Payload.Heartbeat && failingValue(w.entry) == v {
			n++
		}
	}
	return n
}

// The weight's promise, counted on the entry stream: from the minute a
// change of state is announced, every policy window that holds the
// announcement has more entries of the new value than of the old, however
// close the previous change, and across a leader change just before.
func TestDueTransitionOutweighsTheWindow(t *testing.T) {
	type step struct {
		minute int
		phase  api.Phase // "": a new leader takes over at minute
	}
	failed, succeeded := api.PhaseFailed, api.PhaseSucceeded
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"an hourly streak", []step{{0, failed}, {60, failed}, {120, succeeded}}},
		{"fails again 5 minutes after a recovery", []step{{0, failed}, {60, succeeded}, {65, failed}, {120, succeeded}}},
		{"recovers 3 minutes after the first failure", []step{{0, failed}, {3, succeeded}, {60, failed}, {61, succeeded}}},
		{"a leader change 5 minutes before the success", []step{{0, failed}, {55, ""}, {60, succeeded}}},
		{"a leader change 2 minutes before a failure after a recovery", []step{{0, failed}, {30, succeeded}, {38, ""}, {40, failed}, {90, succeeded}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &scenario{t: t, start: time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)}
			steps := map[int]api.Phase{}
			leaders := map[int]bool{}
			for _, st := range tc.steps {
				if st.phase == "" {
					leaders[st.minute] = true
				} else {
					steps[st.minute] = st.phase
				}
			}
			var changes []int
			for minute := 0; minute <= 150; minute++ {
				if leaders[minute] {
					s.announced = Announced{}
					s.cfg = shippedDue
					s.cfg.Started = s.at(minute)
				}
				if phase, ok := steps[minute]; ok {
					wasFailing := s.exists && s.job.Failing()
					s.result(minute, fmt.Sprint(minute), phase)
					if s.job.Failing() != wasFailing {
						changes = append(changes, minute)
					}
				}
				s.pass(minute, false)
			}
			for k, c := range changes {
				newValue := failingValue(s.entryAt(c))
				last := c + int(DefaultPolicyWindow/time.Minute)
				if k+1 < len(changes) {
					last = min(last, changes[k+1]) // the next change's own windows
				}
				for end := c; end < last; end++ {
					if news, olds := s.window(end, newValue), s.window(end, 1-newValue); news <= olds {
						t.Errorf("window ending at minute %d, after the change at %d to failing %d: %d entries of the new value, %d of the old",
							end, c, newValue, news, olds)
					}
				}
			}
		})
	}
}

// entryAt is the last entry about the job written at minute.
func (s *scenario) entryAt(minute int) Entry {
	for i := len(s.written) - 1; i >= 0; i-- {
		if w := s.written[i]; w.minute == minute && !w.entry.Payload.Heartbeat {
			return w.entry
		}
	}
	s.t.Fatalf("no entry at minute %d", minute)
	return Entry{}
}

// A loop that starts (a restart, a new leader) announces again a recovery
// of the day before it started: the NOTICE (the same entry, which Cloud
// Logging shows once) and failing 0 for a recovery window from its start,
// since it cannot know whether its predecessor wrote them. An older one is
// left alone.
func TestDueReannouncesRecentRecoveriesAtStart(t *testing.T) {
	start := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	recovered := func(name string, ago time.Duration) state.Job {
		at := start.Add(-ago)
		return state.Job{Namespace: "ml", Name: name, LastPhase: api.PhaseSucceeded, RecoveredAt: &at,
			LastStreak: &api.Streak{Since: at.Add(-time.Hour), Until: at, Seconds: 3600, Failures: 2}}
	}
	jobs := []state.Job{recovered("recent", 6*time.Hour), recovered("old", 25*time.Hour)}
	cfg := shippedDue
	cfg.Started = start
	entries, announced := Due(jobs, Announced{}, start, cfg)
	perJob := map[string][]Entry{}
	for _, e := range entries {
		if !e.Payload.Heartbeat {
			perJob[e.Labels[LabelJob]] = append(perJob[e.Labels[LabelJob]], e)
		}
	}
	recent := perJob["recent"]
	if len(perJob["old"]) != 0 || len(recent) < 2 || recent[0].Severity != SeverityNotice || recent[0].InsertID != recoveryInsertID(jobs[0]) ||
		!recent[0].Time.Equal(*jobs[0].RecoveredAt) || failingValue(recent[1]) != 0 {
		t.Fatalf("entries at start: %v", perJob)
	}
	// failing 0 every pass until a recovery window after the start.
	for _, at := range []time.Duration{time.Minute, DefaultRecoveryWindow - time.Minute, DefaultRecoveryWindow} {
		cfg := cfg
		entries, _ := Due(jobs, announced, start.Add(at), cfg)
		n := 0
		for _, e := range entries {
			if e.Labels[LabelJob] == "recent" && failingValue(e) == 0 && e.Severity == SeverityInfo {
				n++
			}
		}
		if want := boolInt(at < DefaultRecoveryWindow); n != want {
			t.Errorf("%s after the start: %d failing 0 entries, want %d", at, n, want)
		}
	}
}

// Due is pure: the announcement it is given is not changed.
func TestDueDoesNotChangeItsInput(t *testing.T) {
	since := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	job := state.Job{Namespace: "ml", Name: "nightly", FailingSince: &since, ConsecutiveFailures: 1, LastPhase: api.PhaseFailed}
	before := Announced{Failing: map[state.Key]time.Time{}, Recovery: map[state.Key]time.Time{}}
	entries, after := Due([]state.Job{job}, before, since.Add(time.Minute), DueConfig{})
	if len(entries) != 2 || !entries[1].Payload.Heartbeat || len(before.Failing) != 0 || !after.Failing[job.Key()].Equal(since) {
		t.Fatalf("entries %d, before %v, after %v", len(entries), before, after)
	}
	// Kicked with the streak announced: nothing new is due.
	if entries, _ := Due([]state.Job{job}, after, since.Add(90*time.Second), DueConfig{Kicked: true}); len(entries) != 0 {
		t.Fatalf("a kick repeated the streak's entry: %+v", entries)
	}
}

// failingValue is e's failing value, -1 when it has none.
func failingValue(e Entry) int {
	if v, ok := e.Payload.FailingValue(); ok {
		return v
	}
	return -1
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// A new leader cannot know which NOTICE its predecessor wrote: it writes
// the same entry again (same timestamp, same insertId), which Cloud Logging
// shows once. Across a leader change there is still one NOTICE per streak.
func TestDueOneNoticePerStreakAcrossALeaderChange(t *testing.T) {
	s := &scenario{t: t, start: time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)}
	s.result(0, "a", api.PhaseFailed)
	s.result(60, "b", api.PhaseSucceeded) // the old leader's NOTICE, at once
	s.pass(61, false)
	s.announced = Announced{} // a new leader, from the stored state alone
	s.pass(62, false)
	s.pass(63, false)
	// A second streak and its recovery: a NOTICE of its own.
	s.result(100, "c", api.PhaseFailed)
	s.result(101, "d", api.PhaseSucceeded)

	type identity struct {
		at       time.Time
		insertID string
	}
	shown := map[identity]bool{}
	written := 0
	for _, w := range s.written {
		if w.entry.Severity != SeverityNotice {
			continue
		}
		written++
		if w.entry.InsertID == "" {
			t.Fatalf("NOTICE without an insertId: %+v", w.entry)
		}
		shown[identity{w.entry.Time, w.entry.InsertID}] = true
	}
	if written != 3 || len(shown) != 2 {
		t.Fatalf("%d NOTICEs written, %d shown; want 3 written (one again by the new leader) and 2 shown, one per streak", written, len(shown))
	}
}

// A job with a failure threshold of 2: its first failure writes nothing;
// the second starts the ERROR entries; a silence turns them into failing 0
// (the incident closes, no ERROR entry is written) until it ends, when the
// job, still failing, is announced again; the success writes its NOTICE.
func TestDueSilencesAndThresholds(t *testing.T) {
	s := &scenario{t: t, start: time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC), cfg: shippedDue,
		annotations: map[string]string{api.AnnotationFailureThreshold: "2"}}
	silence := api.Silence{ID: "0123456789abcdef", Namespace: "ml", Job: "nightly", Kind: api.KindWorkflow,
		StartsAt: s.at(90), EndsAt: s.at(150), Reason: "upstream outage"}
	results := map[int]api.Phase{0: api.PhaseFailed, 60: api.PhaseFailed, 120: api.PhaseFailed, 180: api.PhaseSucceeded}
	for minute := 0; minute <= 240; minute++ {
		s.cfg.Silences = state.InForce([]api.Silence{silence}, s.at(minute))
		if phase, ok := results[minute]; ok {
			s.result(minute, fmt.Sprintf("run-%d", minute), phase)
		}
		if minute == 90 {
			s.pass(minute, true) // the silence's creation kicks the loop
		}
		s.pass(minute, false)
	}
	weight := int(DefaultPolicyWindow/DefaultInterval) + 2
	errors, zeros, notices := map[int]int{}, map[int]int{}, 0
	for _, w := range s.written {
		switch {
		case w.entry.Payload.Heartbeat:
		case w.entry.Severity == SeverityError:
			errors[w.minute]++
		case w.entry.Severity == SeverityNotice:
			notices++
		case failingValue(w.entry) == 0:
			zeros[w.minute]++
			if w.minute >= 90 && w.minute < 150 && (w.entry.Payload.Silenced == nil || !strings.Contains(w.entry.Payload.Message, "silenced until")) {
				t.Errorf("minute %d: a failing 0 entry that does not say it is silenced: %+v", w.minute, w.entry.Payload)
			}
		}
	}
	for minute := 0; minute <= 240; minute++ {
		wantErrors, wantZeros := 0, 0
		switch {
		case minute < 60: // below the threshold: nothing
		case minute < 90:
			wantErrors = 1 + weight*boolInt(minute == 60)
		case minute < 150:
			wantZeros = 1 + weight*boolInt(minute == 90)
		case minute < 180:
			// The silence ended and the job still fails: announced again
			// at the next pass (nothing kicks the loop when a silence ends).
			wantErrors = 1 + (weight-1)*boolInt(minute == 150)
		case minute < 180+int(DefaultRecoveryWindow/time.Minute):
			wantZeros = 1 + weight*boolInt(minute == 180)
		}
		if errors[minute] != wantErrors || zeros[minute] != wantZeros {
			t.Errorf("minute %d: %d ERROR and %d failing 0 entries, want %d and %d", minute, errors[minute], zeros[minute], wantErrors, wantZeros)
		}
	}
	if notices != 1 {
		t.Errorf("%d NOTICEs, want 1", notices)
	}
}

// A streak that never reached its threshold ends without a NOTICE: it was
// never announced.
func TestDueStreakBelowThresholdIsNeverAnnounced(t *testing.T) {
	s := &scenario{t: t, start: time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC), cfg: shippedDue,
		annotations: map[string]string{api.AnnotationFailureThreshold: "3"}}
	results := map[int]api.Phase{0: api.PhaseFailed, 60: api.PhaseFailed, 120: api.PhaseSucceeded}
	for minute := 0; minute <= 200; minute++ {
		if phase, ok := results[minute]; ok {
			s.result(minute, fmt.Sprintf("run-%d", minute), phase)
		}
		s.pass(minute, false)
	}
	for _, w := range s.written {
		if !w.entry.Payload.Heartbeat {
			t.Fatalf("minute %d: %s %q", w.minute, w.entry.Severity, w.entry.Payload.Message)
		}
	}
}

// Whether a streak's end is news depends on the threshold the streak had,
// not on the one its success carries: a success sent without the
// annotation writes no NOTICE for a streak that never alerted, and one
// sent with a higher threshold still closes a streak that did.
func TestDueRecoveryFollowsTheStreaksOwnThreshold(t *testing.T) {
	for _, tt := range []struct {
		name                     string
		failing, succeeding      map[string]string
		failures, notices, zeros int
	}{
		{"below its threshold, a success without the annotation", map[string]string{api.AnnotationFailureThreshold: "3"}, nil, 2, 0, 0},
		{"alerting, a success with a higher threshold", nil, map[string]string{api.AnnotationFailureThreshold: "5"}, 2, 1, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := &scenario{t: t, start: time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC), cfg: shippedDue}
			minute := 0
			for i := range tt.failures {
				s.annotations = tt.failing
				s.result(minute, fmt.Sprintf("run-%d", i), api.PhaseFailed)
				s.pass(minute, false)
				minute += 60
			}
			s.written = nil
			s.annotations = tt.succeeding
			s.result(minute, "ok", api.PhaseSucceeded)
			for m := minute; m <= minute+60; m++ {
				s.pass(m, false)
			}
			notices, zeros := 0, 0
			for _, w := range s.written {
				switch {
				case w.entry.Severity == SeverityNotice:
					notices++
				case !w.entry.Payload.Heartbeat && w.entry.Payload.Failing != nil && *w.entry.Payload.Failing == 0:
					zeros++
				}
			}
			if notices != tt.notices || (zeros > 0) != (tt.zeros > 0) {
				t.Errorf("%d NOTICEs and %d entries with failing 0, want %d NOTICEs and entries: %v", notices, zeros, tt.notices, tt.zeros > 0)
			}
		})
	}
}

// A job whose stored value cannot be read keeps alerting from the last
// readable copy the store lists, pass after pass, so that its incident stays
// open; one of which no copy is known writes nothing (nothing is known of it).
func TestDueUnreadableJobKeepsAlerting(t *testing.T) {
	start := time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)
	fromCopy := failingJob("nightly", 2)
	fromCopy.Unreadable = "stored job is unreadable: key ml.nightly: invalid character"
	identityOnly := state.Job{Namespace: "ml", Name: "lost", Unreadable: "stored job is unreadable: key ml.lost: unexpected end of JSON input"}
	jobs := []state.Job{identityOnly, fromCopy}
	announced := Announced{}
	for pass := range 3 {
		var entries []Entry
		entries, announced = Due(jobs, announced, start.Add(time.Duration(pass)*time.Minute), shippedDue)
		errors := 0
		for _, e := range entries {
			switch {
			case e.Payload.Heartbeat:
			case e.Severity == SeverityError && e.Labels[LabelJob] == "nightly":
				errors++
			default:
				t.Errorf("pass %d: unexpected %s entry for %s", pass, e.Severity, e.Labels[LabelJob])
			}
		}
		if errors == 0 {
			t.Fatalf("pass %d: no ERROR entry for the unreadable job's last readable copy", pass)
		}
	}
}

// A job forgotten while alerting gets a recovery's closing from the state:
// one NOTICE saying it was forgotten and why, the transition's weight of
// failing 0 entries, then one every pass through the recovery window, and
// never an ERROR entry after; a restart in the middle writes it again for
// a whole window; once closed it is purgeable. A failure after that starts
// a streak of its own.
func TestDueForgottenJobClosesAsARecovery(t *testing.T) {
	s := &scenario{t: t, start: time.Date(2026, 11, 24, 2, 0, 0, 0, time.UTC)}
	s.result(0, "a", api.PhaseFailed)
	for m := 0; m < 30; m++ {
		s.pass(m, false)
	}
	forgotten, keep, err := state.ForgetAt(s.at(30), "its CronWorkflow has been gone for more than 10m0s")(s.job)
	if err != nil || !keep {
		t.Fatal(keep, err)
	}
	s.job = forgotten
	s.pass(30, true)
	const restartAt = 45
	window := int(DefaultRecoveryWindow / time.Minute)
	for m := 31; m < restartAt+window+5; m++ {
		if m == restartAt {
			s.announced, s.cfg = Announced{}, shippedDue
			s.cfg.Started = s.at(m).Add(-time.Second)
		}
		s.pass(m, false)
		cfg := s.cfg
		if cfg.Interval == 0 {
			cfg = shippedDue
		}
		purgeable := len(Purgeable([]state.Job{s.job}, s.at(m), cfg)) == 1
		if closed := m >= restartAt+window; purgeable != closed {
			t.Errorf("minute %d: purgeable %v, want %v", m, purgeable, closed)
		}
	}
	perMinute := map[int][]Entry{}
	for _, w := range s.written {
		if !w.entry.Payload.Heartbeat && w.minute >= 30 {
			perMinute[w.minute] = append(perMinute[w.minute], w.entry)
		}
	}
	// The forgetting, at minute 30, and the restart, at 45: a NOTICE and
	// the weight of failing 0 each.
	for m, cfg := range map[int]DueConfig{30: shippedDue, restartAt: s.cfg} {
		got := perMinute[m]
		weight := cfg.TransitionWeight(s.at(m), s.job.LastStreak.Since, m == restartAt)
		if len(got) != 1+weight || got[0].Severity != SeverityNotice || got[0].InsertID != recoveryInsertID(s.job) ||
			!strings.Contains(got[0].Payload.Message, "ml/nightly forgotten: its CronWorkflow has been gone for more than 10m0s (it was failing: 1 failed run(s)") {
			t.Fatalf("minute %d: %d entries, want 1+%d, the first a NOTICE: %+v", m, len(got), weight, got)
		}
	}
	for m := 30; m < restartAt+window+5; m++ {
		for _, e := range perMinute[m] {
			if failingValue(e) != 0 || e.Severity == SeverityError {
				t.Fatalf("minute %d: %+v", m, e)
			}
		}
		if m != 30 && m != restartAt && len(perMinute[m]) != boolInt(m < restartAt+window) {
			t.Errorf("minute %d: %d entries, want %d", m, len(perMinute[m]), boolInt(m < restartAt+window))
		}
	}

	// The job comes back: its own streak, announced with a weight.
	back := restartAt + window + 10
	s.result(back, "b", api.PhaseFailed)
	if s.job.Forgotten() || s.job.ConsecutiveFailures != 1 || !s.job.FailingSince.Equal(s.at(back)) {
		t.Fatalf("the job back: %+v", s.job)
	}
	if e := s.entryAt(back); e.Severity != SeverityError || failingValue(e) != 1 {
		t.Fatalf("after the job came back: %+v", e)
	}
}
