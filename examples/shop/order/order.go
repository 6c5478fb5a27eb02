package order

import (
	"fmt"
	"math"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/examples/shop/payment"
	"github.com/muninn-es/muninn/saga"
)

// Topic is the name of the Order aggregate and the topic of its events,
// keyed by order ID.
const Topic = "shop.orders"

// Status is where an order is in its life.
type Status string

// The statuses of an order. An order is PLACED, then PAID, SHIPPED and
// COMPLETED, or CANCELLED at any point before it is shipped.
const (
	StatusNone      Status = ""
	StatusPlaced    Status = "PLACED"
	StatusPaid      Status = "PAID"
	StatusShipped   Status = "SHIPPED"
	StatusCompleted Status = "COMPLETED"
	StatusCancelled Status = "CANCELLED"
)

// Limits of an order.
const (
	// MaxItems is the most lines an order may have.
	MaxItems = 100
	// MaxQuantity is the most units of one line.
	MaxQuantity = 1_000_000
)

// Item is one line of an order.
type Item struct {
	SKU            string `json:"sku"`
	Quantity       int64  `json:"quantity"`
	UnitPriceCents int64  `json:"unit_price_cents"`
}

// Order is the state of one order.
type Order struct {
	Status        Status
	CustomerID    string
	Items         []Item
	TotalCents    int64
	PaymentMethod string
	CancelReason  string
}

// Command is a command to the Order aggregate: PlaceOrder, MarkPaid,
// MarkShipped, CompleteOrder or CancelOrder.
type Command interface{ isOrderCommand() }

// PlaceOrder creates an order. It is invalid without a valid CustomerID
// (see ValidateID), without items, with more than MaxItems, with a line of
// an invalid SKU, a quantity outside 1..MaxQuantity or a negative price,
// with a total that does not fit an int64 of cents, or with an unknown
// payment method (payment.ValidateMethod). It is rejected if the order
// exists.
type PlaceOrder struct {
	CustomerID    string
	Items         []Item
	PaymentMethod string
}

// MarkPaid records that a placed order's payment was captured.
type MarkPaid struct{}

// MarkShipped records that a paid order was shipped.
type MarkShipped struct{}

// CompleteOrder completes a shipped order.
type CompleteOrder struct{}

// CancelOrder cancels an order that is placed or paid; a shipped,
// completed or cancelled order rejects it (FailedPrecondition), an unknown
// one fails with NotFound.
type CancelOrder struct {
	Reason string
}

func (PlaceOrder) isOrderCommand()    {}
func (MarkPaid) isOrderCommand()      {}
func (MarkShipped) isOrderCommand()   {}
func (CompleteOrder) isOrderCommand() {}
func (CancelOrder) isOrderCommand()   {}

// Event is an event of the Order aggregate.
type Event interface{ isOrderEvent() }

// Placed records a new order ("shop.order.placed").
type Placed struct {
	CustomerID    string `json:"customer_id"`
	Items         []Item `json:"items"`
	TotalCents    int64  `json:"total_cents"`
	PaymentMethod string `json:"payment_method"`
}

// Paid records that the order's payment was captured ("shop.order.paid").
type Paid struct{}

// Shipped records that the order was shipped ("shop.order.shipped").
type Shipped struct{}

// Completed records that the order was completed ("shop.order.completed").
type Completed struct{}

// Cancelled records that the order was cancelled, and why
// ("shop.order.cancelled").
type Cancelled struct {
	Reason string `json:"reason"`
}

func (Placed) isOrderEvent()    {}
func (Paid) isOrderEvent()      {}
func (Shipped) isOrderEvent()   {}
func (Completed) isOrderEvent() {}
func (Cancelled) isOrderEvent() {}

// Events returns the registry of the Order aggregate's event types.
func Events() (*aggregate.Events[Event], error) {
	return aggregate.NewEvents[Event](
		aggregate.Type[Placed]("shop.order.placed"),
		aggregate.Type[Paid]("shop.order.paid"),
		aggregate.Type[Shipped]("shop.order.shipped"),
		aggregate.Type[Completed]("shop.order.completed"),
		aggregate.Type[Cancelled]("shop.order.cancelled"),
	)
}

// Decider returns the Order aggregate's behaviour.
func Decider() aggregate.Decider[Order, Command, Event] {
	return aggregate.Decider[Order, Command, Event]{Decide: decide, Evolve: evolve}
}

// New defines the Order aggregate, on Topic unless opts say otherwise.
func New(opts ...aggregate.Option) (*aggregate.Aggregate[Order, Command, Event], error) {
	events, err := Events()
	if err != nil {
		return nil, err
	}
	return aggregate.New(Topic, Decider(), events, opts...)
}

