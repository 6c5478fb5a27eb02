package fulfillment

import (
	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
)

// ShipmentsTopic is the name of the Shipment aggregate and the topic of its
// events.
const ShipmentsTopic = "shipments"

// Shipment is the state of the shipment of one order.
type Shipment struct {
	// OrderID and Address are as scheduled.
	OrderID, Address string
	// Scheduled is true once the shipment was scheduled, and stays true
	// after it is cancelled.
	Scheduled bool
	// Cancelled is true once a scheduled shipment was cancelled.
	Cancelled bool
}

// ShipmentCommand is a command to the Shipment aggregate: ScheduleShipment
// or CancelShipment.
type ShipmentCommand interface{ isShipmentCommand() }

// ScheduleShipment schedules the shipment of an order to Address. It is
// rejected if Address is empty ("no shipping address") or the shipment was
// scheduled before.
type ScheduleShipment struct {
	OrderID, Address string
}

// CancelShipment cancels a scheduled shipment. It fails if none was
// scheduled (NotFound), if it is already cancelled (Rejected), or if OrderID
// is set and is not the shipment's order (Rejected).
type CancelShipment struct {
	OrderID string
}

func (ScheduleShipment) isShipmentCommand() {}
func (CancelShipment) isShipmentCommand()   {}

// ShipmentEvent is an event of the Shipment aggregate: ShipmentScheduled
// or ShipmentCancelled.
type ShipmentEvent interface{ isShipmentEvent() }

// ShipmentScheduled records a scheduled shipment ("shipment.scheduled").
type ShipmentScheduled struct {
	OrderID string `json:"order_id"`
	Address string `json:"address"`
}

// ShipmentCancelled records a cancelled shipment ("shipment.cancelled").
type ShipmentCancelled struct {
	OrderID string `json:"order_id"`
}

func (ShipmentScheduled) isShipmentEvent() {}
func (ShipmentCancelled) isShipmentEvent() {}

// ShipmentEvents returns the registry of the Shipment aggregate's event
// types.
func ShipmentEvents() (*aggregate.Events[ShipmentEvent], error) {
	return aggregate.NewEvents[ShipmentEvent](
		aggregate.Type[ShipmentScheduled]("shipment.scheduled"),
		aggregate.Type[ShipmentCancelled]("shipment.cancelled"),
	)
}

// ShipmentDecider returns the Shipment aggregate's behaviour.
func ShipmentDecider() aggregate.Decider[Shipment, ShipmentCommand, ShipmentEvent] {
	return aggregate.Decider[Shipment, ShipmentCommand, ShipmentEvent]{Decide: decideShipment, Evolve: evolveShipment}
}

// NewShipments defines the Shipment aggregate, named and on topic
// ShipmentsTopic unless opts say otherwise.
func NewShipments(opts ...aggregate.Option) (*aggregate.Aggregate[Shipment, ShipmentCommand, ShipmentEvent], error) {
	events, err := ShipmentEvents()
	if err != nil {
		return nil, err
	}
	return aggregate.New(ShipmentsTopic, ShipmentDecider(), events, opts...)
}

func decideShipment(s Shipment, cmd ShipmentCommand) ([]ShipmentEvent, error) {
	switch cmd := cmd.(type) {
	case ScheduleShipment:
		switch {
		case s.Scheduled:
			return nil, command.Rejected("shipment is already scheduled")
		case cmd.Address == "":
			return nil, command.Rejected("no shipping address")
		}
		return []ShipmentEvent{ShipmentScheduled{OrderID: cmd.OrderID, Address: cmd.Address}}, nil
	case CancelShipment:
		switch {
		case !s.Scheduled:
			return nil, command.NotFound("no shipment scheduled")
		case s.Cancelled:
			return nil, command.Rejected("shipment is already cancelled")
		case cmd.OrderID != "" && cmd.OrderID != s.OrderID:
			return nil, command.Rejected("shipment is for order %q, not %q", s.OrderID, cmd.OrderID)
		}
		return []ShipmentEvent{ShipmentCancelled{OrderID: s.OrderID}}, nil
	}
	return nil, command.Invalid("unknown shipment command %T", cmd)
}

func evolveShipment(s Shipment, e ShipmentEvent) Shipment {
	switch e := e.(type) {
	case ShipmentScheduled:
		s.OrderID, s.Address, s.Scheduled = e.OrderID, e.Address, true
	case ShipmentCancelled:
		s.Cancelled = true
	}
	return s
}
