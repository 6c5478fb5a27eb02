package saga_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/backends"
	"github.com/muninn-es/muninn/internal/fulfillment"
	"github.com/muninn-es/muninn/saga"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

// world is the four contexts on one in-memory store, with the fulfillment
// saga running on a manual clock.
type world struct {
	t     *testing.T
	store eventstore.Store
	bus   *command.Bus
	h     *fulfillment.Handlers
	clock *clock.Manual
	saga  *saga.Saga[fulfillment.Fulfillment]
	stop  func() error

	mu   sync.Mutex
	sent []string // "<command type> <aggregate ID>" in dispatch order
}

func newWorld(t *testing.T, opts ...saga.Option) *world {
	t.Helper()
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return newWorldOn(t, store, opts...)
}

// newWorldOn is newWorld on a store of the test's (see package
// internal/backends).
func newWorldOn(t *testing.T, store eventstore.Store, opts ...saga.Option) *world {
	t.Helper()
	w := &world{t: t, store: store, clock: clock.NewManual(t0)}
	w.start(opts...)
	return w
}

// start creates the bus and the saga on w's store and runs the saga.
func (w *world) start(opts ...saga.Option) {
	w.t.Helper()
	ctx := w.t.Context()
	bus, err := command.New(w.store, command.WithMiddleware(func(next command.HandlerFunc) command.HandlerFunc {
		return func(ctx context.Context, cmd *command.Command) (command.Result, error) {
			w.mu.Lock()
			w.sent = append(w.sent, cmd.Type+" "+cmd.AggregateID)
			w.mu.Unlock()
			return next(ctx, cmd)
		}
	}))
	if err != nil {
		w.t.Fatal(err)
	}
	if w.h, err = fulfillment.Register(ctx, bus); err != nil {
		w.t.Fatal(err)
	}
	opts = append([]saga.Option{saga.WithClock(w.clock), saga.WithBackoff(clock.Constant(time.Millisecond))}, opts...)
	s, err := saga.New(w.store, bus, fulfillment.Saga(), opts...)
	if err != nil {
		w.t.Fatal(err)
	}
	w.bus, w.saga = bus, s
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(rctx) }()
	stopped := false
	w.stop = func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancel()
		err := <-done
		bus.Close()
		return err
	}
	w.t.Cleanup(func() {
		if err := w.stop(); err != nil {
			w.t.Errorf("saga Run: %v", err)
		}
	})
}

func (w *world) place(id string, o fulfillment.PlaceOrder) {
	w.t.Helper()
	if _, err := w.h.Orders.Dispatch(command.WithCorrelationID(w.t.Context(), "request-"+id), id, o); err != nil {
		w.t.Fatal(err)
	}
}

// settle waits until instance id has status and no pending commands.
func (w *world) settle(id string, status saga.Status) saga.Instance[fulfillment.Fulfillment] {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), waitTime)
	defer cancel()
	in, err := w.saga.WaitFor(ctx, id, func(in saga.Instance[fulfillment.Fulfillment]) bool {
		return in.Status == status && in.PendingCommands == 0
	})
	if err != nil {
		w.t.Fatalf("instance %s: %v; stats %+v", id, err, w.saga.Stats())
	}
	return in
}

// types returns the event types of topic's stream key.
func (w *world) types(topic, key string) []string {
	w.t.Helper()
	var out []string
	for rec, err := range w.store.ReadStream(w.t.Context(), topic, key, 1) {
		if err != nil {
			w.t.Fatal(err)
		}
		out = append(out, rec.Type)
	}
	return out
}

func wantTypes(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: events %v, want %v", what, got, want)
	}
}

func TestHappyPath(t *testing.T) {
	backends.Run(t, testHappyPath)
}

