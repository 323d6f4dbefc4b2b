package server

import (
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"

	"github.com/batchlatch/batchlatch/api"
)

// Messages of the log lines about callbacks that were refused or recorded
// with warnings: the shipped Terraform's refusal metric filters on
// LogCallbackRefused (examples/terraform), so they are constants. The lines
// say why under "detail": the binary's log names its message "message".
const (
	LogCallbackRefused  = "callback refused"
	LogCallbackDegraded = "callback recorded with warnings"
)

// The reasons a callback is refused, the label reason of
// batchlatch_callbacks_refused_total: a bounded set, the field that
// identifies the run where one is to blame.
const (
	ReasonUnauthenticated      = "unauthenticated"
	ReasonBodyTooLarge         = "body_too_large"
	ReasonUnsupportedMediaType = "unsupported_media_type"
	ReasonMalformed            = "malformed"
	ReasonJob                  = "job"
)

// The values of the label namespace of batchlatch_callbacks_refused_total
// that are not a namespace: none could be read, the one read is not a
// namespace, or too many distinct ones were refused already.
const (
	NamespaceUnknown  = ""
	NamespaceInvalid  = "invalid"
	NamespaceOverflow = "other"
)

// maxNamespaceLabels bounds the distinct namespaces the refusal counter
// (and the log limiter) keeps apart; later ones count as NamespaceOverflow.
const maxNamespaceLabels = 100

// refusalsKept is how many refusals the status page lists.
const refusalsKept = 5

// Each kind of log line about callbacks (refused in one namespace for one
// reason, or degraded in one namespace for one field) is let through in a
// burst, then once per logInterval; the lines held back are counted on the
// next one.
const (
	logBurst    = 5
	logInterval = 10 * time.Second
	// logKeysKept bounds the limiter's memory; keys past it share one.
	logKeysKept = 1024
)

// refusal is a callback that was refused: what the status page lists.
type refusal struct {
	At        time.Time
	Status    int
	Namespace string // as read from the body, if at all
	Job       string
	Field     string
	Message   string
}

// callbackReport tells about the callbacks that were refused or recorded
// with warnings: the counters, one WARN line per callback (rate-limited),
// and, for the status page, how many were refused in the last hour and the
// latest of them. Memory is bounded whatever arrives.
type callbackReport struct {
	logger  *slog.Logger
	metrics *Metrics
	now     func() time.Time

	mu         sync.Mutex
	namespaces map[string]bool // the namespace labels in use
	limiter    logLimiter
	// perMinute counts the refusals of each of the last 60 minutes (the
	// slot of minute m is m%60, valid while minutes[i] == m).
	perMinute [60]int
	minutes   [60]int64
	latest    []refusal // newest first
}

func newCallbackReport(logger *slog.Logger, metrics *Metrics, now func() time.Time) *callbackReport {
	return &callbackReport{
		logger:     logger.With("component", "results"),
		metrics:    metrics,
		now:        now,
		namespaces: map[string]bool{},
		limiter:    logLimiter{keys: map[string]*keyLimit{}},
	}
}

// namespaceLabel is the value of the label namespace for namespace, as read
// from a body: bounded. It holds r.mu.
func (r *callbackReport) namespaceLabel(namespace string) string {
	switch {
	case namespace == "":
		return NamespaceUnknown
	case api.ValidateNamespace("namespace", namespace) != nil:
		return NamespaceInvalid
	case r.namespaces[namespace]:
		return namespace
	case len(r.namespaces) < maxNamespaceLabels:
		r.namespaces[namespace] = true
		return namespace
	}
	return NamespaceOverflow
}

// refusalReason is the reason label of a refusal with status and field.
func refusalReason(status int, field string) string {
	switch status {
	case 401:
		return ReasonUnauthenticated
	case 413:
		return ReasonBodyTooLarge
	case 415:
		return ReasonUnsupportedMediaType
	}
	top, _, _ := strings.Cut(field, ".")
	switch top {
	case "namespace", "workflowName", "uid", "phase":
		return top
	case "cronWorkflow", "cronJob", "labels", "Labels":
		return ReasonJob
	}
	return ReasonMalformed
}

// refused records a refused callback: what was read of its run (maybe
// nothing), the status it got and why.
func (r *callbackReport) refused(run api.Result, status int, detail api.ErrorDetail) {
	now := r.now()
	reason := refusalReason(status, detail.Field)
	r.mu.Lock()
	namespace := r.namespaceLabel(run.Namespace)
	minute := now.Unix() / 60
	slot := minute % 60
	if r.minutes[slot] != minute {
		r.minutes[slot], r.perMinute[slot] = minute, 0
	}
	r.perMinute[slot]++
	r.latest = append([]refusal{{
		At: now, Status: status, Namespace: clip(run.Namespace), Job: clip(run.JobName()),
		Field: clip(detail.Field), Message: detail.Message,
	}}, r.latest[:min(len(r.latest), refusalsKept-1)]...)
	allowed, held := r.limiter.allow(namespace+"\x00refused\x00"+reason, now)
	r.mu.Unlock()

	r.metrics.Refused.WithLabelValues(namespace, reason).Inc()
	if !allowed {
		return
	}
	// The namespace only when it is one: a log-based metric extracts it
	// (examples/terraform), and anything else would be a label value of
	// the sender's choosing.
	attrs := []any{"namespace", "", "invalidNamespace", "", "job", clip(run.JobName()), "workflow", clip(run.WorkflowName),
		"status", status, "reason", reason, "field", clip(detail.Field), "detail", detail.Message}
	if namespace == NamespaceInvalid {
		attrs[3] = clip(run.Namespace)
	} else if run.Namespace != "" {
		attrs[1] = run.Namespace
	}
	if held > 0 {
		attrs = append(attrs, "suppressed", held)
	}
	r.logger.Warn(LogCallbackRefused, trimAttrs(attrs)...)
}

