package fulfillment_test

import (
	"errors"
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/aggregate/aggregatetest"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	f "github.com/muninn-es/muninn/internal/fulfillment"
)

// must takes a call's results and returns a function that returns v, or
// fails t with err: must(call())(t).
func must[T any](v T, err error) func(testing.TB) T {
	return func(t testing.TB) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

// Snapshots make the fixture check that every resulting state survives the
// snapshot codec too.
var snap = aggregate.WithSnapshots(1)

func TestOrder(t *testing.T) {
	agg := must(f.NewOrders(snap))(t)
	placed := f.OrderPlaced{Customer: "ada", Total: 1200, SKU: "sku-1", Qty: 2, Address: "1 Main St"}

	t.Run("place", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().
			When(f.PlaceOrder{Customer: "ada", Total: 1200, SKU: "sku-1", Qty: 2, Address: "1 Main St"}).
			Then(placed).
			ThenState(f.Order{Placed: true, Customer: "ada", Total: 1200, SKU: "sku-1", Qty: 2, Address: "1 Main St"})
	})
	t.Run("place without address", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.PlaceOrder{Customer: "ada", Total: 1}).Then(f.OrderPlaced{Customer: "ada", Total: 1})
	})
	t.Run("place twice", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(placed).When(f.PlaceOrder{Customer: "bob"}).ThenError(command.ErrRejected)
	})
	t.Run("complete", func(t *testing.T) {
		o := aggregatetest.For(t, agg).Given(placed).When(f.CompleteOrder{}).Then(f.OrderCompleted{})
		if s := o.State(); !s.Completed || s.Cancelled {
			t.Errorf("state after completion: %+v", s)
		}
	})
	t.Run("complete unknown", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.CompleteOrder{}).ThenError(command.ErrNotFound)
	})
	t.Run("complete twice", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(placed, f.OrderCompleted{}).When(f.CompleteOrder{}).ThenError(command.ErrRejected)
	})
	t.Run("complete cancelled", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(placed, f.OrderCancelled{Reason: "x"}).When(f.CompleteOrder{}).ThenError(command.ErrRejected)
	})
	t.Run("cancel", func(t *testing.T) {
		o := aggregatetest.For(t, agg).Given(placed).When(f.CancelOrder{Reason: "payment declined"}).
			Then(f.OrderCancelled{Reason: "payment declined"})
		if s := o.State(); !s.Cancelled || s.CancelReason != "payment declined" || s.Completed {
			t.Errorf("state after cancellation: %+v", s)
		}
	})
	t.Run("cancel unknown", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.CancelOrder{Reason: "x"}).ThenError(command.ErrNotFound)
	})
	t.Run("cancel twice", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(placed, f.OrderCancelled{Reason: "x"}).When(f.CancelOrder{Reason: "y"}).ThenError(command.ErrRejected)
	})
	t.Run("cancel completed", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(placed, f.OrderCompleted{}).When(f.CancelOrder{Reason: "x"}).ThenError(command.ErrRejected)
	})
}

