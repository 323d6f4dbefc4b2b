package alarm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"regexp"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/logging"
	"google.golang.org/api/option"
	mrpb "google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// cloudLoggingSinkName is the "sink" label of the sink's error counter.
const cloudLoggingSinkName = "cloudlogging"

// DefaultWriteTimeout bounds one write request to Cloud Logging, retries
// included, unless CloudLoggingConfig.WriteTimeout says otherwise.
const DefaultWriteTimeout = 10 * time.Second

// Limits of the Cloud Logging API and the sink's share of them.
const (
	// maxEntryBytes is the API's limit on one entry.
	maxEntryBytes = 256 << 10
	// maxPayloadBytes is what an entry's encoded JSON payload may take: the
	// rest of the limit is left for the resource, labels, timestamp and
	// severity (a few hundred bytes in practice).
	maxPayloadBytes = maxEntryBytes - 16<<10
	// failureFieldBytes caps each string of a failure once a payload is too big.
	failureFieldBytes = 1 << 10
	// messageBytes caps the message once a payload is too big even so.
	messageBytes = 64 << 10
	// payloadFieldBytes caps the payload's other strings as a last resort.
	payloadFieldBytes = 1 << 10
	// bufferedBytes bounds what waits in memory for Cloud Logging (the
	// client's default is 1 GiB); more is dropped and counted as errors.
	bufferedBytes = 32 << 20
	// errorLogEvery limits how often write errors are logged; all are counted.
	errorLogEvery = 10 * time.Second
)

const truncatedMark = " …[truncated]"

// logIDPattern is what Cloud Logging accepts as a log ID.
var logIDPattern = regexp.MustCompile(`^[A-Za-z0-9/_.\-]{1,511}$`)

// CloudLoggingConfig says where the Cloud Logging sink writes.
type CloudLoggingConfig struct {
	// Project is the Google Cloud project ID the entries go to. Required.
	Project string
	// LogName is the log ID; DefaultLogName when empty.
	LogName string
	// Cluster, Location, Instance, ContainerName and OwnNamespace are the
	// labels of the k8s_container monitored resource (location is the
	// cluster's region or zone). Each entry's resource carries the failing
	// job's namespace as namespace_name; OwnNamespace is the namespace of
	// the entries about no job in particular (heartbeats).
	//
	// pod_name is Instance, the same for every replica (the Deployment's
	// name), not the writing pod's: a log-based metric makes one time
	// series per resource, and a leader change must not start a second
	// series for each job, which the policy would have to reduce across
	// (the old leader's last values would hold the incident). The writing
	// pod is the entry label LabelWriter (PodName).
	Cluster       string
	Location      string
	Instance      string
	PodName       string
	ContainerName string
	OwnNamespace  string
	// WriteTimeout bounds one write request, retries of transient errors
	// included; DefaultWriteTimeout when zero. Entries of a request that
	// times out are dropped and counted as errors.
	WriteTimeout time.Duration

	// delayThreshold overrides how long the client waits to bundle entries
	// (tests only; the client's default of 1 s when zero).
	delayThreshold time.Duration
}

// CloudLoggingSink writes entries to Cloud Logging through the
// cloud.google.com/go/logging client: Write buffers, and the client sends
// bundles in the background. Entries that cannot be written are counted in
// Metrics.SinkErrors (sink "cloudlogging") and logged.
type CloudLoggingSink struct {
	cfg     CloudLoggingConfig
	client  *logging.Client
	logger  *logging.Logger
	metrics *Metrics
	log     *slog.Logger

	// base is the parent of every write's context; cancelled when Close
	// gives up waiting, so that writes in flight end at once.
	base   context.Context
	cancel context.CancelFunc

	mu     sync.RWMutex // guards closed against Write's use of logger
	closed bool

	// Touched only by onError, which the client never calls concurrently.
	lastErrLog time.Time
	suppressed int
}

