package order_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/aggregate/aggregatetest"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/examples/shop/order"
)

func newOrders(t *testing.T) *aggregate.Aggregate[order.Order, order.Command, order.Event] {
	t.Helper()
	agg, err := order.New(aggregate.WithSnapshots(1))
	if err != nil {
		t.Fatal(err)
	}
	return agg
}

var (
	items  = []order.Item{{SKU: "sku-1", Quantity: 2, UnitPriceCents: 1250}, {SKU: "sku-2", Quantity: 1, UnitPriceCents: 0}}
	place  = order.PlaceOrder{CustomerID: "ada", Items: items, PaymentMethod: "card"}
	placed = order.Placed{CustomerID: "ada", Items: items, TotalCents: 2500, PaymentMethod: "card"}
)

func TestPlace(t *testing.T) {
	agg := newOrders(t)
	aggregatetest.For(t, agg).Given().When(place).Then(placed).
		ThenState(order.Order{Status: order.StatusPlaced, CustomerID: "ada", Items: items, TotalCents: 2500, PaymentMethod: "card"})
	aggregatetest.For(t, agg).Given(placed).When(place).ThenError(command.ErrRejected)
}

// field returns a matcher of an InvalidArgument error naming field.
func field(name string) (string, func(error) bool) {
	return "InvalidArgument on " + name, func(err error) bool {
		var fe *order.FieldError
		return errors.Is(err, command.ErrInvalidArgument) && errors.As(err, &fe) && fe.Field == name
	}
}

func TestPlaceInvalid(t *testing.T) {
	agg := newOrders(t)
	with := func(change func(*order.PlaceOrder)) order.PlaceOrder {
		c := place
		c.Items = append([]order.Item(nil), place.Items...)
		change(&c)
		return c
	}
	for _, tc := range []struct {
		name  string
		cmd   order.PlaceOrder
		field string
	}{
		{"no customer", with(func(c *order.PlaceOrder) { c.CustomerID = "" }), "customer_id"},
		{"customer with a slash", with(func(c *order.PlaceOrder) { c.CustomerID = "a/b" }), "customer_id"},
		{"customer with a newline", with(func(c *order.PlaceOrder) { c.CustomerID = "a\nb" }), "customer_id"},
		{"empty cart", with(func(c *order.PlaceOrder) { c.Items = nil }), "items"},
		{"too many items", with(func(c *order.PlaceOrder) { c.Items = make([]order.Item, order.MaxItems+1) }), "items"},
		{"zero quantity", with(func(c *order.PlaceOrder) { c.Items[1].Quantity = 0 }), "items[1].quantity"},
		{"negative quantity", with(func(c *order.PlaceOrder) { c.Items[0].Quantity = -1 }), "items[0].quantity"},
		{"huge quantity", with(func(c *order.PlaceOrder) { c.Items[0].Quantity = math.MaxInt64 }), "items[0].quantity"},
		{"line overflow", with(func(c *order.PlaceOrder) { c.Items[0].UnitPriceCents = math.MaxInt64/2 + 1 }), "items[0].quantity"},
		{"total overflow", with(func(c *order.PlaceOrder) {
			c.Items[0] = order.Item{SKU: "a", Quantity: 1, UnitPriceCents: math.MaxInt64}
			c.Items[1] = order.Item{SKU: "b", Quantity: 1, UnitPriceCents: 1}
		}), "items"},
		{"negative price", with(func(c *order.PlaceOrder) { c.Items[0].UnitPriceCents = -5 }), "items[0].unit_price_cents"},
		{"no sku", with(func(c *order.PlaceOrder) { c.Items[1].SKU = "" }), "items[1].sku"},
		{"unknown payment method", with(func(c *order.PlaceOrder) { c.PaymentMethod = "cash" }), "payment_method"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			aggregatetest.For(t, agg).Given().When(tc.cmd).ThenErrorMatches(field(tc.field))
		})
	}
}

func TestLifecycle(t *testing.T) {
	agg := newOrders(t)
	f := aggregatetest.For(t, agg)
	f.Given(placed).When(order.MarkPaid{}).Then(order.Paid{})
	f.Given(placed, order.Paid{}).When(order.MarkShipped{}).Then(order.Shipped{})
	f.Given(placed, order.Paid{}, order.Shipped{}).When(order.CompleteOrder{}).Then(order.Completed{})
	// Out of order.
	f.Given(placed).When(order.MarkShipped{}).ThenError(command.ErrRejected)
	f.Given(placed).When(order.CompleteOrder{}).ThenError(command.ErrRejected)
	f.Given(placed, order.Paid{}).When(order.MarkPaid{}).ThenError(command.ErrRejected)
	f.Given().When(order.MarkPaid{}).ThenError(command.ErrNotFound)
}

func TestCancel(t *testing.T) {
	agg := newOrders(t)
	f := aggregatetest.For(t, agg)
	f.Given(placed).When(order.CancelOrder{Reason: "changed my mind"}).Then(order.Cancelled{Reason: "changed my mind"}).
		ThenState(order.Order{Status: order.StatusCancelled, CustomerID: "ada", Items: items, TotalCents: 2500,
			PaymentMethod: "card", CancelReason: "changed my mind"})
	f.Given(placed, order.Paid{}).When(order.CancelOrder{}).Then(order.Cancelled{Reason: "cancelled"})
	f.Given().When(order.CancelOrder{}).ThenError(command.ErrNotFound)
	shipped := func(err error) bool {
		return errors.Is(err, command.ErrRejected) && strings.Contains(err.Error(), "shipped")
	}
	f.Given(placed, order.Paid{}, order.Shipped{}).When(order.CancelOrder{}).ThenErrorMatches("Rejected: shipped", shipped)
	f.Given(placed, order.Paid{}, order.Shipped{}, order.Completed{}).When(order.CancelOrder{}).ThenErrorMatches("Rejected: shipped", shipped)
	f.Given(placed, order.Cancelled{Reason: "x"}).When(order.CancelOrder{}).ThenError(command.ErrRejected)
}

func TestValidateID(t *testing.T) {
	for _, ok := range []string{"a", "ord-0195d2c1-7c1e-7000-8000-000000000000", "Åsa", "客户", "x.y@z:1", "e\u0301", strings.Repeat("x", order.MaxIDLen)} {
		if err := order.ValidateID("id", ok); err != nil {
			t.Errorf("ValidateID(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "../etc", "a/b", `a\b`, "a b", "a\x00", "a\tb", "\x7f", "\xff", "a\u202eb", strings.Repeat("x", order.MaxIDLen+1)} {
		err := order.ValidateID("customer_id", bad)
		var fe *order.FieldError
		if !errors.As(err, &fe) || fe.Field != "customer_id" || !strings.HasPrefix(err.Error(), "customer_id: ") {
			t.Errorf("ValidateID(%q): %v, want a FieldError on customer_id", bad, err)
		}
	}
}
