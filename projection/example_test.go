package projection_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/projection"
)

type orderPlaced struct {
	Customer string `json:"customer"`
	Total    int    `json:"total"`
}

type orderShipped struct{}

// Order is the read model's row: one per order.
type Order struct {
	Customer string `json:"customer"`
	Total    int    `json:"total"`
	Status   string `json:"status"`
}

// A projection of orders into a table with an index by customer, queried
// right after a command's append with read-your-writes.
func Example() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 4}); err != nil {
		log.Fatal(err)
	}

	orders, err := projection.NewTable("orders", projection.StringKey(), projection.JSON[Order]())
	if err != nil {
		log.Fatal(err)
	}
	byCustomer, err := projection.NewIndex(orders, "by-customer", projection.StringKey(),
		func(_ string, o Order) []string { return []string{o.Customer} })
	if err != nil {
		log.Fatal(err)
	}

	// One typed handler per event type: no switch on type names.
	r := projection.NewRouter()
	err = projection.On(r, "order.placed", func(tx *projection.Tx, rec eventstore.Record, e orderPlaced) error {
		return orders.Put(tx, rec.Key, Order{Customer: e.Customer, Total: e.Total, Status: "placed"})
	})
	if err != nil {
		log.Fatal(err)
	}
	err = projection.On(r, "order.shipped", func(tx *projection.Tx, rec eventstore.Record, _ orderShipped) error {
		o, ok, err := orders.Load(tx, rec.Key)
		if err != nil || !ok {
			return err
		}
		o.Status = "shipped"
		return orders.Put(tx, rec.Key, o)
	})
	if err != nil {
		log.Fatal(err)
	}

	p, err := projection.New(s, "order-list", []string{"orders"}, r, projection.WithTables(orders))
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()

	for i, c := range []string{"ada", "bob", "ada"} {
		_, err := s.Append(ctx, "orders", fmt.Sprintf("order-%d", i+1), eventstore.NoStream, []eventstore.Event{
			{Type: "order.placed", Payload: fmt.Appendf(nil, `{"customer":%q,"total":%d}`, c, (i+1)*100)},
		})
		if err != nil {
			log.Fatal(err)
		}
	}
	res, err := s.Append(ctx, "orders", "order-3", eventstore.Exact(1), []eventstore.Event{
		{Type: "order.shipped", Payload: []byte(`{}`)},
	})
	if err != nil {
		log.Fatal(err)
	}

	// Read your writes: wait (at most a second) until the projection has
	// applied the append, then query.
	qctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	page, err := byCustomer.Lookup(qctx, "ada", projection.AtLeast(projection.PositionOf(res)))
	if err != nil {
		log.Fatal(err)
	}
	for _, e := range page.Entries {
		fmt.Printf("%s: %s, total %d, %s\n", e.Key, e.Value.Customer, e.Value.Total, e.Value.Status)
	}

	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	// Output:
	// order-1: ada, total 100, placed
	// order-3: ada, total 300, shipped
}
