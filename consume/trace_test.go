package consume_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// The loop restores each record's trace: one span per poll linked to the
// records' append spans, and for a Func one child span per record of the
// append that wrote it, whose context the function gets.
func TestLoopRestoresRecordTraceContext(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	s := openStore(t, eventstore.WithTracerProvider(tp))
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	var reqs []trace.Span
	for _, key := range []string{"a", "b"} {
		rctx, req := tp.Tracer("test").Start(ctx, "request "+key)
		if _, err := s.Append(rctx, "t", key, eventstore.Any, []eventstore.Event{{Type: "n", Payload: []byte("1")}}); err != nil {
			t.Fatal(err)
		}
		req.End()
		reqs = append(reqs, req)
	}
	seen := map[string]trace.SpanContext{}
	h := consume.Func(func(ctx context.Context, tx eventstore.Txn, rec eventstore.Record) error {
		seen[rec.Key] = trace.SpanContextFromContext(ctx)
		return nil
	})
	l, err := consume.New(s, "g", []string{"t"}, h, consume.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	spans := exp.GetSpans().Snapshots()
	byID := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	var poll sdktrace.ReadOnlySpan
	for _, sp := range spans {
		byID[sp.SpanContext().SpanID()] = sp
		if sp.Name() == "muninn.consume g" {
			poll = sp
		}
	}
	if poll == nil {
		t.Fatalf("no poll span among %d", len(spans))
	}
	if len(poll.Links()) != 2 {
		t.Fatalf("poll span has %d links, want one per trace", len(poll.Links()))
	}
	for i, key := range []string{"a", "b"} {
		sc := seen[key]
		sp, ok := byID[sc.SpanID()]
		if !ok || sp.Name() != "muninn.handle n" {
			t.Fatalf("record %s was handled under span %v, not a handle span", key, sc)
		}
		if sc.TraceID() != reqs[i].SpanContext().TraceID() {
			t.Errorf("record %s was handled in trace %s, want its request's %s", key, sc.TraceID(), reqs[i].SpanContext().TraceID())
		}
		parent := byID[sp.Parent().SpanID()]
		if parent == nil || !strings.HasPrefix(parent.Name(), "muninn.append") {
			t.Errorf("handle span of %s is not a child of the append span", key)
		}
	}
}

// Retries and parking are logged with the record's attributes.
func TestLoopLogsRetriesAndParking(t *testing.T) {
	s := openStore(t)
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, "t", 1, 1)
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	h := consume.Func(func(context.Context, eventstore.Txn, eventstore.Record) error { return errors.New("boom") })
	l, err := consume.New(s, "g", []string{"t"}, h, consume.WithLogger(log), consume.WithRetries(1),
		consume.WithBackoff(clock.Constant(0)), consume.WithErrorPolicy(consume.Park("t.dlq")))
	if err != nil {
		t.Fatal(err)
	}
	if err := l.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	msgs := map[string]map[string]any{}
	for line := range strings.Lines(buf.String()) {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		msgs[m["msg"].(string)] = m
	}
	for _, msg := range []string{"consume: handler failed; retrying", "consume: handler gave up", "consume: record parked"} {
		m, ok := msgs[msg]
		if !ok {
			t.Fatalf("no log line %q in:\n%s", msg, buf.String())
		}
		for k, want := range map[string]any{telemetry.AttrTopic: "t", telemetry.AttrPartition: 0.0, telemetry.AttrOffset: 0.0,
			telemetry.AttrAggregateID: "k0", telemetry.AttrConsumer: "g"} {
			if m[k] != want {
				t.Errorf("%q: %s = %v, want %v", msg, k, m[k], want)
			}
		}
	}
}
