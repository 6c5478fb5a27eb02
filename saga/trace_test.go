package saga_test

import (
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

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
