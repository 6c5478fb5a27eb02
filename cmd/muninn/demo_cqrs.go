package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/projection"
)

// The demo's Cart aggregate: its state, commands and events, and the two
// functions that make it a decider. This is all the code an aggregate
// needs; registration is in commandsAndReadModel.
type cart struct {
	Open  bool
	Items map[string]int
}

type cartCommand interface{ isCartCommand() }

type openCart struct{ Customer string }
type addToCart struct {
	SKU string
	Qty int
}

func (openCart) isCartCommand()  {}
func (addToCart) isCartCommand() {}

type cartEvent interface{ isCartEvent() }

type cartOpened struct {
	Customer string `json:"customer"`
}
type itemAdded struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

func (cartOpened) isCartEvent() {}
func (itemAdded) isCartEvent()  {}

func decideCart(c cart, cmd cartCommand) ([]cartEvent, error) {
	switch cmd := cmd.(type) {
	case openCart:
		if c.Open {
			return nil, command.Rejected("cart is already open")
		}
		return []cartEvent{cartOpened{cmd.Customer}}, nil
	case addToCart:
		if !c.Open {
			return nil, command.NotFound("no open cart")
		}
		if cmd.Qty <= 0 {
			return nil, command.Invalid("quantity must be positive, got %d", cmd.Qty)
		}
		return []cartEvent{itemAdded{cmd.SKU, cmd.Qty}}, nil
	}
	return nil, command.Invalid("unknown command %T", cmd)
}

func evolveCart(c cart, e cartEvent) cart {
	switch e := e.(type) {
	case cartOpened:
		c.Open, c.Items = true, map[string]int{}
	case itemAdded:
		c.Items[e.SKU] += e.Qty
	}
	return c
}

// cartRow is the read model's row: one per cart.
type cartRow struct {
	Customer string `json:"customer"`
	Items    int    `json:"items"`
}

// 6. The write side and the read side: commands through the bus, a
// projection into a typed table, and a query that waits for its own write.
func (d *demo) commandsAndReadModel(ctx context.Context) error {
	d.section("6. Commands, a read model, and reading your own writes")
	events, err := aggregate.NewEvents[cartEvent](
		aggregate.Type[cartOpened]("cart.opened"),
		aggregate.Type[itemAdded]("cart.item_added"),
	)
	if err != nil {
		return err
	}
	carts, err := aggregate.New("cart", aggregate.Decider[cart, cartCommand, cartEvent]{
		Decide: decideCart, Evolve: evolveCart,
	}, events, aggregate.WithSnapshots(100))
	if err != nil {
		return err
	}
	bus, err := command.New(d.store)
	if err != nil {
		return err
	}
	defer bus.Close()
	handler, err := command.Register(ctx, bus, carts)
	if err != nil {
		return err
	}

	// The read model: one row per cart, kept by a projection of topic
	// "cart" (the aggregate's topic).
	table, err := projection.NewTable("carts", projection.StringKey(), codec.JSON[cartRow]())
	if err != nil {
		return err
	}
	// Handlers are routed by the aggregate's event registry, which names
	// the event types and upcasts old schema versions.
	r := projection.NewRouter()
	if err := projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, e cartOpened) error {
		return table.Put(tx, rec.Key, cartRow{Customer: e.Customer})
	}); err != nil {
		return err
	}
	if err := projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, e itemAdded) error {
		row, _, err := table.Load(tx, rec.Key)
		if err != nil {
			return err
		}
		row.Items += e.Qty
		return table.Put(tx, rec.Key, row)
	}); err != nil {
		return err
	}
	p, err := projection.New(d.store, "cart-list", []string{"cart"}, r, projection.WithTables(table))
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			d.printf("  projection stopped: %v\n", err)
		}
	}()

	// Every command carries an ID chosen by the client (here "req-N"): the
	// bus remembers each result, so a retried request is not applied twice.
	dispatch := func(req, id string, cmd cartCommand) (command.Result, error) {
		label := fmt.Sprintf("%s %s %+v", req, id, cmd)
		res, err := handler.Dispatch(ctx, id, cmd, command.WithCommandID(req))
		if err != nil {
			d.printf("  %-32s -> %s: %v\n", label, command.KindOf(err), err)
			return res, err
		}
		dup := ""
		if res.Duplicate {
			dup = "  (duplicate: the first result, nothing appended)"
		}
		d.printf("  %-32s -> version %d, partition %d offset %d%s\n", label, res.Version, res.Partition, res.LastOffset, dup)
		return res, nil
	}
	d.printf("  Aggregate \"cart\" (decide + evolve, snapshots every 100 events), commands through the bus:\n")
	if _, err := dispatch("req-1", "cart-7", openCart{"ada"}); err != nil {
		return err
	}
	if _, err := dispatch("req-1", "cart-7", openCart{"ada"}); err != nil {
		return err // the client retried the same request
	}
	if _, err := dispatch("req-2", "cart-7", addToCart{"sku-42", 0}); err == nil {
		return errors.New("demo: a zero quantity was accepted")
	}
	if _, err := dispatch("req-3", "cart-8", addToCart{"sku-42", 1}); err == nil {
		return errors.New("demo: an item went into a cart never opened")
	}
	res, err := dispatch("req-4", "cart-7", addToCart{"sku-42", 2})
	if err != nil {
		return err
	}

	// Read your writes: the query waits until the projection has applied
	// the command's last event, then answers.
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	pos := projection.PositionOf(res)
	row, ok, err := table.Get(qctx, "cart-7", projection.AtLeast(pos))
	if err != nil {
		return err
	}
	d.printf("\n  Query carts[cart-7], waiting for %s: found %v, %+v\n", pos, ok, row)
	return nil
}
