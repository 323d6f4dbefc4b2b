package alarm

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"cloud.google.com/go/logging"
	"google.golang.org/api/option"
	mrpb "google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/batchlatch/batchlatch/api"
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
	// paceBytes and paceHardBytes pace a burst (a first pass announces every
	// failing job many times: 140,000 entries, 250 MB, at 10,000 jobs with
	// a 12-minute window; 200,000 with the 18-minute default) to
	// what the client sends instead of overflowing bufferedBytes: once more
	// than paceBytes wait to be sent, Write waits until the client has sent
	// them, at the next bundle's boundary (so that bundles stay full) or at
	// once past paceHardBytes (paceHardBytes plus the largest entry is below
	// bufferedBytes). Every byte waiting is heap: paceBytes is about two
	// full bundles (1,000 entries of ~2 KiB each), enough to keep the
	// client's one request in flight busy (it sends one bundle at a time),
	// and a steady tick at 10,000 jobs holds that instead of all of its
	// entries (BenchmarkAlarmTick's tick-heap-MiB). Halved, it made no
	// difference the reliability suite could see (docs/performance.md).
	paceBytes     = 4 << 20
	paceHardBytes = 8 << 20
	// bundleEntries is how many entries the client sends in one request.
	bundleEntries = logging.DefaultEntryCountThreshold
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
	// times out are dropped and counted as errors. It also bounds how long
	// Write waits for the client to catch up with a burst (see pace).
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

	// resources holds the monitored resource of each namespace written to
	// (a sinkResource, never modified): entries share them.
	resources sync.Map

	// What pace knows of the client's buffer: cumulative bytes (estimated)
	// and entries handed to it, and as many of them known sent, or failed:
	// those handed before the last flush that ended, or before the sink was
	// idle long enough. flushDone is closed when the flush in flight ends.
	pmu            sync.Mutex
	handedBytes    int
	handedEntries  int
	sentBytes      int
	bundleStart    int // handedEntries when the client's bundle was last empty
	lastHanded     time.Time
	flushDone      chan struct{}
	gaveUp         bool // the flush in flight outlasted the write timeout
	delayThreshold time.Duration

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
	s.delayThreshold = logging.DefaultDelayThreshold
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
		s.delayThreshold = cfg.delayThreshold
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

// severity is logging.ParseSeverity(string(sev)), without its loop over
// every severity name for the ones the loop writes.
func severity(sev Severity) logging.Severity {
	switch sev {
	case SeverityError:
		return logging.Error
	case SeverityNotice:
		return logging.Notice
	case SeverityInfo:
		return logging.Info
	}
	return logging.ParseSeverity(string(sev))
}

// sinkResource is a namespace's monitored resource and its encoded size.
type sinkResource struct {
	resource *mrpb.MonitoredResource
	size     int
}

// entryResource is resource(namespace), made once per namespace: the
// client only reads an entry's resource, so entries may share it.
func (s *CloudLoggingSink) entryResource(namespace string) sinkResource {
	if r, ok := s.resources.Load(namespace); ok {
		return r.(sinkResource)
	}
	res := s.resource(namespace)
	r, _ := s.resources.LoadOrStore(namespace, sinkResource{res, proto.Size(res)})
	return r.(sinkResource)
}

var errCloudLoggingClosed = errors.New("cloud logging: sink is closed")

