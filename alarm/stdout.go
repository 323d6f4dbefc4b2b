package alarm

import (
	"context"
	"encoding/json"
	"io"
	"sync"
	"time"
)

// StdoutSink writes one JSON line per entry in the structured-logging format
// that GKE's logging agent reads: "severity", "message", "time" and
// "logging.googleapis.com/labels" and "logging.googleapis.com/insertId" are
// lifted into the entry, the rest becomes
// its JSON payload. The agent files the lines under the pod's own resource
// and log, so a policy on these entries filters on the payload.
type StdoutSink struct {
	mu      sync.Mutex
	w       io.Writer
	metrics *Metrics
}

// NewStdoutSink writes to w.
func NewStdoutSink(w io.Writer, metrics *Metrics) *StdoutSink {
	return &StdoutSink{w: w, metrics: metrics}
}

type stdoutLine struct {
	Severity Severity          `json:"severity"`
	Time     string            `json:"time"`
	Labels   map[string]string `json:"logging.googleapis.com/labels,omitempty"`
	InsertID string            `json:"logging.googleapis.com/insertId,omitempty"`
	Payload
}

// Write implements Sink.
func (s *StdoutSink) Write(_ context.Context, e Entry) error {
	line, err := json.Marshal(stdoutLine{
		Severity: e.Severity,
		Time:     e.Time.UTC().Format(time.RFC3339Nano),
		Labels:   e.Labels,
		InsertID: e.InsertID,
		Payload:  e.Payload,
	})
	if err != nil {
		s.metrics.sinkError("stdout")
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(append(line, '\n')); err != nil {
		s.metrics.sinkError("stdout")
		return err
	}
	return nil
}

// Close implements Sink; every line is already written.
func (s *StdoutSink) Close(context.Context) error { return nil }
