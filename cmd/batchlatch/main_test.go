package main

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/batchlatch/batchlatch/server"
)

func TestEndToEndFileStateStdoutSink(t *testing.T) {
	dir := t.TempDir()
	stateFile := filepath.Join(dir, "state.json")
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600)
	env := map[string]string{"BATCHLATCH_INTERVAL": "100ms", "BATCHLATCH_TOKEN_FILE": tokenFile}
	// --policy-window 0: one entry per change, so that a 1s recovery window is allowed.
	svc := start(t, env, "--state-file", stateFile, "--recovery-window", "1s", "--policy-window", "0")
	t0 := time.Now().Add(-2 * time.Hour).Truncate(time.Second)

	if code, body := svc.post("", callback("ml", "nightly", "u1", "Failed", t0)); code != 401 {
		t.Fatalf("without token: %d %s", code, body)
	}
	if code, body := svc.post("s3cret", callback("ml", "nightly", "u1", "Failed", t0)); code != 200 {
		t.Fatalf("first failure: %d %s", code, body)
	}
	svc.waitForEntries("the first ERROR", func(e []stdoutEntry) bool { return count(e, "ERROR") >= 1 })

	if code, body := svc.post("s3cret", callback("ml", "nightly", "u2", "Failed", t0.Add(time.Hour))); code != 200 {
		t.Fatalf("second failure: %d %s", code, body)
	}
	code, body := svc.post("s3cret", callback("ml", "nightly", "u2", "Failed", t0.Add(time.Hour)))
	if code != 200 || !strings.Contains(string(body), `"duplicate":true`) {
		t.Fatalf("duplicate: %d %s", code, body)
	}
	entries := svc.waitForEntries("ERROR entries every interval with 2 failures", func(e []stdoutEntry) bool {
		n := 0
		for _, x := range e {
			if x.Severity == "ERROR" && x.ConsecutiveFailures == 2 {
				n++
			}
		}
		return n >= 3
	})
	last := entries[len(entries)-1]
	if last.Failing != 1 || last.Namespace != "ml" || last.Job != "nightly" || last.Labels["namespace"] != "ml" || last.Labels["job"] != "nightly" ||
		last.FailingSeconds < 7180 || !strings.Contains(last.Message, "ml/nightly is failing: 2 failed run(s) in a row") {
		t.Fatalf("entry %+v", last)
	}
	if f := svc.failures(); len(f.Failures) != 1 || f.Failures[0].ConsecutiveFailures != 2 {
		t.Fatalf("failures: %+v", f)
	}

	if code, body := svc.post("s3cret", callback("ml", "nightly", "u3", "Succeeded", t0.Add(2*time.Hour))); code != 200 {
		t.Fatalf("success: %d %s", code, body)
	}
	entries = svc.waitForEntries("the NOTICE", func(e []stdoutEntry) bool { return count(e, "NOTICE") == 1 })
	var notice stdoutEntry
	for _, e := range entries {
		if e.Severity == "NOTICE" {
			notice = e
		}
	}
	if notice.Failing != 0 || !strings.Contains(notice.Message, "recovered after 2 failed runs, failing for 2h") {
		t.Fatalf("notice %+v", notice)
	}
	errorsAtRecovery := count(entries, "ERROR")
	entries = svc.waitForEntries("INFO entries during the recovery window", func(e []stdoutEntry) bool { return count(e, "INFO") >= 2 })
	// Past the 1s recovery window, which starts at the next whole second:
	// once the clock is, the passes that began before write nothing more.
	time.Sleep(2200 * time.Millisecond)
	svc.passesAfter(2)
	settled := len(svc.entries())
	svc.passesAfter(2)
	entries = svc.entries()
	if count(entries, "ERROR") != errorsAtRecovery || count(entries, "NOTICE") != 1 {
		t.Fatalf("after the success: %d ERROR (was %d), %d NOTICE", count(entries, "ERROR"), errorsAtRecovery, count(entries, "NOTICE"))
	}
	if len(entries) != settled {
		t.Fatalf("entries still written after the recovery window: %d, then %d", settled, len(entries))
	}

	// A new failure, then a restart on the same file: the failure is still there.
	if code, body := svc.post("s3cret", callback("etl", "load", "e1", "Error", t0)); code != 200 {
		t.Fatalf("etl failure: %d %s", code, body)
	}
	if err := svc.stop(); err != nil {
		t.Fatalf("run returned %v on shutdown", err)
	}
	again := start(t, env, "--state-file", stateFile)
	f := again.failures()
	if len(f.Failures) != 1 || f.Failures[0].Namespace != "etl" || f.Failures[0].Job != "load" {
		t.Fatalf("after restart: %+v", f)
	}
	again.waitForEntries("ERROR for etl/load after restart", func(e []stdoutEntry) bool {
		return len(e) > 0 && e[0].Job == "load" && e[0].Severity == "ERROR"
	})
}

