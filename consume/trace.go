package consume

import (
	"context"
	"log/slog"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// WithTracerProvider sets where the loop's spans go (default
// otel.GetTracerProvider()). Each poll's records are applied under one span
// "muninn.consume <name>" that links to the span context each record
// carries in its headers (the append that wrote it); when all the records
// of a poll come from one span, the loop's span is also its child, so a
// trace shows the request, its events and their handling as one tree. The
// Handler's Begin and Prepare get the span in their context, so what they
// append joins it. Records without trace context make no span unless the
// provider may start traces (see package telemetry).
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) {
		if tp != nil {
			o.tracer = telemetry.NewTracer(tp)
		}
	}
}

// startPoll starts the span of one poll's records and puts it into *ctx,
// or returns nil if there is nothing to trace.
func (l *Loop) startPoll(ctx *context.Context, recs []eventstore.Record) trace.Span {
	tr := l.opts.tracer
	if !tr.MayStartTraces() && !telemetry.HasTrace(recs) {
		return nil
	}
	links, shared := telemetry.Links(recs)
	parent := *ctx
	if shared.IsValid() && !trace.SpanContextFromContext(parent).IsValid() {
		parent = trace.ContextWithRemoteSpanContext(parent, shared)
	}
	c, span := tr.StartLinked(parent, "muninn.consume "+l.name, links,
		trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(telemetry.KeyConsumer.String(l.name), telemetry.KeyRecords.Int(len(recs))))
	if !span.IsRecording() && !span.SpanContext().IsValid() {
		return nil
	}
	*ctx = c
	return span
}

// endPoll ends a poll's span with its outcome.
func endPoll(span trace.Span, errp *error) {
	if err := *errp; err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// logRecord logs msg about rec at level, with the consumer's name, the
// record's attributes (telemetry.RecordAttrs) and attrs.
func (l *Loop) logRecord(ctx context.Context, level slog.Level, msg string, rec *eventstore.Record, attrs ...slog.Attr) {
	if !l.opts.logger.Enabled(ctx, level) {
		return
	}
	all := make([]slog.Attr, 0, 12+len(attrs))
	all = append(all, slog.String(telemetry.AttrConsumer, l.name))
	all = append(all, telemetry.RecordAttrs(rec)...)
	all = append(all, attrs...)
	if span := trace.SpanFromContext(ctx); span.IsRecording() {
		span.AddEvent(msg)
	}
	l.opts.logger.LogAttrs(ctx, level, msg, all...)
}

// endRecord ends the span of one record's handling with its outcome.
func endRecord(span trace.Span, err error) {
	if !span.IsRecording() {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
