// Package fulfillment is the example domain of the saga package's tests,
// crash test and benchmark: four bounded contexts, each one aggregate, that a
// saga ties into one workflow: an order is placed, its payment captured,
// its shipment scheduled, and the order completed. When a step fails, the
// steps before it are compensated (the payment refunded) and the order
// cancelled. Stock lets a workflow reserve and release units as well.
//
// The contexts, each a decider (package aggregate) with a sealed command
// interface and a sealed event interface:
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
// Rule violations are command errors: command.Invalid for a malformed
// command, command.NotFound for an aggregate that must exist and does not,
// command.Rejected for one its state refuses.
package fulfillment
