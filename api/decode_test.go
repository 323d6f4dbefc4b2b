package api

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// received is when the test callbacks arrive: an hour after argoBody's run.
var received = time.Date(2026, 11, 24, 3, 0, 0, 0, time.UTC)

const argoBody = `{"namespace":"ml","workflowName":"nightly-29011200","uid":"5f1c-1","cronWorkflow":"nightly",
 "phase":"Failed","scheduledTime":"2026-11-24T02:00:00Z","createdAt":"2026-11-24T02:00:00Z",
 "durationSeconds":12.5,"failures":"[{\"displayName\":\"train\",\"message\":\"OOMKilled\",\"templateName\":\"train\",\"phase\":\"Failed\",\"podName\":\"nightly-29011200-train-1\",\"finishedAt\":\"2026-11-24T02:00:12Z\"}]",
 "labels":{"workflows.argoproj.io/cron-workflow":"nightly"},"annotations":{"a":"b"},"unknownField":[1,2]}`

func TestDecodeResultArgoBody(t *testing.T) {
	r, err := DecodeResult([]byte(argoBody), received)
	if err != nil {
		t.Fatal(err)
	}
	if r.Namespace != "ml" || r.JobName() != "nightly" || r.Phase != "Failed" || r.UID != "5f1c-1" {
		t.Errorf("decoded %+v", r)
	}
	if len(r.Failures) != 1 || r.Failures[0].DisplayName != "train" || r.Failures[0].Message != "OOMKilled" {
		t.Errorf("failures = %+v", r.Failures)
	}
	want := time.Date(2026, 11, 24, 2, 0, 12, 500e6, time.UTC)
	if got := r.FinishedAt(time.Now()); !got.Equal(want) {
		t.Errorf("FinishedAt = %v, want %v", got, want)
	}
}

func TestDecodeResultFailuresForms(t *testing.T) {
	for _, failures := range []string{`"null"`, `null`, `""`, `"[]"`, `[]`} {
		body := `{"namespace":"ml","workflowName":"w","phase":"Succeeded","failures":` + failures + `}`
		r, err := DecodeResult([]byte(body), received)
		if err != nil || len(r.Failures) != 0 {
			t.Errorf("failures %s: %+v, %v", failures, r.Failures, err)
		}
	}
	body := `{"namespace":"ml","workflowName":"w","phase":"Failed","failures":[{"displayName":"x"}]}`
	if r, err := DecodeResult([]byte(body), received); err != nil || len(r.Failures) != 1 {
		t.Errorf("plain array: %+v, %v", r.Failures, err)
	}
}

