package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
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
	// PhaseLate: a job that asks for it (AnnotationExpectedEvery) sent no
	// result for twice its expected interval plus the missed grace.
	PhaseLate Phase = "Late"
)

// ObservedPhases are what a watcher may report: the exit handler's phases
// and the synthetic failures.
var ObservedPhases = append(append([]Phase{}, AcceptedPhases...), PhaseMissed, PhaseSpecError, PhaseSubmissionError, PhaseStuck, PhaseLate)

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

// DecodeResult decodes and validates one callback body, received at
// receivedAt (the bound for the times it carries).
//
// Only what identifies the run and its outcome refuses the body, with a
// *FieldError naming the field: a body that is not a JSON object, and a bad
// namespace, workflowName, uid, cronWorkflow, cronJob or phase (or the
// label that names the job, when no cronWorkflow or cronJob does). Any
// other field that cannot be trusted (a time out of bounds, a bad failure
// threshold, unreadable failures, labels or annotations) is left out, and
// Result.Warnings says which and why: the run is still recorded. On error
// the Result holds the identity fields read so far, for the log only.
func DecodeResult(body []byte, receivedAt time.Time) (Result, error) {
	fields, err := readObject(body)
	var syntaxErr *json.SyntaxError
	if errors.As(err, &syntaxErr) {
		// Argo quotes {{workflow.failures}} with Go's strconv.Quote, which
		// writes DEL and some other runes as \xHH or \UHHHHHHHH: not JSON.
		// Such a callback would be refused on every retry, so repair it.
		if repaired, ok := repairGoEscapes(body); ok {
			fields, err = readObject(repaired)
		}
	}
	if err != nil {
		return Result{}, decodeError(err)
	}
	d := decoding{fields: map[string]json.RawMessage{}}
	res, err := d.decode(fields, receivedAt)
	if err != nil {
		return res, err
	}
	res.Warnings = d.warnings()
	// What is left passes every rule: the degraded fields are gone.
	if err := res.Validate(receivedAt); err != nil {
		return res, err
	}
	return res, nil
}

// identityFields identify a run and its outcome: a problem with one of them
// refuses the callback. (The labels do too, when they name the job.)
var identityFields = map[string]bool{"namespace": true, "workflowName": true, "uid": true, "cronWorkflow": true, "cronJob": true, "phase": true}

// jobLabels are the labels that name the job when no cronWorkflow or
// cronJob does, in the order JobName reads them.
var jobLabels = []string{LabelCronWorkflow, LabelWorkflowTemplate, LabelClusterWorkflowTemplate}

// maxWarnings bounds the warnings of one callback.
const maxWarnings = 8

// decoding is one body being decoded: its known fields and the warnings so
// far.
type decoding struct {
	fields map[string]json.RawMessage
	warned []Warning
	more   int
}

func (d *decoding) warn(field, message string) {
	if len(d.warned) == maxWarnings {
		d.more++
		return
	}
	d.warned = append(d.warned, Warning{Field: field, Message: message})
}

func (d *decoding) warnings() []Warning {
	if d.more > 0 {
		return append(d.warned, Warning{Message: fmt.Sprintf("%d more warnings left out", d.more)})
	}
	return d.warned
}

