package shop

import (
	"fmt"
	"time"

	"github.com/muninn-es/muninn/examples/shop/order"
	"github.com/muninn-es/muninn/examples/shop/payment"
	"github.com/muninn-es/muninn/examples/shop/shipping"
	"github.com/muninn-es/muninn/saga"
)

// CheckoutName is the name of the checkout saga.
const CheckoutName = "shop-checkout"

// DefaultPaymentTimeout is how long the checkout waits for the payment
// provider's answer before it cancels the order, unless WithPaymentTimeout
// says otherwise.
const DefaultPaymentTimeout = 15 * time.Minute

// Checkout is the state of one order's checkout.
type Checkout struct {
	OrderID     string          `json:"order_id"`
	Lines       []shipping.Line `json:"lines"`
	AmountCents int64           `json:"amount_cents"`
	// Paid and Shipped record the steps seen done.
	Paid    bool `json:"paid"`
	Shipped bool `json:"shipped"`
	// ByCustomer is set when the customer cancelled the order.
	ByCustomer bool `json:"by_customer,omitempty"`
	// Outcome is "completed" or why the order was cancelled.
	Outcome string `json:"outcome,omitempty"`
}

// PaymentTimedOut is the timeout message of the payment deadline.
type PaymentTimedOut struct {
	OrderID string `json:"order_id"`
}

// CheckoutSaga defines the checkout workflow across the three contexts,
// each instance keyed by the order ID:
//
//   - shop.order.placed starts it: the stock of every line is reserved
//     (each compensated by its release) and the payment requested
//     (compensated by voiding it, or refunding it once captured), with
//     timeout to answer;
//   - shop.payment.captured: the order is marked paid;
//   - shop.order.paid: the order is shipped (compensated by a recall);
//   - shop.shipment.shipped: the order is marked shipped;
//   - shop.order.shipped: the order is completed;
//   - shop.order.completed: the checkout is complete.
//
// A declined payment, or none within timeout, fails the checkout: what was
// done is compensated (newest first) and the order cancelled with the
// reason. A customer's cancellation (shop.order.cancelled while the checkout
// runs) fails it too, compensating, without cancelling the order again.
func CheckoutSaga(timeout time.Duration) *saga.Definition[Checkout] {
	d := saga.Define[Checkout](CheckoutName, order.Topic, payment.Topic, shipping.ShipmentTopic)
	order.CheckoutCommands(d)
	payment.CheckoutCommands(d)
	shipping.CheckoutCommands(d)

	saga.StartOn(d, "shop.order.placed", saga.RecordKey[order.Placed], func(s *saga.Step[Checkout], e order.Placed) error {
		id := s.Key()
		lines := make([]shipping.Line, len(e.Items))
		for i, it := range e.Items {
			lines[i] = shipping.Line{SKU: it.SKU, Quantity: it.Quantity}
		}
		s.State = Checkout{OrderID: id, Lines: lines, AmountCents: e.TotalCents}
		shipping.ReserveLines(s, id, lines)
		payment.RequestFrom(s, id, e.TotalCents, e.PaymentMethod)
		s.Schedule("payment-timeout", s.Now().Add(timeout), PaymentTimedOut{OrderID: id})
		return nil
	})
	saga.On(d, "shop.payment.captured", saga.RecordKey[payment.Captured], func(s *saga.Step[Checkout], _ payment.Captured) error {
		s.Cancel("payment-timeout")
		s.State.Paid = true
		s.Send(s.Key(), order.MarkPaid{})
		return nil
	})
	saga.On(d, "shop.payment.declined", saga.RecordKey[payment.Declined], func(s *saga.Step[Checkout], e payment.Declined) error {
		s.Fail("payment declined: " + e.Reason)
		return nil
	})
	saga.OnTimeout(d, "payment-timeout", func(s *saga.Step[Checkout], _ PaymentTimedOut) error {
		s.Fail(fmt.Sprintf("payment not answered within %s", timeout))
		return nil
	})
	saga.On(d, "shop.order.paid", saga.RecordKey[order.Paid], func(s *saga.Step[Checkout], _ order.Paid) error {
		shipping.ShipFrom(s, s.Key(), s.State.Lines)
		return nil
	})
	saga.On(d, "shop.shipment.shipped", saga.RecordKey[shipping.Shipped], func(s *saga.Step[Checkout], _ shipping.Shipped) error {
		s.State.Shipped = true
		s.Send(s.Key(), order.MarkShipped{})
		return nil
	})
	saga.On(d, "shop.order.shipped", saga.RecordKey[order.Shipped], func(s *saga.Step[Checkout], _ order.Shipped) error {
		s.Send(s.Key(), order.CompleteOrder{})
		return nil
	})
	saga.On(d, "shop.order.completed", saga.RecordKey[order.Completed], func(s *saga.Step[Checkout], _ order.Completed) error {
		s.State.Outcome = "completed"
		s.Complete()
		return nil
	})
	saga.On(d, "shop.order.cancelled", saga.RecordKey[order.Cancelled], func(s *saga.Step[Checkout], e order.Cancelled) error {
		s.State.ByCustomer = true
		s.Fail(e.Reason)
		return nil
	})
	saga.OnFailure(d, func(s *saga.Step[Checkout], f saga.Failure) error {
		s.State.Outcome = f.Reason
		if !s.State.ByCustomer {
			s.Send(s.Key(), order.CancelOrder{Reason: f.Reason})
		}
		return nil
	})
	return d
}