// degraded records a callback that was recorded without the fields its
// warnings name.
func (r *callbackReport) degraded(run api.Result) {
	if len(run.Warnings) == 0 {
		return
	}
	for _, w := range run.Warnings {
		r.metrics.Warnings.WithLabelValues(warningField(w.Field)).Inc()
	}
	first := run.Warnings[0]
	r.mu.Lock()
	allowed, held := r.limiter.allow(r.namespaceLabel(run.Namespace)+"\x00degraded\x00"+warningField(first.Field), r.now())
	r.mu.Unlock()
	if !allowed {
		return
	}
	attrs := []any{"namespace", run.Namespace, "job", run.JobName(), "workflow", run.WorkflowName,
		"field", first.Field, "detail", first.Message}
	if len(run.Warnings) > 1 {
		attrs = append(attrs, "more", len(run.Warnings)-1)
	}
	if held > 0 {
		attrs = append(attrs, "suppressed", held)
	}
	r.logger.Warn(LogCallbackDegraded, trimAttrs(attrs)...)
}

// clipBytes bounds what a refused body's identity fields show of
// themselves: they may be anything up to the body's size.
const clipBytes = 253

// clip is s cut to clipBytes, on a rune boundary, the cut marked.
func clip(s string) string {
	if len(s) <= clipBytes {
		return s
	}
	cut := clipBytes
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// trimAttrs leaves out the empty strings among key/value pairs.
func trimAttrs(attrs []any) []any {
	out := attrs[:0]
	for i := 0; i+1 < len(attrs); i += 2 {
		if s, ok := attrs[i+1].(string); ok && s == "" {
			continue
		}
		out = append(out, attrs[i], attrs[i+1])
	}
	return out
}

// warningFields are the values of the label field of
// batchlatch_callback_warnings_total: the body's top-level fields.
var warningFields = []string{"scheduledTime", "createdAt", "durationSeconds", "failures", "labels", "annotations"}

// warningField is a warning's field as a bounded label value: its top-level
// field, "other" for an unknown key.
func warningField(field string) string {
	top, _, _ := strings.Cut(field, ".")
	top, _, _ = strings.Cut(top, "[")
	if slices.Contains(warningFields, top) {
		return top
	}
	return "other"
}

// recentRefusals is how many callbacks were refused in the hour before now,
// and the latest of them, newest first.
func (r *callbackReport) recentRefusals() (int, []refusal) {
	now := r.now()
	minute := now.Unix() / 60
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for i, m := range r.minutes {
		if m > minute-60 && m <= minute {
			n += r.perMinute[i]
		}
	}
	var latest []refusal
	for _, f := range r.latest {
		if now.Sub(f.At) < time.Hour {
			latest = append(latest, f)
		}
	}
	return n, latest
}

// refusalRunKey is where a handler leaves what it read of a refused
// callback's run, for noteRefusals.
const refusalRunKey = "batchlatch.refusedRun"

// noteRefusals reports each callback that the rest of the chain refused
// (a 4xx: the run was not recorded), with the error abortWithError left and
// what the handler read of the run, if anything.
func noteRefusals(report *callbackReport) gin.HandlerFunc {
	return func(c *gin.Context) {
		c.Next()
		if status := c.Writer.Status(); status >= 400 && status < 500 {
			var run api.Result
			if v, ok := c.Get(refusalRunKey); ok {
				run = v.(api.Result)
			}
			err := errors.New("refused")
			if last := c.Errors.Last(); last != nil {
				err = last.Err
			}
			_, detail := errorResponse(err)
			report.refused(run, status, detail)
		}
	}
}

// logLimiter lets a burst of lines through per key, then one per
// logInterval, counting those it holds back (golang.org/x/time/rate does
// the token buckets; the keys and their bound are this file's). Its caller
// holds the lock that guards it.
type logLimiter struct {
	keys     map[string]*keyLimit
	overflow *keyLimit
}

type keyLimit struct {
	lim  *rate.Limiter
	held int
}

func newKeyLimit() *keyLimit {
	return &keyLimit{lim: rate.NewLimiter(rate.Every(logInterval), logBurst)}
}

// allow reports whether a line of key may be written at now, and how many
// of that key were held back since the last one.
func (l *logLimiter) allow(key string, now time.Time) (bool, int) {
	k := l.keys[key]
	if k == nil {
		if len(l.keys) >= logKeysKept {
			// Forget the keys whose buckets are full again: they would let
			// the next line through anyway.
			for key, k := range l.keys {
				if k.held == 0 && k.lim.TokensAt(now) >= logBurst {
					delete(l.keys, key)
				}
			}
		}
		if len(l.keys) < logKeysKept {
			k = newKeyLimit()
			l.keys[key] = k
		} else {
			if l.overflow == nil {
				l.overflow = newKeyLimit()
			}
			k = l.overflow
		}
	}
	if !k.lim.AllowN(now, 1) {
		k.held++
		return false, 0
	}
	held := k.held
	k.held = 0
	return true, held
}