func (d *decoding) decode(fields []rawField, receivedAt time.Time) (Result, error) {
	var res Result
	// Keys: a known key twice, or in another case, is refused for the
	// identity (two JSON readers could take it differently) and left out
	// otherwise.
	twice := map[string]bool{}
	var otherCase []rawField
	for _, f := range fields {
		if _, known := resultShape.fields[f.key]; !known {
			if want := foldedMatch(resultShape.fields, f.key); want != "" {
				otherCase = append(otherCase, rawField{key: f.key, value: json.RawMessage(want)})
			}
			continue
		}
		if _, dup := d.fields[f.key]; dup {
			twice[f.key] = true
		}
		d.fields[f.key] = f.value
	}
	// The identity first: the rest is judged knowing where the job's name
	// comes from.
	for _, key := range slices.Sorted(maps.Keys(identityFields)) {
		if twice[key] {
			return res, &FieldError{Field: key, Message: "appears twice in one object; send each key once"}
		}
	}
	for _, f := range otherCase {
		if identityFields[string(f.value)] {
			return res, &FieldError{Field: f.key, Message: fmt.Sprintf("unknown key; keys are case-sensitive: did you mean %q?", string(f.value))}
		}
	}
	var phase string
	for _, f := range []struct {
		key string
		dst *string
	}{{"namespace", &res.Namespace}, {"workflowName", &res.WorkflowName}, {"uid", &res.UID}, {"cronWorkflow", &res.CronWorkflow}, {"cronJob", &res.CronJob}, {"phase", &phase}} {
		if err := d.identityString(f.key, f.dst); err != nil {
			return res, err
		}
	}
	res.Phase = Phase(phase)
	if err := res.validateIdentity(AcceptedPhases); err != nil {
		return res, err
	}
	labelsNameJob := res.CronWorkflow == "" && res.CronJob == ""
	for _, f := range otherCase {
		if string(f.value) == "labels" && labelsNameJob {
			return res, &FieldError{Field: f.key, Message: `unknown key; keys are case-sensitive: did you mean "labels"? (the labels name the job when no cronWorkflow or cronJob does)`}
		}
		d.warn(f.key, fmt.Sprintf("unknown key, ignored; keys are case-sensitive: did you mean %q?", string(f.value)))
	}
	for _, key := range slices.Sorted(maps.Keys(twice)) {
		if key == "labels" && labelsNameJob {
			return res, &FieldError{Field: key, Message: "appears twice in one object; send each key once (the labels name the job when no cronWorkflow or cronJob does)"}
		}
		d.warn(key, "appears twice in one object; both ignored")
		delete(d.fields, key)
	}

	labels, err := d.stringMap("labels", labelsNameJob)
	if err != nil {
		return res, err
	}
	res.Labels = labels
	if job, field := res.jobAndSource(); job != "" && labelsNameJob {
		if err := ValidateJob(field, res.Kind(), res.Namespace, job); err != nil {
			return res, err
		}
	}
	if res.Annotations, err = d.stringMap("annotations", false); err != nil {
		return res, err
	}
	if v, ok := res.Annotations[AnnotationFailureThreshold]; ok {
		if _, err := ParseFailureThreshold(v); err != nil {
			d.warn("annotations."+AnnotationFailureThreshold, err.Error()+"; ignored: the job alerts from its first failed run, the default")
			delete(res.Annotations, AnnotationFailureThreshold)
		}
	}
	if v, ok := res.Annotations[AnnotationExpectedEvery]; ok {
		if _, err := ParseExpectedEvery(v); err != nil {
			d.warn("annotations."+AnnotationExpectedEvery, err.Error()+"; ignored: no Late run is reported for the job")
			delete(res.Annotations, AnnotationExpectedEvery)
		}
	}
	if raw, ok := d.fields["failures"]; ok {
		failures, err := decodeFailures(raw)
		if err != nil {
			var fe *FieldError
			errors.As(err, &fe)
			d.warn(fe.Field, fe.Message+"; the run is recorded without its failed steps")
		}
		res.Failures = failures
	}
	d.times(&res, receivedAt)
	return res, nil
}

// identityString decodes the identity field key into dst: a string, or
// null for none.
func (d *decoding) identityString(key string, dst *string) error {
	raw, ok := d.fields[key]
	if !ok {
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return &FieldError{Field: key, Message: fmt.Sprintf("must be a string, not %s", kindOf(raw))}
	}
	return nil
}

// stringMap decodes the object of strings under key. An entry that cannot
// be read (not a string, a key twice) is left out with a warning, and so is
// the whole value when it is not an object; when nameJob is set, a problem
// with the labels that name the job refuses the body instead.
func (d *decoding) stringMap(key string, nameJob bool) (map[string]string, error) {
	raw, ok := d.fields[key]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	names := func(k string) bool { return nameJob && slices.Contains(jobLabels, k) }
	if raw[0] != '{' {
		if nameJob {
			return nil, &FieldError{Field: key, Message: fmt.Sprintf("must be an object of strings, not %s (the labels name the job when no cronWorkflow or cronJob does)", kindOf(raw))}
		}
		d.warn(key, fmt.Sprintf("must be an object of strings, not %s; ignored", kindOf(raw)))
		return nil, nil
	}
	entries, err := readObject(raw)
	if err != nil { // cannot happen: raw is one valid JSON value
		return nil, &FieldError{Field: key, Message: err.Error()}
	}
	out := make(map[string]string, len(entries))
	twice := map[string]bool{}
	for _, e := range entries {
		field := key + "." + e.key
		if _, dup := out[e.key]; dup || twice[e.key] {
			if names(e.key) {
				return nil, &FieldError{Field: field, Message: "appears twice in one object; send each key once"}
			}
			if !twice[e.key] {
				d.warn(field, "appears twice in one object; both ignored")
			}
			twice[e.key] = true
			delete(out, e.key)
			continue
		}
		var v string
		if err := json.Unmarshal(e.value, &v); err != nil || string(e.value) == "null" {
			if names(e.key) {
				return nil, &FieldError{Field: field, Message: fmt.Sprintf("must be a string, not %s", kindOf(e.value))}
			}
			d.warn(field, fmt.Sprintf("must be a string, not %s; ignored", kindOf(e.value)))
			twice[e.key] = true // a later copy is a duplicate too
			continue
		}
		out[e.key] = v
	}
	return out, nil
}

