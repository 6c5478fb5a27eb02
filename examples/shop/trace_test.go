package shop_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/examples/shop"
	"github.com/muninn-es/muninn/examples/shop/order"
	"github.com/muninn-es/muninn/examples/shop/payment"
	"github.com/muninn-es/muninn/examples/shop/policies"
	"github.com/muninn-es/muninn/examples/shop/readmodels"
	"github.com/muninn-es/muninn/examples/shop/shipping"
	"github.com/muninn-es/muninn/saga"
	"github.com/muninn-es/muninn/service"
	"github.com/muninn-es/muninn/telemetry"
)

// ended tells a test when a span has ended, so that it can wait for the
// spans it expects instead of sleeping.
type ended struct {
	mu sync.Mutex
	ch chan struct{}
}

func newEnded() *ended { return &ended{ch: make(chan struct{})} }

func (e *ended) OnStart(context.Context, sdktrace.ReadWriteSpan) {}
func (e *ended) OnEnd(sdktrace.ReadOnlySpan) {
	e.mu.Lock()
	close(e.ch)
	e.ch = make(chan struct{})
	e.mu.Unlock()
}
func (e *ended) Shutdown(context.Context) error   { return nil }
func (e *ended) ForceFlush(context.Context) error { return nil }

// changed returns a channel closed when the next span ends.
func (e *ended) changed() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ch
}

// spanTree indexes the spans of one trace.
type spanTree struct {
	byID     map[trace.SpanID]sdktrace.ReadOnlySpan
	children map[trace.SpanID][]sdktrace.ReadOnlySpan
	all      []sdktrace.ReadOnlySpan
}

func treeOf(spans []sdktrace.ReadOnlySpan, id trace.TraceID) spanTree {
	t := spanTree{byID: map[trace.SpanID]sdktrace.ReadOnlySpan{}, children: map[trace.SpanID][]sdktrace.ReadOnlySpan{}}
	for _, s := range spans {
		if s.SpanContext().TraceID() != id {
			continue
		}
		t.all = append(t.all, s)
		t.byID[s.SpanContext().SpanID()] = s
		t.children[s.Parent().SpanID()] = append(t.children[s.Parent().SpanID()], s)
	}
	return t
}

// child returns the first child of parent whose name starts with prefix
// and that has the attributes want.
func (t spanTree) child(parent sdktrace.ReadOnlySpan, prefix string, want map[string]string) sdktrace.ReadOnlySpan {
	for _, c := range t.children[parent.SpanContext().SpanID()] {
		if strings.HasPrefix(c.Name(), prefix) && hasAttrs(c, want) {
			return c
		}
	}
	return nil
}

// descendant is child at any depth.
func (t spanTree) descendant(parent sdktrace.ReadOnlySpan, prefix string, want map[string]string) sdktrace.ReadOnlySpan {
	for _, c := range t.children[parent.SpanContext().SpanID()] {
		if strings.HasPrefix(c.Name(), prefix) && hasAttrs(c, want) {
			return c
		}
		if d := t.descendant(c, prefix, want); d != nil {
			return d
		}
	}
	return nil
}

func hasAttrs(s sdktrace.ReadOnlySpan, want map[string]string) bool {
	n := 0
	for _, kv := range s.Attributes() {
		if v, ok := want[string(kv.Key)]; ok && kv.Value.Emit() == v {
			n++
		}
	}
	return n == len(want)
}

func (t spanTree) dump() string {
	var b strings.Builder
	var walk func(id trace.SpanID, depth int)
	walk = func(id trace.SpanID, depth int) {
		for _, c := range t.children[id] {
			b.WriteString(strings.Repeat("  ", depth) + c.Name() + "\n")
			walk(c.SpanContext().SpanID(), depth+1)
		}
	}
	for _, s := range t.all {
		if _, ok := t.byID[s.Parent().SpanID()]; !ok {
			b.WriteString(s.Name() + " (parent " + s.Parent().SpanID().String() + ")\n")
			walk(s.SpanContext().SpanID(), 1)
		}
	}
	return b.String()
}

