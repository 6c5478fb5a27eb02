package command

import (
	"context"
	"sync"

	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// WithTracerProvider sets where the bus's spans go (default
// otel.GetTracerProvider()). Every dispatch makes a span "muninn.dispatch"
// (aggregate type and ID, command type and ID, correlation ID, attempts,
// version conflicts retried, duplicate) under the caller's context, so the
// append it makes, and the events it stores, belong to the caller's trace. A
// dispatch under a context without a span starts a trace only if tp is
// given (not nil, not a no-op provider) or a global provider was set.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(c *config) {
		if tp != nil {
			c.tracer = telemetry.NewTracer(tp)
		}
	}
}

// dispatchSpan are the start options of a dispatch's span, made once (an
// option built per call, and the slice of a variadic call, allocate).
var dispatchSpan = []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindInternal)}

// spanNameKey is what a dispatch span's name is made of.
type spanNameKey struct{ aggregate, command string }

// startDispatch starts the span of cmd's dispatch. Its attributes are set
// when it ends (endDispatch), in one call.
func (b *Bus) startDispatch(ctx context.Context, cmd *Command) (context.Context, trace.Span) {
	k := spanNameKey{cmd.AggregateType, cmd.Type}
	name, ok := b.spanNames.Load(k)
	if !ok {
		name, _ = b.spanNames.LoadOrStore(k, "muninn.dispatch "+cmd.AggregateType+" "+cmd.Type)
	}
	return b.cfg.tracer.Start(ctx, name.(string), dispatchSpan...)
}

// dispatchAttrs is the most attributes a dispatch span has.
const dispatchAttrs = 11

// attrBufs are scratch arrays for a dispatch span's attributes (the SDK
// copies them), so that setting them allocates only the SDK's copy.
var attrBufs = sync.Pool{New: func() any { return new([dispatchAttrs]attribute.KeyValue) }}

// endDispatch ends the span of cmd's dispatch with its attributes and
// outcome.
func endDispatch(span trace.Span, cmd *Command, res Result, err error) {
	if span.IsRecording() {
		buf := attrBufs.Get().(*[dispatchAttrs]attribute.KeyValue)
		attrs := append(buf[:0],
			telemetry.KeyAggregate.String(cmd.AggregateType), telemetry.KeyAggregateID.String(cmd.AggregateID),
			telemetry.KeyCommand.String(cmd.Type), telemetry.KeyCommandID.String(cmd.ID),
			telemetry.KeyCorrelationID.String(cmd.CorrelationID),
			telemetry.KeyAttempts.Int(res.Attempts),
			telemetry.KeyConflictRetries.Int(max(res.Attempts-1, 0)),
			telemetry.KeyDuplicate.Bool(res.Duplicate),
			telemetry.KeyEvents.Int(len(res.EventIDs)),
		)
		if cmd.CausationID != "" {
			attrs = append(attrs, attribute.String("muninn."+telemetry.AttrCausationID, cmd.CausationID))
		}
		if err != nil {
			attrs = append(attrs, attribute.String("muninn.error_kind", KindOf(err).String()))
		}
		span.SetAttributes(attrs...)
		clear(buf[:])
		attrBufs.Put(buf)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
	}
	span.End()
}

// noteConflict records on the dispatch's span that attempt met a version
// conflict and will be retried.
func noteConflict(ctx context.Context, attempt int, err error) {
	span := trace.SpanFromContext(ctx)
	if !span.IsRecording() {
		return
	}
	span.AddEvent("version conflict; retrying", trace.WithAttributes(telemetry.KeyAttempts.Int(attempt), attribute.String("muninn.error", err.Error())))
}
