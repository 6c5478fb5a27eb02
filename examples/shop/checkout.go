package shop

import (
	"time"

	"github.com/muninn-es/muninn/examples/shop/checkout"
	"github.com/muninn-es/muninn/saga"
)

// CheckoutName is the name of the checkout saga.
const CheckoutName = checkout.Name

// DefaultPaymentTimeout is how long the checkout waits for the payment
// provider's answer before it cancels the order, unless WithPaymentTimeout
// says otherwise: the model's timeout.
const DefaultPaymentTimeout = checkout.DefaultTimeout

// Checkout is the state of one order's checkout.
type Checkout = checkout.State

// CheckoutSaga returns the checkout workflow across the three contexts,
// each instance keyed by the order ID: the saga generated from
// eventmodel.yaml (package checkout), whose rules are checkout/hooks.go.
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
// A declined payment, or none within timeout, cancels the order with the
// reason; the order's cancellation (by either, or by the customer while the
// checkout runs) fails the checkout: what was done is compensated, newest
// first.
func CheckoutSaga(timeout time.Duration) *saga.Definition[Checkout] {
	return checkout.Define(timeout)
}
