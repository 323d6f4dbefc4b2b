package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Phase is a run's outcome: a Workflow's phase as Argo names it (the exit
// handler sends {{workflow.status}}), or one a watcher observed.
type Phase string

// The phases of a finished Workflow, as Argo's v1alpha1 names them (a test
// checks them against Argo's), and a CronJob's Job maps onto.
const (
	PhaseSucceeded Phase = "Succeeded"
	PhaseFailed    Phase = "Failed"
	PhaseError     Phase = "Error"
)

// The labels Argo puts on a Workflow made from a CronWorkflow or a
// template (a test checks them against Argo's): the job's name when the
// callback does not say it.
const (
	LabelCronWorkflow            = "workflows.argoproj.io/cron-workflow"
	LabelWorkflowTemplate        = "workflows.argoproj.io/workflow-template"
	LabelClusterWorkflowTemplate = "workflows.argoproj.io/cluster-workflow-template"
)

// AcceptedPhases are the values {{workflow.status}} can take in an exit handler.
var AcceptedPhases = []Phase{PhaseSucceeded, PhaseFailed, PhaseError}

// Phases of the failures that a watcher reports for runs that never reported
// themselves. A callback cannot send them.
const (
	// PhaseMissed: a tick passed with no run.
	PhaseMissed Phase = "Missed"
	// PhaseSpecError and PhaseSubmissionError: the CronWorkflow's condition
	// of that name kept the controller from creating the tick's run.
	PhaseSpecError       Phase = "SpecError"
	PhaseSubmissionError Phase = "SubmissionError"
	// PhaseStuck: a run still running past its maximum runtime.
	PhaseStuck Phase = "Stuck"
)

// ObservedPhases are what a watcher may report: the exit handler's phases
// and the synthetic failures.
var ObservedPhases = append(append([]Phase{}, AcceptedPhases...), PhaseMissed, PhaseSpecError, PhaseSubmissionError, PhaseStuck)

// ErrInvalid marks every error caused by bad input; errors.Is(err, ErrInvalid)
// holds for each *FieldError.
var ErrInvalid = errors.New("invalid input")

// FieldError is bad input, naming the offending field ("" when the body as a
// whole is unreadable).
type FieldError struct {
	Field   string
	Message string
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Is makes errors.Is(err, ErrInvalid) true for field errors.
func (e *FieldError) Is(target error) bool { return target == ErrInvalid }

// wireResult is Result as it arrives: failures is decoded separately because
// Argo sends it as a JSON string that holds JSON.
type wireResult struct {
	Result
	Failures json.RawMessage `json:"failures,omitempty"`
}

// DecodeResult decodes and validates one callback body, received at
// receivedAt (the bound for the times it carries). The error is a
// *FieldError for anything the sender got wrong.
func DecodeResult(body []byte, receivedAt time.Time) (Result, error) {
	w, err := decodeWire(body)
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		// Argo quotes {{workflow.failures}} with Go's strconv.Quote, which
		// writes DEL and some other runes as \xHH or \UHHHHHHHH: not JSON.
		// Such a callback would be refused on every retry, so repair it.
		if repaired, ok := repairGoEscapes(body); ok {
			body = repaired
			w, err = decodeWire(body)
		}
	}
	if err != nil {
		return Result{}, decodeError(err)
	}
	if err := checkKeys(body, resultShape, ""); err != nil {
		return Result{}, err
	}
	res := w.Result
	failures, err := decodeFailures(w.Failures)
	if err != nil {
		return Result{}, err
	}
	res.Failures = failures
	if err := res.Validate(receivedAt); err != nil {
		return Result{}, err
	}
	return res, nil
}

var errTrailingData = errors.New("unexpected data after the object")

func decodeWire(body []byte) (wireResult, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var w wireResult
	if err := dec.Decode(&w); err != nil {
		return wireResult{}, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return wireResult{}, errTrailingData
	}
	return w, nil
}

// repairGoEscapes rewrites the escapes Go's strconv.Quote uses but JSON
// lacks (\xHH, \UHHHHHHHH, \a, \v) into JSON ones. It reports whether it
// changed anything.
func repairGoEscapes(body []byte) ([]byte, bool) {
	var out bytes.Buffer
	changed := false
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != '\\' || i+1 >= len(body) {
			out.WriteByte(c)
			continue
		}
		next := body[i+1]
		switch {
		case next == 'x' && i+3 < len(body) && isHex(body[i+2:i+4]):
			out.WriteString(`\u00`)
			out.Write(body[i+2 : i+4])
			i += 3
			changed = true
		case next == 'U' && i+9 < len(body) && isHex(body[i+2:i+10]):
			var r rune
			fmt.Sscanf(string(body[i+2:i+10]), "%x", &r)
			quoted, _ := json.Marshal(string(r))
			out.Write(quoted[1 : len(quoted)-1])
			i += 9
			changed = true
		case next == 'a' || next == 'v':
			fmt.Fprintf(&out, `\u%04x`, map[byte]int{'a': 7, 'v': 11}[next])
			i++
			changed = true
		default: // a JSON escape (\\ included): keep both bytes
			out.WriteByte(c)
			out.WriteByte(next)
			i++
		}
	}
	return out.Bytes(), changed
}

