package eventstore

import (
	"context"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// The headers under which an append stores the trace context of its span
// (W3C Trace Context), in every event it appends. Package telemetry reads
// them back.
const (
	HeaderTraceparent = "traceparent"
	HeaderTracestate  = "tracestate"
)

// tracerScope is the instrumentation scope of the store's spans (the
// same as telemetry.ScopeName, which this package cannot import).
const tracerScope = "github.com/muninn-es/muninn"

// defaultTracerProvider is the global provider as it is before a service
// sets one.
var defaultTracerProvider = otel.GetTracerProvider()

// WithTracerProvider sets where the store's spans go (default
// otel.GetTracerProvider()). Each append makes a span "muninn.append" (topic,
// partition, aggregate ID, events, the seconds it waited for its fsync) and
// stores the span's context in the traceparent and tracestate headers of
// every event it appends, so that whoever handles the events later can
// continue the trace. An append under a context without a span starts a
// trace only if tp is given here (not nil, not a no-op provider) or a global
// provider was set; otherwise it costs nothing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) {
		if tp != nil {
			o.tracer = newAppendTracer(tp)
		}
	}
}

// appendTracer makes the spans of appends.
type appendTracer struct {
	t trace.Tracer
	// roots: spans may start traces (a provider was chosen).
	roots bool
	// names caches the span name of each topic, so that an append does not
	// build it.
	names *sync.Map // topic -> "muninn.append " + topic
}

func newAppendTracer(tp trace.TracerProvider) appendTracer {
	roots := true
	if tp == nil {
		tp = otel.GetTracerProvider()
		roots = tp != defaultTracerProvider
	}
	if _, ok := tp.(noop.TracerProvider); ok {
		roots = false
	}
	return appendTracer{t: tp.Tracer(tracerScope), roots: roots, names: new(sync.Map)}
}

// name returns the span name of an append to topic.
func (t appendTracer) name(topic string) string {
	if n, ok := t.names.Load(topic); ok {
		return n.(string)
	}
	n, _ := t.names.LoadOrStore(topic, "muninn.append "+topic)
	return n.(string)
}

// appendSpan is the span of one append (nil when the append is not
// traced: every method is then a no-op).
type appendSpan struct {
	span  trace.Span
	trace map[string]string
	fsync time.Duration
	// attrs are the span's attributes, set in one call when it ends (one
	// copy in the SDK instead of one at the start and a second, grown, at
	// the end); they live here so that passing them allocates nothing.
	attrs [5]attribute.KeyValue
}

// producerSpan are the start options of an append's span, made once (an
// option built per call, and the slice of a variadic call, allocate).
var producerSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindProducer)}

// start starts the span of an append, or returns nil if there is nothing
// to trace: no span in ctx and no provider that may start traces.
func (t appendTracer) start(ctx context.Context, topic, key string, partition, events int) *appendSpan {
	if t.t == nil || (!t.roots && !trace.SpanContextFromContext(ctx).IsValid()) {
		return nil
	}
	ctx, span := t.t.Start(ctx, t.name(topic), producerSpan...)
	a := spanPool.Get().(*appendSpan)
	a.span = span
	if span.IsRecording() {
		a.attrs = [5]attribute.KeyValue{
			attribute.String("muninn.topic", topic),
			attribute.Int("muninn.partition", partition),
			attribute.String("muninn.aggregate_id", key),
			attribute.Int("muninn.events", events),
		}
	}
	if span.SpanContext().IsValid() {
		if a.trace == nil {
			a.trace = make(map[string]string, 2)
		}
		propagation.TraceContext{}.Inject(ctx, propagation.MapCarrier(a.trace))
	}
	return a
}

// headers returns the trace headers to store in the events, or nil.
func (a *appendSpan) headers() map[string]string {
	if a == nil || len(a.trace) == 0 {
		return nil
	}
	return a.trace
}

// now returns the time if the append is traced.
func (a *appendSpan) now() time.Time {
	if a == nil || !a.span.IsRecording() {
		return time.Time{}
	}
	return time.Now()
}

// fsyncWaited records the wait for fsync that began at start.
func (a *appendSpan) fsyncWaited(start time.Time) {
	if a == nil || start.IsZero() {
		return
	}
	a.fsync = time.Since(start)
}

// end ends the span with the append's outcome.
func (a *appendSpan) end(errp *error) {
	if a.span.IsRecording() {
		a.attrs[4] = attribute.Float64("muninn.fsync_wait_seconds", a.fsync.Seconds())
		a.span.SetAttributes(a.attrs[:]...)
		if err := *errp; err != nil {
			a.span.RecordError(err)
			a.span.SetStatus(codes.Error, err.Error())
		}
	}
	a.span.End()
	// The records are encoded and the span has copied the attributes:
	// nothing refers to a any more.
	a.span, a.fsync, a.attrs = nil, 0, [5]attribute.KeyValue{}
	clear(a.trace)
	spanPool.Put(a)
}

// spanPool recycles the appendSpans (and their header maps) of ended
// appends.
var spanPool = sync.Pool{New: func() any { return new(appendSpan) }}
