package telemetry_test

import (
	"context"
	"testing"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

func provider(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp
}

func TestHeadersRoundTrip(t *testing.T) {
	tp, _ := provider(t)
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	defer span.End()
	h := telemetry.Headers(ctx)
	if h[telemetry.HeaderTraceparent] == "" {
		t.Fatalf("no traceparent in %v", h)
	}
	got := trace.SpanContextFromContext(telemetry.Extract(context.Background(), h))
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() || !got.IsRemote() {
		t.Fatalf("extracted %v, want the remote form of %v", got, span.SpanContext())
	}
	if telemetry.Headers(context.Background()) != nil {
		t.Fatal("headers of a context without a span")
	}
	m := map[string]string{"a": "b"}
	telemetry.Inject(context.Background(), m)
	if len(m) != 1 {
		t.Fatalf("Inject without a span changed the headers: %v", m)
	}
	if ctx := telemetry.Extract(context.Background(), map[string]string{telemetry.HeaderTraceparent: "garbage"}); trace.SpanContextFromContext(ctx).IsValid() {
		t.Fatal("a malformed traceparent gave a span context")
	}
}

func TestLinks(t *testing.T) {
	tp, _ := provider(t)
	ctx1, s1 := tp.Tracer("t").Start(context.Background(), "one")
	ctx2, s2 := tp.Tracer("t").Start(context.Background(), "two")
	s1.End()
	s2.End()
	recs := []eventstore.Record{{Headers: telemetry.Headers(ctx1)}, {}, {Headers: telemetry.Headers(ctx1)}}
	links, shared := telemetry.Links(recs)
	if len(links) != 1 || !shared.IsValid() || shared.SpanID() != s1.SpanContext().SpanID() {
		t.Fatalf("one trace: links %v, shared %v", links, shared)
	}
	recs = append(recs, eventstore.Record{Headers: telemetry.Headers(ctx2)})
	links, shared = telemetry.Links(recs)
	if len(links) != 2 || shared.IsValid() {
		t.Fatalf("two traces: links %v, shared %v", links, shared)
	}
	if !telemetry.HasTrace(recs) || telemetry.HasTrace([]eventstore.Record{{}}) {
		t.Fatal("HasTrace is wrong")
	}
}

func TestTracerStartsOnlyWhereSeen(t *testing.T) {
	tp, exp := provider(t)
	quiet := telemetry.NewTracer(nil) // the global default: no-op
	if ctx, span := quiet.Start(context.Background(), "x"); span.IsRecording() || ctx != context.Background() {
		t.Fatal("the default tracer started a trace")
	}
	if telemetry.NewTracer(noop.NewTracerProvider()).MayStartTraces() {
		t.Fatal("a no-op provider may start traces")
	}
	tr := telemetry.NewTracer(tp)
	_, root := tr.Start(context.Background(), "root")
	root.End()
	parentCtx, parent := tp.Tracer("t").Start(context.Background(), "parent")
	_, child := quiet.Start(parentCtx, "child") // the global tracer under a span: no SDK, no recording
	child.End()
	parent.End()
	if n := len(exp.GetSpans()); n != 2 {
		t.Fatalf("want the root and parent spans, got %d", n)
	}
}

func TestRecordAttrs(t *testing.T) {
	tp, _ := provider(t)
	ctx, span := tp.Tracer("t").Start(context.Background(), "s")
	span.End()
	rec := eventstore.Record{Topic: "orders", Partition: 2, Offset: 7, Key: "o-1", Type: "order.placed", CorrelationID: "req-1", Headers: telemetry.Headers(ctx)}
	got := map[string]string{}
	for _, a := range telemetry.RecordAttrs(&rec) {
		got[a.Key] = a.Value.String()
	}
	want := map[string]string{
		telemetry.AttrTopic: "orders", telemetry.AttrPartition: "2", telemetry.AttrOffset: "7", telemetry.AttrAggregateID: "o-1",
		telemetry.AttrEventType: "order.placed", telemetry.AttrCorrelationID: "req-1", telemetry.AttrTraceID: span.SpanContext().TraceID().String(),
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if n := len(telemetry.TraceAttrs(context.Background())); n != 0 {
		t.Errorf("trace attrs of no span: %d", n)
	}
}
