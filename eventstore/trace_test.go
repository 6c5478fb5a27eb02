package eventstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/muninn-es/muninn/eventstore"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

func tracedStore(t *testing.T, opts ...eventstore.Option) (*eventstore.PebbleStore, *tracetest.InMemoryExporter, trace.Tracer) {
	t.Helper()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	s, err := eventstore.OpenMem(append([]eventstore.Option{eventstore.WithCleanupInterval(0), eventstore.WithTracerProvider(tp)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.CreateTopic(context.Background(), "orders", eventstore.TopicConfig{Partitions: 4}); err != nil {
		t.Fatal(err)
	}
	return s, exp, tp.Tracer("test")
}

func spanContextOf(h map[string]string) trace.SpanContext {
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(h)))
}

// An append under a span makes a child span and stores that span's context
// in every event's headers, beside the caller's own headers.
func TestAppendStoresTraceContextInHeaders(t *testing.T) {
	s, exp, tracer := tracedStore(t)
	ctx, parent := tracer.Start(context.Background(), "request")
	res, err := s.Append(ctx, "orders", "o-1", eventstore.NoStream, []eventstore.Event{
		{Type: "order.placed", Payload: []byte("{}"), Headers: map[string]string{"tenant": "t1", "traceparent": "00-bogus"}},
		{Type: "order.paid", Payload: []byte("{}")},
	})
	parent.End()
	if err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("want the append's span and the request's, got %d", len(spans))
	}
	app := spans[0]
	if app.Name != "muninn.append orders" || app.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Fatalf("append span %q has parent %s, want a child of %s", app.Name, app.Parent.SpanID(), parent.SpanContext().SpanID())
	}
	want := map[attribute.Key]attribute.Value{
		"muninn.topic": attribute.StringValue("orders"), "muninn.aggregate_id": attribute.StringValue("o-1"),
		"muninn.events": attribute.IntValue(2), "muninn.partition": attribute.IntValue(res.Partition),
	}
	got := map[attribute.Key]attribute.Value{}
	for _, kv := range app.Attributes {
		got[kv.Key] = kv.Value
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("attribute %s = %v, want %v", k, got[k].Emit(), v.Emit())
		}
	}
	if _, ok := got["muninn.fsync_wait_seconds"]; !ok {
		t.Errorf("no fsync wait attribute: %v", app.Attributes)
	}
	recs := readAll(t, s, "orders", res.Partition)
	if len(recs) != 2 {
		t.Fatalf("read %d records", len(recs))
	}
	for _, r := range recs {
		sc := spanContextOf(r.Headers)
		if !sc.IsValid() || sc.SpanID() != app.SpanContext.SpanID() || sc.TraceID() != parent.SpanContext().TraceID() {
			t.Fatalf("record %d carries trace context %q, want the append span's %s", r.Offset, r.Headers["traceparent"], app.SpanContext.SpanID())
		}
	}
	if recs[0].Headers["tenant"] != "t1" {
		t.Errorf("the caller's header is lost: %v", recs[0].Headers)
	}
}

// A failed append's span records the error.
func TestAppendSpanRecordsConflict(t *testing.T) {
	s, exp, tracer := tracedStore(t)
	ctx, parent := tracer.Start(context.Background(), "request")
	_, err := s.Append(ctx, "orders", "o-1", eventstore.Exact(3), []eventstore.Event{{Type: "e", Payload: []byte("{}")}})
	parent.End()
	if !errors.Is(err, eventstore.ErrVersionConflict) {
		t.Fatalf("want a version conflict, got %v", err)
	}
	if spans := exp.GetSpans(); len(spans) != 2 || spans[0].Status.Code != codes.Error {
		t.Fatalf("want the append span with an error status, got %v", spans)
	}
}

// Without a span in the context and without a provider that may start
// traces, an append stores no trace headers.
func TestAppendWithoutTraceStoresNoHeaders(t *testing.T) {
	s, err := eventstore.OpenMem(eventstore.WithCleanupInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "orders", "o-1", eventstore.NoStream, []eventstore.Event{{Type: "e", Payload: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, s, "orders", 0)
	if len(recs) != 1 || len(recs[0].Headers) != 0 {
		t.Fatalf("want one record without headers, got %+v", recs)
	}
}

// With a provider given, an append without a parent starts a trace.
func TestAppendStartsTraceWithProvider(t *testing.T) {
	s, exp, _ := tracedStore(t)
	res, err := s.Append(context.Background(), "orders", "o-2", eventstore.NoStream, []eventstore.Event{{Type: "e", Payload: []byte("{}")}})
	if err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans()
	if len(spans) != 1 || spans[0].Parent.IsValid() {
		t.Fatalf("want one root span, got %v", spans)
	}
	recs := readAll(t, s, "orders", res.Partition)
	if sc := spanContextOf(recs[0].Headers); sc.SpanID() != spans[0].SpanContext.SpanID() {
		t.Fatalf("record carries %q, want span %s", recs[0].Headers["traceparent"], spans[0].SpanContext.SpanID())
	}
}

func readAll(t *testing.T, s *eventstore.PebbleStore, topic string, partition int) []eventstore.Record {
	t.Helper()
	var out []eventstore.Record
	for r, err := range s.ReadPartition(context.Background(), topic, partition, 0) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}