// Write implements Sink. The entry is bundled and sent in the background:
// Write waits for the network only in a burst that outruns it (see pace),
// for at most the write timeout.
func (s *CloudLoggingSink) Write(ctx context.Context, e Entry) error {
	payload, payloadSize, err := encodePayload(e.Payload)
	if err != nil {
		s.metrics.sinkError(cloudLoggingSinkName)
		return fmt.Errorf("cloud logging: payload: %w", err)
	}
	namespace := e.Labels[LabelNamespace]
	if namespace == "" { // a heartbeat
		namespace = s.cfg.OwnNamespace
	}
	res := s.entryResource(namespace)
	entry := logging.Entry{
		Timestamp: e.Time,
		InsertID:  e.InsertID,
		Severity:  severity(e.Severity),
		Labels:    withWriter(e.Labels, s.cfg.PodName),
		Payload:   payload,
		Resource:  res.resource,
	}
	// What the client counts against bufferedBytes (proto.Size of the
	// LogEntry), from above: the payload and resource, the labels, the
	// timestamp, severity and insertId, and the fields' tags and lengths.
	size := payloadSize + res.size + len(entry.InsertID) + 64
	for k, v := range entry.Labels {
		size += len(k) + len(v) + 8
	}
	s.pace(ctx, size)

	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		s.metrics.sinkError(cloudLoggingSinkName)
		return errCloudLoggingClosed
	}
	s.logger.Log(entry)
	return nil
}

// pace accounts for an entry of size bytes about to be handed to the client.
// When too many bytes wait in the client's buffer (see paceBytes), it waits
// until the client has sent them, for at most the write timeout: a burst
// goes out at the pace the API takes it instead of overflowing the buffer.
// If they are not sent by then (the API is slow or down), it stops waiting
// until they are, and entries over the buffer are dropped and counted, as
// without pacing. It does not wait once ctx is done.
func (s *CloudLoggingSink) pace(ctx context.Context, size int) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	now := time.Now()
	if idle := now.Sub(s.lastHanded); idle >= s.delayThreshold {
		// The client sent the open bundle (a bundle goes at most its delay
		// after its first entry); after a write timeout more, it is sent or
		// failed.
		s.bundleStart = s.handedEntries
		if idle >= s.delayThreshold+s.cfg.WriteTimeout {
			s.sentBytes = s.handedBytes
		}
	}
	waiting := s.handedBytes - s.sentBytes + size
	boundary := (s.handedEntries-s.bundleStart)%bundleEntries == 0
	if !s.gaveUp && ctx.Err() == nil && (waiting > paceBytes && boundary || waiting > paceHardBytes) {
		done := s.flushLocked()
		s.pmu.Unlock()
		timeout := time.NewTimer(s.cfg.WriteTimeout)
		select {
		case <-done:
		case <-timeout.C:
			s.pmu.Lock()
			if s.flushDone == done {
				s.gaveUp = true
			}
			s.pmu.Unlock()
		case <-ctx.Done():
		case <-s.base.Done():
		}
		timeout.Stop()
		s.pmu.Lock()
		now = time.Now()
	}
	s.handedBytes += size
	s.handedEntries++
	s.lastHanded = now
}

// flushLocked starts a flush of the client's buffer unless one is in
// flight, and returns the channel closed when that flush ends. s.pmu is held.
func (s *CloudLoggingSink) flushLocked() <-chan struct{} {
	if s.flushDone != nil {
		return s.flushDone
	}
	done := make(chan struct{})
	s.flushDone = done
	bytes, entries := s.handedBytes, s.handedEntries
	go func() {
		defer close(done)
		// Errors are counted by onError; Flush's summary is dropped.
		_ = s.logger.Flush()
		s.pmu.Lock()
		defer s.pmu.Unlock()
		s.sentBytes = max(s.sentBytes, bytes)
		s.bundleStart = max(s.bundleStart, entries)
		s.flushDone, s.gaveUp = nil, false
	}()
	return done
}