func isHex(b []byte) bool {
	for _, c := range b {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func decodeError(err error) error {
	if errors.Is(err, errTrailingData) {
		return &FieldError{Message: "malformed JSON: unexpected data after the object"}
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		// Fields of the embedded Result are reported as "Result.<field>".
		field := strings.TrimPrefix(typeErr.Field, "Result.")
		if field == "" {
			return &FieldError{Message: fmt.Sprintf("the body must be a JSON object, not %s", typeErr.Value)}
		}
		kind := jsonKind(typeErr.Type.Kind().String())
		if number, ok := strings.CutPrefix(typeErr.Value, "number "); ok && kind == "a number" {
			return &FieldError{Field: field, Message: fmt.Sprintf("%s is out of range", Quote(number))}
		}
		return &FieldError{Field: field, Message: fmt.Sprintf("must be %s, not %s", kind, typeErr.Value)}
	}
	if errors.Is(err, io.EOF) {
		return &FieldError{Message: "malformed JSON: the body is empty"}
	}
	return &FieldError{Message: "malformed JSON: " + err.Error()}
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "float64", "int", "int64":
		return "a number"
	case "map", "struct":
		return "an object"
	case "slice":
		return "an array"
	case "bool":
		return "a boolean"
	}
	return goKind
}

// decodeFailures accepts what Argo sends, a string holding a JSON array or the
// string "null", and also a plain array or null from hand-written clients.
func decodeFailures(raw json.RawMessage) ([]Failure, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	inner := raw
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, &FieldError{Field: "failures", Message: "must be a JSON string: " + err.Error()}
		}
		s = strings.TrimSpace(s)
		if s == "" || s == "null" {
			return nil, nil
		}
		inner = []byte(s)
	}
	var failures []Failure
	if err := json.Unmarshal(inner, &failures); err != nil {
		return nil, &FieldError{Field: "failures", Message: "must hold a JSON array of failed nodes (Argo's {{workflow.failures}}): " + err.Error()}
	}
	if err := checkKeys(inner, failuresShape, "failures"); err != nil {
		return nil, err
	}
	return failures, nil
}

// maxUIDLength bounds the uid: Kubernetes uids are 36 characters.
const maxUIDLength = 128

// Validate checks a decoded callback, received at receivedAt, and names the
// first offending field.
func (r Result) Validate(receivedAt time.Time) error {
	return r.validate(receivedAt, AcceptedPhases)
}

// ValidateObserved checks a result a watcher made from what it observed at
// observedAt: the same rules, with the synthetic phases allowed.
func (r Result) ValidateObserved(observedAt time.Time) error {
	return r.validate(observedAt, ObservedPhases)
}

