package command_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"testing"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// TestLoggingAttributeNames checks that the logging middleware's lines carry
// the telemetry package's attribute names, the trace ID of ctx's span, and
// the error under err.
func TestLoggingAttributeNames(t *testing.T) {
	var buf bytes.Buffer
	logging := command.Logging(slog.New(slog.NewJSONHandler(&buf, nil)))
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3},
		SpanID:     trace.SpanID{4, 5, 6},
		TraceFlags: trace.FlagsSampled,
	})
	ctx := trace.ContextWithSpanContext(context.Background(), sc)
	cmd := &command.Command{Type: "PlaceOrder", ID: "c1", AggregateType: "order", AggregateID: "o-1", CorrelationID: "corr-1"}

	for _, fail := range []bool{false, true} {
		buf.Reset()
		_, _ = logging(func(context.Context, *command.Command) (command.Result, error) {
			if fail {
				return command.Result{}, errors.New("boom")
			}
			return command.Result{Version: 1}, nil
		})(ctx, cmd)
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatalf("log line %q: %v", buf.String(), err)
		}
		want := map[string]any{
			telemetry.AttrCommand:       "PlaceOrder",
			telemetry.AttrCommandID:     "c1",
			telemetry.AttrAggregate:     "order",
			telemetry.AttrAggregateID:   "o-1",
			telemetry.AttrCorrelationID: "corr-1",
			telemetry.AttrTraceID:       sc.TraceID().String(),
		}
		if fail {
			want[telemetry.AttrError] = "boom"
		}
		for k, v := range want {
			if m[k] != v {
				t.Errorf("fail=%v: %s = %v, want %v; line %s", fail, k, m[k], v, buf.String())
			}
		}
	}
}
