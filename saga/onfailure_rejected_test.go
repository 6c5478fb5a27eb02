package saga_test

import (
	"strings"
	"testing"

	"github.com/muninn-es/muninn/internal/fulfillment"
	"github.com/muninn-es/muninn/saga"
)

// A command of the OnFailure handler that is rejected is recorded, like a
// rejected compensation, and the instance ends as failed. It used to fail
// the instance again, which ran OnFailure again and sent the command again,
// forever: the saga's drain never returned and no other instance moved.
func TestRejectedOnFailureCommandIsRecorded(t *testing.T) {
	w := newWorld(t)
	w.place("o-9", fulfillment.PlaceOrder{Customer: "fy", Total: fulfillment.NeverAnswer, SKU: "sku-9", Qty: 1, Address: "9 Main St"})
	w.settle("o-9", saga.StatusRunning)
	// The customer cancels the order: the CancelOrder that OnFailure sends
	// when the payment times out is then rejected.
	if _, err := w.h.Orders.Dispatch(t.Context(), "o-9", fulfillment.CancelOrder{Reason: "customer changed their mind"}); err != nil {
		t.Fatal(err)
	}
	w.clock.Advance(fulfillment.PaymentTimeout)
	in := w.settle("o-9", saga.StatusFailed)
	if in.Failure == nil || !strings.Contains(in.Failure.Reason, "not answered") {
		t.Errorf("failure %+v, want the payment timeout's", in.Failure)
	}
	if len(in.CompensationErrors) != 1 || !strings.Contains(in.CompensationErrors[0], "order.cancel") ||
		!strings.Contains(in.CompensationErrors[0], "already cancelled") {
		t.Errorf("compensation errors %q, want the rejected order.cancel", in.CompensationErrors)
	}
	wantTypes(t, "order", w.types("orders", "o-9"), "order.placed", "order.cancelled")
	wantTypes(t, "stock", w.types("stock", "sku-9"), "stock.reserved", "stock.released")
	if st := w.saga.Stats(); st.Failed != 1 {
		t.Errorf("stats %+v, want one failure", st)
	}
	// The saga still moves other instances.
	w.place("o-10", fulfillment.PlaceOrder{Customer: "gu", Total: 100, SKU: "sku-9", Qty: 1, Address: "10 Main St"})
	w.settle("o-10", saga.StatusCompleted)
}
