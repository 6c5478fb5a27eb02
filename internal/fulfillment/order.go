package fulfillment

import (
	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
)

// OrdersTopic is the name of the Order aggregate and the topic of its events.
const OrdersTopic = "orders"

// Order is the state of one order.
type Order struct {
	// Placed is true once the order exists.
	Placed bool
	// Completed and Cancelled are the order's two final outcomes; at most
	// one of them is ever true.
	Completed, Cancelled bool
	// CancelReason says why the order was cancelled.
	CancelReason string
	// Customer, Total, SKU, Qty and Address are as placed.
	Customer string
	Total    int64
	SKU      string
	Qty      int
	Address  string
}

// OrderCommand is a command to the Order aggregate: PlaceOrder,
// CompleteOrder or CancelOrder.
type OrderCommand interface{ isOrderCommand() }

// PlaceOrder creates an order. It is rejected if the order exists.
type PlaceOrder struct {
	Customer string
	// Total is the amount to pay, in cents.
	Total int64
	// SKU and Qty are the one line of the order.
	SKU string
	Qty int
	// Address is where to ship; an empty one makes shipping fail.
	Address string
}

// CompleteOrder marks a placed order completed. It fails if the order does
// not exist (NotFound) or is already completed or cancelled (Rejected).
type CompleteOrder struct{}

// CancelOrder cancels a placed order. It fails if the order does not exist
// (NotFound) or is already completed or cancelled (Rejected).
type CancelOrder struct {
	// Reason says why; it is recorded in OrderCancelled.
	Reason string
}

func (PlaceOrder) isOrderCommand()    {}
func (CompleteOrder) isOrderCommand() {}
func (CancelOrder) isOrderCommand()   {}

// OrderEvent is an event of the Order aggregate: OrderPlaced,
// OrderCompleted or OrderCancelled.
type OrderEvent interface{ isOrderEvent() }

// OrderPlaced records a new order ("order.placed").
type OrderPlaced struct {
	Customer string `json:"customer"`
	Total    int64  `json:"total"`
	SKU      string `json:"sku"`
	Qty      int    `json:"qty"`
	Address  string `json:"address"`
}

// OrderCompleted records that an order was completed ("order.completed").
type OrderCompleted struct{}

// OrderCancelled records that an order was cancelled ("order.cancelled").
type OrderCancelled struct {
	Reason string `json:"reason"`
}

func (OrderPlaced) isOrderEvent()    {}
func (OrderCompleted) isOrderEvent() {}
func (OrderCancelled) isOrderEvent() {}

// OrderEvents returns the registry of the Order aggregate's event types.
func OrderEvents() (*aggregate.Events[OrderEvent], error) {
	return aggregate.NewEvents[OrderEvent](
		aggregate.Type[OrderPlaced]("order.placed"),
		aggregate.Type[OrderCompleted]("order.completed"),
		aggregate.Type[OrderCancelled]("order.cancelled"),
	)
}

// OrderDecider returns the Order aggregate's behaviour.
func OrderDecider() aggregate.Decider[Order, OrderCommand, OrderEvent] {
	return aggregate.Decider[Order, OrderCommand, OrderEvent]{Decide: decideOrder, Evolve: evolveOrder}
}

// NewOrders defines the Order aggregate, named and on topic OrdersTopic
// unless opts say otherwise.
func NewOrders(opts ...aggregate.Option) (*aggregate.Aggregate[Order, OrderCommand, OrderEvent], error) {
	events, err := OrderEvents()
	if err != nil {
		return nil, err
	}
	return aggregate.New(OrdersTopic, OrderDecider(), events, opts...)
}

func decideOrder(o Order, cmd OrderCommand) ([]OrderEvent, error) {
	switch cmd := cmd.(type) {
	case PlaceOrder:
		if o.Placed {
			return nil, command.Rejected("order is already placed")
		}
		return []OrderEvent{OrderPlaced{
			Customer: cmd.Customer, Total: cmd.Total, SKU: cmd.SKU, Qty: cmd.Qty, Address: cmd.Address,
		}}, nil
	case CompleteOrder:
		if err := orderOpen(o); err != nil {
			return nil, err
		}
		return []OrderEvent{OrderCompleted{}}, nil
	case CancelOrder:
		if err := orderOpen(o); err != nil {
			return nil, err
		}
		return []OrderEvent{OrderCancelled{Reason: cmd.Reason}}, nil
	}
	return nil, command.Invalid("unknown order command %T", cmd)
}

// orderOpen returns the error of a command that needs a placed order
// without an outcome yet.
func orderOpen(o Order) error {
	switch {
	case !o.Placed:
		return command.NotFound("no such order")
	case o.Completed:
		return command.Rejected("order is already completed")
	case o.Cancelled:
		return command.Rejected("order is already cancelled")
	}
	return nil
}

func evolveOrder(o Order, e OrderEvent) Order {
	switch e := e.(type) {
	case OrderPlaced:
		o.Placed = true
		o.Customer, o.Total, o.SKU, o.Qty, o.Address = e.Customer, e.Total, e.SKU, e.Qty, e.Address
	case OrderCompleted:
		o.Completed = true
	case OrderCancelled:
		o.Cancelled, o.CancelReason = true, e.Reason
	}
	return o
}