// Invalid returns the InvalidArgument command error of a bad field.
func Invalid(field, format string, args ...any) error {
	return invalid(&FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
}

func invalid(err error) error {
	return &command.Error{Kind: command.KindInvalidArgument, Err: err}
}

// Validate checks a PlaceOrder and returns its total in cents. The error
// is an InvalidArgument *command.Error wrapping a *FieldError.
func (c PlaceOrder) Validate() (int64, error) {
	if err := ValidateID("customer_id", c.CustomerID); err != nil {
		return 0, invalid(err)
	}
	switch {
	case len(c.Items) == 0:
		return 0, Invalid("items", "the cart is empty: at least one item is required")
	case len(c.Items) > MaxItems:
		return 0, Invalid("items", "%d items, at most %d allowed", len(c.Items), MaxItems)
	}
	var total int64
	for i, it := range c.Items {
		field := func(name string) string { return fmt.Sprintf("items[%d].%s", i, name) }
		if err := ValidateID(field("sku"), it.SKU); err != nil {
			return 0, invalid(err)
		}
		switch {
		case it.Quantity <= 0:
			return 0, Invalid(field("quantity"), "must be at least 1, got %d", it.Quantity)
		case it.Quantity > MaxQuantity:
			return 0, Invalid(field("quantity"), "must be at most %d, got %d", MaxQuantity, it.Quantity)
		case it.UnitPriceCents < 0:
			return 0, Invalid(field("unit_price_cents"), "must not be negative, got %d", it.UnitPriceCents)
		case it.UnitPriceCents > 0 && it.Quantity > math.MaxInt64/it.UnitPriceCents:
			return 0, Invalid(field("quantity"), "%d × %d cents overflows the order total", it.Quantity, it.UnitPriceCents)
		}
		line := it.Quantity * it.UnitPriceCents
		if total > math.MaxInt64-line {
			return 0, Invalid("items", "the order total overflows at item %d", i)
		}
		total += line
	}
	if err := payment.ValidateMethod(c.PaymentMethod); err != nil {
		return 0, Invalid("payment_method", "%v", err)
	}
	return total, nil
}

func decide(o Order, cmd Command) ([]Event, error) {
	switch cmd := cmd.(type) {
	case PlaceOrder:
		total, err := cmd.Validate()
		if err != nil {
			return nil, err
		}
		if o.Status != StatusNone {
			return nil, command.Rejected("order is already placed")
		}
		return []Event{Placed{CustomerID: cmd.CustomerID, Items: cmd.Items, TotalCents: total, PaymentMethod: cmd.PaymentMethod}}, nil
	case MarkPaid:
		if err := need(o, StatusPlaced, "mark paid"); err != nil {
			return nil, err
		}
		return []Event{Paid{}}, nil
	case MarkShipped:
		if err := need(o, StatusPaid, "mark shipped"); err != nil {
			return nil, err
		}
		return []Event{Shipped{}}, nil
	case CompleteOrder:
		if err := need(o, StatusShipped, "complete"); err != nil {
			return nil, err
		}
		return []Event{Completed{}}, nil
	case CancelOrder:
		switch o.Status {
		case StatusNone:
			return nil, command.NotFound("no such order")
		case StatusPlaced, StatusPaid:
			reason := cmd.Reason
			if reason == "" {
				reason = "cancelled"
			}
			return []Event{Cancelled{Reason: reason}}, nil
		case StatusShipped, StatusCompleted:
			return nil, command.Rejected("order is already shipped: it can no longer be cancelled")
		}
		return nil, command.Rejected("order is already cancelled")
	}
	return nil, command.Invalid("unknown order command %T", cmd)
}

// need returns the error of a command that needs the order in status want.
func need(o Order, want Status, what string) error {
	switch o.Status {
	case StatusNone:
		return command.NotFound("no such order")
	case want:
		return nil
	}
	return command.Rejected("cannot %s an order that is %s", what, o.Status)
}

func evolve(o Order, e Event) Order {
	switch e := e.(type) {
	case Placed:
		o.Status, o.CustomerID, o.Items, o.TotalCents, o.PaymentMethod = StatusPlaced, e.CustomerID, e.Items, e.TotalCents, e.PaymentMethod
	case Paid:
		o.Status = StatusPaid
	case Shipped:
		o.Status = StatusShipped
	case Completed:
		o.Status = StatusCompleted
	case Cancelled:
		o.Status, o.CancelReason = StatusCancelled, e.Reason
	}
	return o
}

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
