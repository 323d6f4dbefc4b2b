package api

import (
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

const argoBody = `{"namespace":"ml","workflowName":"nightly-29011200","uid":"5f1c-1","cronWorkflow":"nightly",
 "phase":"Failed","scheduledTime":"2026-11-24T02:00:00Z","createdAt":"2026-11-24T02:00:00Z",
 "durationSeconds":12.5,"failures":"[{\"displayName\":\"train\",\"message\":\"OOMKilled\",\"templateName\":\"train\",\"phase\":\"Failed\",\"podName\":\"nightly-29011200-train-1\",\"finishedAt\":\"2026-11-24T02:00:12Z\"}]",
 "labels":{"workflows.argoproj.io/cron-workflow":"nightly"},"annotations":{"a":"b"},"unknownField":[1,2]}`

func TestDecodeResultArgoBody(t *testing.T) {
	r, err := DecodeResult([]byte(argoBody))
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
		r, err := DecodeResult([]byte(body))
		if err != nil || len(r.Failures) != 0 {
			t.Errorf("failures %s: %+v, %v", failures, r.Failures, err)
		}
	}
	body := `{"namespace":"ml","workflowName":"w","phase":"Failed","failures":[{"displayName":"x"}]}`
	if r, err := DecodeResult([]byte(body)); err != nil || len(r.Failures) != 1 {
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
		{"missing phase", `{"namespace":"ml","workflowName":"w"}`, "phase", "Succeeded, Failed, Error"},
		{"Running", `{"namespace":"ml","workflowName":"w","phase":"Running"}`, "phase", "Succeeded, Failed, Error"},
		{"unknown phase", `{"namespace":"ml","workflowName":"w","phase":"failed"}`, "phase", "accepted values"},
		{"duration wrong type", `{"namespace":"ml","workflowName":"w","phase":"Failed","durationSeconds":"12"}`, "durationSeconds", "number"},
		{"negative duration", `{"namespace":"ml","workflowName":"w","phase":"Failed","durationSeconds":-1}`, "durationSeconds", "non-negative"},
		{"bad createdAt", `{"namespace":"ml","workflowName":"w","phase":"Failed","createdAt":"yesterday"}`, "createdAt", "RFC 3339"},
		{"bad scheduledTime", `{"namespace":"ml","workflowName":"w","phase":"Failed","scheduledTime":"now"}`, "scheduledTime", "RFC 3339"},
		{"labels wrong type", `{"namespace":"ml","workflowName":"w","phase":"Failed","labels":["a"]}`, "labels", "object"},
		{"label value wrong type", `{"namespace":"ml","workflowName":"w","phase":"Failed","labels":{"a":1}}`, "labels", "string"},
		{"failures not JSON", `{"namespace":"ml","workflowName":"w","phase":"Failed","failures":"oops"}`, "failures", "array"},
		{"failures wrong type", `{"namespace":"ml","workflowName":"w","phase":"Failed","failures":3}`, "failures", "array"},
		{"bad cronWorkflow", `{"namespace":"ml","workflowName":"w","phase":"Failed","cronWorkflow":"Night ly"}`, "cronWorkflow", "object name"},
		{"bad cron label", `{"namespace":"ml","workflowName":"w","phase":"Failed","labels":{"workflows.argoproj.io/cron-workflow":"a/b"}}`, "labels.workflows.argoproj.io/cron-workflow", "object name"},
		{"uid too long", `{"namespace":"ml","workflowName":"w","phase":"Failed","uid":"` + strings.Repeat("u", 129) + `"}`, "uid", "longer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeResult([]byte(tt.body))
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

// FuzzDecodeResult: decoding never panics, and whatever it accepts is valid,
// belongs to a well-formed job and decodes the same way again.
func FuzzDecodeResult(f *testing.F) {
	f.Add(argoBody)
	f.Add(`{"namespace":"ml","workflowName":"w","phase":"Succeeded","failures":"null"}`)
	f.Add(`{"namespace":"ml","workflowName":"w","phase":"Error","failures":"[{\"message\":\"\\u00e9\"}]","durationSeconds":1e308}`)
	f.Add(`{"namespace":"a","workflowName":"b","phase":"Failed","labels":{"workflows.argoproj.io/workflow-template":"t"}}`)
	f.Add(`{"namespace":"ml","workflowName":"w","phase":"Running"}`)
	f.Add(`{"failures":"[[[["}`)
	f.Fuzz(func(t *testing.T, body string) {
		r, err := DecodeResult([]byte(body))
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a FieldError: %v", err)
			}
			return
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted an invalid result: %v", err)
		}
		if r.Namespace == "" || r.WorkflowName == "" || !PhaseAccepted(r.Phase) {
			t.Fatalf("accepted %+v", r)
		}
		if strings.Contains(r.Namespace, ".") {
			t.Fatalf("namespace with a dot accepted: %q", r.Namespace)
		}
		_ = r.FinishedAt(time.Now())
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
	r, err := DecodeResult([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Failures) != 1 || r.Failures[0].Message != "del\x7f \"quoted\" \\u001b é \U000E0001 \u0085" {
		t.Fatalf("failures = %q", r.Failures)
	}
	// A body that is broken in another way still names the problem.
	if _, err := DecodeResult([]byte(`{"namespace":"ml\x"}`)); err == nil {
		t.Fatal("broken escape accepted")
	}
}
