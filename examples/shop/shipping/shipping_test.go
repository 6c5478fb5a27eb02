package shipping_test

import (
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/aggregate/aggregatetest"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/examples/shop/shipping"
)

func TestStock(t *testing.T) {
	agg, err := shipping.NewStock(aggregate.WithSnapshots(1))
	if err != nil {
		t.Fatal(err)
	}
	f := aggregatetest.For(t, agg)
	reserved := shipping.Reserved{OrderID: "o1", Quantity: 3}
	f.Given().When(shipping.Reserve{OrderID: "o1", Quantity: 3}).Then(reserved).
		ThenState(shipping.Stock{Available: shipping.InitialStock - 3, Reservations: map[string]int64{"o1": 3}})
	f.Given(reserved).When(shipping.Reserve{OrderID: "o1", Quantity: 1}).ThenError(command.ErrRejected)
	f.Given(reserved).When(shipping.Reserve{OrderID: "o2", Quantity: shipping.InitialStock - 2}).ThenError(command.ErrRejected)
	f.Given().When(shipping.Reserve{OrderID: "o1", Quantity: 0}).ThenError(command.ErrInvalidArgument)
	f.Given(reserved).When(shipping.Release{OrderID: "o1"}).Then(shipping.Released{OrderID: "o1", Quantity: 3}).
		ThenState(shipping.Stock{Available: shipping.InitialStock, Reservations: map[string]int64{}})
	f.Given(reserved).When(shipping.Release{OrderID: "o2"}).ThenError(command.ErrRejected)
}

func TestShipment(t *testing.T) {
	agg, err := shipping.NewShipment(aggregate.WithSnapshots(1))
	if err != nil {
		t.Fatal(err)
	}
	f := aggregatetest.For(t, agg)
	lines := []shipping.Line{{SKU: "s", Quantity: 2}}
	f.Given().When(shipping.Ship{Lines: lines}).Then(shipping.Shipped{Lines: lines}).
		ThenState(shipping.Shipment{Shipped: true, Lines: lines})
	f.Given(shipping.Shipped{Lines: lines}).When(shipping.Ship{Lines: lines}).ThenError(command.ErrRejected)
	f.Given().When(shipping.Ship{}).ThenError(command.ErrInvalidArgument)
	f.Given(shipping.Shipped{Lines: lines}).When(shipping.Recall{}).Then(shipping.Recalled{}).
		ThenState(shipping.Shipment{Shipped: true, Recalled: true, Lines: lines})
	f.Given(shipping.Shipped{Lines: lines}, shipping.Recalled{}).When(shipping.Recall{}).ThenNothing()
	f.Given().When(shipping.Recall{}).ThenNothing()
}