// TestOrderSpanTree follows one order placed over REST through the whole
// shop in one trace: the request's spans, the PlaceOrder dispatch and its
// append, the order details projection's batch (a child of, or linked to,
// the append), the checkout saga's step under the append, the commands the
// step sends (their dispatches children of the step) and their appends,
// the payment policy's step and on to the order's completion.
func TestOrderSpanTree(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	notify := newEnded()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp), sdktrace.WithSpanProcessor(notify))
	defer tp.Shutdown(context.Background())

	store, err := eventstore.OpenMem(eventstore.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	s, err := shop.New(store, shop.WithClock(clock.NewManual(t0)), shop.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := service.New(service.WithGRPCAddr("127.0.0.1:0"), service.WithHTTPAddr("127.0.0.1:0"), service.WithTracerProvider(tp))
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(func(g *grpc.Server) { s.RegisterGRPC(g) })
	srv.RegisterGateway(shop.RegisterGateway)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = srv.Shutdown(context.Background())
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		_ = s.Close()
	})

	// The client's own span: its traceparent goes with the request.
	cctx, client := tp.Tracer("test").Start(t.Context(), "client")
	body := `{"customer_id": "ada", "items": [{"sku": "sku-1", "quantity": 2, "unit_price_cents": 1250}], "payment_method": "` + payment.MethodCard + `"}`
	req, err := http.NewRequestWithContext(cctx, "POST", "http://"+srv.HTTPAddr()+"/v1/orders", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	propagation.TraceContext{}.Inject(cctx, propagation.HeaderCarrier(req.Header))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	client.End()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /v1/orders: %d %s", resp.StatusCode, b)
	}
	var placed struct {
		OrderID string `json:"order_id"`
	}
	if err := json.Unmarshal(b, &placed); err != nil || placed.OrderID == "" {
		t.Fatalf("POST /v1/orders: %s (%v)", b, err)
	}
	id := placed.OrderID

	wctx, wcancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer wcancel()
	if _, err := s.Checkout().WaitFor(wctx, id, func(in saga.Instance[shop.Checkout]) bool {
		return in.Status == saga.StatusCompleted && in.PendingCommands == 0
	}); err != nil {
		t.Fatalf("checkout of %s: %v", id, err)
	}

	orderAttrs := map[string]string{string(telemetry.KeyAggregateID): id}
	placeOrder := map[string]string{string(telemetry.KeyAggregate): order.Topic, string(telemetry.KeyAggregateID): id, string(telemetry.KeyCommand): "order.PlaceOrder"}
	// check walks the tree and returns what is missing, "" when complete.
	check := func(tr spanTree) string {
		root := tr.byID[client.SpanContext().SpanID()]
		if root == nil {
			return "the client span"
		}
		httpSpan := tr.child(root, "POST /v1/orders", nil)
		if httpSpan == nil {
			return "the HTTP server span under the client's"
		}
		place := tr.descendant(httpSpan, "muninn.dispatch "+order.Topic, placeOrder)
		if place == nil {
			return "the PlaceOrder dispatch under the HTTP request (through the gateway and gRPC)"
		}
		if !hasAttrs(place, map[string]string{string(telemetry.KeyAttempts): "1", string(telemetry.KeyConflictRetries): "0"}) {
			return "attempts and conflict retries on the dispatch span"
		}
		placed := tr.child(place, "muninn.append "+order.Topic, orderAttrs)
		if placed == nil {
			return "the append of order.placed under the dispatch"
		}
		pid := placed.SpanContext().SpanID()
		projected := false
		for _, sp := range tr.all {
			if !strings.HasPrefix(sp.Name(), "muninn.consume projection."+readmodels.OrderDetailsProjection) {
				continue
			}
			if sp.Parent().SpanID() == pid {
				projected = true
			}
			for _, l := range sp.Links() {
				if l.SpanContext.SpanID() == pid {
					projected = true
				}
			}
		}
		if !projected {
			return "the order details projection's batch, child of or linked to the order.placed append"
		}
		step := tr.child(placed, "muninn.saga.step "+shop.CheckoutName, nil)
		if step == nil {
			return "the checkout step under the order.placed append"
		}
		pay := tr.child(step, "muninn.dispatch "+payment.Topic, orderAttrs)
		if pay == nil {
			return "the payment request dispatched by the checkout step"
		}
		payAppend := tr.child(pay, "muninn.append "+payment.Topic, orderAttrs)
		if payAppend == nil {
			return "the append of the payment request under its dispatch"
		}
		if tr.child(step, "muninn.dispatch "+shipping.StockTopic, nil) == nil {
			return "the stock reservation dispatched by the checkout step"
		}
		// The payment provider (the CaptureCards policy: the order is paid
		// by card) answers; the checkout marks the order paid, ships it,
		// and the order completes: all in this trace. DeclineCards takes a
		// step under the same append too, and sends nothing.
		provider := tr.descendant(payAppend, "muninn.saga.step "+policies.CaptureCards().Name(), nil)
		if provider == nil {
			return "the CaptureCards policy's step under the payment request's append"
		}
		if tr.descendant(provider, "muninn.append "+shipping.ShipmentTopic, orderAttrs) == nil {
			return "the shipment's append further down the same trace"
		}
		for _, sp := range tr.all {
			if strings.HasPrefix(sp.Name(), "muninn.append "+order.Topic) && sp.SpanContext().SpanID() != pid {
				if d := tr.byID[sp.Parent().SpanID()]; d != nil && strings.HasPrefix(d.Name(), "muninn.dispatch "+order.Topic) {
					return ""
				}
			}
		}
		return "the later order events' appends"
	}
	var missing string
	for {
		changed := notify.changed()
		missing = check(treeOf(exp.GetSpans().Snapshots(), client.SpanContext().TraceID()))
		if missing == "" {
			break
		}
		select {
		case <-changed:
		case <-wctx.Done():
			t.Fatalf("the trace has no %s; the trace is:\n%s", missing, treeOf(exp.GetSpans().Snapshots(), client.SpanContext().TraceID()).dump())
		}
	}
	// Every event of the order's streams carries trace context of the
	// request's trace.
	for _, tk := range [][2]string{{order.Topic, id}, {payment.Topic, id}, {shipping.ShipmentTopic, id}} {
		for rec, err := range store.ReadStream(t.Context(), tk[0], tk[1], 1) {
			if err != nil {
				t.Fatal(err)
			}
			if sc := telemetry.SpanContextOf(rec.Headers); sc.TraceID() != client.SpanContext().TraceID() {
				t.Errorf("%s %s carries trace %s, want the request's %s", tk[0], rec.Type, sc.TraceID(), client.SpanContext().TraceID())
			}
		}
	}
}