// NewCloudLoggingSink makes a client for cfg.Project. opts go to
// logging.NewClient (tests point it at a fake server with them). The
// monitored resource is always given explicitly, so the client never probes
// the GCE metadata server.
func NewCloudLoggingSink(ctx context.Context, cfg CloudLoggingConfig, metrics *Metrics, logger *slog.Logger, opts ...option.ClientOption) (*CloudLoggingSink, error) {
	if cfg.Project == "" {
		return nil, errors.New("cloud logging: no project configured")
	}
	if strings.Contains(cfg.Project, "/") {
		return nil, fmt.Errorf("cloud logging: project %q: want a project ID, not a resource name", cfg.Project)
	}
	if cfg.LogName == "" {
		cfg.LogName = DefaultLogName
	}
	if !logIDPattern.MatchString(cfg.LogName) {
		return nil, fmt.Errorf("cloud logging: log name %q: want 1-511 of A-Z a-z 0-9 / _ - .", cfg.LogName)
	}
	switch {
	case cfg.WriteTimeout < 0:
		return nil, fmt.Errorf("cloud logging: negative write timeout %s", cfg.WriteTimeout)
	case cfg.WriteTimeout == 0:
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if metrics == nil {
		return nil, errors.New("cloud logging: no metrics")
	}
	if logger == nil {
		logger = slog.Default()
	}

	client, err := logging.NewClient(ctx, "projects/"+cfg.Project, opts...)
	if err != nil {
		return nil, fmt.Errorf("cloud logging: new client: %w", err)
	}
	s := &CloudLoggingSink{
		cfg:     cfg,
		client:  client,
		metrics: metrics,
		log:     logger.With("sink", cloudLoggingSinkName),
	}
	s.base, s.cancel = context.WithCancel(context.Background())
	// Set before any other method of client is called (see Client.OnError).
	client.OnError = s.onError

	loggerOpts := []logging.LoggerOption{
		logging.CommonResource(s.resource(cfg.OwnNamespace)),
		logging.ContextFunc(func() (context.Context, func()) {
			ctx, cancel := context.WithTimeout(s.base, cfg.WriteTimeout)
			return ctx, cancel
		}),
		// One bad entry must not drop the other jobs' entries of its bundle.
		logging.PartialSuccess(),
		logging.BufferedByteLimit(bufferedBytes),
	}
	if cfg.delayThreshold > 0 {
		loggerOpts = append(loggerOpts, logging.DelayThreshold(cfg.delayThreshold))
	}
	s.logger = client.Logger(cfg.LogName, loggerOpts...)
	return s, nil
}

// resource is the k8s_container resource of the given namespace.
func (s *CloudLoggingSink) resource(namespace string) *mrpb.MonitoredResource {
	return &mrpb.MonitoredResource{
		Type: "k8s_container",
		Labels: map[string]string{
			"project_id":     s.cfg.Project,
			"location":       s.cfg.Location,
			"cluster_name":   s.cfg.Cluster,
			"namespace_name": namespace,
			"pod_name":       s.cfg.Instance,
			"container_name": s.cfg.ContainerName,
		},
	}
}

var errCloudLoggingClosed = errors.New("cloud logging: sink is closed")

// Write implements Sink. It never waits for the network: the entry is
// bundled and sent in the background.
func (s *CloudLoggingSink) Write(_ context.Context, e Entry) error {
	payload, err := fitPayload(e.Payload, maxPayloadBytes)
	if err != nil {
		s.metrics.sinkError(cloudLoggingSinkName)
		return fmt.Errorf("cloud logging: payload: %w", err)
	}
	namespace := e.Labels[LabelNamespace]
	if namespace == "" { // a heartbeat
		namespace = s.cfg.OwnNamespace
	}
	entry := logging.Entry{
		Timestamp: e.Time,
		InsertID:  e.InsertID,
		Severity:  logging.ParseSeverity(string(e.Severity)),
		Labels:    withWriter(e.Labels, s.cfg.PodName),
		Payload:   payload,
		Resource:  s.resource(namespace),
	}

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.metrics.sinkError(cloudLoggingSinkName)
		return errCloudLoggingClosed
	}
	s.logger.Log(entry)
	return nil
}

// Close implements Sink: it sends what is buffered and closes the client,
// waiting at most until ctx is done; then it abandons the writes still in
// flight (their entries are counted as errors). Write errors are reported
// through the metrics and the log, not here.
func (s *CloudLoggingSink) Close(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()

	done := make(chan error, 1)
	go func() {
		// Flush returns a summary of every error since the client was made,
		// all of them already counted by onError: drop it, so that Close
		// returns only an error of closing itself.
		_ = s.logger.Flush()
		done <- s.client.Close()
	}()
	select {
	case err := <-done:
		s.cancel()
		if err != nil {
			return fmt.Errorf("cloud logging: close: %w", err)
		}
		return nil
	case <-ctx.Done():
		s.cancel()
		return fmt.Errorf("cloud logging: close: entries still unsent: %w", context.Cause(ctx))
	}
}

