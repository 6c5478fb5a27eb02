package telemetry

import (
	"context"
	"log/slog"

	"github.com/muninn-es/muninn/eventstore"
	"go.opentelemetry.io/otel/trace"
)

// Log attribute names, the same in every package's log lines.
const (
	AttrTopic         = "topic"
	AttrPartition     = "partition"
	AttrOffset        = "offset"
	AttrAggregate     = "aggregate"
	AttrAggregateID   = "aggregate_id"
	AttrCommand       = "command"
	AttrCommandID     = "command_id"
	AttrCorrelationID = "correlation_id"
	AttrCausationID   = "causation_id"
	AttrTraceID       = "trace_id"
	AttrSpanID        = "span_id"
	AttrEventType     = "event_type"
	AttrEventID       = "event_id"
	AttrConsumer      = "consumer"
	AttrAttempt       = "attempt"
	AttrError         = "err"
)

// RecordAttrs returns the log attributes of a record: topic, partition,
// offset, its key (as aggregate_id), event type and ID, correlation ID, and
// the trace ID its headers carry, if any. A record without a topic (a
// saga's deadline) gets no position.
func RecordAttrs(rec *eventstore.Record) []slog.Attr {
	attrs := make([]slog.Attr, 0, 8)
	if rec.Topic != "" {
		attrs = append(attrs, slog.String(AttrTopic, rec.Topic), slog.Int(AttrPartition, rec.Partition), slog.Int64(AttrOffset, rec.Offset))
	}
	attrs = append(attrs, slog.String(AttrAggregateID, rec.Key), slog.String(AttrEventType, rec.Type))
	if rec.Topic != "" {
		attrs = append(attrs, slog.String(AttrEventID, rec.ID.String()))
	}
	if rec.CorrelationID != "" {
		attrs = append(attrs, slog.String(AttrCorrelationID, rec.CorrelationID))
	}
	if sc := SpanContextOf(rec.Headers); sc.IsValid() {
		attrs = append(attrs, slog.String(AttrTraceID, sc.TraceID().String()))
	}
	return attrs
}

// RecordArgs is RecordAttrs as the variadic arguments of Logger.Info,
// Warn and friends.
func RecordArgs(rec *eventstore.Record) []any {
	attrs := RecordAttrs(rec)
	out := make([]any, len(attrs))
	for i, a := range attrs {
		out[i] = a
	}
	return out
}

// TraceAttrs returns the trace_id and span_id of ctx's span context, or
// nothing if it carries none.
func TraceAttrs(ctx context.Context) []slog.Attr {
	sc := trace.SpanContextFromContext(ctx)
	if !sc.IsValid() {
		return nil
	}
	return []slog.Attr{slog.String(AttrTraceID, sc.TraceID().String()), slog.String(AttrSpanID, sc.SpanID().String())}
}
