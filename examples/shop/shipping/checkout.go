package shipping

import "github.com/muninn-es/muninn/saga"

// ShipFrom sends the shipment of an order's lines from a checkout step,
// compensated by its recall.
func ShipFrom[S any](s *saga.Step[S], orderID string, lines []Line) {
	s.Send(orderID, Ship{Lines: lines}, saga.CompensateWith(orderID, Recall{}))
}

// ReserveLines sends the reservation of each line's stock from a checkout
// step for orderID, each compensated by its release: Shipping's part of a
// checkout's first step.
func ReserveLines[S any](s *saga.Step[S], orderID string, lines []Line) {
	for _, l := range lines {
		s.Send(l.SKU, Reserve{OrderID: orderID, Quantity: l.Quantity}, saga.CompensateWith(l.SKU, Release{OrderID: orderID}))
	}
}

// CheckoutCommands declares the Shipping commands a checkout saga sends
// (Ship and Recall; Reserve and Release of stock) under their stable names, and has
// the saga decode the Shipment events as the aggregate does.
func CheckoutCommands[S any](d *saga.Definition[S]) {
	saga.Command[Reserve](d, "shop.stock.reserve")
	saga.Command[Release](d, "shop.stock.release")
	saga.Command[Ship](d, "shop.shipment.ship")
	saga.Command[Recall](d, "shop.shipment.recall")
	// The registry fails only if its type list is wrong, and then so does
	// the aggregate's definition, which the service builds first.
	if events, err := ShipmentEvents(); err == nil {
		saga.UseEvents(d, events)
	}
}