func TestConfigFromFlagsAndEnvironment(t *testing.T) {
	env := map[string]string{"BATCHLATCH_INTERVAL": "5s", "BATCHLATCH_SINK": "stdout", "BATCHLATCH_LEADER_ELECT": "true", "BATCHLATCH_STATE": "configmap"}
	cfg, err := parseConfig([]string{"--interval", "7s", "--log-name", "custom"}, func(k string) string { return env[k] }, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Interval != 7*time.Second || cfg.Sink != "stdout" || !cfg.LeaderElect || cfg.LogName != "custom" || cfg.Listen != "127.0.0.1:8080" {
		t.Fatalf("flag over env over default: %+v", cfg)
	}
	defaults, err := parseConfig(nil, func(string) string { return "" }, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	// "auto" is resolved once, right after parsing: no cluster, no project.
	if defaults.Listen != "127.0.0.1:8080" || defaults.State != "file" || defaults.StateFile != "batchlatch-state.json" || defaults.Sink != "stdout" ||
		defaults.Interval != time.Minute || defaults.RecoveryWindow != 35*time.Minute || defaults.ConfigMap != "batchlatch-state" || defaults.LogName != "batchlatch" {
		t.Fatalf("defaults: %+v", defaults)
	}
	if defaults.WatchArgo || defaults.MissedGrace != 10*time.Minute || defaults.ReconcileInterval != 5*time.Minute || defaults.MaxRuntime != 0 || defaults.ForgetAfter != 10*time.Minute || defaults.PodName == "" {
		t.Fatalf("watcher defaults: %+v", defaults)
	}
	inPod, err := parseConfig([]string{"--argo-namespaces", "ml, etl"}, func(k string) string {
		return map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1", "POD_NAME": "batchlatch-0", "BATCHLATCH_PROJECT": "p"}[k]
	}, os.Stderr)
	if err != nil || inPod.State != "configmap" || inPod.Sink != "cloudlogging" || inPod.PodName != "batchlatch-0" || strings.Join(inPod.ArgoNamespaces, "|") != "ml|etl" {
		t.Fatalf("in a pod: %+v, %v", inPod, err)
	}
	// --max-in-flight: a class left out keeps its value (the environment's,
	// else the default).
	caps, err := parseConfig([]string{"--max-in-flight", "pages=2, writes=0", "--metrics-auth", "--read-token", "r"}, func(k string) string {
		return map[string]string{"BATCHLATCH_MAX_IN_FLIGHT": "scrapes=3,pages=9"}[k]
	}, os.Stderr)
	if want := (server.InFlight{Scrapes: 3, Pages: 2, Reads: server.DefaultInFlight.Reads, Writes: 0}); err != nil || caps.MaxInFlight != want || !caps.MetricsAuth {
		t.Fatalf("--max-in-flight: %+v, want %+v; %v", caps.MaxInFlight, want, err)
	}
	if defaults.MaxInFlight != server.DefaultInFlight || defaults.MetricsAuth {
		t.Fatalf("defaults: %+v", defaults)
	}

	for _, tt := range []struct {
		args    []string
		env     map[string]string
		mention string
	}{
		{[]string{"--max-in-flight", "scrapes=-1"}, nil, "max-in-flight"},
		{[]string{"--max-in-flight", "downloads=1"}, nil, "downloads"},
		{[]string{"--metrics-auth"}, nil, "--metrics-auth"},
		{[]string{"--state", "redis"}, nil, "--state"},
		{[]string{"--sink", "cloudlogging"}, nil, "--project"},
		{[]string{"--interval", "0s"}, nil, "--interval"},
		{nil, map[string]string{"BATCHLATCH_INTERVAL": "soon"}, "BATCHLATCH_INTERVAL"},
		{[]string{"--no-such-flag"}, nil, "no-such-flag"},
		{[]string{"stray"}, nil, "unexpected arguments"},
		{[]string{"--argo-namespaces", "ml,Bad_NS"}, nil, "--argo-namespaces"},
		{[]string{"--missed-grace", "0s"}, nil, "--missed-grace"},
		{[]string{"--missed-grace", "1ns"}, nil, "--missed-grace"},
		{[]string{"--missed-grace", "721h"}, nil, "--missed-grace"},
		{[]string{"--max-runtime", "-1m"}, nil, "--max-runtime"},
		{[]string{"--forget-after", "0s"}, nil, "--forget-after"},
		// One flag per rule: the CronJob watcher's own copies are gone.
		{[]string{"--cronjob-missed-grace", "20m"}, nil, "cronjob-missed-grace"},
	} {
		_, err := parseConfig(tt.args, func(k string) string { return tt.env[k] }, &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("args %v env %v: err %v, want it to mention %q", tt.args, tt.env, err, tt.mention)
		}
	}
}

func TestHelpListsEveryFlagWithItsEnvironmentVariable(t *testing.T) {
	var out strings.Builder
	_, err := parseConfig([]string{"--help"}, func(string) string { return "" }, &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v", err)
	}
	for _, want := range []string{"--listen (BATCHLATCH_LISTEN, default 127.0.0.1:8080)", "--recovery-window (BATCHLATCH_RECOVERY_WINDOW, default 35m0s)", "--leader-elect (BATCHLATCH_LEADER_ELECT, default false)", "--token-file (BATCHLATCH_TOKEN_FILE"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q:\n%s", want, out.String())
		}
	}
}

func TestLeaderElectNeedsConfigMapState(t *testing.T) {
	err := run(t.Context(), []string{"batchlatch", "--leader-elect", "--state", "file", "--listen", "127.0.0.1:0"}, func(string) string { return "" }, &strings.Builder{}, &strings.Builder{})
	if err == nil || !strings.Contains(err.Error(), "--leader-elect") {
		t.Fatalf("err %v", err)
	}
}
