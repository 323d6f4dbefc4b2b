package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"sigs.k8s.io/yaml"

	"github.com/batchlatch/batchlatch/api"
	batchlatchcli "github.com/batchlatch/batchlatch/internal/cli"
)

// The client's exit codes and error, as these tests name them.
const (
	exitFailing = batchlatchcli.ExitFailing
	exitTrouble = batchlatchcli.ExitTrouble
)

type exitError = batchlatchcli.ExitError

// osUser is who runs the tests, whom the silences they create name.
func osUser() string {
	u, err := user.Current()
	if err != nil {
		return ""
	}
	return u.Username
}

// cliResult is what one client command printed and its exit code.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cliServer is a running server and the environment that points the
// client at it with its token.
type cliServer struct {
	*instance
	env map[string]string
}

func startCLIServer(t *testing.T) cliServer {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	svc := start(t, map[string]string{"BATCHLATCH_TOKEN_FILE": tokenFile}, "--state-file", filepath.Join(dir, "state.json"))
	return cliServer{svc, map[string]string{"BATCHLATCH_SERVER": svc.url, "BATCHLATCH_TOKEN_FILE": tokenFile}}
}

// cli runs `batchlatch args…` as main would, with env as the whole
// environment.
func cli(t *testing.T, env map[string]string, args ...string) cliResult {
	t.Helper()
	var stdout, stderr strings.Builder
	err := run(t.Context(), append([]string{"batchlatch"}, args...), func(k string) string { return env[k] }, &stdout, &stderr)
	r := cliResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit exitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.Code
	case err != nil:
		t.Fatalf("%v: run returned %v, not an exit code", args, err)
	}
	return r
}

func (s cliServer) cli(t *testing.T, args ...string) cliResult {
	t.Helper()
	return cli(t, s.env, args...)
}

