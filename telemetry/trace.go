package telemetry

import (
	"context"

	"github.com/muninn-es/muninn/eventstore"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// ScopeName is the instrumentation scope of Muninn's tracers and meters.
const ScopeName = "github.com/muninn-es/muninn"

// The record headers that carry trace context (W3C Trace Context).
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// Span attribute keys. They are the log attribute names under the "muninn."
// namespace.
const (
	KeyTopic         = attribute.Key("muninn." + AttrTopic)
	KeyPartition     = attribute.Key("muninn." + AttrPartition)
	KeyOffset        = attribute.Key("muninn." + AttrOffset)
	KeyAggregate     = attribute.Key("muninn." + AttrAggregate)
	KeyAggregateID   = attribute.Key("muninn." + AttrAggregateID)
	KeyCommand       = attribute.Key("muninn." + AttrCommand)
	KeyCommandID     = attribute.Key("muninn." + AttrCommandID)
	KeyCorrelationID = attribute.Key("muninn." + AttrCorrelationID)
	KeyEventType     = attribute.Key("muninn." + AttrEventType)
	KeyEventID       = attribute.Key("muninn." + AttrEventID)
	KeyConsumer      = attribute.Key("muninn." + AttrConsumer)
	// KeyEvents counts the events of an append, KeyRecords the records of a
	// batch.
	KeyEvents  = attribute.Key("muninn.events")
	KeyRecords = attribute.Key("muninn.records")
	// KeyAttempts counts a dispatch's decide-and-append attempts, and
	// KeyConflictRetries the version conflicts it retried.
	KeyAttempts        = attribute.Key("muninn.attempts")
	KeyConflictRetries = attribute.Key("muninn.conflict_retries")
	// KeyDuplicate marks a dispatch whose command ID had been seen.
	KeyDuplicate = attribute.Key("muninn.duplicate")
	// KeyFsyncWait is the seconds an append waited for its fsync.
	KeyFsyncWait = attribute.Key("muninn.fsync_wait_seconds")
	// KeySaga and KeyInstance name a saga and its instance.
	KeySaga     = attribute.Key("muninn.saga")
	KeyInstance = attribute.Key("muninn.instance")
	KeyDeadline = attribute.Key("muninn.deadline")
)

var propagator = propagation.TraceContext{}

// Propagator is the propagator Muninn uses for record headers and message
// metadata: W3C Trace Context.
func Propagator() propagation.TextMapPropagator { return propagator }

// defaultProvider is the global provider as it is before a service sets
// one: a delegate that makes no spans until then.
var defaultProvider = otel.GetTracerProvider()

// Tracer is the tracer of one Muninn component. Its Start makes a span
// only where it can be seen (see the package documentation), and otherwise
// returns the context unchanged with the non-recording span it carries, at
// no cost.
type Tracer struct {
	t     trace.Tracer
	roots bool
}

// NewTracer returns the tracer of tp, or of otel.GetTracerProvider() if tp
// is nil. Spans without a parent are made only if tp is not nil and not a
// no-op provider, or if a global provider has been set.
func NewTracer(tp trace.TracerProvider) Tracer {
	roots := true
	if tp == nil {
		tp = otel.GetTracerProvider()
		roots = tp != defaultProvider
	}
	if _, ok := tp.(noop.TracerProvider); ok {
		roots = false
	}
	return Tracer{t: tp.Tracer(ScopeName), roots: roots}
}

// Start starts a span called name as a child of ctx's span, if ctx carries
// a span context or the tracer may start traces; otherwise it returns ctx
// and the non-recording span of ctx.
func (t Tracer) Start(ctx context.Context, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if t.t == nil || (!t.roots && !trace.SpanContextFromContext(ctx).IsValid()) {
		return ctx, trace.SpanFromContext(ctx)
	}
	return t.t.Start(ctx, name, opts...)
}

// Enabled reports whether Start makes a span under ctx.
func (t Tracer) Enabled(ctx context.Context) bool {
	return t.t != nil && (t.roots || trace.SpanContextFromContext(ctx).IsValid())
}

// MayStartTraces reports whether Start makes spans without a parent.
func (t Tracer) MayStartTraces() bool { return t.t != nil && t.roots }

// SpanContextOf returns the span context carried in headers (a record's
// headers, a message's metadata), or an invalid one if there is none.
func SpanContextOf(headers map[string]string) trace.SpanContext {
	if headers[HeaderTraceparent] == "" {
		return trace.SpanContext{}
	}
	return trace.SpanContextFromContext(propagator.Extract(context.Background(), propagation.MapCarrier(headers)))
}

// Extract returns ctx with the remote span context carried in headers as
// its parent, or ctx unchanged if headers carry none.
func Extract(ctx context.Context, headers map[string]string) context.Context {
	if headers[HeaderTraceparent] == "" {
		return ctx
	}
	return propagator.Extract(ctx, propagation.MapCarrier(headers))
}

// ExtractRecord is Extract of rec's headers.
func ExtractRecord(ctx context.Context, rec *eventstore.Record) context.Context {
	return Extract(ctx, rec.Headers)
}

// Inject writes ctx's span context into headers (traceparent and, if not
// empty, tracestate). It does nothing if ctx carries no valid span context.
func Inject(ctx context.Context, headers map[string]string) {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return
	}
	propagator.Inject(ctx, propagation.MapCarrier(headers))
}

