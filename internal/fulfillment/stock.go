package fulfillment

import (
	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
)

// StockTopic is the name of the Stock aggregate and the topic of its events.
const StockTopic = "stock"

// InitialStock is how many units of every SKU there are before any
// reservation.
const InitialStock = 1_000_000_000

// Stock is the state of one SKU's stock.
type Stock struct {
	// Available is InitialStock minus the units reserved.
	Available int
	// Reservations holds the units reserved, by order ID. A released
	// reservation is removed.
	Reservations map[string]int
}

// StockCommand is a command to the Stock aggregate: ReserveStock or
// ReleaseStock.
type StockCommand interface{ isStockCommand() }

// ReserveStock reserves Qty units of the SKU for an order. A non-positive
// Qty is invalid; it is rejected if the order holds a reservation already
// or fewer than Qty units are available.
type ReserveStock struct {
	OrderID string
	Qty     int
}

// ReleaseStock releases an order's reservation. It is rejected if the order
// holds none.
type ReleaseStock struct {
	OrderID string
}

func (ReserveStock) isStockCommand() {}
func (ReleaseStock) isStockCommand() {}

// StockEvent is an event of the Stock aggregate: StockReserved or
// StockReleased.
type StockEvent interface{ isStockEvent() }

// StockReserved records a reservation ("stock.reserved").
type StockReserved struct {
	OrderID string `json:"order_id"`
	Qty     int    `json:"qty"`
}

// StockReleased records the release of a reservation, of all its units
// ("stock.released").
type StockReleased struct {
	OrderID string `json:"order_id"`
	Qty     int    `json:"qty"`
}

func (StockReserved) isStockEvent() {}
func (StockReleased) isStockEvent() {}

// StockEvents returns the registry of the Stock aggregate's event types.
func StockEvents() (*aggregate.Events[StockEvent], error) {
	return aggregate.NewEvents[StockEvent](
		aggregate.Type[StockReserved]("stock.reserved"),
		aggregate.Type[StockReleased]("stock.released"),
	)
}

// StockDecider returns the Stock aggregate's behaviour.
func StockDecider() aggregate.Decider[Stock, StockCommand, StockEvent] {
	return aggregate.Decider[Stock, StockCommand, StockEvent]{
		Initial: func() Stock { return Stock{Available: InitialStock} },
		Decide:  decideStock,
		Evolve:  evolveStock,
	}
}

// NewStock defines the Stock aggregate, named and on topic StockTopic
// unless opts say otherwise.
func NewStock(opts ...aggregate.Option) (*aggregate.Aggregate[Stock, StockCommand, StockEvent], error) {
	events, err := StockEvents()
	if err != nil {
		return nil, err
	}
	return aggregate.New(StockTopic, StockDecider(), events, opts...)
}

func decideStock(s Stock, cmd StockCommand) ([]StockEvent, error) {
	switch cmd := cmd.(type) {
	case ReserveStock:
		if cmd.Qty <= 0 {
			return nil, command.Invalid("quantity must be positive, got %d", cmd.Qty)
		}
		if _, ok := s.Reservations[cmd.OrderID]; ok {
			return nil, command.Rejected("order %q has reserved stock already", cmd.OrderID)
		}
		if cmd.Qty > s.Available {
			return nil, command.Rejected("only %d units available, %d asked", s.Available, cmd.Qty)
		}
		return []StockEvent{StockReserved{OrderID: cmd.OrderID, Qty: cmd.Qty}}, nil
	case ReleaseStock:
		qty, ok := s.Reservations[cmd.OrderID]
		if !ok {
			return nil, command.Rejected("order %q has no reservation", cmd.OrderID)
		}
		return []StockEvent{StockReleased{OrderID: cmd.OrderID, Qty: qty}}, nil
	}
	return nil, command.Invalid("unknown stock command %T", cmd)
}

func evolveStock(s Stock, e StockEvent) Stock {
	switch e := e.(type) {
	case StockReserved:
		if s.Reservations == nil {
			s.Reservations = map[string]int{}
		}
		s.Reservations[e.OrderID] = e.Qty
		s.Available -= e.Qty
	case StockReleased:
		delete(s.Reservations, e.OrderID)
		s.Available += e.Qty
	}
	return s
}