// must runs a command that is to succeed with exit code 0.
func (s cliServer) must(t *testing.T, args ...string) string {
	t.Helper()
	r := s.cli(t, args...)
	if r.code != 0 {
		t.Fatalf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// result posts a callback body, which must be taken.
func (s cliServer) result(t *testing.T, body string) {
	t.Helper()
	if code, data := s.post("s3cret", body); code != 200 {
		t.Fatalf("post %s: %d %s", body, code, data)
	}
}

// failedRun is a callback of a failed run whose first failed node said
// message, of a job with the failure threshold given (0: none).
func failedRun(namespace, cron, uid string, created time.Time, message string, threshold int) string {
	annotations := "{}"
	if threshold > 0 {
		annotations = fmt.Sprintf(`{%q:"%d"}`, api.AnnotationFailureThreshold, threshold)
	}
	return fmt.Sprintf(`{"namespace":%q,"workflowName":"%s-%d","uid":%q,"cronWorkflow":%q,"phase":"Failed","createdAt":%q,
		"failures":[{"displayName":"train","message":%q}],"annotations":%s}`,
		namespace, cron, created.Unix(), uid, cron, created.UTC().Format(time.RFC3339), message, annotations)
}

// table reads an aligned table: each row's cells cut at the columns where
// the header's names start, checking that every cell starts right there.
func table(t *testing.T, out string) (header []string, rows []map[string]string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	// Column names are upper case and may hold one space ("FAILED RUNS").
	var starts []int
	for _, m := range regexp.MustCompile(`[A-Z]+( [A-Z]+)?`).FindAllStringIndex(lines[0], -1) {
		starts = append(starts, m[0])
		header = append(header, lines[0][m[0]:m[1]])
	}
	for _, text := range lines[1:] {
		line := []rune(text) // tabwriter aligns runes (a cut cell ends in "…")
		row := map[string]string{}
		for i, start := range starts {
			if len(line) <= start || line[start] == ' ' || (start > 0 && line[start-1] != ' ') {
				t.Fatalf("column %s is not aligned in %q:\n%s", header[i], text, out)
			}
			end := len(line)
			if i+1 < len(starts) {
				end = starts[i+1]
			}
			row[header[i]] = strings.TrimSpace(string(line[start:end]))
		}
		rows = append(rows, row)
	}
	return header, rows
}

// rowOf finds the row of namespace/job.
func rowOf(t *testing.T, rows []map[string]string, namespace, job string) map[string]string {
	t.Helper()
	for _, r := range rows {
		if r["NAMESPACE"] == namespace && r["JOB"] == job {
			return r
		}
	}
	t.Fatalf("no row for %s/%s in %v", namespace, job, rows)
	return nil
}

func TestCLIJobsAndFailuresAsTablesJSONAndYAML(t *testing.T) {
	s := startCLIServer(t)
	t0 := time.Now().Add(-3 * time.Hour).Truncate(time.Second)
	s.result(t, failedRun("ml", "nightly", "n1", t0, "OOMKilled", 0))
	s.result(t, failedRun("ml", "nightly", "n2", t0.Add(time.Hour), "OOMKilled\tagain", 0))
	s.result(t, failedRun("ml", "weekly", "w1", t0, "disk full", 3))
	s.result(t, callback("etl", "load", "l1", "Succeeded", t0))
	s.result(t, fmt.Sprintf(`{"namespace":"ops","workflowName":"backup-1","uid":"b1","cronJob":"backup","phase":"Failed","createdAt":%q}`, t0.UTC().Format(time.RFC3339)))

	header, rows := table(t, s.must(t, "jobs"))
	if got := strings.Join(header, "|"); got != "NAMESPACE|JOB|KIND|STATUS|FAILED RUNS|SINCE|LAST RUN" {
		t.Fatalf("header %s", got)
	}
	if len(rows) != 4 {
		t.Fatalf("rows %v", rows)
	}
	nightly := rowOf(t, rows, "ml", "nightly")
	if nightly["KIND"] != "Workflow" || nightly["STATUS"] != "Failing" || nightly["FAILED RUNS"] != "2" || !strings.HasPrefix(nightly["SINCE"], "3h") || nightly["LAST RUN"] == "-" {
		t.Errorf("ml/nightly: %v", nightly)
	}
	if weekly := rowOf(t, rows, "ml", "weekly"); weekly["STATUS"] != "Failing (1 of 3)" || weekly["FAILED RUNS"] != "1" {
		t.Errorf("below its threshold: %v", weekly)
	}
	if load := rowOf(t, rows, "etl", "load"); load["STATUS"] != "OK" || load["FAILED RUNS"] != "0" || load["SINCE"] != "-" {
		t.Errorf("healthy: %v", load)
	}
	if backup := rowOf(t, rows, "ops", "backup"); backup["KIND"] != "CronJob" || backup["STATUS"] != "Failing" {
		t.Errorf("a CronJob: %v", backup)
	}
	if _, rows := table(t, s.must(t, "jobs", "ml")); len(rows) != 2 {
		t.Errorf("jobs ml: %v", rows)
	}

	header, rows = table(t, s.must(t, "jobs", "-o", "wide"))
	if got := strings.Join(header[7:], "|"); got != "LAST PHASE|MESSAGE|NEXT TICK|SILENCED UNTIL" {
		t.Fatalf("wide header %v", header)
	}
	// A tab in a message must not break the columns.
	if nightly := rowOf(t, rows, "ml", "nightly"); nightly["MESSAGE"] != "train: OOMKilled again" || nightly["LAST PHASE"] != "Failed" || nightly["SILENCED UNTIL"] != "-" {
		t.Errorf("wide: %v", nightly)
	}

	r := s.cli(t, "failures", "-o", "json")
	var failures api.FailureList
	if err := json.Unmarshal([]byte(r.stdout), &failures); err != nil || r.code != exitFailing {
		t.Fatalf("failures -o json: exit %d, %v\n%s", r.code, err, r.stdout)
	}
	if len(failures.Failures) != 3 || failures.Failures[0].ConsecutiveFailures == 0 {
		t.Fatalf("failures: %+v", failures)
	}
	r = s.cli(t, "failures", "ml", "-o", "yaml")
	failures = api.FailureList{}
	if err := yaml.Unmarshal([]byte(r.stdout), &failures); err != nil || len(failures.Failures) != 2 || r.code != exitFailing {
		t.Fatalf("failures ml -o yaml: exit %d, %v, %+v\n%s", r.code, err, failures, r.stdout)
	}

	var jobs api.JobList
	if err := json.Unmarshal([]byte(s.must(t, "jobs", "-o", "json")), &jobs); err != nil || len(jobs.Jobs) != 4 {
		t.Fatalf("jobs -o json: %v %+v", err, jobs)
	}
	var job api.Job
	if err := json.Unmarshal([]byte(s.must(t, "get", "cronjob/ops/backup", "-o", "json")), &job); err != nil || job.Kind != api.KindCronJob || job.Job != "backup" {
		t.Fatalf("get cronjob/ops/backup: %v %+v", err, job)
	}
	// Without the prefix the name is a Workflow's: none of that name.
	if r := s.cli(t, "get", "ops/backup"); r.code != exitTrouble || !strings.Contains(r.stderr, "job not found") {
		t.Errorf("get ops/backup: %+v", r)
	}
	if _, rows := table(t, strings.Split(s.must(t, "get", "ml/nightly"), "\n\n")[0]); len(rows) != 1 || rows[0]["JOB"] != "nightly" {
		t.Errorf("get ml/nightly: %v", rows)
	}
}

// TestCLIGetShowsTheRunsAndWhatIsUsual: `get` shows the job's row, then
// what it usually does and its last runs, newest first, each with its
// outcome, source, tick, end and duration; a job with too few runs says
// what is missing.
func TestCLIGetShowsTheRunsAndWhatIsUsual(t *testing.T) {
	s := startCLIServer(t)
	t0 := time.Now().Add(-24 * time.Hour).Truncate(time.Hour).UTC()
	run := func(i int, phase string, seconds int) {
		tick := t0.Add(time.Duration(i) * time.Hour)
		s.result(t, fmt.Sprintf(`{"namespace":"ml","workflowName":"nightly-%d","uid":"n%d","cronWorkflow":"nightly","phase":%q,"createdAt":%q,"scheduledTime":%q,"durationSeconds":%d}`,
			tick.Unix(), i, phase, tick.Format(time.RFC3339), tick.Format(time.RFC3339), seconds))
	}
	for i := range 6 {
		run(i, "Succeeded", 600+60*i) // 10m to 15m
	}
	run(6, "Failed", 3000)
	s.result(t, callback("ml", "weekly", "w1", "Succeeded", t0))

	sections := strings.Split(strings.TrimSuffix(s.must(t, "get", "ml/nightly"), "\n"), "\n\n")
	if len(sections) != 3 {
		t.Fatalf("get ml/nightly: %d sections, want the job, what is usual, the runs:\n%s", len(sections), strings.Join(sections, "\n\n"))
	}
	if _, rows := table(t, sections[0]); len(rows) != 1 || rows[0]["JOB"] != "nightly" || rows[0]["STATUS"] != "Failing" {
		t.Errorf("the job: %v", rows)
	}
	// The last result ended 50 minutes after its tick, 6 hours after the
	// first; an hourly job is late twice its interval and the missed grace
	// (10m) later, which is long past: it shows, though it did not ask.
	silent := t0.Add(6*time.Hour + 50*time.Minute)
	usual := regexp.MustCompile(`^Usual duration: +12m median, 15m p90 \(of 6 successful runs\)\nUsual interval: +1h\n` +
		`Expected every: +1h, its usual interval \(not asked: shown only\)\n` +
		`Late: +since ` + regexp.QuoteMeta(silent.Add(2*time.Hour+10*time.Minute).Format(time.RFC3339)) + `, no result since ` + regexp.QuoteMeta(silent.Format(time.RFC3339)) + `$`)
	if !usual.MatchString(sections[1]) {
		t.Errorf("what is usual:\n%s", sections[1])
	}
	header, rows := table(t, sections[2])
	if got := strings.Join(header, "|"); got != "FINISHED|PHASE|SOURCE|SCHEDULED|DURATION" {
		t.Fatalf("runs header %s", got)
	}
	if len(rows) != 7 {
		t.Fatalf("runs: %v", rows)
	}
	for i, r := range rows {
		n := 6 - i // newest first
		tick := t0.Add(time.Duration(n) * time.Hour)
		took := time.Duration(600+60*n) * time.Second
		want := map[string]string{"PHASE": "Succeeded", "SOURCE": "callback", "SCHEDULED": tick.Format(time.RFC3339), "DURATION": api.FormatDuration(took),
			"FINISHED": tick.Add(took).Format(time.RFC3339)}
		if n == 6 {
			want["PHASE"], want["DURATION"], want["FINISHED"] = "Failed", "50m", tick.Add(50*time.Minute).Format(time.RFC3339)
		}
		for k, v := range want {
			if r[k] != v {
				t.Errorf("run %d: %s %q, want %q (%v)", i, k, r[k], v, r)
			}
		}
	}
	var detail api.JobDetail
	if err := json.Unmarshal([]byte(s.must(t, "get", "ml/nightly", "-o", "json")), &detail); err != nil || len(detail.Runs) != 7 || detail.Usual == nil || *detail.Usual.P90Seconds != 900 {
		t.Errorf("get -o json: %v %+v", err, detail)
	}

	// One run: nothing usual yet, and why.
	sections = strings.Split(strings.TrimSuffix(s.must(t, "get", "ml/weekly", "-o", "wide"), "\n"), "\n\n")
	if len(sections) != 3 || !regexp.MustCompile(`^Usual duration: +-\nUsual interval: +-\nNote: +the usual duration needs 5 successful runs of known duration, 1 known; the usual interval needs 5 runs, 1 known$`).MatchString(sections[1]) {
		t.Fatalf("get ml/weekly:\n%s", strings.Join(sections, "\n\n"))
	}
	if _, rows := table(t, sections[2]); len(rows) != 1 || rows[0]["DURATION"] != "13s" || rows[0]["SCHEDULED"] != "-" {
		t.Errorf("weekly's run: %v", rows)
	}
}

func TestCLIFailuresExitCodeGatesAScript(t *testing.T) {
	s := startCLIServer(t)
	r := s.cli(t, "failures")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "No failing jobs.") {
		t.Fatalf("nothing recorded: %+v", r)
	}
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	s.result(t, callback("etl", "load", "l1", "Succeeded", t0))
	if r := s.cli(t, "failures"); r.code != 0 {
		t.Fatalf("all healthy: %+v", r)
	}

	s.result(t, failedRun("ml", "nightly", "n1", t0, "OOMKilled", 0))
	r = s.cli(t, "failures")
	if r.code != exitFailing || !strings.Contains(r.stdout, "nightly") || r.stderr != "" {
		t.Fatalf("ml/nightly failing: %+v", r)
	}
	// Another namespace's failure does not fail a namespace's gate.
	if r := s.cli(t, "failures", "etl"); r.code != 0 {
		t.Fatalf("failures etl: %+v", r)
	}

	s.result(t, callback("ml", "nightly", "n2", "Succeeded", t0.Add(time.Minute)))
	if r := s.cli(t, "failures"); r.code != 0 || r.stdout != "" {
		t.Fatalf("recovered: %+v", r)
	}
}

func TestCLIErrorsGoToStderrWithTheServersMessage(t *testing.T) {
	s := startCLIServer(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	s.result(t, failedRun("ml", "nightly", "n1", t0, "OOMKilled", 0))

	for _, tt := range []struct {
		args []string
		env  map[string]string // over the server's
		want string
	}{
		{[]string{"get", "ml/missing"}, nil, "error: job not found: no Workflow ml/missing\n"},
		{[]string{"get", "ml/Bad_Name"}, nil, "error: {job}: "},
		{[]string{"jobs", "Bad_NS"}, nil, "error: {namespace}: "},
		{[]string{"forget", "ml/nightly"}, map[string]string{"BATCHLATCH_TOKEN": "wrong"}, "error: Authorization: missing or wrong bearer token"},
		{[]string{"forget", "ml/nightly"}, map[string]string{"BATCHLATCH_TOKEN_FILE": ""}, "missing or wrong bearer token"},
		{[]string{"silence", "ml/nightly", "--for", "2h", "--until", "2030-01-01T00:00:00Z", "--reason", "x"}, nil, "not both"},
		{[]string{"silence", "ml/nightly", "--for", "soon", "--reason", "x"}, nil, "error: for: "},
		{[]string{"silence", "ml/nightly", "--for", "2h"}, nil, "--reason is required"},
		{[]string{"jobs"}, map[string]string{"BATCHLATCH_SERVER": "http://127.0.0.1:1"}, "cannot reach the server at http://127.0.0.1:1"},
		{[]string{"get"}, nil, "error: usage: batchlatch get JOB"},
		{[]string{"get", "ml"}, nil, "name a job as NAMESPACE/NAME"},
		{[]string{"get", "deployment/ml/x"}, nil, "not a kind of job"},
		{[]string{"jobs", "-o", "xml"}, nil, "-o xml"},
		{[]string{"jobs", "--no-such-flag"}, nil, "unknown flag: --no-such-flag"},
		{[]string{"failurs"}, nil, `unknown command "failurs"`},
	} {
		env := map[string]string{}
		for k, v := range s.env {
			env[k] = v
		}
		for k, v := range tt.env {
			env[k] = v
		}
		r := cli(t, env, tt.args...)
		if r.code != exitTrouble || r.stdout != "" || !strings.HasPrefix(r.stderr, "error: ") || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit 2 and %q on stderr", tt.args, r.code, r.stdout, r.stderr, tt.want)
		}
	}
	// Nothing of that changed the job.
	if _, rows := table(t, s.must(t, "jobs")); len(rows) != 1 {
		t.Fatalf("jobs: %v", rows)
	}
}

func TestCLIForgetDeletesTheJob(t *testing.T) {
	s := startCLIServer(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	s.result(t, failedRun("ml", "nightly", "n1", t0, "OOMKilled", 0))
	s.result(t, callback("ml", "weekly", "w1", "Succeeded", t0))

	if out := s.must(t, "forget", "ml/nightly"); out != "job ml/nightly forgotten\n" {
		t.Fatalf("forget: %q", out)
	}
	if r := s.cli(t, "get", "ml/nightly"); r.code != exitTrouble || !strings.Contains(r.stderr, "job not found") {
		t.Fatalf("get after forget: %+v", r)
	}
	if _, rows := table(t, s.must(t, "jobs")); len(rows) != 1 || rows[0]["JOB"] != "weekly" {
		t.Fatalf("jobs after forget: %v", rows)
	}
	if r := s.cli(t, "forget", "ml/nightly"); r.code != exitTrouble || !strings.Contains(r.stderr, "job not found") {
		t.Fatalf("forget twice: %+v", r)
	}
}

// A silence mutes its job until it ends. What the commands show while it is
// in force is only known if they ran before it ended: when a busy machine
// took longer than the silence, the test runs again with one twice as long.
func TestCLISilenceMutesUntilItEnds(t *testing.T) {
	for d := time.Second; !silenceMutesUntilItEnds(t, d); d *= 2 {
		if d >= 32*time.Second {
			t.Fatalf("the commands took longer than a %s silence", d)
		}
		t.Logf("the commands took longer than a %s silence: again with %s", d, 2*d)
	}
}

// silenceMutesUntilItEnds checks a silence of d; false when the checks of
// what it shows while in force may have run after it ended.
func silenceMutesUntilItEnds(t *testing.T, d time.Duration) bool {
	s := startCLIServer(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	s.result(t, failedRun("ml", "nightly", "n1", t0, "OOMKilled", 0))
	s.result(t, callback("ml", "weekly", "w1", "Succeeded", t0))

	silenced := time.Now()
	r := s.cli(t, "silence", "ml/nightly", "--for", d.String(), "--reason", "test")
	m := regexp.MustCompile(`^silence [0-9a-f]{16}: ml/nightly silenced until (\S+Z)\n$`).FindStringSubmatch(r.stdout)
	if m == nil || r.code != 0 || r.stderr != "" {
		t.Fatalf("silence: %+v", r)
	}
	// The server ends a silence on a whole second, so it may end up to a
	// second before silenced+d: what counts is the end it answered.
	until, err := time.Parse(time.RFC3339, m[1])
	if err != nil {
		t.Fatalf("silence's end %q: %v", m[1], err)
	}
	// A name batchlatch has never seen is silenced, with a warning.
	r = s.cli(t, "silence", "ml/nightlly", "--for", d.String(), "--reason", "typo")
	if r.code != 0 || !strings.Contains(r.stdout, "ml/nightlly silenced until") ||
		!strings.HasPrefix(r.stderr, `Warning: batchlatch has never seen job "nightlly" (Workflow) of namespace "ml"`) || strings.Count(r.stderr, "\n") != 1 {
		t.Fatalf("silence of a job never seen: %+v", r)
	}
	_, rows := table(t, s.must(t, "jobs", "-o", "wide"))
	// A silenced failure does not fail the gate; it is still listed.
	failures := s.cli(t, "failures")
	var silences api.SilenceList
	silencesErr := json.Unmarshal([]byte(s.must(t, "silences", "-o", "json")), &silences)
	if !time.Now().Before(until) {
		return false
	}
	if nightly := rowOf(t, rows, "ml", "nightly"); nightly["STATUS"] != "Silenced" || nightly["SILENCED UNTIL"] == "-" {
		t.Fatalf("silenced: %v", nightly)
	}
	if weekly := rowOf(t, rows, "ml", "weekly"); weekly["STATUS"] != "OK" {
		t.Fatalf("another job of the namespace: %v", weekly)
	}
	if failures.code != 0 || !strings.Contains(failures.stdout, "Silenced") {
		t.Fatalf("failures while silenced: %+v", failures)
	}
	if silencesErr != nil || len(silences.Silences) != 2 {
		t.Fatalf("silences: %v %+v", silencesErr, silences)
	}
	if i := slices.IndexFunc(silences.Silences, func(s api.Silence) bool { return s.Job == "nightly" }); i < 0 ||
		silences.Silences[i].Reason != "test" || silences.Silences[i].CreatedBy != osUser() {
		t.Fatalf("silences: %+v", silences)
	}

	deadline := silenced.Add(d + patience)
	for {
		_, rows = table(t, s.must(t, "jobs"))
		if rowOf(t, rows, "ml", "nightly")["STATUS"] == "Failing" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still silenced %s after a %s silence: %v", time.Since(silenced).Round(time.Second), d, rows)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if r := s.cli(t, "failures"); r.code != exitFailing {
		t.Fatalf("failures after the silence: %+v", r)
	}
	if r := s.cli(t, "silences"); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "No silences in force.") {
		t.Fatalf("silences after it ended: %+v", r)
	}
	return true
}

func TestCLIUnsilenceEndsExactlyItsTarget(t *testing.T) {
	s := startCLIServer(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	s.result(t, failedRun("ml", "nightly", "n1", t0, "OOMKilled", 0))
	s.result(t, callback("ml", "weekly", "w1", "Succeeded", t0))

	// Days, as people say it.
	before := time.Now()
	var whole api.Silence
	if err := json.Unmarshal([]byte(s.must(t, "silence", "ml", "--for", "1d", "--reason", "maintenance", "-o", "json")), &whole); err != nil ||
		whole.EndsAt.Before(before.Add(24*time.Hour).Truncate(time.Second)) || whole.EndsAt.After(time.Now().Add(24*time.Hour)) {
		t.Fatalf("silence ml --for 1d: %v, ends %s", err, whole.EndsAt)
	}
	var created api.Silence
	out := s.must(t, "silence", "ml/nightly", "--until", time.Now().Add(48*time.Hour).UTC().Format(time.RFC3339), "--reason", "known", "-o", "json")
	if err := json.Unmarshal([]byte(out), &created); err != nil || created.Job != "nightly" || created.ID == "" {
		t.Fatalf("silence -o json: %v %q", err, out)
	}
	_, rows := table(t, s.must(t, "silences"))
	if len(rows) != 2 || rows[0]["TARGET"] != "ml/*" || rows[1]["TARGET"] != "ml/nightly" || rows[1]["REASON"] != "known" {
		t.Fatalf("silences: %v", rows)
	}
	_, rows = table(t, s.must(t, "jobs"))
	if rowOf(t, rows, "ml", "weekly")["STATUS"] != "Silenced" {
		t.Fatalf("a namespace's silence: %v", rows)
	}

	// The namespace's silence ends; the job's own stays.
	if out := s.must(t, "unsilence", "ml"); !strings.Contains(out, "(ml/*)") || strings.Count(out, "\n") != 1 {
		t.Fatalf("unsilence ml: %q", out)
	}
	_, rows = table(t, s.must(t, "jobs"))
	if rowOf(t, rows, "ml", "weekly")["STATUS"] != "OK" || rowOf(t, rows, "ml", "nightly")["STATUS"] != "Silenced" {
		t.Fatalf("after unsilence ml: %v", rows)
	}
	if r := s.cli(t, "unsilence", "ml"); r.code != exitTrouble || !strings.Contains(r.stderr, "no silence in force on ml") {
		t.Fatalf("unsilence ml again: %+v", r)
	}
	// A CronJob of the same name is another job.
	if r := s.cli(t, "unsilence", "cronjob/ml/nightly"); r.code != exitTrouble {
		t.Fatalf("unsilence cronjob/ml/nightly: %+v", r)
	}

	// The ID `batchlatch silences` prints ends that silence.
	var weekly api.Silence
	if err := json.Unmarshal([]byte(s.must(t, "silence", "ml/weekly", "--for", "1h", "--reason", "x", "-o", "json")), &weekly); err != nil {
		t.Fatal(err)
	}
	_, rows = table(t, s.must(t, "silences"))
	if len(rows) != 2 || rows[0]["TARGET"] != "ml/weekly" {
		t.Fatalf("silences: %v", rows)
	}
	if out := s.must(t, "unsilence", rows[0]["ID"]); out != "silence "+weekly.ID+" ended (ml/weekly)\n" {
		t.Fatalf("unsilence ID: %q", out)
	}
	if r := s.cli(t, "unsilence", weekly.ID); r.code != exitTrouble || !strings.Contains(r.stderr, "no silence in force on "+weekly.ID) {
		t.Fatalf("unsilence ID again: %+v", r)
	}

	var silences api.SilenceList
	if err := json.Unmarshal([]byte(s.must(t, "silences", "-o", "json")), &silences); err != nil || len(silences.Silences) != 1 {
		t.Fatalf("silences: %v %+v", err, silences)
	}
	id := silences.Silences[0].ID
	if id != created.ID {
		t.Fatalf("the job's silence %s is not the one left, %s", created.ID, id)
	}
	if out := s.must(t, "unsilence", "--id", id); out != "silence "+id+" ended\n" {
		t.Fatalf("unsilence --id: %q", out)
	}
	if r := s.cli(t, "failures"); r.code != exitFailing {
		t.Fatalf("failures after unsilence: %+v", r)
	}
}

func TestSubcommandsAndServe(t *testing.T) {
	for _, tt := range []struct {
		args  []string
		serve bool
		flags string
	}{
		{nil, true, ""},
		{[]string{"--listen", ":9"}, true, "--listen :9"},
		{[]string{"serve", "--listen", ":9"}, true, "--listen :9"},
		{[]string{"jobs", "ml"}, false, ""},
		{[]string{"nosuch"}, false, ""},
	} {
		flags, serve := serverArgs(tt.args)
		if serve != tt.serve || strings.Join(flags, " ") != tt.flags {
			t.Errorf("serverArgs(%v) = %v, %v", tt.args, flags, serve)
		}
	}
	// `serve` reaches the server's configuration, and so its checks.
	err := run(t.Context(), []string{"batchlatch", "serve", "--leader-elect", "--state", "file", "--listen", "127.0.0.1:0"}, func(string) string { return "" }, &strings.Builder{}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "--leader-elect") {
		t.Fatalf("serve: %v", err)
	}

	r := cli(t, nil, "help")
	for _, want := range []string{"failures [NAMESPACE]", "silence NAMESPACE[/NAME]", "cronjob/NAMESPACE/NAME", "--server string", "BATCHLATCH_SERVER", "BATCHLATCH_TOKEN_FILE", "1 only from failures"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, r.stdout)
		}
	}
	r = cli(t, nil, "silence", "--help")
	if r.code != 0 || !strings.Contains(r.stdout, "--reason string") || !strings.Contains(r.stdout, "--for string") || r.stderr != "" {
		t.Errorf("silence --help: %+v", r)
	}
}

func TestCLISendsItsTokenOnReads(t *testing.T) {
	svc := start(t, map[string]string{"BATCHLATCH_READ_TOKEN": "r3ad"}, "--state-file", filepath.Join(t.TempDir(), "state.json"))
	env := map[string]string{"BATCHLATCH_SERVER": svc.url}
	if r := cli(t, env, "jobs"); r.code != exitTrouble || !strings.Contains(r.stderr, "missing or wrong bearer token") {
		t.Fatalf("without the token: %+v", r)
	}
	env["BATCHLATCH_TOKEN"] = "r3ad"
	if r := cli(t, env, "failures"); r.code != 0 || !strings.Contains(r.stderr, "No failing jobs.") {
		t.Fatalf("with the read token: %+v", r)
	}
}

// TestCLIRefusesAnAnswerOfAnotherShape: a 2xx answer that lacks what
// batchlatch always sends (a proxy's, another service's) is an error, not
// "No failing jobs." with exit 0.
func TestCLIRefusesAnAnswerOfAnotherShape(t *testing.T) {
	var answer atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.Method == "POST" {
			w.WriteHeader(http.StatusCreated)
		}
		w.Write([]byte(answer.Load().(string)))
	}))
	t.Cleanup(srv.Close)
	env := map[string]string{"BATCHLATCH_SERVER": srv.URL}
	job := `{"namespace":"ml","job":"nightly","kind":"Workflow","failing":true,"consecutiveFailures":1,"lastResultAt":"2026-01-01T00:00:00Z",
		"lastWorkflow":"nightly-1","lastPhase":"Failed","failureThreshold":1,"alerting":true}`
	commands := [][]string{{"failures"}, {"jobs"}, {"get", "ml/nightly"}, {"silence", "ml/nightly", "--for", "1h", "--reason", "r"}, {"silences"}, {"unsilence", "ml/nightly"}}
	for _, tc := range []struct {
		answer string
		want   string // in the message of each command
	}{
		{`{}`, "lacks "},
		{`null`, "not a JSON object"},
		{`[]`, "not a JSON object"},
		{`"ok"`, "not a JSON object"},
		{`{"failures":[` + strings.Replace(job, `"lastPhase":"Failed",`, "", 1) + `],"jobs":[{}],"silences":[{"id":"1"}]}`, "lacks "},
		{`{"failures":null,"jobs":null,"silences":null}`, "lacks "},
	} {
		answer.Store(tc.answer)
		for _, args := range commands {
			r := cli(t, env, args...)
			if r.code != exitTrouble || r.stdout != "" || !strings.HasPrefix(r.stderr, "error: ") || !strings.Contains(r.stderr, tc.want) || !strings.Contains(r.stderr, "not what batchlatch sends") {
				t.Errorf("%v answered %s: exit %d, stdout %q, stderr %q; want exit 2 and %q", args, tc.answer, r.code, r.stdout, r.stderr, tc.want)
			}
		}
	}
	// The missing field is named.
	answer.Store(`{"failures":[` + strings.Replace(job, `"lastPhase":"Failed",`, "", 1) + `]}`)
	if r := cli(t, env, "failures"); r.code != exitTrouble || !strings.Contains(r.stderr, `lacks "failures[0].lastPhase"`) {
		t.Errorf("a job without lastPhase: %+v", r)
	}
	// What batchlatch sends passes, a field it does not know included.
	answer.Store(`{"failures":[` + strings.Replace(job, `"alerting":true`, `"alerting":true,"newField":1`, 1) + `]}`)
	if r := cli(t, env, "failures"); r.code != exitFailing || !strings.Contains(r.stdout, "nightly") {
		t.Errorf("a well-formed answer: %+v", r)
	}
}