// Headers returns the trace headers of ctx's span context in a new map, or
// nil if ctx carries none.
func Headers(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	h := make(map[string]string, 2)
	propagator.Inject(ctx, propagation.MapCarrier(h))
	return h
}

// Links returns a link to the span context of each record that carries
// one, without repeats, and the one span context they all share (valid
// only if every record that carries one carries the same).
func Links(recs []eventstore.Record) (links []trace.Link, shared trace.SpanContext) {
	same := true
	for i := range recs {
		sc := SpanContextOf(recs[i].Headers)
		if !sc.IsValid() {
			continue
		}
		if len(links) == 0 {
			shared = sc
		} else if !sc.Equal(shared) {
			same = false
		}
		dup := false
		for _, l := range links {
			if l.SpanContext.Equal(sc) {
				dup = true
				break
			}
		}
		if !dup {
			links = append(links, trace.Link{SpanContext: sc})
		}
	}
	if !same {
		shared = trace.SpanContext{}
	}
	return links, shared
}

// HasTrace reports whether any of recs carries trace context.
func HasTrace(recs []eventstore.Record) bool {
	for i := range recs {
		if recs[i].Headers[HeaderTraceparent] != "" {
			return true
		}
	}
	return false
}

// RecordSpanAttrs returns the span attributes of a record: its position,
// key, type and correlation ID.
func RecordSpanAttrs(rec *eventstore.Record) []attribute.KeyValue {
	return []attribute.KeyValue{
		KeyTopic.String(rec.Topic), KeyPartition.Int(rec.Partition), KeyOffset.Int64(rec.Offset),
		KeyAggregateID.String(rec.Key), KeyEventType.String(rec.Type), KeyEventID.String(rec.ID.String()),
		KeyCorrelationID.String(rec.CorrelationID),
	}
}

// StartLinked is Start for a span with links: it makes the span also when
// ctx carries no span context but links are given (one batch handling the
// records of several traces).
func (t Tracer) StartLinked(ctx context.Context, name string, links []trace.Link, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	if t.t == nil || (!t.roots && len(links) == 0 && !trace.SpanContextFromContext(ctx).IsValid()) {
		return ctx, trace.SpanFromContext(ctx)
	}
	if len(links) > 0 {
		opts = append(opts, trace.WithLinks(links...))
	}
	return t.t.Start(ctx, name, opts...)
}

// StartRecord restores the trace context rec carries for the work done on
// it: it returns a context whose span is a child, called name, of the span
// that appended rec, linked to the span of ctx (the batch that handles rec)
// and made by the tracer provider of ctx's span. If ctx's span is not
// recording, the returned context simply carries rec's remote span
// context, so that what is done on rec (a command dispatched, an event
// appended) still joins rec's trace. A record without trace context leaves
// ctx as it is. End the span returned; it may be a non-recording one.
func StartRecord(ctx context.Context, rec *eventstore.Record, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return startFrom(ctx, rec.Headers, rec, name, opts)
}

// StartHeaders is StartRecord for a trace context kept elsewhere than in
// a record's headers (a saga's deadline keeps the one of the step that
// scheduled it): the span called name is a child of the span whose
// context headers carry, linked to the span of ctx. Headers without trace
// context leave ctx as it is. End the span returned; it may be a
// non-recording one.
func StartHeaders(ctx context.Context, headers map[string]string, name string, opts ...trace.SpanStartOption) (context.Context, trace.Span) {
	return startFrom(ctx, headers, nil, name, opts)
}

// startFrom is StartRecord and StartHeaders; rec, if not nil, gives the
// span its attributes.
func startFrom(ctx context.Context, headers map[string]string, rec *eventstore.Record, name string, opts []trace.SpanStartOption) (context.Context, trace.Span) {
	sc := SpanContextOf(headers)
	batch := trace.SpanFromContext(ctx)
	if !sc.IsValid() {
		if !batch.IsRecording() {
			return ctx, batch
		}
		sc = batch.SpanContext()
	}
	parent := trace.ContextWithRemoteSpanContext(ctx, sc)
	if !batch.IsRecording() {
		return parent, trace.SpanFromContext(parent)
	}
	if bsc := batch.SpanContext(); bsc.IsValid() && !bsc.Equal(sc) {
		opts = append(opts, trace.WithLinks(trace.Link{SpanContext: bsc}))
	}
	if rec != nil {
		opts = append(opts, trace.WithAttributes(RecordSpanAttrs(rec)...))
	}
	return batch.TracerProvider().Tracer(ScopeName).Start(parent, name, opts...)
}