// times reads the run's times. One that cannot be trusted (unreadable, out
// of bounds) is left out: the run is then ordered by when it was received,
// as a retry is, never by a guess.
func (d *decoding) times(res *Result, receivedAt time.Time) {
	const receipt = "; ignored: the run is ordered by when it was received"
	if raw, ok := d.fields["scheduledTime"]; ok && json.Unmarshal(raw, &res.ScheduledTime) != nil {
		d.warn("scheduledTime", fmt.Sprintf("must be an RFC 3339 string, not %s; ignored", kindOf(raw)))
	}
	trusted := true
	if raw, ok := d.fields["createdAt"]; ok && json.Unmarshal(raw, &res.CreatedAt) != nil {
		d.warn("createdAt", fmt.Sprintf("must be an RFC 3339 string, not %s%s", kindOf(raw), receipt))
		trusted = false
	}
	if raw, ok := d.fields["durationSeconds"]; ok && string(raw) != "null" {
		if err := json.Unmarshal(raw, &res.DurationSeconds); err != nil {
			message := fmt.Sprintf("must be a number, not %s", kindOf(raw))
			if kindOf(raw) == "a number" {
				message = fmt.Sprintf("%s is out of range", Quote(string(raw)))
			}
			d.warn("durationSeconds", message+receipt)
			trusted = false
		}
	}
	if !trusted {
		res.CreatedAt, res.DurationSeconds = "", 0
	}
	// validateTimes names one problem at a time; each is left out in turn.
	for range 3 {
		err := res.validateTimes(receivedAt)
		var fe *FieldError
		if !errors.As(err, &fe) {
			return
		}
		if fe.Field == "scheduledTime" {
			d.warn(fe.Field, fe.Message+"; ignored")
			res.ScheduledTime = ""
			continue
		}
		d.warn(fe.Field, fe.Message+receipt)
		if fe.Field == "durationSeconds" && res.CreatedAt != "" {
			// createdAt may be wrong on its own too: say so.
			alone := Result{CreatedAt: res.CreatedAt}
			if err := alone.validateTimes(receivedAt); errors.As(err, &fe) {
				d.warn(fe.Field, fe.Message+receipt)
			}
		}
		res.CreatedAt, res.DurationSeconds = "", 0
	}
}

// rawField is one key of a JSON object and its value.
type rawField struct {
	key   string
	value json.RawMessage
}

var errTrailingData = errors.New("unexpected data after the object")

// errNotObject is a body that is valid JSON but not an object.
type errNotObject string

func (e errNotObject) Error() string { return "the body must be a JSON object, not " + string(e) }

// readObject reads one JSON object, its keys in order (repeats included),
// and nothing after it.
func readObject(data []byte) ([]rawField, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if tok != json.Delim('{') {
		var kind string
		switch tok.(type) {
		case json.Delim:
			kind = "an array"
		case string:
			kind = "a string"
		case float64:
			kind = "a number"
		case bool:
			kind = "a boolean"
		default:
			kind = "null"
		}
		return nil, errNotObject(kind)
	}
	var fields []rawField
	for dec.More() {
		key, err := dec.Token()
		if err != nil {
			return nil, err
		}
		var value json.RawMessage
		if err := dec.Decode(&value); err != nil {
			return nil, err
		}
		fields = append(fields, rawField{key: key.(string), value: value})
	}
	if _, err := dec.Token(); err != nil { // '}'
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errTrailingData
	}
	return fields, nil
}

// kindOf names the kind of a JSON value, as the messages say it.
func kindOf(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
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
	var notObject errNotObject
	switch {
	case errors.Is(err, errTrailingData):
		return &FieldError{Message: "malformed JSON: unexpected data after the object"}
	case errors.As(err, &notObject):
		return &FieldError{Message: notObject.Error()}
	case errors.Is(err, io.EOF):
		return &FieldError{Message: "malformed JSON: the body is empty"}
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		// A body decoded into a struct at once (a silence's).
		if typeErr.Field == "" {
			return &FieldError{Message: fmt.Sprintf("the body must be a JSON object, not %s", typeErr.Value)}
		}
		kind := jsonKind(typeErr.Type.Kind().String())
		if number, ok := strings.CutPrefix(typeErr.Value, "number "); ok && kind == "a number" {
			return &FieldError{Field: typeErr.Field, Message: fmt.Sprintf("%s is out of range", Quote(number))}
		}
		return &FieldError{Field: typeErr.Field, Message: fmt.Sprintf("must be %s, not %s", kind, typeErr.Value)}
	}
	return &FieldError{Message: "malformed JSON: " + err.Error()}
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
	if err := r.validateIdentity(phases); err != nil {
		return err
	}
	if v, ok := r.Annotations[AnnotationFailureThreshold]; ok {
		if _, err := ParseFailureThreshold(v); err != nil {
			return &FieldError{Field: "annotations." + AnnotationFailureThreshold, Message: err.Error()}
		}
	}
	if v, ok := r.Annotations[AnnotationExpectedEvery]; ok {
		if _, err := ParseExpectedEvery(v); err != nil {
			return &FieldError{Field: "annotations." + AnnotationExpectedEvery, Message: err.Error()}
		}
	}
	return r.validateTimes(receivedAt)
}

// validateIdentity checks what identifies the run and its outcome: the
// namespace, the workflow, the job and the phase.
func (r Result) validateIdentity(phases []Phase) error {
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
		return ValidateJob(field, r.Kind(), r.Namespace, job)
	}
	return nil
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
	case PhaseMissed, PhaseSpecError, PhaseSubmissionError, PhaseStuck, PhaseLate:
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
