// Package fakelogging is a Cloud Logging API (google.logging.v2.LoggingServiceV2)
// server for tests: a real gRPC server on 127.0.0.1 that records what the real
// cloud.google.com/go/logging client writes, and can be told to fail.
//
// Use it from a test:
//
//	srv, err := fakelogging.New()
//	...
//	defer srv.Close()
//	client, err := logging.NewClient(ctx, "projects/p", srv.ClientOptions()...)
//
// The client puts the log name, the monitored resource and the common labels
// on the WriteLogEntries request, not on each entry; an entry may override the
// resource (and log name). Entries returns each entry with the values that
// apply to it, as the API would store it. The diagnostic-log entry that the
// client adds to the first write of a process is left out.
package fakelogging

import (
	"context"
	"fmt"
	"maps"
	"net"
	"strings"
	"sync"
	"time"

	logpb "cloud.google.com/go/logging/apiv2/loggingpb"
	"google.golang.org/api/option"
	mrpb "google.golang.org/genproto/googleapis/api/monitoredres"
	logtypepb "google.golang.org/genproto/googleapis/logging/type"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// diagnosticLogID is the log of the entry the client adds to the first write
// of a process.
const diagnosticLogID = "diagnostic-log"

// MaxEntryBytes is the API's limit on one entry: the server answers
// InvalidArgument to a request with a larger entry, as the API does.
const MaxEntryBytes = 256 << 10

// Entry is one stored log entry, with the request's values filled in where
// the entry has none of its own.
type Entry struct {
	// LogName is "projects/<p>/logs/<id>".
	LogName  string
	Resource *mrpb.MonitoredResource
	// Labels are the request's common labels overlaid by the entry's.
	Labels    map[string]string
	Severity  logtypepb.LogSeverity
	Timestamp time.Time
	// Payload is the jsonPayload (nil when the entry has another payload).
	Payload map[string]any
	// Text is the textPayload.
	Text string
	// Size is the entry's encoded size with the request's values filled in:
	// what the API's 256 KiB per-entry limit applies to.
	Size int
	// Proto is the entry as it arrived in the request.
	Proto *logpb.LogEntry
	// Received is when the server took the request that carried the entry.
	Received time.Time
}

// Write is one WriteLogEntries call as the server answered it: kept for
// every call, also with Discard, so a long test can tell when entries
// arrived without storing them.
type Write struct {
	// At is when the call arrived.
	At time.Time
	// Entries is how many entries the server accepted from it (0 for a
	// rejected call; diagnostic-log entries left out).
	Entries int
	// Code is the call's answer: codes.OK when accepted.
	Code codes.Code
	// Labels are those of the call's first accepted entry (the request's
	// common labels overlaid by the entry's), nil when it had none: a
	// client's own labels, such as which process wrote.
	Labels map[string]string
}

// Server is the fake LoggingServiceV2. Its methods are safe for concurrent use.
type Server struct {
	logpb.UnimplementedLoggingServiceV2Server

	lis  net.Listener
	grpc *grpc.Server

	mu            sync.Mutex
	entries       []Entry
	accepted      int  // entries accepted, stored or not
	discard       bool // count entries without storing them
	requests      int  // WriteLogEntries calls
	rejected      int  // calls answered with an error
	diagnostics   int  // diagnostic-log entries skipped
	failCode      codes.Code
	failNext      int
	failNextErr   codes.Code
	lastReq       *logpb.WriteLogEntriesRequest
	writes        []Write
	failUntil     time.Time
	failUntilCode codes.Code
}

// New starts a server on 127.0.0.1 on a free port.
func New() (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakelogging: listen: %w", err)
	}
	s := &Server{lis: lis, grpc: grpc.NewServer()}
	logpb.RegisterLoggingServiceV2Server(s.grpc, s)
	go func() { _ = s.grpc.Serve(lis) }()
	return s, nil
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.lis.Addr().String() }

// ClientOptions make a logging client talk to this server, in plain text and
// without credentials.
func (s *Server) ClientOptions() []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(s.Addr()),
		option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// Close stops the server at once, failing calls in flight.
func (s *Server) Close() { s.grpc.Stop() }

// SetError makes every following WriteLogEntries call fail with code;
// codes.OK makes them succeed again.
func (s *Server) SetError(code codes.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failCode = code
}

// FailNext makes the next n WriteLogEntries calls fail with code (before
// SetError's code applies).
func (s *Server) FailNext(n int, code codes.Code) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.failNextErr = n, code
}

// FailUntil makes every WriteLogEntries call that arrives before until fail
// with code (an outage of the API that ends by itself); after until, calls
// are answered as before. It applies after FailNext and before SetError.
func (s *Server) FailUntil(code codes.Code, until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failUntil, s.failUntilCode = until, code
}

