package shipping

import (
	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/saga"
)

// Topics of the Shipment and Stock aggregates.
const (
	// ShipmentsTopic is keyed by order ID.
	ShipmentsTopic = "shop.shipments"
	// StockTopic is keyed by SKU.
	StockTopic = "shop.stock"
)

// InitialStock is how many units of every SKU there are before any
// reservation.
const InitialStock = 1_000_000_000

// Line is one line to reserve and ship: Quantity units of SKU.
type Line struct {
	SKU      string `json:"sku"`
	Quantity int64  `json:"quantity"`
}

// Shipment is the state of one order's shipment.
type Shipment struct {
	// Shipped is true once the order's lines were shipped.
	Shipped bool
	// Recalled is true once a shipped shipment was recalled.
	Recalled bool
	Lines    []Line
}

// ShipmentCommand is a command to the Shipment aggregate: Ship or Recall.
type ShipmentCommand interface{ isShipmentCommand() }

// Ship ships an order's lines. It is invalid without lines and rejected
// if the order was shipped already.
type Ship struct {
	Lines []Line
}

// Recall recalls a shipment (the parcel comes back): the checkout's
// compensation of Ship, when the order was cancelled while it was being
// shipped. A shipment never shipped, or recalled already, needs nothing.
type Recall struct{}

func (Ship) isShipmentCommand()   {}
func (Recall) isShipmentCommand() {}

// ShipmentEvent is an event of the Shipment aggregate.
type ShipmentEvent interface{ isShipmentEvent() }

// Shipped records a shipment ("shop.shipment.shipped").
type Shipped struct {
	Lines []Line `json:"lines"`
}

// Recalled records a recalled shipment ("shop.shipment.recalled").
type Recalled struct{}

func (Shipped) isShipmentEvent()  {}
func (Recalled) isShipmentEvent() {}

// ShipmentEvents returns the registry of the Shipment aggregate's events.
func ShipmentEvents() (*aggregate.Events[ShipmentEvent], error) {
	return aggregate.NewEvents[ShipmentEvent](
		aggregate.Type[Shipped]("shop.shipment.shipped"),
		aggregate.Type[Recalled]("shop.shipment.recalled"),
	)
}

// NewShipments defines the Shipment aggregate, on ShipmentsTopic unless
// opts say otherwise.
func NewShipments(opts ...aggregate.Option) (*aggregate.Aggregate[Shipment, ShipmentCommand, ShipmentEvent], error) {
	events, err := ShipmentEvents()
	if err != nil {
		return nil, err
	}
	d := aggregate.Decider[Shipment, ShipmentCommand, ShipmentEvent]{
		Decide: func(s Shipment, cmd ShipmentCommand) ([]ShipmentEvent, error) {
			switch cmd := cmd.(type) {
			case Ship:
				switch {
				case len(cmd.Lines) == 0:
					return nil, command.Invalid("lines: nothing to ship")
				case s.Shipped:
					return nil, command.Rejected("order is already shipped")
				}
				return []ShipmentEvent{Shipped{Lines: cmd.Lines}}, nil
			case Recall:
				if !s.Shipped || s.Recalled {
					return nil, nil
				}
				return []ShipmentEvent{Recalled{}}, nil
			}
			return nil, command.Invalid("unknown shipment command %T", cmd)
		},
		Evolve: func(s Shipment, e ShipmentEvent) Shipment {
			switch e := e.(type) {
			case Shipped:
				s.Shipped, s.Lines = true, e.Lines
			case Recalled:
				s.Recalled = true
			}
			return s
		},
	}
	return aggregate.New(ShipmentsTopic, d, events, opts...)
}

// Stock is the state of one SKU's stock.
type Stock struct {
	// Available is InitialStock minus the units reserved.
	Available int64
	// Reservations holds the units reserved, by order ID; a release
	// removes the order's.
	Reservations map[string]int64
}

// StockCommand is a command to the Stock aggregate: Reserve or Release.
type StockCommand interface{ isStockCommand() }

// Reserve reserves Quantity units for an order. A non-positive Quantity is
// invalid; it is rejected if the order holds a reservation of the SKU
// already, or fewer units are available.
type Reserve struct {
	OrderID  string
	Quantity int64
}

// Release releases an order's reservation; it is rejected if there is none.
type Release struct {
	OrderID string
}

func (Reserve) isStockCommand() {}
func (Release) isStockCommand() {}

// StockEvent is an event of the Stock aggregate.
type StockEvent interface{ isStockEvent() }

// Reserved records a reservation ("shop.stock.reserved").
type Reserved struct {
	OrderID  string `json:"order_id"`
	Quantity int64  `json:"quantity"`
}

// Released records the release of a reservation ("shop.stock.released").
type Released struct {
	OrderID  string `json:"order_id"`
	Quantity int64  `json:"quantity"`
}

func (Reserved) isStockEvent() {}
func (Released) isStockEvent() {}

// StockEvents returns the registry of the Stock aggregate's events.
func StockEvents() (*aggregate.Events[StockEvent], error) {
	return aggregate.NewEvents[StockEvent](
		aggregate.Type[Reserved]("shop.stock.reserved"),
		aggregate.Type[Released]("shop.stock.released"),
	)
}

// NewStock defines the Stock aggregate, on StockTopic unless opts say
// otherwise.
func NewStock(opts ...aggregate.Option) (*aggregate.Aggregate[Stock, StockCommand, StockEvent], error) {
	events, err := StockEvents()
	if err != nil {
		return nil, err
	}
	d := aggregate.Decider[Stock, StockCommand, StockEvent]{
		Initial: func() Stock { return Stock{Available: InitialStock} },
		Decide:  decideStock,
		Evolve:  evolveStock,
	}
	return aggregate.New(StockTopic, d, events, opts...)
}

func decideStock(s Stock, cmd StockCommand) ([]StockEvent, error) {
	switch cmd := cmd.(type) {
	case Reserve:
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
	case Release:
		qty, ok := s.Reservations[cmd.OrderID]
		if !ok {
			return nil, command.Rejected("order %q has no reservation", cmd.OrderID)
		}
		return []StockEvent{Released{OrderID: cmd.OrderID, Quantity: qty}}, nil
	}
	return nil, command.Invalid("unknown stock command %T", cmd)
}

func evolveStock(s Stock, e StockEvent) Stock {
	switch e := e.(type) {
	case Reserved:
		m := make(map[string]int64, len(s.Reservations)+1)
		for k, v := range s.Reservations {
			m[k] = v
		}
		m[e.OrderID] = e.Quantity
		s.Reservations, s.Available = m, s.Available-e.Quantity
	case Released:
		m := make(map[string]int64, len(s.Reservations))
		for k, v := range s.Reservations {
			if k != e.OrderID {
				m[k] = v
			}
		}
		s.Reservations, s.Available = m, s.Available+e.Quantity
	}
	return s
}

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
