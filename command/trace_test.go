package command_test

import (
	"context"
	"testing"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

func attrs(kvs []attribute.KeyValue) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// A dispatch under a request's span makes a dispatch span, the append a
// child of it, and the events carry the append's trace context.
func TestDispatchSpanAndEventTraceContext(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	s := openMem(t, eventstore.WithTracerProvider(tp))
	orders := register(t, newBus(t, s, command.WithTracerProvider(tp)))

	ctx, req := tp.Tracer("test").Start(t.Context(), "request")
	res, err := orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"}, command.WithCommandID("c-1"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"})
	if command.KindOf(err) != command.KindFailedPrecondition {
		t.Fatalf("want the second place rejected, got %v", err)
	}
	req.End()

	byName := map[string][]sdktrace.ReadOnlySpan{}
	for _, sp := range exp.GetSpans().Snapshots() {
		byName[sp.Name()] = append(byName[sp.Name()], sp)
	}
	dispatches := byName["muninn.dispatch order command_test.PlaceOrder"]
	appends := byName["muninn.append "+res.Topic]
	if len(dispatches) != 2 || len(appends) != 1 {
		t.Fatalf("want two dispatch spans and one append span, got %v", byName)
	}
	d := dispatches[0]
	if d.Parent().SpanID() != req.SpanContext().SpanID() {
		t.Errorf("dispatch span's parent is %s, want the request's %s", d.Parent().SpanID(), req.SpanContext().SpanID())
	}
	a := attrs(d.Attributes())
	for k, want := range map[attribute.Key]attribute.Value{
		telemetry.KeyAggregate: attribute.StringValue("order"), telemetry.KeyAggregateID: attribute.StringValue("o-1"),
		telemetry.KeyCommandID: attribute.StringValue("c-1"), telemetry.KeyAttempts: attribute.IntValue(1),
		telemetry.KeyConflictRetries: attribute.IntValue(0), telemetry.KeyEvents: attribute.IntValue(1),
	} {
		if a[k] != want {
			t.Errorf("dispatch attribute %s = %v, want %v", k, a[k].Emit(), want.Emit())
		}
	}
	if appends[0].Parent().SpanID() != d.SpanContext().SpanID() {
		t.Errorf("append span is not a child of the dispatch span")
	}
	if rejected := dispatches[1]; rejected.Status().Code != codes.Error {
		t.Errorf("rejected dispatch has status %v, want an error", rejected.Status())
	}
	recs := records(t, s, res.Topic, "o-1")
	if sc := telemetry.SpanContextOf(recs[0].Headers); sc.SpanID() != appends[0].SpanContext().SpanID() || sc.TraceID() != req.SpanContext().TraceID() {
		t.Errorf("event carries %q, want the append span of the request's trace", recs[0].Headers[telemetry.HeaderTraceparent])
	}
}