func TestPayment(t *testing.T) {
	agg := must(f.NewPayments(snap))(t)
	captured := f.PaymentCaptured{OrderID: "o1", Amount: 500}

	t.Run("capture", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.CapturePayment{OrderID: "o1", Amount: 500}).
			Then(captured).
			ThenState(f.Payment{OrderID: "o1", Amount: 500, Captured: true})
	})
	t.Run("capture at the limit", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.CapturePayment{OrderID: "o1", Amount: f.DeclineAbove}).
			Then(f.PaymentCaptured{OrderID: "o1", Amount: f.DeclineAbove})
	})
	t.Run("capture over the limit is declined", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.CapturePayment{OrderID: "o1", Amount: f.DeclineAbove + 1}).
			Then(f.PaymentDeclined{OrderID: "o1", Amount: f.DeclineAbove + 1, Reason: f.DeclineReason}).
			ThenState(f.Payment{OrderID: "o1", Amount: f.DeclineAbove + 1, Declined: true, DeclineReason: f.DeclineReason})
	})
	t.Run("capture never answered", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.CapturePayment{OrderID: "o1", Amount: f.NeverAnswer}).ThenNothing()
	})
	t.Run("capture a non-positive amount", func(t *testing.T) {
		for _, amount := range []int64{0, -1} {
			aggregatetest.For(t, agg).Given().When(f.CapturePayment{OrderID: "o1", Amount: amount}).ThenError(command.ErrInvalidArgument)
		}
	})
	t.Run("capture twice", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(captured).When(f.CapturePayment{OrderID: "o1", Amount: 500}).ThenError(command.ErrRejected)
	})
	t.Run("capture declined", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(f.PaymentDeclined{OrderID: "o1", Amount: 2 * f.DeclineAbove, Reason: f.DeclineReason}).
			When(f.CapturePayment{OrderID: "o1", Amount: 500}).ThenError(command.ErrRejected)
	})
	t.Run("refund", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(captured).When(f.RefundPayment{OrderID: "o1", Reason: "shipping failed"}).
			Then(f.PaymentRefunded{OrderID: "o1", Amount: 500}).
			ThenState(f.Payment{OrderID: "o1", Amount: 500, Captured: true, Refunded: true})
	})
	t.Run("refund without order ID", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(captured).When(f.RefundPayment{}).Then(f.PaymentRefunded{OrderID: "o1", Amount: 500})
	})
	t.Run("refund unknown", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.RefundPayment{OrderID: "o1"}).ThenError(command.ErrRejected)
	})
	t.Run("refund declined", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(f.PaymentDeclined{OrderID: "o1", Amount: 2 * f.DeclineAbove, Reason: f.DeclineReason}).
			When(f.RefundPayment{OrderID: "o1"}).ThenError(command.ErrRejected)
	})
	t.Run("refund twice", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(captured, f.PaymentRefunded{OrderID: "o1", Amount: 500}).
			When(f.RefundPayment{OrderID: "o1"}).ThenError(command.ErrRejected)
	})
	t.Run("refund another order", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(captured).When(f.RefundPayment{OrderID: "o2"}).ThenError(command.ErrRejected)
	})
}

func TestShipment(t *testing.T) {
	agg := must(f.NewShipments(snap))(t)
	scheduled := f.ShipmentScheduled{OrderID: "o1", Address: "1 Main St"}

	t.Run("schedule", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.ScheduleShipment{OrderID: "o1", Address: "1 Main St"}).
			Then(scheduled).
			ThenState(f.Shipment{OrderID: "o1", Address: "1 Main St", Scheduled: true})
	})
	t.Run("schedule without address", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.ScheduleShipment{OrderID: "o1"}).
			ThenErrorMatches(`Rejected("no shipping address")`, func(err error) bool {
				var ce *command.Error
				return errors.Is(err, command.ErrRejected) && errors.As(err, &ce) && ce.Msg == "no shipping address"
			})
	})
	t.Run("schedule twice", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(scheduled).When(f.ScheduleShipment{OrderID: "o1", Address: "2 Side St"}).ThenError(command.ErrRejected)
	})
	t.Run("schedule cancelled", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(scheduled, f.ShipmentCancelled{OrderID: "o1"}).
			When(f.ScheduleShipment{OrderID: "o1", Address: "1 Main St"}).ThenError(command.ErrRejected)
	})
	t.Run("cancel", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(scheduled).When(f.CancelShipment{OrderID: "o1"}).
			Then(f.ShipmentCancelled{OrderID: "o1"}).
			ThenState(f.Shipment{OrderID: "o1", Address: "1 Main St", Scheduled: true, Cancelled: true})
	})
	t.Run("cancel unscheduled", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.CancelShipment{OrderID: "o1"}).ThenError(command.ErrNotFound)
	})
	t.Run("cancel twice", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(scheduled, f.ShipmentCancelled{OrderID: "o1"}).
			When(f.CancelShipment{OrderID: "o1"}).ThenError(command.ErrRejected)
	})
	t.Run("cancel another order", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(scheduled).When(f.CancelShipment{OrderID: "o2"}).ThenError(command.ErrRejected)
	})
}