func testHappyPath(t *testing.T, backend backends.Backend) {
	w := newWorldOn(t, backend.Open(t))
	w.place("o-1", fulfillment.PlaceOrder{Customer: "ada", Total: 4200, SKU: "sku-1", Qty: 2, Address: "1 Main St"})
	in := w.settle("o-1", saga.StatusCompleted)
	if !in.State.Paid || !in.State.Shipped || in.State.Outcome != "completed" || in.Steps != 4 || len(in.Deadlines) != 0 {
		t.Errorf("instance %+v", in)
	}
	if in.CorrelationID != "request-o-1" {
		t.Errorf("correlation %q, want the placing request's", in.CorrelationID)
	}
	wantTypes(t, "order", w.types("orders", "o-1"), "order.placed", "order.completed")
	wantTypes(t, "payment", w.types("payments", "o-1"), "payment.captured")
	wantTypes(t, "shipment", w.types("shipments", "o-1"), "shipment.scheduled")
	wantTypes(t, "stock", w.types("stock", "sku-1"), "stock.reserved")

	// Lineage: every command the saga sent carries the workflow's
	// correlation ID, and the ID of the event it reacted to as causation.
	placed := w.read("orders", "o-1")[0]
	captured := w.read("payments", "o-1")[0]
	if captured.CorrelationID != "request-o-1" || captured.Headers[command.CausationHeader] != placed.ID.String() {
		t.Errorf("payment.captured: correlation %q, command causation %q; want %q and the order.placed ID %s",
			captured.CorrelationID, captured.Headers[command.CausationHeader], "request-o-1", placed.ID)
	}
	scheduled := w.read("shipments", "o-1")[0]
	if scheduled.CorrelationID != "request-o-1" || scheduled.Headers[command.CausationHeader] != captured.ID.String() {
		t.Errorf("shipment.scheduled: correlation %q, command causation %q", scheduled.CorrelationID, scheduled.Headers[command.CausationHeader])
	}
	st := w.stats(func(st saga.Stats) bool { return st.Completed == 1 })
	if st.Started != 1 || st.Completed != 1 || st.Failed != 0 || st.Commands != 4 || st.Duplicates != 0 || st.PendingCommands != 0 {
		t.Errorf("stats %+v", st)
	}
}

// stats waits until the saga's Stats satisfy cond (they are updated just
// after the writes they count) and returns them.
func (w *world) stats(cond func(saga.Stats) bool) saga.Stats {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.t.Context(), waitTime)
	defer cancel()
	if _, err := w.saga.WaitFor(ctx, "", func(saga.Instance[fulfillment.Fulfillment]) bool { return cond(w.saga.Stats()) }); err != nil {
		w.t.Fatalf("stats %+v: %v", w.saga.Stats(), err)
	}
	return w.saga.Stats()
}

