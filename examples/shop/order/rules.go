// The rules of the Order context, written by hand beside order_gen.go,
// which muninn gen go generates from ../eventmodel.yaml and never lets
// touch this file.

package order

import (
	"fmt"
	"math"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/examples/shop/payment"
)

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

// Order is the state of one order.
type Order struct {
	Status        Status
	CustomerID    string
	Items         []Item
	TotalCents    int64
	PaymentMethod string
	CancelReason  string
}

// initialOrder is an order not placed yet.
func initialOrder() Order { return Order{} }

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

func decidePlaceOrder(o Order, cmd PlaceOrder) ([]Event, error) {
	total, err := cmd.Validate()
	if err != nil {
		return nil, err
	}
	if o.Status != StatusNone {
		return nil, command.Rejected("order is already placed")
	}
	return []Event{Placed{CustomerID: cmd.CustomerID, Items: cmd.Items, TotalCents: total, PaymentMethod: cmd.PaymentMethod}}, nil
}

func decideMarkPaid(o Order, _ MarkPaid) ([]Event, error) {
	if err := need(o, StatusPlaced, "mark paid"); err != nil {
		return nil, err
	}
	return []Event{Paid{}}, nil
}

func decideMarkShipped(o Order, _ MarkShipped) ([]Event, error) {
	if err := need(o, StatusPaid, "mark shipped"); err != nil {
		return nil, err
	}
	return []Event{Shipped{}}, nil
}

func decideCompleteOrder(o Order, _ CompleteOrder) ([]Event, error) {
	if err := need(o, StatusShipped, "complete"); err != nil {
		return nil, err
	}
	return []Event{Completed{}}, nil
}

func decideCancelOrder(o Order, cmd CancelOrder) ([]Event, error) {
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

func evolvePlaced(o Order, e Placed) Order {
	o.Status, o.CustomerID, o.Items, o.TotalCents, o.PaymentMethod = StatusPlaced, e.CustomerID, e.Items, e.TotalCents, e.PaymentMethod
	return o
}

func evolvePaid(o Order, _ Paid) Order {
	o.Status = StatusPaid
	return o
}

func evolveShipped(o Order, _ Shipped) Order {
	o.Status = StatusShipped
	return o
}

func evolveCompleted(o Order, _ Completed) Order {
	o.Status = StatusCompleted
	return o
}

func evolveCancelled(o Order, e Cancelled) Order {
	o.Status, o.CancelReason = StatusCancelled, e.Reason
	return o
}