func TestStock(t *testing.T) {
	agg := must(f.NewStock(snap))(t)
	reserved := f.StockReserved{OrderID: "o1", Qty: 3}

	t.Run("initial", func(t *testing.T) {
		if s := agg.Initial(); s.Available != f.InitialStock || len(s.Reservations) != 0 {
			t.Errorf("initial stock: %+v", s)
		}
	})
	t.Run("reserve", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.ReserveStock{OrderID: "o1", Qty: 3}).
			Then(reserved).
			ThenState(f.Stock{Available: f.InitialStock - 3, Reservations: map[string]int{"o1": 3}})
	})
	t.Run("reserve for two orders", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(reserved).When(f.ReserveStock{OrderID: "o2", Qty: 4}).
			Then(f.StockReserved{OrderID: "o2", Qty: 4}).
			ThenState(f.Stock{Available: f.InitialStock - 7, Reservations: map[string]int{"o1": 3, "o2": 4}})
	})
	t.Run("reserve all", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(reserved).When(f.ReserveStock{OrderID: "o2", Qty: f.InitialStock - 3}).
			Then(f.StockReserved{OrderID: "o2", Qty: f.InitialStock - 3})
	})
	t.Run("reserve more than available", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(reserved).When(f.ReserveStock{OrderID: "o2", Qty: f.InitialStock - 2}).ThenError(command.ErrRejected)
		aggregatetest.For(t, agg).Given().When(f.ReserveStock{OrderID: "o1", Qty: f.InitialStock + 1}).ThenError(command.ErrRejected)
	})
	t.Run("reserve twice for one order", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(reserved).When(f.ReserveStock{OrderID: "o1", Qty: 1}).ThenError(command.ErrRejected)
	})
	t.Run("reserve a non-positive quantity", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.ReserveStock{OrderID: "o1", Qty: 0}).ThenError(command.ErrInvalidArgument)
		aggregatetest.For(t, agg).Given().When(f.ReserveStock{OrderID: "o1", Qty: -1}).ThenError(command.ErrInvalidArgument)
	})
	t.Run("release", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(reserved, f.StockReserved{OrderID: "o2", Qty: 4}).When(f.ReleaseStock{OrderID: "o1"}).
			Then(f.StockReleased{OrderID: "o1", Qty: 3}).
			ThenState(f.Stock{Available: f.InitialStock - 4, Reservations: map[string]int{"o2": 4}})
	})
	t.Run("release unknown", func(t *testing.T) {
		aggregatetest.For(t, agg).Given().When(f.ReleaseStock{OrderID: "o1"}).ThenError(command.ErrRejected)
		aggregatetest.For(t, agg).Given(reserved).When(f.ReleaseStock{OrderID: "o2"}).ThenError(command.ErrRejected)
	})
	t.Run("release twice", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(reserved, f.StockReleased{OrderID: "o1", Qty: 3}).
			When(f.ReleaseStock{OrderID: "o1"}).ThenError(command.ErrRejected)
	})
	t.Run("reserve again after release", func(t *testing.T) {
		aggregatetest.For(t, agg).Given(reserved, f.StockReleased{OrderID: "o1", Qty: 3}).
			When(f.ReserveStock{OrderID: "o1", Qty: 2}).Then(f.StockReserved{OrderID: "o1", Qty: 2})
	})
}

