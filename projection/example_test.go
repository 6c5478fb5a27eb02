package projection_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/consume"
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

	orders, err := projection.NewTable("orders", projection.StringKey(), codec.JSON[Order]())
	if err != nil {
		log.Fatal(err)
	}
	byCustomer, err := projection.NewIndex(orders, "by-customer", projection.StringKey(),
		func(_ string, o Order) []string { return []string{o.Customer} })
	if err != nil {
		log.Fatal(err)
	}

	// The order aggregate's event registry names the event types.
	orderEvents, err := aggregate.NewEvents[any](
		aggregate.Type[orderPlaced]("order.placed"),
		aggregate.Type[orderShipped]("order.shipped"),
	)
	if err != nil {
		log.Fatal(err)
	}

	// One typed handler per event type: no switch on type names, and no
	// name typed twice: On finds it in the registry.
	r := projection.NewRouter()
	err = projection.On(r, orderEvents, func(tx *projection.Tx, rec eventstore.Record, e orderPlaced) error {
		return orders.Put(tx, rec.Key, Order{Customer: e.Customer, Total: e.Total, Status: "placed"})
	})
	if err != nil {
		log.Fatal(err)
	}
	err = projection.On(r, orderEvents, func(tx *projection.Tx, rec eventstore.Record, _ orderShipped) error {
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
		ev, err := orderEvents.Encode(orderPlaced{Customer: c, Total: (i + 1) * 100})
		if err != nil {
			log.Fatal(err)
		}
		if _, err := s.Append(ctx, "orders", fmt.Sprintf("order-%d", i+1), eventstore.NoStream, []eventstore.Event{ev}); err != nil {
			log.Fatal(err)
		}
	}
	shipped, err := orderEvents.Encode(orderShipped{})
	if err != nil {
		log.Fatal(err)
	}
	res, err := s.Append(ctx, "orders", "order-3", eventstore.Exact(1), []eventstore.Event{shipped})
	if err != nil {
		log.Fatal(err)
	}

	// Read your writes: wait (at most a minute) until the projection has
	// applied the append, then query.
	qctx, cancel := context.WithTimeout(ctx, time.Minute)
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

// Rebuild a projection's read model from offset zero, with progress, while
// queries keep answering from the current generation until the swap.
func ExampleProjection_Rebuild() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 2}); err != nil {
		log.Fatal(err)
	}
	for i := range 6 {
		_, err := s.Append(ctx, "orders", fmt.Sprintf("order-%d", i%3), eventstore.Any,
			[]eventstore.Event{{Type: "order.placed", Payload: []byte(`{}`)}})
		if err != nil {
			log.Fatal(err)
		}
	}
	counts, err := projection.NewTable("counts", projection.StringKey(), codec.Int64())
	if err != nil {
		log.Fatal(err)
	}
	count := projection.HandlerFunc(func(tx *projection.Tx, rec eventstore.Record) error {
		n, _, err := counts.Load(tx, rec.Key)
		if err != nil {
			return err
		}
		return counts.Put(tx, rec.Key, n+1)
	})
	p, err := projection.New(s, "order-counts", []string{"orders"}, count, projection.WithTables(counts))
	if err != nil {
		log.Fatal(err)
	}

	err = p.Rebuild(ctx, projection.OnProgress(func(pr projection.Progress) {
		if pr.Finished {
			fmt.Printf("generation %d: %d of %d events\n", pr.Generation, pr.Done, pr.Total)
		}
	}))
	if err != nil {
		log.Fatal(err)
	}
	n, _, err := counts.Get(ctx, "order-1")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("order-1 has", n, "events")
	// Output:
	// generation 2: 6 of 6 events
	// order-1 has 2 events
}