// terminalSafe reports whether out holds nothing a terminal would act on
// rather than show: only graphic runes and line ends.
func terminalSafe(out string) bool {
	for i, r := range out {
		if r == utf8.RuneError && !strings.HasPrefix(out[i:], "\uFFFD") || r != '\n' && !unicode.IsGraphic(r) {
			return false
		}
	}
	return true
}

// TestCLIEscapesWhatATerminalWouldObey: stored data cannot write the
// clipboard (OSC 52), clear the screen or forge a table row through the
// CLI; -o json and -o yaml stay machine-readable and carry the data as it is.
func TestCLIEscapesWhatATerminalWouldObey(t *testing.T) {
	const osc52 = "\x1b]52;c;ZWNobyBwd25lZA==\x07"
	message := "OOMKilled" + osc52 + "\x1b[2J\x1b[H\u009b2J\x7f\u202edone"
	reason := "maintenance\x00\x1b[31m red"
	createdBy := "ana\nml/forged   2030-01-01T00:00:00Z"
	s := startCLIServer(t)
	t0 := time.Now().Add(-time.Hour).Truncate(time.Second)
	failures, _ := json.Marshal(message)
	s.result(t, fmt.Sprintf(`{"namespace":"ml","workflowName":"nightly-1","uid":"n1","cronWorkflow":"nightly","phase":"Failed","createdAt":%q,"failures":[{"displayName":"train\x1b[8m","message":%s}]}`,
		t0.UTC().Format(time.RFC3339), failures))
	silence, _ := json.Marshal(api.SilenceRequest{Namespace: "ml", Job: "nightly", For: "1h", Reason: reason, CreatedBy: createdBy})
	req, _ := http.NewRequest("POST", s.url+"/api/v1/silences", strings.NewReader(string(silence)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer s3cret")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 201 {
		t.Fatalf("silence: %v %v", resp, err)
	}

	for _, args := range [][]string{{"jobs"}, {"jobs", "-o", "wide"}, {"failures", "-o", "wide"}, {"get", "ml/nightly", "-o", "wide"}, {"silences"}, {"silences", "-o", "wide"}} {
		r := s.cli(t, args...)
		if !terminalSafe(r.stdout) || !terminalSafe(r.stderr) {
			t.Errorf("%v printed what a terminal obeys:\n%q\n%q", args, r.stdout, r.stderr)
		}
	}
	_, rows := table(t, s.must(t, "jobs", "-o", "wide"))
	if got := rowOf(t, rows, "ml", "nightly")["MESSAGE"]; !strings.HasPrefix(got, `train\x1b[8m: OOMKilled\x1b]52;c;`) {
		t.Errorf("MESSAGE %q: the escapes are not shown", got)
	}
	_, rows = table(t, s.must(t, "silences"))
	if len(rows) != 1 || rows[0]["CREATED BY"] != `ana ml/forged   2030-01-01T00:00:00Z` || rows[0]["REASON"] != `maintenance\x00\x1b[31m red` {
		t.Errorf("silences: %q", rows)
	}

	// Machine-readable: the data as stored, and nothing a terminal obeys.
	out := s.must(t, "get", "ml/nightly", "-o", "json")
	var job api.Job
	if err := json.Unmarshal([]byte(out), &job); err != nil || len(job.LastFailures) != 1 || job.LastFailures[0].Message != message ||
		job.Silenced == nil || job.Silenced.Reason != reason || job.Silenced.CreatedBy != createdBy {
		t.Errorf("get -o json: %v\n%q", err, out)
	}
	if !terminalSafe(out) {
		t.Errorf("get -o json printed what a terminal obeys:\n%q", out)
	}
	out = s.must(t, "get", "ml/nightly", "-o", "yaml")
	job = api.Job{}
	if err := yaml.Unmarshal([]byte(out), &job); err != nil || len(job.LastFailures) != 1 || job.LastFailures[0].Message != message ||
		job.Silenced == nil || job.Silenced.Reason != reason || job.Silenced.CreatedBy != createdBy {
		t.Errorf("get -o yaml: %v\n%q", err, out)
	}
	if !terminalSafe(strings.ReplaceAll(out, "\u202e", "")) { // YAML writes it as is: it moves no cursor
		t.Errorf("get -o yaml printed what a terminal obeys:\n%q", out)
	}

	// Error messages and warnings, from the server or from what answers
	// in its place.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/jobs":
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":{"code":"invalid_argument","message":"bad \u001b[2J","field":"x\u001b]52;c;aGk=\u0007"}}`))
		case "/api/v1/silences":
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{"id":"0123456789abcdef","namespace":"ml","startsAt":"2030-01-01T00:00:00Z","endsAt":"2030-01-01T01:00:00Z","reason":"r","warnings":["never seen \u001b[2J"]}`))
		default:
			w.WriteHeader(http.StatusBadGateway)
			w.Write([]byte("proxy says \x1b[2J\x00"))
		}
	}))
	t.Cleanup(srv.Close)
	env := map[string]string{"BATCHLATCH_SERVER": srv.URL}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"jobs"}, `error: x\x1b]52;c;aGk=\a: bad \x1b[2J`},
		{[]string{"failures"}, `proxy says \x1b[2J\x00`},
		{[]string{"silence", "ml", "--for", "1h", "--reason", "r"}, `Warning: never seen \x1b[2J`},
	} {
		r := cli(t, env, tc.args...)
		if !terminalSafe(r.stdout) || !terminalSafe(r.stderr) || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%q: stdout %q, stderr %q; want %q, escaped", tc.args, r.stdout, r.stderr, tc.want)
		}
	}
}
