package command

import (
	"context"

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

// startDispatch starts the span of cmd's dispatch.
func (b *Bus) startDispatch(ctx context.Context, cmd *Command) (context.Context, trace.Span) {
	ctx, span := b.cfg.tracer.Start(ctx, "muninn.dispatch "+cmd.AggregateType+" "+cmd.Type, trace.WithSpanKind(trace.SpanKindInternal))
	if span.IsRecording() {
		attrs := []attribute.KeyValue{
			telemetry.KeyAggregate.String(cmd.AggregateType), telemetry.KeyAggregateID.String(cmd.AggregateID),
			telemetry.KeyCommand.String(cmd.Type), telemetry.KeyCommandID.String(cmd.ID),
			telemetry.KeyCorrelationID.String(cmd.CorrelationID),
		}
		if cmd.CausationID != "" {
			attrs = append(attrs, attribute.String("muninn."+telemetry.AttrCausationID, cmd.CausationID))
		}
		span.SetAttributes(attrs...)
	}
	return ctx, span
}

// endDispatch ends a dispatch's span with its outcome.
func endDispatch(span trace.Span, res Result, err error) {
	if span.IsRecording() {
		span.SetAttributes(
			telemetry.KeyAttempts.Int(res.Attempts),
			telemetry.KeyConflictRetries.Int(max(res.Attempts-1, 0)),
			telemetry.KeyDuplicate.Bool(res.Duplicate),
			telemetry.KeyEvents.Int(len(res.EventIDs)),
		)
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
			span.SetAttributes(attribute.String("muninn.error_kind", KindOf(err).String()))
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