// flush sends what the client buffers and waits until it is sent (tests).
func (s *CloudLoggingSink) flush() {
	s.pmu.Lock()
	done := s.flushLocked()
	s.pmu.Unlock()
	<-done
	// A flush that was in flight may have begun before the last entries.
	s.pmu.Lock()
	done = s.flushLocked()
	s.pmu.Unlock()
	<-done
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

// encodePayload is p as the entry's jsonPayload: the Struct fitPayload makes
// of it. A payload that fits whole (all of them in practice) takes the fast
// way: appendPayloadWire encodes it straight to that Struct's protobuf encoding,
// which the Struct carries as is (as its unknown fields: the client only
// sizes and marshals it, so it goes out byte for byte as that encoding).
// This saves the JSON round trip, and the client walking the Struct's maps
// on every size and marshal: most of the sink's CPU time at 10,000 failing
// jobs.
//
// The encoding is made in a reused buffer and copied to one of its exact
// size: the client holds each entry until it is sent (two bundles' worth
// at 10,000 failing jobs), and a buffer grown by appends holds up to twice
// what it needs.
func encodePayload(p Payload) (st *structpb.Struct, size int, err error) {
	buf := wireBuffers.Get().(*[]byte)
	wire, ok := appendPayloadWire((*buf)[:0], p)
	if cap(wire) <= maxPooledWire {
		*buf = wire
		defer wireBuffers.Put(buf)
	}
	if ok && len(wire) <= maxPayloadBytes {
		st := &structpb.Struct{}
		st.ProtoReflect().SetUnknown(slices.Clone(wire))
		return st, len(wire), nil
	}
	if st, err = fitPayload(p, maxPayloadBytes); err != nil {
		return nil, 0, err
	}
	return st, proto.Size(st), nil
}

// wireBuffers holds encodePayload's buffers (*[]byte), of at most
// maxPooledWire bytes each.
var wireBuffers = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledWire = 64 << 10

// appendPayloadWire appends the protobuf encoding of the Struct that fitPayload makes
// of p when it fits: what json.Marshal writes of p, decoded into a
// map[string]any and made a Struct by structpb.NewStruct (numbers are
// doubles, times RFC 3339 strings, invalid UTF-8 U+FFFD, omitempty fields
// absent; the view's "failing" is hidden by the payload's). Every map entry
// carries its key and value and every Value its kind, as proto.Marshal
// writes them, so its length is proto.Size of that Struct. ok is false for
// what json.Marshal refuses (NaN, a time outside year 0-9999), left to
// fitPayload. It follows Payload's and api.Job's JSON field by field:
// TestPayloadWireIsFitPayload fails when a field is added and not here.
func appendPayloadWire(dst []byte, p Payload) (wire []byte, ok bool) {
	w := structWriter{b: dst, ok: true}
	w.string("message", p.Message)
	if p.Failing != nil {
		w.number("failing", float64(*p.Failing))
	}
	if p.Heartbeat {
		w.boolean("heartbeat", true)
	}
	if v := p.JobView; v != nil {
		w.string("namespace", v.Namespace)
		w.string("job", v.Job)
		w.string("kind", v.Kind)
		// "failing" is the payload's: the view's is hidden.
		if v.FailingSince != nil {
			w.time("failingSince", *v.FailingSince)
		}
		if v.FailingSeconds != 0 {
			w.number("failingSeconds", v.FailingSeconds)
		}
		w.number("consecutiveFailures", float64(v.ConsecutiveFailures))
		w.time("lastResultAt", v.LastResultAt)
		w.string("lastWorkflow", v.LastWorkflow)
		if v.LastUID != "" {
			w.string("lastUID", v.LastUID)
		}
		w.string("lastPhase", string(v.LastPhase))
		if len(v.LastFailures) > 0 {
			list := w.beginList("lastFailures")
			for _, f := range v.LastFailures {
				item := w.beginStructItem()
				w.omitEmpty("displayName", f.DisplayName)
				w.omitEmpty("message", f.Message)
				w.omitEmpty("templateName", f.TemplateName)
				w.omitEmpty("phase", f.Phase)
				w.omitEmpty("podName", f.PodName)
				w.omitEmpty("finishedAt", f.FinishedAt)
				w.end(item)
			}
			w.end(list)
		}
		if v.LastFailuresOmitted != 0 {
			w.number("lastFailuresOmitted", float64(v.LastFailuresOmitted))
		}
		if v.LastStreak != nil {
			st := w.beginStruct("lastStreak")
			w.streak(*v.LastStreak)
			w.end(st)
		}
		if len(v.Streaks) > 0 {
			list := w.beginList("streaks")
			for _, s := range v.Streaks {
				item := w.beginStructItem()
				w.streak(s)
				w.end(item)
			}
			w.end(list)
		}
		if s := v.Schedule; s != nil {
			st := w.beginStruct("schedule")
			w.string("kind", s.Kind)
			if s.Schedules == nil {
				w.null("schedules")
			} else {
				list := w.beginList("schedules")
				for _, x := range s.Schedules {
					w.stringItem(x)
				}
				w.end(list)
			}
			w.string("timezone", s.Timezone)
			if s.NextTick != nil {
				w.time("nextTick", *s.NextTick)
			}
			if s.Suspended {
				w.boolean("suspended", true)
			}
			if s.Stopped {
				w.boolean("stopped", true)
			}
			w.omitEmpty("note", s.Note)
			w.end(st)
		}
		w.number("failureThreshold", float64(v.FailureThreshold))
		if s := v.Silenced; s != nil {
			st := w.beginStruct("silenced")
			w.string("id", s.ID)
			w.string("namespace", s.Namespace)
			w.omitEmpty("job", s.Job)
			w.omitEmpty("kind", s.Kind)
			w.time("startsAt", s.StartsAt)
			w.time("endsAt", s.EndsAt)
			w.string("reason", s.Reason)
			w.omitEmpty("createdBy", s.CreatedBy)
			w.end(st)
		}
		w.boolean("alerting", v.Alerting)
		if lw := v.LastWarning; lw != nil {
			st := w.beginStruct("lastWarning")
			w.string("field", lw.Field)
			w.string("message", lw.Message)
			w.string("workflow", lw.Workflow)
			w.time("at", lw.At)
			if lw.More != 0 {
				w.number("more", float64(lw.More))
			}
			w.end(st)
		}
		w.omitEmpty("unreadable", v.Unreadable)
		if x := v.Expected; x != nil {
			st := w.beginStruct("expected")
			w.boolean("optedIn", x.OptedIn)
			if x.Auto {
				w.boolean("auto", true)
			}
			if x.EverySeconds != nil {
				w.number("everySeconds", *x.EverySeconds)
			}
			w.time("silentSince", x.SilentSince)
			if x.LateAt != nil {
				w.time("lateAt", *x.LateAt)
			}
			w.boolean("late", x.Late)
			w.omitEmpty("note", x.Note)
			w.end(st)
		}
	}
	return w.b, w.ok
}

// Wire tags of google.protobuf.Struct, Value and ListValue.
const (
	wireStructFields = 1<<3 | 2 // Struct.fields: a map entry
	wireEntryKey     = 1<<3 | 2 // the entry's key
	wireEntryValue   = 2<<3 | 2 // the entry's Value
	wireNull         = 1<<3 | 0 // Value.null_value
	wireNumber       = 2<<3 | 1 // Value.number_value
	wireString       = 3<<3 | 2 // Value.string_value
	wireBool         = 4<<3 | 0 // Value.bool_value
	wireStruct       = 5<<3 | 2 // Value.struct_value
	wireList         = 6<<3 | 2 // Value.list_value
	wireListValues   = 1<<3 | 2 // ListValue.values
)

// structWriter appends the encoding of a Struct's fields; nested Structs and
// lists are begun and ended around their fields and items.
type structWriter struct {
	b  []byte
	ok bool
}

// nested is where a length-delimited field's content starts, for each of
// the fields begun around it (innermost first), to end them.
type nested [3]int

// begin appends tag and a one-byte placeholder for the length of what
// follows, and returns where that starts.
func (w *structWriter) begin(tag byte) int {
	w.b = append(w.b, tag, 0)
	return len(w.b)
}

var varintRoom [binary.MaxVarintLen64]byte

// finish writes the length of what follows start, making room for it when
// it takes more than the placeholder's byte.
func (w *structWriter) finish(start int) {
	n := len(w.b) - start
	k := protowire.SizeVarint(uint64(n))
	if k == 1 {
		w.b[start-1] = byte(n)
		return
	}
	w.b = append(w.b, varintRoom[:k-1]...)
	copy(w.b[start-1+k:], w.b[start:start+n])
	protowire.AppendVarint(w.b[:start-1], uint64(n))
}

// key begins the map entry of key and its Value.
func (w *structWriter) key(key string) nested {
	entry := w.begin(wireStructFields)
	w.b = append(w.b, wireEntryKey)
	w.b = protowire.AppendString(w.b, key)
	return nested{w.begin(wireEntryValue), entry, -1}
}

// end ends what key, beginStruct, beginList or beginStructItem began.
func (w *structWriter) end(n nested) {
	for _, start := range n {
		if start >= 0 {
			w.finish(start)
		}
	}
}

func (w *structWriter) string(key, v string) {
	n := w.key(key)
	w.stringValue(v)
	w.end(n)
}

// omitEmpty is string for a field tagged omitempty.
func (w *structWriter) omitEmpty(key, v string) {
	if v != "" {
		w.string(key, v)
	}
}

func (w *structWriter) number(key string, f float64) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		w.ok = false // json.Marshal fails
	}
	n := w.key(key)
	w.b = append(w.b, wireNumber)
	w.b = protowire.AppendFixed64(w.b, math.Float64bits(f))
	w.end(n)
}

