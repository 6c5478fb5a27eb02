package command_test

import (
	"context"
	"fmt"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
)

// The whole Order aggregate: state, commands, events, decide, evolve.
type Order struct {
	Placed, Confirmed bool
	Items             map[string]int
}

type OrderCommand interface{ isOrderCommand() }

type PlaceOrder struct{ Customer string }
type AddItem struct {
	SKU string
	Qty int
}
type ConfirmOrder struct{}

func (PlaceOrder) isOrderCommand()   {}
func (AddItem) isOrderCommand()      {}
func (ConfirmOrder) isOrderCommand() {}

type OrderEvent interface{ isOrderEvent() }

type OrderPlaced struct{ Customer string }
type ItemAdded struct {
	SKU string
	Qty int
}
type OrderConfirmed struct{}

func (OrderPlaced) isOrderEvent()    {}
func (ItemAdded) isOrderEvent()      {}
func (OrderConfirmed) isOrderEvent() {}

func decide(o Order, c OrderCommand) ([]OrderEvent, error) {
	switch c := c.(type) {
	case PlaceOrder:
		if o.Placed {
			return nil, command.Rejected("order already placed")
		}
		return []OrderEvent{OrderPlaced{c.Customer}}, nil
	case AddItem:
		switch {
		case !o.Placed:
			return nil, command.NotFound("no such order")
		case o.Confirmed:
			return nil, command.Rejected("order is confirmed")
		case c.Qty <= 0:
			return nil, command.Invalid("quantity must be positive, got %d", c.Qty)
		}
		return []OrderEvent{ItemAdded{c.SKU, c.Qty}}, nil
	case ConfirmOrder:
		if len(o.Items) == 0 {
			return nil, command.Rejected("order is empty")
		}
		return []OrderEvent{OrderConfirmed{}}, nil
	}
	return nil, command.Invalid("unknown command %T", c)
}

func evolve(o Order, e OrderEvent) Order {
	switch e := e.(type) {
	case OrderPlaced:
		o.Placed, o.Items = true, map[string]int{}
	case ItemAdded:
		o.Items[e.SKU] += e.Qty
	case OrderConfirmed:
		o.Confirmed = true
	}
	return o
}

// An Order aggregate in full, registered with a bus and sent commands.
func Example() {
	ctx := context.Background()
	store, _ := eventstore.OpenMem()
	defer store.Close()

	events, err := aggregate.NewEvents[OrderEvent](
		aggregate.Type[OrderPlaced]("order.placed"),
		aggregate.Type[ItemAdded]("order.item_added"),
		aggregate.Type[OrderConfirmed]("order.confirmed"),
	)
	if err != nil {
		panic(err)
	}
	order, err := aggregate.New("order", aggregate.Decider[Order, OrderCommand, OrderEvent]{
		Decide: decide, Evolve: evolve,
	}, events, aggregate.WithSnapshots(100))
	if err != nil {
		panic(err)
	}
	bus, _ := command.New(store)
	defer bus.Close()
	orders, err := command.Register(ctx, bus, order)
	if err != nil {
		panic(err)
	}

	res, err := orders.Dispatch(ctx, "order-1", PlaceOrder{"ada"}, command.WithCommandID("cmd-1"))
	fmt.Println(res.Version, err)
	res, _ = orders.Dispatch(ctx, "order-1", PlaceOrder{"ada"}, command.WithCommandID("cmd-1"))
	fmt.Println(res.Version, res.Duplicate)
	res, _ = orders.Dispatch(ctx, "order-1", AddItem{"sku-42", 2})
	fmt.Println(res.Version)
	_, err = orders.Dispatch(ctx, "order-1", AddItem{"sku-42", 0})
	fmt.Println(command.KindOf(err))
	_, err = bus.Dispatch(ctx, "order-1", ConfirmOrder{}) // routed by type
	fmt.Println(err)
	_, err = orders.Dispatch(ctx, "order-1", AddItem{"sku-7", 1}, command.WithCommandID("cmd-4"))
	fmt.Println(command.KindOf(err), err)

	st, _ := orders.Load(ctx, "order-1")
	fmt.Printf("%+v at version %d\n", st.State, st.Version)
	// Output:
	// 1 <nil>
	// 1 true
	// 2
	// invalid argument
	// <nil>
	// failed precondition command command_test.AddItem cmd-4 on order/order-1: failed precondition: order is confirmed
	// {Placed:true Confirmed:true Items:map[sku-42:2]} at version 3
}
