package brokertest

import (
	"context"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// traceSurvives appends one event under a request's span and checks that
// the Inbound on the other side of the engine handles it under a span of
// the same trace: the relay's publish span's context travels in the
// message's metadata.
func traceSurvives(t *testing.T, h Harness) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	topic := "brokertest.trace"
	src, err := eventstore.OpenMem(eventstore.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	dst := openStore(t)
	if err := src.CreateTopic(ctx, topic, eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	pub, sub := h.Open(t)
	defer pub.Close()
	defer sub.Close()
	if si, ok := sub.(message.SubscribeInitializer); ok {
		if err := si.SubscribeInitialize(topic); err != nil {
			t.Fatal(err)
		}
	}
	fast := clock.Backoff{Initial: 20 * time.Millisecond, Max: 300 * time.Millisecond, Multiplier: 2, Jitter: 0.2}
	relay, err := broker.NewRelay(src, pub, broker.RelayConfig{Group: "relay", Topics: []string{topic}, Backoff: fast, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	type handled struct {
		sc     trace.SpanContext
		name   string
		parent trace.SpanContext
	}
	got := make(chan handled, 16)
	handler := func(ctx context.Context, tx eventstore.Txn, rec eventstore.Record) error {
		span := trace.SpanFromContext(ctx)
		h := handled{sc: span.SpanContext()}
		if ro, ok := span.(sdktrace.ReadOnlySpan); ok {
			h.name, h.parent = ro.Name(), ro.Parent()
		}
		select {
		case got <- h:
		default:
		}
		return nil
	}
	in, err := broker.NewInbound(dst, sub, handler, broker.InboundConfig{Name: "brokertest-trace", Topics: []string{topic}, Backoff: fast, TracerProvider: tp})
	if err != nil {
		t.Fatal(err)
	}
	stopIn := runBoth(t, ctx, in.Run)
	defer stopIn()
	waitFor(t, ctx, "inbound subscribed", func() bool { st, err := in.Status(ctx); return err == nil && st.Subscribed })
	stop := runBoth(t, ctx, relay.Run)
	defer stop()

	rctx, req := tp.Tracer("brokertest").Start(ctx, "request")
	res, err := src.Append(rctx, topic, "order-1", eventstore.NoStream, []eventstore.Event{{Type: "order.placed", Payload: []byte(`{}`)}})
	req.End()
	if err != nil {
		t.Fatal(err)
	}
	var appendSpan trace.SpanID
	for _, sp := range exp.GetSpans() {
		if sp.Name == "muninn.append "+topic {
			appendSpan = sp.SpanContext.SpanID()
		}
	}
	select {
	case h := <-got:
		if h.sc.TraceID() != req.SpanContext().TraceID() {
			t.Fatalf("the inbound handled %s/%d under trace %s, want the request's %s", topic, res.FirstOffset, h.sc.TraceID(), req.SpanContext().TraceID())
		}
		if h.name != "muninn.inbound.handle "+topic {
			t.Errorf("the inbound's span is %q, want muninn.inbound.handle %s", h.name, topic)
		}
		if !h.parent.IsValid() || h.parent.SpanID() == appendSpan || h.parent.SpanID() == req.SpanContext().SpanID() {
			t.Errorf("the inbound's span has parent %s; want the relay's publish span (append %s)", h.parent.SpanID(), appendSpan)
		}
	case <-ctx.Done():
		t.Fatal("timed out waiting for the inbound to handle the record")
	}
}
