// The rules of the Shipping context, written by hand beside
// shipping_gen.go, which muninn gen go generates from ../eventmodel.yaml
// and never lets touch this file.

package shipping

import "github.com/muninn-es/muninn/command"

// InitialStock is how many units of every SKU there are before any
// reservation.
const InitialStock = 1_000_000_000

// Shipment is the state of one order's shipment.
type Shipment struct {
	// Shipped is true once the order's lines were shipped.
	Shipped bool
	// Recalled is true once a shipped shipment was recalled.
	Recalled bool
	Lines    []Line
}

// initialShipment is a shipment not shipped yet.
func initialShipment() Shipment { return Shipment{} }

func decideShip(s Shipment, cmd Ship) ([]ShipmentEvent, error) {
	switch {
	case len(cmd.Lines) == 0:
		return nil, command.Invalid("lines: nothing to ship")
	case s.Shipped:
		return nil, command.Rejected("order is already shipped")
	}
	return []ShipmentEvent{Shipped{Lines: cmd.Lines}}, nil
}

func decideRecall(s Shipment, _ Recall) ([]ShipmentEvent, error) {
	if !s.Shipped || s.Recalled {
		return nil, nil
	}
	return []ShipmentEvent{Recalled{}}, nil
}

func evolveShipped(s Shipment, e Shipped) Shipment {
	s.Shipped, s.Lines = true, e.Lines
	return s
}

func evolveRecalled(s Shipment, _ Recalled) Shipment {
	s.Recalled = true
	return s
}

// Stock is the state of one SKU's stock.
type Stock struct {
	// Available is InitialStock minus the units reserved.
	Available int64
	// Reservations holds the units reserved, by order ID; a release
	// removes the order's.
	Reservations map[string]int64
}

// initialStock is a SKU's stock before any reservation.
func initialStock() Stock { return Stock{Available: InitialStock} }

func decideReserve(s Stock, cmd Reserve) ([]StockEvent, error) {
	if cmd.Quantity <= 0 {
		return nil, command.Invalid("quantity: must be positive, got %d", cmd.Quantity)
	}
	if _, ok := s.Reservations[cmd.OrderID]; ok {
		return nil, command.Rejected("order %q has reserved stock already", cmd.OrderID)
	}
	if cmd.Quantity > s.Available {
		return nil, command.Rejected("only %d units available, %d asked", s.Available, cmd.Quantity)
	}
	return []StockEvent{Reserved{OrderID: cmd.OrderID, Quantity: cmd.Quantity}}, nil
}

func decideRelease(s Stock, cmd Release) ([]StockEvent, error) {
	qty, ok := s.Reservations[cmd.OrderID]
	if !ok {
		return nil, command.Rejected("order %q has no reservation", cmd.OrderID)
	}
	return []StockEvent{Released{OrderID: cmd.OrderID, Quantity: qty}}, nil
}

func evolveReserved(s Stock, e Reserved) Stock {
	m := make(map[string]int64, len(s.Reservations)+1)
	for k, v := range s.Reservations {
		m[k] = v
	}
	m[e.OrderID] = e.Quantity
	s.Reservations, s.Available = m, s.Available-e.Quantity
	return s
}

func evolveReleased(s Stock, e Released) Stock {
	m := make(map[string]int64, len(s.Reservations))
	for k, v := range s.Reservations {
		if k != e.OrderID {
			m[k] = v
		}
	}
	s.Reservations, s.Available = m, s.Available+e.Quantity
	return s
}