// TestRegister registers the four aggregates on a bus over the in-memory
// store and dispatches a command to each.
func TestRegister(t *testing.T) {
	ctx := t.Context()
	store := must(eventstore.OpenMem())(t)
	t.Cleanup(func() { _ = store.Close() })
	bus := must(command.New(store))(t)
	t.Cleanup(func() { _ = bus.Close() })
	h := must(f.Register(ctx, bus))(t)

	res := must(h.Orders.Dispatch(ctx, "o1", f.PlaceOrder{Customer: "ada", Total: 1200, SKU: "sku-1", Qty: 2, Address: "1 Main St"}))(t)
	if res.Topic != f.OrdersTopic || res.Version != 1 {
		t.Errorf("place: topic %q version %d, want %q version 1", res.Topic, res.Version, f.OrdersTopic)
	}
	res = must(h.Stock.Dispatch(ctx, "sku-1", f.ReserveStock{OrderID: "o1", Qty: 2}))(t)
	if res.Topic != f.StockTopic {
		t.Errorf("reserve: topic %q, want %q", res.Topic, f.StockTopic)
	}
	res = must(h.Payments.Dispatch(ctx, "o1", f.CapturePayment{OrderID: "o1", Amount: 1200}))(t)
	if res.Topic != f.PaymentsTopic {
		t.Errorf("capture: topic %q, want %q", res.Topic, f.PaymentsTopic)
	}
	if _, err := h.Shipments.Dispatch(ctx, "o1", f.ScheduleShipment{OrderID: "o1"}); !errors.Is(err, command.ErrRejected) {
		t.Errorf("schedule without address: %v, want %v", err, command.ErrRejected)
	}
	res = must(h.Shipments.Dispatch(ctx, "o1", f.ScheduleShipment{OrderID: "o1", Address: "1 Main St"}))(t)
	if res.Topic != f.ShipmentsTopic {
		t.Errorf("schedule: topic %q, want %q", res.Topic, f.ShipmentsTopic)
	}
	must(h.Orders.Dispatch(ctx, "o1", f.CompleteOrder{}))(t)
	if _, err := h.Orders.Dispatch(ctx, "o2", f.CompleteOrder{}); !errors.Is(err, command.ErrNotFound) {
		t.Errorf("complete unknown order: %v, want %v", err, command.ErrNotFound)
	}

	if o := must(h.Order(ctx, "o1"))(t); !o.Placed || !o.Completed || o.Total != 1200 {
		t.Errorf("order o1: %+v", o)
	}
	if p := must(h.Payment(ctx, "o1"))(t); !p.Captured || p.Amount != 1200 {
		t.Errorf("payment o1: %+v", p)
	}
	if s := must(h.Shipment(ctx, "o1"))(t); !s.Scheduled || s.Address != "1 Main St" {
		t.Errorf("shipment o1: %+v", s)
	}
	if s := must(h.StockOf(ctx, "sku-1"))(t); s.Available != f.InitialStock-2 || s.Reservations["o1"] != 2 {
		t.Errorf("stock sku-1: %+v", s)
	}
	if s := must(h.StockOf(ctx, "sku-2"))(t); s.Available != f.InitialStock || len(s.Reservations) != 0 {
		t.Errorf("stock sku-2: %+v", s)
	}

	// A capture that never answers appends nothing.
	res = must(h.Payments.Dispatch(ctx, "o3", f.CapturePayment{OrderID: "o3", Amount: f.NeverAnswer}))(t)
	if res.Version != 0 {
		t.Errorf("never-answered capture: version %d, want 0", res.Version)
	}

	// A second bus on the same store registers them again, with options:
	// the topics exist already, and the state is the same.
	bus2 := must(command.New(store, command.WithName("second")))(t)
	t.Cleanup(func() { _ = bus2.Close() })
	h2 := must(f.Register(ctx, bus2, aggregate.WithCache(16), aggregate.WithSnapshots(1)))(t)
	if o := must(h2.Order(ctx, "o1"))(t); !o.Completed {
		t.Errorf("order o1 through the second bus: %+v", o)
	}
}
