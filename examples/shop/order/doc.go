// Package order is the Order context of the shop example: the Order
// aggregate (topic Topic, keyed by order ID), its commands and events, and
// the order details read model (ReadModel: each order by ID, and a
// customer's orders).
//
// An order is placed (PlaceOrder, which validates the cart and computes the
// total), then marked paid, shipped and completed by the checkout workflow
// (package checkout), or cancelled before it is shipped, by its customer or by
// the workflow when the payment is declined or never answered. Rule
// violations are command errors: InvalidArgument wrapping a *FieldError that
// names the field, NotFound for an unknown order, FailedPrecondition
// (command.Rejected) for a command the order's status refuses.
package order
