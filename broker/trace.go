package broker

import (
	"context"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// startPublish starts a span for each record about to be published to
// topic, a child of the record's trace, and writes its context into the
// message's metadata. It returns the spans that record.
func startPublish(ctx context.Context, topic string, recs []eventstore.Record, msgs []*message.Message) []trace.Span {
	var spans []trace.Span
	for i := range recs {
		sctx, span := telemetry.StartRecord(ctx, &recs[i], "muninn.relay.publish "+topic,
			trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attribute.String("messaging.destination.name", topic)))
		if trace.SpanContextFromContext(sctx).IsValid() {
			delete(msgs[i].Metadata, telemetry.HeaderTracestate)
			telemetry.Propagator().Inject(sctx, propagation.MapCarrier(msgs[i].Metadata))
		}
		if span.IsRecording() {
			spans = append(spans, span)
		}
	}
	return spans
}

// endPublish ends the spans of one Publish with its outcome.
func endPublish(spans []trace.Span, err error) {
	for _, span := range spans {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
}

// handleTraced calls an Inbound's handler on rec under a span that
// continues the trace the message carried.
func handleTraced(ctx context.Context, h Handler, topic string, tx eventstore.Txn, rec eventstore.Record) error {
	ctx, span := telemetry.StartRecord(ctx, &rec, "muninn.inbound.handle "+topic, trace.WithSpanKind(trace.SpanKindConsumer))
	err := h(ctx, tx, rec)
	if span.IsRecording() {
		if err != nil {
			span.RecordError(err)
			span.SetStatus(codes.Error, err.Error())
		}
		span.End()
	}
	return err
}