func (w *world) read(topic, key string) []eventstore.Record {
	w.t.Helper()
	var out []eventstore.Record
	for rec, err := range w.store.ReadStream(w.t.Context(), topic, key, 1) {
		if err != nil {
			w.t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

func TestPaymentDeclinedCancelsOrder(t *testing.T) {
	backends.Run(t, testPaymentDeclinedCancelsOrder)
}

func testPaymentDeclinedCancelsOrder(t *testing.T, backend backends.Backend) {
	w := newWorldOn(t, backend.Open(t))
	w.place("o-2", fulfillment.PlaceOrder{Customer: "bob", Total: fulfillment.DeclineAbove + 1, SKU: "sku-2", Qty: 1, Address: "2 Main St"})
	in := w.settle("o-2", saga.StatusFailed)
	if !strings.Contains(in.State.Outcome, "payment declined") || in.Failure == nil || in.LastError == "" {
		t.Errorf("instance %+v", in)
	}
	wantTypes(t, "order", w.types("orders", "o-2"), "order.placed", "order.cancelled")
	wantTypes(t, "payment", w.types("payments", "o-2"), "payment.declined")
	wantTypes(t, "stock", w.types("stock", "sku-2"), "stock.reserved", "stock.released")
	wantTypes(t, "shipment", w.types("shipments", "o-2"))
	order, err := w.h.Order(t.Context(), "o-2")
	if err != nil || !order.Cancelled || !strings.Contains(order.CancelReason, "payment declined") {
		t.Errorf("order %+v, %v", order, err)
	}
}

func TestPaymentTimeoutCancelsOrder(t *testing.T) {
	backends.Run(t, testPaymentTimeoutCancelsOrder)
}

func testPaymentTimeoutCancelsOrder(t *testing.T, backend backends.Backend) {
	w := newWorldOn(t, backend.Open(t))
	w.place("o-3", fulfillment.PlaceOrder{Customer: "cy", Total: fulfillment.NeverAnswer, SKU: "sku-3", Qty: 1, Address: "3 Main St"})
	in := w.settle("o-3", saga.StatusRunning)
	if len(in.Deadlines) != 1 || in.Deadlines[0].Name != "payment-timeout" || !in.Deadlines[0].At.Equal(t0.Add(fulfillment.PaymentTimeout)) {
		t.Fatalf("deadlines %+v", in.Deadlines)
	}
	var listed []saga.Deadline
	for d, err := range w.saga.Deadlines(t.Context()) {
		if err != nil {
			t.Fatal(err)
		}
		listed = append(listed, d)
	}
	if len(listed) != 1 || listed[0].Key != "o-3" || listed[0].ID != in.Deadlines[0].ID {
		t.Errorf("Deadlines listed %+v, instance has %+v", listed, in.Deadlines)
	}

	// Not yet: a minute early changes nothing.
	w.clock.Advance(fulfillment.PaymentTimeout - time.Minute)
	wantTypes(t, "order", w.types("orders", "o-3"), "order.placed")
	w.clock.Advance(time.Minute)
	in = w.settle("o-3", saga.StatusFailed)
	if !strings.Contains(in.State.Outcome, "not answered") || len(in.Deadlines) != 0 {
		t.Errorf("instance %+v", in)
	}
	wantTypes(t, "order", w.types("orders", "o-3"), "order.placed", "order.cancelled")
	wantTypes(t, "stock", w.types("stock", "sku-3"), "stock.reserved", "stock.released")
	if st := w.stats(func(st saga.Stats) bool { return st.Failed == 1 }); st.DeadlinesFired != 1 {
		t.Errorf("stats %+v", st)
	}
	for d, err := range w.saga.Deadlines(t.Context()) {
		t.Errorf("deadline %+v (%v) left after firing", d, err)
	}
}

func TestRejectedShipmentCompensatesInReverse(t *testing.T) {
	backends.Run(t, testRejectedShipmentCompensatesInReverse)
}

func testRejectedShipmentCompensatesInReverse(t *testing.T, backend backends.Backend) {
	w := newWorldOn(t, backend.Open(t))
	w.place("o-4", fulfillment.PlaceOrder{Customer: "di", Total: 1000, SKU: "sku-4", Qty: 3}) // no address
	in := w.settle("o-4", saga.StatusFailed)
	if in.Failure == nil || in.Failure.Command != "shipment.schedule" || !strings.Contains(in.Failure.Reason, "no shipping address") {
		t.Errorf("failure %+v", in.Failure)
	}
	wantTypes(t, "payment", w.types("payments", "o-4"), "payment.captured", "payment.refunded")
	wantTypes(t, "stock", w.types("stock", "sku-4"), "stock.reserved", "stock.released")
	wantTypes(t, "order", w.types("orders", "o-4"), "order.placed", "order.cancelled")
	// Newest first: the refund (step 2's) before the stock release (step
	// 1's), then the OnFailure handler's cancellation.
	wantSent := []string{
		"fulfillment.PlaceOrder o-4",
		"fulfillment.ReserveStock sku-4", "fulfillment.CapturePayment o-4",
		"fulfillment.ScheduleShipment o-4",
		"fulfillment.RefundPayment o-4", "fulfillment.ReleaseStock sku-4", "fulfillment.CancelOrder o-4",
	}
	w.mu.Lock()
	if !slices.Equal(w.sent, wantSent) {
		t.Errorf("commands in order:\n%s\nwant\n%s", strings.Join(w.sent, "\n"), strings.Join(wantSent, "\n"))
	}
	w.mu.Unlock()
	if st := w.stats(func(st saga.Stats) bool { return st.Failed == 1 }); st.Compensations != 2 {
		t.Errorf("stats %+v", st)
	}
}

func TestLateEventsAreIgnored(t *testing.T) {
	backends.Run(t, testLateEventsAreIgnored)
}

func testLateEventsAreIgnored(t *testing.T, backend backends.Backend) {
	w := newWorldOn(t, backend.Open(t))
	w.place("o-5", fulfillment.PlaceOrder{Customer: "ed", Total: fulfillment.NeverAnswer, SKU: "sku-5", Qty: 1, Address: "5 Main St"})
	w.settle("o-5", saga.StatusRunning)
	w.clock.Advance(fulfillment.PaymentTimeout)
	w.settle("o-5", saga.StatusFailed)
	// The payment answers after the workflow gave up: the saga ignores it.
	if _, err := w.h.Payments.Dispatch(t.Context(), "o-5", fulfillment.CapturePayment{OrderID: "o-5", Amount: 10}); err != nil {
		t.Fatal(err)
	}
	w.stats(func(st saga.Stats) bool { return st.Ignored == 1 })
	in, err := w.saga.Get(t.Context(), "o-5")
	if err != nil || in.Status != saga.StatusFailed || in.Steps != 2 {
		t.Errorf("instance %+v, %v", in, err)
	}
	if _, err := w.saga.Get(t.Context(), "nope"); !errors.Is(err, saga.ErrNotFound) {
		t.Errorf("Get of a missing instance: %v", err)
	}
}