func (r Result) validate(receivedAt time.Time, phases []Phase) error {
	if err := ValidateNamespace("namespace", r.Namespace); err != nil {
		return err
	}
	if r.WorkflowName == "" {
		return &FieldError{Field: "workflowName", Message: "is required"}
	}
	if len(r.WorkflowName) > MaxNameLength || !dns1123Subdomain.MatchString(r.WorkflowName) {
		return &FieldError{Field: "workflowName", Message: fmt.Sprintf("%s is not a Kubernetes object name", Quote(r.WorkflowName))}
	}
	if r.Phase == "" {
		return &FieldError{Field: "phase", Message: "is required; accepted values: " + acceptedPhaseList()}
	}
	if !slices.Contains(phases, r.Phase) {
		return &FieldError{Field: "phase", Message: fmt.Sprintf("%s is not a finished workflow's phase; accepted values: %s", Quote(string(r.Phase)), acceptedPhaseList())}
	}
	if len(r.UID) > maxUIDLength {
		return &FieldError{Field: "uid", Message: fmt.Sprintf("is longer than %d characters", maxUIDLength)}
	}
	if r.CronJob != "" && r.CronWorkflow != "" {
		return &FieldError{Field: "cronJob", Message: "is set with cronWorkflow: a run belongs to a CronWorkflow or to a CronJob, not both"}
	}
	if job, field := r.jobAndSource(); job != "" {
		if err := ValidateJob(field, r.Kind(), r.Namespace, job); err != nil {
			return err
		}
	}
	if v, ok := r.Annotations[AnnotationFailureThreshold]; ok {
		if _, err := ParseFailureThreshold(v); err != nil {
			return &FieldError{Field: "annotations." + AnnotationFailureThreshold, Message: err.Error()}
		}
	}
	return r.validateTimes(receivedAt)
}

// AnnotationFailureThreshold on a workflow (or CronWorkflow, CronJob) sets
// how many failed runs in a row it takes before its job alerts, like Sentry
// Crons' failure_issue_threshold. Without it, the first failure alerts.
const AnnotationFailureThreshold = "batchlatch.io/failure-threshold"

// MaxFailureThreshold bounds the failure threshold.
const MaxFailureThreshold = 100

// FailureThreshold is the result's failure threshold, 0 when it has none
// (Validate has checked a present one).
func (r Result) FailureThreshold() int {
	n, _ := ParseFailureThreshold(r.Annotations[AnnotationFailureThreshold])
	return n
}

// ParseFailureThreshold reads the annotation's value: a whole number from 1
// to MaxFailureThreshold, else 0 and an error saying so.
func ParseFailureThreshold(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxFailureThreshold {
		return 0, fmt.Errorf("%s is not a whole number from 1 to %d", Quote(v), MaxFailureThreshold)
	}
	return n, nil
}

// PhaseAccepted reports whether p is one of AcceptedPhases.
func PhaseAccepted(p Phase) bool {
	for _, a := range AcceptedPhases {
		if p == a {
			return true
		}
	}
	return false
}

func acceptedPhaseList() string {
	names := make([]string, len(AcceptedPhases))
	for i, p := range AcceptedPhases {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

// Failed reports whether the run failed (Failed or Error, or a synthetic
// failure).
func (r Result) Failed() bool { return r.Phase != PhaseSucceeded }

// Synthetic reports whether a watcher made the result up for a run that did
// not report: a later result of the same run supersedes it.
func (r Result) Synthetic() bool {
	switch r.Phase {
	case PhaseMissed, PhaseSpecError, PhaseSubmissionError, PhaseStuck:
		return true
	}
	return false
}

// JobName is the job the result belongs to: the CronJob or the
// CronWorkflow, else the WorkflowTemplate it came from, else "" (the
// namespace as a whole).
func (r Result) JobName() string {
	job, _ := r.jobAndSource()
	return job
}

// Kind is the kind of the job the result belongs to.
func (r Result) Kind() string {
	if r.CronJob != "" {
		return KindCronJob
	}
	return KindWorkflow
}

func (r Result) jobAndSource() (job, field string) {
	if r.CronJob != "" {
		return r.CronJob, "cronJob"
	}
	if r.CronWorkflow != "" {
		return r.CronWorkflow, "cronWorkflow"
	}
	for _, key := range []string{LabelCronWorkflow, LabelWorkflowTemplate, LabelClusterWorkflowTemplate} {
		if v := r.Labels[key]; v != "" {
			return v, "labels." + key
		}
	}
	return "", ""
}

// DedupKey identifies the run for at-least-once delivery: the workflow uid,
// else its name (names of cron-created workflows are unique per tick).
func (r Result) DedupKey() string {
	if r.UID != "" {
		return r.UID
	}
	return "name:" + r.WorkflowName
}

// FinishedAt is when the run ended: createdAt plus its duration when the body
// has them, else when the result was received. Validate bounds both, so the
// sum cannot overflow.
func (r Result) FinishedAt(receivedAt time.Time) time.Time {
	created, err := ParseTime(r.CreatedAt)
	if err != nil {
		return receivedAt.UTC()
	}
	return created.Add(time.Duration(r.DurationSeconds * float64(time.Second))).UTC()
}