// Park records that a handler cannot apply, go on, and replay them once
// the cause is fixed.
func ExampleProjection_Parked() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "payments", eventstore.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	totals, err := projection.NewTable("totals", projection.StringKey(), codec.JSON[int]())
	if err != nil {
		log.Fatal(err)
	}
	type paid struct {
		Amount int `json:"amount"`
	}
	r := projection.NewRouter()
	// A type no aggregate registers is routed by name with a codec: it is
	// decoded as stored, without upcasting.
	err = projection.OnCodec(r, "payment.received", codec.JSON[paid](), func(tx *projection.Tx, rec eventstore.Record, e paid) error {
		if e.Amount < 0 {
			return fmt.Errorf("negative amount %d", e.Amount)
		}
		n, _, err := totals.Load(tx, rec.Key)
		if err != nil {
			return err
		}
		return totals.Put(tx, rec.Key, n+e.Amount)
	})
	if err != nil {
		log.Fatal(err)
	}
	p, err := projection.New(s, "totals", []string{"payments"}, r, projection.WithTables(totals),
		projection.WithErrorPolicy(consume.Park("totals.dlq")), projection.WithRetries(0))
	if err != nil {
		log.Fatal(err)
	}
	var last eventstore.AppendResult
	for _, amount := range []int{10, -5, 7} {
		last, err = s.Append(ctx, "payments", "acct-1", eventstore.Any, []eventstore.Event{
			{Type: "payment.received", Payload: fmt.Appendf(nil, `{"amount":%d}`, amount)}})
		if err != nil {
			log.Fatal(err)
		}
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	if err := p.WaitFor(ctx, projection.PositionOf(last)); err != nil {
		log.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}

	total, _, _ := totals.Get(ctx, "acct-1")
	fmt.Println("total:", total)
	parked, err := p.Parked(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, pr := range parked {
		fmt.Printf("parked %s: %s\n", pr.Record.Position(), pr.Error)
	}
	fmt.Println("dead-letter topic:", p.DeadLetterTopic())
	// Output:
	// total: 17
	// parked payments/0@1: negative amount -5
	// dead-letter topic: totals.dlq
}

// A handler sees every event as the aggregate's registry reads it today:
// an event stored at schema version 1, when the customer field was called
// "buyer", reaches the handler upcast to version 2.
func ExampleOn() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	orderEvents, err := aggregate.NewEvents[any](
		aggregate.Type[orderPlaced]("order.placed", aggregate.Schema(2)),
		aggregate.Upcast("order.placed", 1, aggregate.JSONUpcaster(2, func(m map[string]any) error {
			m["customer"] = m["buyer"]
			delete(m, "buyer")
			return nil
		})),
	)
	if err != nil {
		log.Fatal(err)
	}
	totals, err := projection.NewTable("by-customer", projection.StringKey(), codec.Int64())
	if err != nil {
		log.Fatal(err)
	}
	r := projection.NewRouter()
	if err := projection.On(r, orderEvents, func(tx *projection.Tx, _ eventstore.Record, e orderPlaced) error {
		n, _, err := totals.Load(tx, e.Customer)
		if err != nil {
			return err
		}
		return totals.Put(tx, e.Customer, n+int64(e.Total))
	}); err != nil {
		log.Fatal(err)
	}
	p, err := projection.New(s, "totals-by-customer", []string{"orders"}, r, projection.WithTables(totals))
	if err != nil {
		log.Fatal(err)
	}

	// One event written by old code, one by today's.
	if _, err := s.Append(ctx, "orders", "order-1", eventstore.NoStream, []eventstore.Event{
		{Type: "order.placed", SchemaVersion: 1, Payload: []byte(`{"buyer":"ada","total":100}`)}}); err != nil {
		log.Fatal(err)
	}
	ev, err := orderEvents.Encode(orderPlaced{Customer: "ada", Total: 20})
	if err != nil {
		log.Fatal(err)
	}
	last, err := s.Append(ctx, "orders", "order-2", eventstore.NoStream, []eventstore.Event{ev})
	if err != nil {
		log.Fatal(err)
	}

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	if err := p.WaitFor(ctx, projection.PositionOf(last)); err != nil {
		log.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	n, _, err := totals.Get(ctx, "ada")
	fmt.Println("ada:", n, err)
	// Output: ada: 120 <nil>
}

// A projection's Status marshals to JSON that an operator can read (and a
// server expose as is): the state by name, the position and lag of every
// partition in records and seconds, counters, the generation.
func ExampleProjection_Status() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	var last eventstore.AppendResult
	for i := range 3 {
		if last, err = s.Append(ctx, "orders", fmt.Sprintf("order-%d", i), eventstore.NoStream,
			[]eventstore.Event{{Type: "order.placed", Payload: []byte(`{}`)}}); err != nil {
			log.Fatal(err)
		}
	}
	p, err := projection.New(s, "order-log", []string{"orders"},
		projection.HandlerFunc(func(*projection.Tx, eventstore.Record) error { return nil }))
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	if err := p.WaitFor(ctx, last.Position()); err != nil {
		log.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	st, err := p.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(string(b))
	// Output:
	// {
	//   "name": "order-log",
	//   "group": "projection.order-log.1",
	//   "state": "stopped",
	//   "policy": "stop",
	//   "counters": {
	//     "applied": 3,
	//     "failures": 0,
	//     "retries": 0,
	//     "parked": 0,
	//     "handed_off": 0
	//   },
	//   "partitions": [
	//     {
	//       "topic": "orders",
	//       "partition": 0,
	//       "position": 3,
	//       "end": 3,
	//       "lag": 0,
	//       "lag_seconds": 0
	//     }
	//   ],
	//   "lag": 0,
	//   "lag_seconds": 0,
	//   "generation": 1
	// }
}
