package saga

import (
	"context"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// WithTracerProvider sets where the saga's spans go (default
// otel.GetTracerProvider()). The saga's loop applies each poll under a
// span linked to the records' traces (see consume.WithTracerProvider), and
// each step an event triggers is a span "muninn.saga.step <saga>", a child
// of the append that wrote the event; each step a due timeout triggers is
// a span "muninn.saga.timeout <saga>", a child of the step that scheduled
// it. The commands the step sends carry
// the step's trace context through the outbox, so that their dispatch, and
// the events they append, continue the event's trace. Give the command bus
// the same provider (command.WithTracerProvider) to see the dispatches.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) { o.tracerProvider = tp }
}

// startStep starts the span of the step st that rec triggers and gives
// st the trace context its commands carry. It returns nil if nothing is
// traced.
func (b *batch[S]) startStep(rec *eventstore.Record, st *Step[S]) trace.Span {
	if b.ctx == nil {
		return nil
	}
	ctx, span := telemetry.StartRecord(b.ctx, rec, "muninn.saga.step "+b.s.def.name)
	return b.began(ctx, span, st)
}

// startTimeout starts the span "muninn.saga.timeout <saga>" of the step
// st that the due timeout d triggers, a child of the step that scheduled
// it, and gives st that trace context for its commands. It returns nil if
// nothing is traced.
func (b *batch[S]) startTimeout(d *deadlineRecord, st *Step[S]) trace.Span {
	if b.ctx == nil {
		return nil
	}
	ctx, span := telemetry.StartHeaders(b.ctx, d.Trace, "muninn.saga.timeout "+b.s.def.name)
	return b.began(ctx, span, st, telemetry.KeyDeadline.String(d.Name))
}

// began gives st the trace context of ctx, the context of its step's span,
// for its commands, and returns the span with the saga's and instance's
// attributes (and extra), or nil if the span is not recording.
func (b *batch[S]) began(ctx context.Context, span trace.Span, st *Step[S], extra ...attribute.KeyValue) trace.Span {
	st.trace = telemetry.Headers(ctx)
	if !span.IsRecording() {
		return nil
	}
	span.SetAttributes(telemetry.KeySaga.String(b.s.def.name), telemetry.KeyInstance.String(st.key))
	if len(extra) > 0 {
		span.SetAttributes(extra...)
	}
	return span
}

// endStep ends a step's span with err, and returns err.
func endStep(span trace.Span, err error) error {
	if span == nil {
		return err
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
	return err
}