// onError is the client's OnError: one call per failed write request (which
// may carry several entries) or per entry the client rejected itself.
func (s *CloudLoggingSink) onError(err error) {
	s.metrics.sinkError(cloudLoggingSinkName)
	now := time.Now()
	if !s.lastErrLog.IsZero() && now.Sub(s.lastErrLog) < errorLogEvery {
		s.suppressed++
		return
	}
	s.log.Error("write to Cloud Logging failed; entries dropped", "err", err, "suppressedErrors", s.suppressed)
	s.lastErrLog, s.suppressed = now, 0
}

// fitPayload converts p to the Struct that becomes the entry's jsonPayload,
// the way the client converts a JSON payload (marshal, unmarshal into a map,
// build the Struct; invalid UTF-8 becomes U+FFFD on the way), and cuts it
// until its encoding takes at most limit bytes. A payload that fits is left
// whole. Otherwise it gets "truncated": true and is cut in this order, until
// it fits: each failure's strings to failureFieldBytes; the message to
// messageBytes; the list of failures to as many as fit; the message to what
// fits; every other string to payloadFieldBytes.
func fitPayload(p Payload, limit int) (*structpb.Struct, error) {
	b, err := json.Marshal(p)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	st, err := structpb.NewStruct(m)
	if err != nil {
		return nil, err
	}
	size := proto.Size(st)
	if size <= limit {
		return st, nil
	}
	fits := func() bool {
		size = proto.Size(st)
		return size <= limit
	}
	fields := st.GetFields()
	fields[fieldTruncated] = structpb.NewBoolValue(true)

	list := fields[fieldFailures].GetListValue()
	failures := list.GetValues()
	for _, f := range failures {
		for _, v := range f.GetStructValue().GetFields() {
			cutStringValue(v, failureFieldBytes)
		}
	}
	if fits() {
		return st, nil
	}

	message := fields[fieldMessage]
	cutStringValue(message, messageBytes)
	if fits() {
		return st, nil
	}

	if list != nil {
		// The largest n such that failures[:n] fits, by bisection (fitting
		// is monotonic in n, and all of them do not fit).
		best := -1
		for lo, hi := 0, len(failures)-1; lo <= hi; {
			mid := (lo + hi) / 2
			list.Values = failures[:mid]
			if fits() {
				best, lo = mid, mid+1
			} else {
				hi = mid - 1
			}
		}
		if best > 0 {
			list.Values = failures[:best]
			return st, nil
		}
		delete(fields, fieldFailures)
		if fits() {
			return st, nil
		}
	}

	// Cut the message by what is over: the encoding shrinks by at least the
	// bytes cut, so this ends in a pass.
	for range 3 {
		keep := len(message.GetStringValue()) - (size - limit) - len(truncatedMark)
		if keep <= 0 {
			break
		}
		cutStringValue(message, keep)
		if fits() {
			return st, nil
		}
	}

	// Last resort: every string is capped (the job's names are small in
	// practice, but the sink must never send an entry the API rejects).
	for _, v := range fields {
		cutStringValue(v, payloadFieldBytes)
	}
	if !fits() {
		return nil, fmt.Errorf("payload takes %d bytes after truncation, limit %d", size, limit)
	}
	return st, nil
}

// JSON names of the payload fields that fitPayload cuts or adds.
const (
	fieldMessage   = "message"
	fieldFailures  = "lastFailures"
	fieldTruncated = "truncated"
)

// withWriter is labels plus LabelWriter.
func withWriter(labels map[string]string, writer string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	if writer != "" {
		out[LabelWriter] = writer
	}
	return out
}

// cutStringValue applies cutString to v when v is a string.
func cutStringValue(v *structpb.Value, n int) {
	if sv, ok := v.GetKind().(*structpb.Value_StringValue); ok {
		sv.StringValue = cutString(sv.StringValue, n)
	}
}

// cutString shortens s to at most n bytes, ending on a rune boundary and
// with truncatedMark when it was cut (n smaller than the mark: no mark).
func cutString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	mark := truncatedMark
	if n < len(mark) {
		mark = ""
	}
	keep := n - len(mark)
	for keep > 0 && !utf8.RuneStart(s[keep]) {
		keep--
	}
	return s[:keep] + mark
}
