package postgres_test

import (
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/eventstore/postgres"
	"github.com/muninn-es/muninn/internal/pgtest"
	"github.com/muninn-es/muninn/telemetry"
)

// An append under a span makes a child span and stores its trace context in
// every event's headers, keeping the caller's headers and leaving the
// caller's maps alone, as the embedded store does.
func TestAppendStoresTraceContext(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(t.Context()) }()
	s := pgtest.Open(t, postgres.WithTracerProvider(tp))
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	ctx, parent := tp.Tracer("test").Start(ctx, "request")
	mine := map[string]string{"origin": "test"}
	if _, err := s.Append(ctx, "orders", "o-1", eventstore.NoStream, []eventstore.Event{
		{Type: "placed", Payload: []byte("{}"), Headers: mine},
		{Type: "paid", Payload: []byte("{}")},
	}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	if len(mine) != 1 {
		t.Errorf("the caller's headers were changed: %v", mine)
	}
	var appendSpan sdktrace.ReadOnlySpan
	for _, sp := range exp.GetSpans().Snapshots() {
		if sp.Name() == "muninn.append orders" {
			appendSpan = sp
		}
	}
	if appendSpan == nil {
		t.Fatalf("no append span among %v", exp.GetSpans())
	}
	if appendSpan.Parent().SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("the append span's parent is %v, want the request %v", appendSpan.Parent().SpanID(), parent.SpanContext().SpanID())
	}
	for rec, err := range s.ReadStream(ctx, "orders", "o-1", 1) {
		if err != nil {
			t.Fatal(err)
		}
		sc := telemetry.SpanContextOf(rec.Headers)
		if sc.SpanID() != appendSpan.SpanContext().SpanID() || sc.TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("record %d carries span %v of trace %v, want the append's %v", rec.Version, sc.SpanID(), sc.TraceID(), appendSpan.SpanContext().SpanID())
		}
		if rec.Version == 1 && rec.Headers["origin"] != "test" {
			t.Errorf("record 1 lost the caller's header: %v", rec.Headers)
		}
	}
}

// Without a span and without a provider, nothing is added to the events.
func TestAppendWithoutTraceAddsNoHeaders(t *testing.T) {
	s := pgtest.Open(t)
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "orders", "o-1", eventstore.NoStream, []eventstore.Event{{Type: "placed", Payload: []byte("{}")}}); err != nil {
		t.Fatal(err)
	}
	for rec, err := range s.ReadStream(ctx, "orders", "o-1", 1) {
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.Headers) != 0 {
			t.Errorf("headers %v, want none", rec.Headers)
		}
	}
}