func TestJobName(t *testing.T) {
	tests := []struct {
		r    Result
		want string
	}{
		{Result{CronWorkflow: "a", Labels: map[string]string{"workflows.argoproj.io/cron-workflow": "b"}}, "a"},
		{Result{Labels: map[string]string{"workflows.argoproj.io/cron-workflow": "b", "workflows.argoproj.io/workflow-template": "c"}}, "b"},
		{Result{Labels: map[string]string{"workflows.argoproj.io/workflow-template": "c"}}, "c"},
		{Result{Labels: map[string]string{"other": "d"}}, ""},
		{Result{CronJob: "e", Labels: map[string]string{"workflows.argoproj.io/cron-workflow": "b"}}, "e"},
	}
	for _, tt := range tests {
		if got := tt.r.JobName(); got != tt.want {
			t.Errorf("JobName(%+v) = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestDecodeResultRejects(t *testing.T) {
	tests := []struct {
		name, body, field, mention string
	}{
		{"malformed", `{"namespace":`, "", "malformed JSON"},
		{"empty", ``, "", "empty"},
		{"not an object", `[1]`, "", "JSON object"},
		{"trailing data", `{"namespace":"ml","workflowName":"w","phase":"Failed"} {}`, "", "after the object"},
		{"missing namespace", `{"workflowName":"w","phase":"Failed"}`, "namespace", "required"},
		{"invalid namespace", `{"namespace":"ML_prod","workflowName":"w","phase":"Failed"}`, "namespace", "DNS-1123"},
		{"namespace too long", `{"namespace":"` + strings.Repeat("a", 64) + `","workflowName":"w","phase":"Failed"}`, "namespace", "DNS-1123"},
		{"namespace wrong type", `{"namespace":7,"workflowName":"w","phase":"Failed"}`, "namespace", "string"},
		{"missing workflowName", `{"namespace":"ml","phase":"Failed"}`, "workflowName", "required"},
		{"cronJob and cronWorkflow", `{"namespace":"ml","workflowName":"w","phase":"Failed","cronJob":"a","cronWorkflow":"a"}`, "cronJob", "not both"},
		{"bad cronJob", `{"namespace":"ml","workflowName":"w","phase":"Failed","cronJob":"A_b"}`, "cronJob", "DNS-1123"},
		{"cronJob key too long", `{"namespace":"ml","workflowName":"w","phase":"Failed","cronJob":"` + strings.Repeat("a", 253-len("ml.")-len(CronJobKeyPrefix)+1) + `"}`, "cronJob", "job key"},
		{"missing phase", `{"namespace":"ml","workflowName":"w"}`, "phase", "Succeeded, Failed, Error"},
		{"Running", `{"namespace":"ml","workflowName":"w","phase":"Running"}`, "phase", "Succeeded, Failed, Error"},
		{"unknown phase", `{"namespace":"ml","workflowName":"w","phase":"failed"}`, "phase", "accepted values"},
		{"bad cronWorkflow", `{"namespace":"ml","workflowName":"w","phase":"Failed","cronWorkflow":"Night ly"}`, "cronWorkflow", "object name"},
		{"bad cron label", `{"namespace":"ml","workflowName":"w","phase":"Failed","labels":{"workflows.argoproj.io/cron-workflow":"a/b"}}`, "labels.workflows.argoproj.io/cron-workflow", "object name"},
		{"uid too long", `{"namespace":"ml","workflowName":"w","phase":"Failed","uid":"` + strings.Repeat("u", 129) + `"}`, "uid", "longer"},
		// A job key ("namespace.job") must fit a ConfigMap key: 253 characters.
		{"job key too long", `{"namespace":"` + strings.Repeat("n", 63) + `","workflowName":"w","phase":"Failed","cronWorkflow":"` + strings.Repeat("j", 190) + `"}`, "cronWorkflow", "at most 189 characters in this namespace"},
		{"job key too long from a label", `{"namespace":"ml","workflowName":"w","phase":"Failed","labels":{"workflows.argoproj.io/cron-workflow":"` + strings.Repeat("j", 251) + `"}}`, "labels.workflows.argoproj.io/cron-workflow", "over the limit of 253"},
		// Keys that two JSON readers could take differently.
		{"namespace twice", `{"namespace":"ml","workflowName":"w","phase":"Failed","namespace":"prod"}`, "namespace", "twice"},
		{"phase twice", `{"namespace":"ml","workflowName":"w","phase":"Succeeded","phase":"Failed"}`, "phase", "twice"},
		{"key in another case", `{"Namespace":"ml","workflowName":"w","phase":"Failed"}`, "Namespace", `did you mean "namespace"`},
		{"label that names the job: wrong type", `{"namespace":"ml","workflowName":"w","phase":"Failed","labels":{"workflows.argoproj.io/cron-workflow":1}}`, "labels.workflows.argoproj.io/cron-workflow", "string"},
		{"label that names the job: twice", `{"namespace":"ml","workflowName":"w","phase":"Failed","labels":{"workflows.argoproj.io/cron-workflow":"a","workflows.argoproj.io/cron-workflow":"b"}}`, "labels.workflows.argoproj.io/cron-workflow", "twice"},
		{"labels that name the job: not an object", `{"namespace":"ml","workflowName":"w","phase":"Failed","labels":["a"]}`, "labels", "object"},
		{"labels that name the job: twice", `{"namespace":"ml","workflowName":"w","phase":"Failed","labels":{},"labels":{}}`, "labels", "twice"},
		{"labels that name the job: in another case", `{"namespace":"ml","workflowName":"w","phase":"Failed","Labels":{}}`, "Labels", `did you mean "labels"`},
		{"uid wrong type", `{"namespace":"ml","workflowName":"w","phase":"Failed","uid":1}`, "uid", "string"},
		{"null body", `null`, "", "JSON object"},
		{"key in another case, Kelvin sign", "{\"namespace\":\"ml\",\"wor\u212AflowName\":\"w\",\"phase\":\"Failed\"}", "wor\u212AflowName", `did you mean "workflowName"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeResult([]byte(tt.body), received)
			var fe *FieldError
			if !errors.As(err, &fe) || !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want a FieldError", err)
			}
			if fe.Field != tt.field {
				t.Errorf("field = %q, want %q (%v)", fe.Field, tt.field, err)
			}
			if !strings.Contains(fe.Message, tt.mention) {
				t.Errorf("message %q does not mention %q", fe.Message, tt.mention)
			}
		})
	}
}

// Only the run's identity refuses a callback: anything else that cannot be
// trusted is left out, the run is accepted, and a warning names the field.
func TestDecodeResultDegrades(t *testing.T) {
	const base = `"namespace":"ml","workflowName":"w","cronWorkflow":"nightly","phase":"Failed"`
	untimed := func(r Result) bool {
		return r.CreatedAt == "" && r.DurationSeconds == 0 && r.FinishedAt(received).Equal(received)
	}
	noThreshold := func(r Result) bool {
		_, ok := r.Annotations[AnnotationFailureThreshold]
		return !ok && r.FailureThreshold() == 0
	}
	tests := []struct {
		name, body, field, mention string
		kept                       func(Result) bool // what the result holds instead
	}{
		{"threshold not a number", `{` + base + `,"annotations":{"batchlatch.io/failure-threshold":"abc"}}`, "annotations.batchlatch.io/failure-threshold", "whole number from 1 to 100", noThreshold},
		{"threshold 0", `{` + base + `,"annotations":{"batchlatch.io/failure-threshold":"0"}}`, "annotations.batchlatch.io/failure-threshold", "default", noThreshold},
		{"threshold 101", `{` + base + `,"annotations":{"batchlatch.io/failure-threshold":"101"}}`, "annotations.batchlatch.io/failure-threshold", "ignored", noThreshold},
		{"threshold with a space", `{` + base + `,"annotations":{"batchlatch.io/failure-threshold":" 3","a":"b"}}`, "annotations.batchlatch.io/failure-threshold", `" 3"`,
			func(r Result) bool { return noThreshold(r) && r.Annotations["a"] == "b" }},
		{"createdAt 10 minutes ahead", `{` + base + `,"createdAt":"2026-11-24T03:10:00Z","durationSeconds":5}`, "createdAt", "ordered by when it was received", untimed},
		{"createdAt just past the skew", `{` + base + `,"createdAt":"2026-11-24T03:05:01Z"}`, "createdAt", "in the future", untimed},
		{"createdAt in another century", `{` + base + `,"createdAt":"2099-01-01T00:00:00Z"}`, "createdAt", "in the future", untimed},
		{"createdAt absurdly old", `{` + base + `,"createdAt":"1970-01-01T00:00:00Z"}`, "createdAt", "before the callback was received", untimed},
		{"createdAt not a time", `{` + base + `,"createdAt":"yesterday","durationSeconds":5}`, "createdAt", "RFC 3339", untimed},
		{"createdAt not a string", `{` + base + `,"createdAt":1795485600,"durationSeconds":5}`, "createdAt", "not a number", untimed},
		{"createdAt offset +24:00", `{` + base + `,"createdAt":"2026-11-24T02:00:00+24:00"}`, "createdAt", "RFC 3339", untimed},
		{"createdAt offset +00:60", `{` + base + `,"createdAt":"2026-11-24T02:00:00+00:60"}`, "createdAt", "RFC 3339", untimed},
		{"finish past the skew", `{` + base + `,"createdAt":"2026-11-24T02:00:00Z","durationSeconds":3901}`, "durationSeconds", "in the future", untimed},
		{"negative duration", `{` + base + `,"createdAt":"2026-11-24T02:00:00Z","durationSeconds":-1}`, "durationSeconds", "from 0 to", untimed},
		{"duration that overflows", `{` + base + `,"createdAt":"2026-11-24T02:00:00Z","durationSeconds":1e10}`, "durationSeconds", "from 0 to 2592000", untimed},
		{"duration out of float range", `{` + base + `,"durationSeconds":1e309}`, "durationSeconds", `"1e309" is out of range`, untimed},
		{"duration a string", `{` + base + `,"createdAt":"2026-11-24T02:00:00Z","durationSeconds":"12"}`, "durationSeconds", "must be a number, not a string", untimed},
		{"scheduledTime not a time", `{` + base + `,"scheduledTime":"now","createdAt":"2026-11-24T02:00:00Z"}`, "scheduledTime", "RFC 3339",
			func(r Result) bool { return r.ScheduledTime == "" && r.CreatedAt == "2026-11-24T02:00:00Z" }},
		{"scheduledTime offset +24:00", `{` + base + `,"scheduledTime":"2026-11-24T02:00:00+24:00"}`, "scheduledTime", "RFC 3339", func(r Result) bool { return r.ScheduledTime == "" }},
		{"failures not JSON", `{` + base + `,"failures":"oops"}`, "failures", "recorded without its failed steps", func(r Result) bool { return r.Failures == nil }},
		{"failures a number", `{` + base + `,"failures":3}`, "failures", "array", func(r Result) bool { return r.Failures == nil }},
		{"key twice inside failures", `{` + base + `,"failures":"[{\"message\":\"a\",\"message\":\"b\"}]"}`, "failures[0].message", "twice", func(r Result) bool { return r.Failures == nil }},
		{"failure key in another case", `{` + base + `,"failures":[{"MESSAGE":"x"}]}`, "failures[0].MESSAGE", `did you mean "message"`, func(r Result) bool { return r.Failures == nil }},
		{"failures twice", `{` + base + `,"failures":"null","failures":[{"message":"x"}]}`, "failures", "twice", func(r Result) bool { return r.Failures == nil }},
		{"Failures in another case", `{` + base + `,"Failures":[{"message":"x"}]}`, "Failures", `did you mean "failures"`, func(r Result) bool { return r.Failures == nil }},
		{"labels not an object, with cronWorkflow", `{` + base + `,"labels":["a"]}`, "labels", "object", func(r Result) bool { return r.Labels == nil && r.JobName() == "nightly" }},
		{"label not a string", `{` + base + `,"labels":{"a":1,"b":"2"}}`, "labels.a", "string", func(r Result) bool { return len(r.Labels) == 1 && r.Labels["b"] == "2" }},
		{"label twice", `{` + base + `,"labels":{"a":"1","a":"2","b":"3"}}`, "labels.a", "twice", func(r Result) bool { return len(r.Labels) == 1 && r.Labels["b"] == "3" }},
		{"label twice, not the job's", `{"namespace":"ml","workflowName":"w","phase":"Failed","labels":{"workflows.argoproj.io/cron-workflow":"n","a":"1","a":"2"}}`, "labels.a", "twice",
			func(r Result) bool { return r.JobName() == "n" && len(r.Labels) == 1 }},
		{"annotations not an object", `{` + base + `,"annotations":"batchlatch.io/failure-threshold=3"}`, "annotations", "object", noThreshold},
		{"annotation not a string", `{` + base + `,"annotations":{"batchlatch.io/failure-threshold":3}}`, "annotations.batchlatch.io/failure-threshold", "string", noThreshold},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := DecodeResult([]byte(tt.body), received)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if len(r.Warnings) == 0 {
				t.Fatal("no warning")
			}
			w := r.Warnings[0]
			if w.Field != tt.field || !strings.Contains(w.Message, tt.mention) {
				t.Errorf("warning %+v, want field %q mentioning %q", w, tt.field, tt.mention)
			}
			if !tt.kept(r) {
				t.Errorf("recorded %+v", r)
			}
			if r.Namespace != "ml" || r.WorkflowName != "w" || r.Phase != PhaseFailed {
				t.Errorf("identity lost: %+v", r)
			}
			if err := r.Validate(received); err != nil {
				t.Errorf("what is left is invalid: %v", err)
			}
		})
	}
	// A clean body has no warnings.
	if r, err := DecodeResult([]byte(argoBody), received); err != nil || r.Warnings != nil {
		t.Errorf("argoBody: %v, warnings %+v", err, r.Warnings)
	}
	// Both times wrong: both named.
	r, err := DecodeResult([]byte(`{`+base+`,"createdAt":"1970-01-01T00:00:00Z","durationSeconds":1e10}`), received)
	if err != nil || len(r.Warnings) != 2 || r.Warnings[0].Field != "durationSeconds" || r.Warnings[1].Field != "createdAt" {
		t.Errorf("%v, warnings %+v; want durationSeconds and createdAt", err, r.Warnings)
	}
	// Many bad labels: the warnings are bounded.
	var labels []string
	for i := range 50 {
		labels = append(labels, `"l`+strconv.Itoa(i)+`":1`)
	}
	r, err = DecodeResult([]byte(`{`+base+`,"labels":{`+strings.Join(labels, ",")+`}}`), received)
	if err != nil || len(r.Warnings) != maxWarnings+1 || !strings.Contains(r.Warnings[maxWarnings].Message, "42 more") {
		t.Errorf("%v: %d warnings, last %+v", err, len(r.Warnings), r.Warnings[len(r.Warnings)-1])
	}
}

// FuzzDecodeResult: decoding never panics, and whatever it accepts is valid,
// belongs to a well-formed job and decodes the same way again.
func FuzzDecodeResult(f *testing.F) {
	f.Add(argoBody)
	f.Add(`{"namespace":"ml","workflowName":"w","phase":"Succeeded","failures":"null"}`)
	f.Add(`{"namespace":"ml","workflowName":"w","phase":"Error","failures":"[{\"message\":\"\\u00e9\"}]","durationSeconds":1e308}`)
	f.Add(`{"namespace":"a","workflowName":"b","phase":"Failed","labels":{"workflows.argoproj.io/workflow-template":"t"}}`)
	f.Add(`{"namespace":"ml","workflowName":"w","phase":"Running"}`)
	f.Add(`{"failures":"[[[["}`)
	// Hostile bodies found by trying the service as an attacker would.
	f.Add(`{"namespace":"ml","workflowName":"w","phase":"Succeeded","createdAt":"2099-01-01T00:00:00Z"}`)
	f.Add(`{"namespace":"ml","workflowName":"w","phase":"Failed","createdAt":"2026-11-24T02:00:00Z","durationSeconds":1e10}`)
	f.Add(`{"namespace":"ml","workflowName":"w","phase":"Failed","durationSeconds":1e309}`)
	f.Add(`{"namespace":"ml","workflowName":"w","phase":"Failed","createdAt":"2026-11-24T02:00:00+24:00"}`)
	f.Add(`{"namespace":"ml","workflowName":"w","phase":"Failed","namespace":"prod"}`)
	f.Add(`{"Namespace":"ml","workflowName":"w","phase":"Failed"}`)
	f.Add(`{"namespace":"` + strings.Repeat("n", 63) + `","workflowName":"w","phase":"Failed","cronWorkflow":"` + strings.Repeat("j", 250) + `"}`)
	f.Add(`{"namespace":"` + strings.Repeat("A", 60000) + `","workflowName":"w","phase":"Failed"}`)
	f.Add(`{"namespace":"ml","workflowName":"w","phase":"Failed","labels":{"a":"1","a":"2"}}`)
	f.Fuzz(func(t *testing.T, body string) {
		r, err := DecodeResult([]byte(body), received)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a FieldError: %v", err)
			}
			return
		}
		if err := r.Validate(received); err != nil {
			t.Fatalf("accepted an invalid result: %v", err)
		}
		if r.Namespace == "" || r.WorkflowName == "" || !PhaseAccepted(r.Phase) {
			t.Fatalf("accepted %+v", r)
		}
		if strings.Contains(r.Namespace, ".") {
			t.Fatalf("namespace with a dot accepted: %q", r.Namespace)
		}
		if finished := r.FinishedAt(received); finished.After(received.Add(MaxClockSkew)) || finished.Before(received.Add(-MaxResultAge)) {
			t.Fatalf("finish time %s accepted for a callback received at %s", finished, received)
		}
	})
}

// Argo quotes {{workflow.failures}} with strconv.Quote, whose \x escapes are
// not JSON; such a body must still be accepted, or every retry would fail.
func TestDecodeResultRepairsGoQuotedFailures(t *testing.T) {
	inner, _ := json.Marshal([]Failure{{DisplayName: "step", Message: "del\x7f \"quoted\" \\u001b é \U000E0001 \u0085"}})
	body := `{"namespace":"ml","workflowName":"w","phase":"Failed","failures":` + strconv.Quote(string(inner)) + `}`
	if !strings.Contains(body, `\x7f`) {
		t.Fatalf("test body lacks the Go escape: %s", body)
	}
	r, err := DecodeResult([]byte(body), received)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Failures) != 1 || r.Failures[0].Message != "del\x7f \"quoted\" \\u001b é \U000E0001 \u0085" {
		t.Fatalf("failures = %q", r.Failures)
	}
	// A body that is broken in another way still names the problem.
	if _, err := DecodeResult([]byte(`{"namespace":"ml\x"}`), received); err == nil {
		t.Fatal("broken escape accepted")
	}
}

func TestDecodeResultTimesWithinBounds(t *testing.T) {
	for _, tt := range []struct{ createdAt, duration string }{
		{"2026-11-24T03:04:59Z", "0"},         // a fast clock, within the skew
		{"2026-11-24T02:00:00Z", "3899.5"},    // ends 4m59.5s after receipt
		{"2026-11-24T07:30:00+05:30", "60"},   // another offset, same instant as 02:00Z
		{"2026-11-23T18:00:00-08:00", "3600"}, // a negative offset
		{"2025-11-24T03:00:00Z", "2592000"},   // a year old, the longest run
	} {
		body := `{"namespace":"ml","workflowName":"w","phase":"Failed","createdAt":"` + tt.createdAt + `","durationSeconds":` + tt.duration + `}`
		if _, err := DecodeResult([]byte(body), received); err != nil {
			t.Errorf("createdAt %s + %ss refused: %v", tt.createdAt, tt.duration, err)
		}
	}
}

// An error message echoes at most the start of a hostile value.
func TestErrorsDoNotEchoHugeValues(t *testing.T) {
	huge := strings.Repeat("A", 60000)
	for _, body := range []string{
		`{"namespace":"` + huge + `","workflowName":"w","phase":"Failed"}`,
		`{"namespace":"ml","workflowName":"` + huge + `","phase":"Failed"}`,
		`{"namespace":"ml","workflowName":"w","phase":"` + huge + `"}`,
		`{"namespace":"ml","workflowName":"w","phase":"Failed","cronWorkflow":"` + huge + `"}`,
		`{"namespace":"ml","workflowName":"w","phase":"Failed","createdAt":"` + huge + `"}`,
		`{"namespace":"ml","workflowName":"w","phase":"Failed","durationSeconds":1` + strings.Repeat("0", 400) + `}`,
	} {
		r, err := DecodeResult([]byte(body), received)
		if err != nil {
			if len(err.Error()) > 400 {
				t.Errorf("error of %d bytes: %.200s", len(err.Error()), err)
			}
			continue
		}
		if len(r.Warnings) != 1 || len(r.Warnings[0].Message) > 400 {
			t.Errorf("warnings %.400v", r.Warnings)
		}
	}
}