// Writes returns every WriteLogEntries call so far, oldest first.
func (s *Server) Writes() []Write {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Write(nil), s.writes...)
}

// Discard makes the server count the entries it accepts without storing
// them (for benchmarks).
func (s *Server) Discard() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.discard = true
}

// Accepted is how many entries the server accepted, stored or not
// (diagnostic-log entries left out).
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Entries returns the stored entries, oldest first.
func (s *Server) Entries() []Entry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Entry(nil), s.entries...)
}

// Stats returns how many WriteLogEntries calls arrived, how many of them were
// answered with an error, and how many diagnostic-log entries were skipped.
func (s *Server) Stats() (requests, rejected, diagnostics int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests, s.rejected, s.diagnostics
}

// LastRequest is the last WriteLogEntries request that was accepted.
func (s *Server) LastRequest() *logpb.WriteLogEntriesRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastReq
}

// WaitFor polls the stored entries every few milliseconds until ok returns
// true or ctx is done, and returns the entries it last saw.
func (s *Server) WaitFor(ctx context.Context, ok func([]Entry) bool) ([]Entry, error) {
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		entries := s.Entries()
		if ok(entries) {
			return entries, nil
		}
		select {
		case <-ctx.Done():
			return entries, fmt.Errorf("fakelogging: %d entries stored, condition not met: %w", len(entries), ctx.Err())
		case <-tick.C:
		}
	}
}

// WriteLogEntries implements logpb.LoggingServiceV2Server.
func (s *Server) WriteLogEntries(_ context.Context, req *logpb.WriteLogEntriesRequest) (*logpb.WriteLogEntriesResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.requests++
	reject := func(code codes.Code, format string, args ...any) error {
		s.rejected++
		s.writes = append(s.writes, Write{At: now, Code: code})
		return status.Errorf(code, format, args...)
	}
	switch {
	case s.failNext > 0:
		s.failNext--
		return nil, reject(s.failNextErr, "fakelogging: told to fail (%s)", s.failNextErr)
	case now.Before(s.failUntil):
		return nil, reject(s.failUntilCode, "fakelogging: told to fail until %s (%s)", s.failUntil.Format(time.RFC3339), s.failUntilCode)
	case s.failCode != codes.OK:
		return nil, reject(s.failCode, "fakelogging: told to fail (%s)", s.failCode)
	}
	if req.GetLogName() == "" && hasEntryWithoutLogName(req) {
		return nil, reject(codes.InvalidArgument, "fakelogging: no log name")
	}
	entries := make([]Entry, 0, len(req.GetEntries()))
	for i, pe := range req.GetEntries() {
		e := effective(req, pe, !s.discard)
		if e.Size > MaxEntryBytes {
			return nil, reject(codes.InvalidArgument, "fakelogging: entry %d takes %d bytes, more than %d", i, e.Size, MaxEntryBytes)
		}
		e.Received = now
		entries = append(entries, e)
	}
	s.lastReq = req
	accepted := 0
	var labels map[string]string
	for _, e := range entries {
		if strings.HasSuffix(e.LogName, "/logs/"+diagnosticLogID) {
			s.diagnostics++
			continue
		}
		if accepted == 0 {
			labels = e.Labels
		}
		accepted++
		if !s.discard {
			s.entries = append(s.entries, e)
		}
	}
	s.accepted += accepted
	s.writes = append(s.writes, Write{At: now, Entries: accepted, Code: codes.OK, Labels: labels})
	return &logpb.WriteLogEntriesResponse{}, nil
}

func hasEntryWithoutLogName(req *logpb.WriteLogEntriesRequest) bool {
	for _, e := range req.GetEntries() {
		if e.GetLogName() == "" {
			return true
		}
	}
	return false
}

// effective is pe as the API stores it: the entry's own log name, resource
// and labels win over the request's. decode fills in Payload.
func effective(req *logpb.WriteLogEntriesRequest, pe *logpb.LogEntry, decode bool) Entry {
	full := proto.CloneOf(pe)
	if full.LogName == "" {
		full.LogName = req.GetLogName()
	}
	if full.Resource == nil {
		full.Resource = req.GetResource()
	}
	if len(req.GetLabels()) > 0 {
		labels := maps.Clone(req.GetLabels())
		maps.Copy(labels, pe.GetLabels())
		full.Labels = labels
	}
	e := Entry{
		LogName:  full.LogName,
		Resource: full.Resource,
		Labels:   full.Labels,
		Severity: full.Severity,
		Text:     full.GetTextPayload(),
		Size:     proto.Size(full),
		Proto:    pe,
	}
	if ts := full.GetTimestamp(); ts != nil {
		e.Timestamp = ts.AsTime()
	}
	if jp := full.GetJsonPayload(); jp != nil && decode {
		e.Payload = jp.AsMap()
	}
	return e
}