func (w *structWriter) boolean(key string, v bool) {
	n := w.key(key)
	w.b = protowire.AppendVarint(append(w.b, wireBool), protowire.EncodeBool(v))
	w.end(n)
}

func (w *structWriter) null(key string) {
	n := w.key(key)
	w.b = append(w.b, wireNull, 0)
	w.end(n)
}

// time is t as json.Marshal writes it (time.Time.MarshalJSON).
func (w *structWriter) time(key string, t time.Time) {
	n := w.key(key)
	start := w.begin(wireString)
	if b, err := t.AppendText(w.b); err == nil {
		w.b = b
	} else {
		w.ok = false // json.Marshal fails
	}
	w.finish(start)
	w.end(n)
}

// stringValue appends a Value's string as a JSON round trip leaves it: each
// byte of invalid UTF-8 becomes U+FFFD.
func (w *structWriter) stringValue(v string) {
	if utf8.ValidString(v) {
		w.b = protowire.AppendString(append(w.b, wireString), v)
		return
	}
	start := w.begin(wireString)
	for i := 0; i < len(v); {
		r, size := utf8.DecodeRuneInString(v[i:])
		if r == utf8.RuneError && size == 1 {
			w.b = utf8.AppendRune(w.b, utf8.RuneError)
		} else {
			w.b = append(w.b, v[i:i+size]...)
		}
		i += size
	}
	w.finish(start)
}

// beginStruct begins the field key, a Struct whose fields follow.
func (w *structWriter) beginStruct(key string) nested {
	n := w.key(key)
	return nested{w.begin(wireStruct), n[0], n[1]}
}

// beginList begins the field key, a list whose items follow.
func (w *structWriter) beginList(key string) nested {
	n := w.key(key)
	return nested{w.begin(wireList), n[0], n[1]}
}

// beginStructItem begins a list item that is a Struct.
func (w *structWriter) beginStructItem() nested {
	item := w.begin(wireListValues)
	return nested{w.begin(wireStruct), item, -1}
}

// stringItem appends a list item that is a string.
func (w *structWriter) stringItem(v string) {
	item := w.begin(wireListValues)
	w.stringValue(v)
	w.finish(item)
}

// streak writes the fields of an api.Streak.
func (w *structWriter) streak(s api.Streak) {
	w.time("since", s.Since)
	w.time("until", s.Until)
	w.number("seconds", s.Seconds)
	w.number("failures", float64(s.Failures))
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
