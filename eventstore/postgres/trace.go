package postgres

import (
	"context"
	"maps"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
)

// WithTracerProvider sets where the store's spans go (default
// otel.GetTracerProvider()), as eventstore.WithTracerProvider does for the
// embedded store: each append makes a span "muninn.append <topic>" (topic,
// aggregate ID, events) and stores its context in the traceparent and
// tracestate headers of every event it appends, so that projections, sagas
// and relays in any replica continue the trace. Without a span in the
// context and without a provider that may start traces, it costs nothing.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(o *options) {
		if tp != nil {
			o.tracer = telemetry.NewTracer(tp)
		}
	}
}

// traceAppend starts the span of an append and returns the events with its
// trace context in their headers (copies: the caller's events and header
// maps are left alone), and a function that ends the span with the append's
// outcome. With nothing to trace it returns events as they are.
func (s *Store) traceAppend(ctx context.Context, topic, key string, events []eventstore.Event) ([]eventstore.Event, func(eventstore.AppendResult, error)) {
	if !s.opts.tracer.Enabled(ctx) {
		return events, func(eventstore.AppendResult, error) {}
	}
	ctx, span := s.opts.tracer.Start(ctx, "muninn.append "+topic, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(
			attribute.String("muninn.topic", topic),
			attribute.String("muninn.aggregate_id", key),
			attribute.Int("muninn.events", len(events)),
		))
	th := telemetry.Headers(ctx)
	if th != nil {
		traced := make([]eventstore.Event, len(events))
		for i, ev := range events {
			h := make(map[string]string, len(ev.Headers)+len(th))
			maps.Copy(h, ev.Headers)
			if _, ok := th[telemetry.HeaderTracestate]; !ok {
				delete(h, telemetry.HeaderTracestate)
			}
			maps.Copy(h, th)
			ev.Headers = h
			traced[i] = ev
		}
		events = traced
	}
	return events, func(res eventstore.AppendResult, err error) {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		} else {
			span.SetAttributes(attribute.Int("muninn.partition", res.Partition))
		}
		span.End()
	}
}
