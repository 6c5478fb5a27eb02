package saga_test

import (
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/muninn-es/muninn/internal/fulfillment"
	"github.com/muninn-es/muninn/saga"
	"github.com/muninn-es/muninn/telemetry"
)

// TestTimeoutContinuesTheTrace: a timeout that fires hours after the step
// that scheduled it continues that step's trace, as the commands the step
// sends do: the timeout's step is a span under the scheduling step, and
// the command it sends appends events in the same trace.
func TestTimeoutContinuesTheTrace(t *testing.T) {
	e := newEnv(t)
	spans := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(spans))
	t.Cleanup(func() { tp.Shutdown(t.Context()) })
	s := start(e, e.bus, restartSaga(), saga.WithTracerProvider(tp))

	ctx, request := tp.Tracer("test").Start(t.Context(), "request")
	if _, err := e.jobs.Dispatch(ctx, "j", openJob{Account: "acct", Amount: 5}); err != nil {
		t.Fatal(err)
	}
	request.End()
	id := request.SpanContext().TraceID()
	waitInstance(t, s.Saga, "j", func(in saga.Instance[jobState]) bool { return len(in.Deadlines) == 2 && in.PendingCommands == 0 })

	e.clock.Advance(2 * time.Hour) // the reminder (a command) and the timeout "expire" fall due
	waitInstance(t, s.Saga, "j", func(in saga.Instance[jobState]) bool {
		return in.Status == saga.StatusCompleted && in.PendingCommands == 0
	})
	wantEntries(t, e, "acct", "credited 5 open j", "credited 1 remind j", "credited 12 expire j")
	for i, rec := range e.ledgerRecords("acct") {
		if got := telemetry.SpanContextOf(rec.Headers).TraceID(); got != id {
			t.Errorf("ledger event %d (%s): trace %s, want the request's %s (headers %v)", i+1, e.entries("acct")[i], got, id, rec.Headers)
		}
	}

	var step, timeout sdktrace.ReadOnlySpan
	for _, sp := range spans.Ended() {
		switch sp.Name() {
		case "muninn.saga.step restart":
			step = sp
		case "muninn.saga.timeout restart":
			timeout = sp
		}
	}
	switch {
	case step == nil || timeout == nil:
		t.Fatalf("spans: step %v, timeout %v; want both", step != nil, timeout != nil)
	case timeout.SpanContext().TraceID() != id:
		t.Errorf("the timeout's span is in trace %s, want the request's %s", timeout.SpanContext().TraceID(), id)
	case timeout.Parent().SpanID() != step.SpanContext().SpanID():
		t.Errorf("the timeout's span has parent %s, want the step that scheduled it (%s)", timeout.Parent().SpanID(), step.SpanContext().SpanID())
	}
	want := map[string]string{"muninn.saga": "restart", "muninn.instance": "j", "muninn.deadline": "expire"}
	for _, kv := range timeout.Attributes() {
		if v, ok := want[string(kv.Key)]; ok && kv.Value.Emit() == v {
			delete(want, string(kv.Key))
		}
	}
	if len(want) != 0 {
		t.Errorf("the timeout's span lacks the attributes %v; it has %v", want, timeout.Attributes())
	}
}

// TestFailureContinuesTheTrace: when a saga fails, the commands of its
// OnFailure handler and its compensations continue the request's trace,
// as every other command of the saga does (no tracer provider is set: the
// trace context travels in the records alone).
func TestFailureContinuesTheTrace(t *testing.T) {
	w := newWorld(t)
	id := trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36}
	sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: id, SpanID: trace.SpanID{0, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7}, TraceFlags: trace.FlagsSampled})
	ctx := trace.ContextWithSpanContext(t.Context(), sc)
	o := fulfillment.PlaceOrder{Customer: "ad", Total: fulfillment.DeclineAbove + 1, SKU: "sku-1", Qty: 1, Address: "1 Main St"}
	if _, err := w.h.Orders.Dispatch(ctx, "o-1", o); err != nil {
		t.Fatal(err)
	}
	w.settle("o-1", saga.StatusFailed)
	wantTypes(t, "order", w.types("orders", "o-1"), "order.placed", "order.cancelled")
	wantTypes(t, "stock", w.types("stock", "sku-1"), "stock.reserved", "stock.released")
	for _, s := range [][2]string{{"orders", "o-1"}, {"stock", "sku-1"}, {"payments", "o-1"}} {
		for rec, err := range w.store.ReadStream(t.Context(), s[0], s[1], 1) {
			if err != nil {
				t.Fatal(err)
			}
			if got := telemetry.SpanContextOf(rec.Headers).TraceID(); got != id {
				t.Errorf("%s/%s v%d %s: trace %s, want the request's %s", s[0], s[1], rec.Version, rec.Type, got, id)
			}
		}
	}
}
