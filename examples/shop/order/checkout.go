package order

import "github.com/muninn-es/muninn/saga"

// CheckoutCommands declares the Order commands a checkout saga sends
// (MarkPaid, MarkShipped, CompleteOrder, CancelOrder) under their stable
// names, and has the saga decode the Order events as the aggregate does:
// Order's part of the checkout's definition.
func CheckoutCommands[S any](d *saga.Definition[S]) {
	saga.Command[MarkPaid](d, "shop.order.mark-paid")
	saga.Command[MarkShipped](d, "shop.order.mark-shipped")
	saga.Command[CompleteOrder](d, "shop.order.complete")
	saga.Command[CancelOrder](d, "shop.order.cancel")
	// The registry fails only if its type list is wrong, and then so does
	// the aggregate's definition, which the service builds first.
	if events, err := Events(); err == nil {
		saga.UseEvents(d, events)
	}
}
