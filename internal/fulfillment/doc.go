// Package fulfillment is the workflow the framework's own tests and
// benchmarks run: four small bounded contexts, each one aggregate, and a
// saga that ties them into one workflow. The example domain for users is
// examples/shop, which grew out of this one; this package stays, small and
// fixed, as the fixture of the saga package's tests and crash test, the
// saga benchmark (so that saga_steps_per_s stays comparable across
// releases) and muninn demo --library. An order is placed, its payment
// captured, its shipment scheduled, and the order completed. When a step
// fails, the steps before it are compensated (the payment refunded, the
// stock released) and the order cancelled; a payment that never answers is
// given up by a deadline.
//
// The contexts, each a decider (package aggregate) with a sealed command
// interface and a sealed event interface, pure functions and no framework
// types in the domain's state:
//
//   - Order, topic "orders", keyed by order ID: PlaceOrder, CompleteOrder,
//     CancelOrder.
//   - Payment, topic "payments", keyed by payment ID (the saga uses the order
//     ID): CapturePayment, RefundPayment. A capture over DeclineAbove is
//     declined (an event, not an error), and one of exactly NeverAnswer
//     records nothing, like a payment provider that never answers.
//   - Shipment, topic "shipments", keyed by order ID: ScheduleShipment,
//     CancelShipment. A shipment without an address is rejected, which is
//     how a test makes a saga step fail.
//   - Stock, topic "stock", keyed by SKU: ReserveStock, ReleaseStock, with
//     InitialStock units of every SKU.
//
// NewOrders, NewPayments, NewShipments and NewStock define the aggregates;
// Register adds all four to a command bus and returns their typed handlers.
// Saga is the workflow (package saga): the events that start and move an
// instance, each correlated by the order ID, its steps, the commands they
// send and the PaymentTimeout deadline. Rule violations are command errors:
// command.Invalid for a malformed command, command.NotFound for an aggregate
// that must exist and does not, command.Rejected for one its state refuses.
// The tests in fulfillment_test.go show how to test such a domain: given
// events, when a command, then events or an error (package
// aggregate/aggregatetest).
//
// The package is internal: copy the shape of examples/shop, not this.
package fulfillment
