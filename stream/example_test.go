package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
)

// PageView is the value of the example's input records.
type PageView struct {
	User string `json:"user"`
	Page string `json:"page"`
}

// Page views keyed by page, re-keyed by user and counted per user in
// tumbling one-minute windows.
func Example() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "page-views", eventstore.TopicConfig{Partitions: 2}); err != nil {
		log.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	views := []struct {
		at   time.Duration
		page string
		user string
	}{{0, "/home", "ann"}, {10 * time.Second, "/docs", "bob"}, {20 * time.Second, "/home", "ann"}, {70 * time.Second, "/docs", "ann"}}
	for _, v := range views {
		payload := fmt.Sprintf(`{"user":%q,"page":%q}`, v.user, v.page)
		ev := eventstore.Event{Type: "page.viewed", Payload: []byte(payload), Timestamp: t0.Add(v.at)}
		if _, err := s.Append(ctx, "page-views", v.page, eventstore.Any, []eventstore.Event{ev}); err != nil {
			log.Fatal(err)
		}
	}

	topo := stream.NewTopology()
	views2 := stream.Source(topo, "page-views", codec.String(), codec.JSON[PageView]())
	byUser := stream.GroupBy(views2, func(_ string, v PageView) string { return v.User }, codec.String())
	counts := stream.WindowedCount(stream.WindowedBy(byUser, stream.Tumbling(time.Minute)), "views-per-minute")

	app, err := stream.NewApp(s, topo, "page-stats")
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	if err := app.WaitCaughtUp(ctx); err != nil {
		log.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}

	for _, user := range []string{"ann", "bob"} {
		for w, err := range counts.Fetch(ctx, app, user, t0, t0.Add(time.Hour)) {
			if err != nil {
				log.Fatal(err)
			}
			fmt.Printf("%s %s-%s: %d\n", w.Key.Key, w.Key.Start.Format("15:04"), w.Key.End.Format("15:04"), w.Value)
		}
	}
	fmt.Print(topo.Describe())
	// Output:
	// ann 12:00-12:01: 2
	// ann 12:01-12:02: 1
	// bob 12:00-12:01: 1
	// Topologies:
	//    Sub-topology: 0
	//     Source: KSTREAM-SOURCE-0000000000 (topics: [page-views])
	//       --> KSTREAM-KEY-SELECT-0000000001
	//     Processor: KSTREAM-KEY-SELECT-0000000001 (stores: [])
	//       --> KSTREAM-SINK-0000000002
	//       <-- KSTREAM-SOURCE-0000000000
	//     Sink: KSTREAM-SINK-0000000002 (topic: views-per-minute-repartition)
	//       <-- KSTREAM-KEY-SELECT-0000000001
	//    Sub-topology: 1
	//     Source: KSTREAM-SOURCE-0000000003 (topics: [views-per-minute-repartition])
	//       --> KSTREAM-WINDOWED-COUNT-0000000004
	//     Processor: KSTREAM-WINDOWED-COUNT-0000000004 (stores: [views-per-minute])
	//       --> none
	//       <-- KSTREAM-SOURCE-0000000003
	// Stores:
	//    Store: views-per-minute (window tumbling 1m0s, grace 0s, retention 24h0m0s, changelog: views-per-minute-changelog)
}

// A stream of orders enriched with the current name of their customer from
// a table read from a compacted topic (stream/table duality), written to a
// topic.
func ExampleLeftJoin() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	for name, policy := range map[string]eventstore.CleanupPolicy{"customers": eventstore.Compact, "orders": eventstore.Retain} {
		if err := s.CreateTopic(ctx, name, eventstore.TopicConfig{Partitions: 1, Cleanup: policy}); err != nil {
			log.Fatal(err)
		}
	}
	write := func(topic, key, payload string) {
		ev := eventstore.Event{Type: topic + ".changed", Payload: []byte(payload)}
		if _, err := s.Append(ctx, topic, key, eventstore.Any, []eventstore.Event{ev}); err != nil {
			log.Fatal(err)
		}
	}
	write("customers", "c1", "Ada")

	topo := stream.NewTopology()
	customers := stream.SourceTable(topo, "customers", "customers", codec.String(), codec.String())
	orders := stream.Source(topo, "orders", codec.String(), codec.JSON[int]()) // key: customer, value: amount
	labelled := stream.LeftJoin(orders, customers, func(id string, amount int, name string, known bool) string {
		if !known {
			name = "unknown customer " + id
		}
		return fmt.Sprintf("%s ordered %d", name, amount)
	})
	stream.ToTopic(stream.WithCodecs(labelled, codec.String(), codec.String()), "labelled-orders")

	app, err := stream.NewApp(s, topo, "labeller")
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	if err := app.WaitCaughtUp(ctx); err != nil { // the table is loaded
		log.Fatal(err)
	}
	write("orders", "c1", "30")
	write("orders", "c2", "12")
	if err := app.WaitCaughtUp(ctx); err != nil {
		log.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	for rec, err := range s.ReadPartition(ctx, "labelled-orders", 0, 0) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %s\n", rec.Key, rec.Payload)
	}
	// Output:
	// c1: Ada ordered 30
	// c2: unknown customer c2 ordered 12
}

// CartEvent is the event type of the Events example's cart aggregate.
type CartEvent interface{ isCartEvent() }

// ItemAdded is schema 2 of "cart.item_added": schema 1 called Qty "n".
type ItemAdded struct {
	SKU string `json:"sku"`
	Qty int    `json:"qty"`
}

func (ItemAdded) isCartEvent() {}

// A stream of an aggregate's events, decoded through its registry: an
// event stored at schema version 1 reaches the stream upcast.
func ExampleEvents() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "cart", eventstore.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	cartEvents, err := aggregate.NewEvents[CartEvent](
		aggregate.Type[ItemAdded]("cart.item_added", aggregate.Schema(2)),
		aggregate.Upcast("cart.item_added", 1, aggregate.JSONUpcaster(2, func(m map[string]any) error {
			m["qty"] = m["n"]
			delete(m, "n")
			return nil
		})),
	)
	if err != nil {
		log.Fatal(err)
	}
	added, err := cartEvents.Encode(ItemAdded{SKU: "apple", Qty: 2})
	if err != nil {
		log.Fatal(err)
	}
	for _, ev := range []eventstore.Event{
		{Type: "cart.item_added", SchemaVersion: 1, Payload: []byte(`{"sku":"apple","n":3}`)}, // old code wrote this
		added,
	} {
		if _, err := s.Append(ctx, "cart", "cart-1", eventstore.Any, []eventstore.Event{ev}); err != nil {
			log.Fatal(err)
		}
	}

	topo := stream.NewTopology()
	cart := stream.Source(topo, "cart", codec.String(), stream.Events(cartEvents))
	items := stream.Aggregate(stream.GroupByKey(cart), "cart-items", func() int { return 0 },
		func(_ string, e CartEvent, n int) int {
			if a, ok := e.(ItemAdded); ok {
				n += a.Qty
			}
			return n
		}, codec.JSON[int]())
	app, err := stream.NewApp(s, topo, "cart-items")
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	if err := app.WaitCaughtUp(ctx); err != nil {
		log.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	n, _, err := items.Get(ctx, app, "cart-1")
	fmt.Println("items in cart-1:", n, err)
	// Output: items in cart-1: 5 <nil>
}

// An App's status: its state and lag (in records and seconds) on its
// source and repartition topics, and its committed metrics, ready to be
// served as JSON.
func ExampleApp_Status() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "clicks", eventstore.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	click := func(user string) {
		ev := eventstore.Event{Type: "clicked", Payload: []byte(`"` + user + `"`)}
		if _, err := s.Append(ctx, "clicks", user, eventstore.Any, []eventstore.Event{ev}); err != nil {
			log.Fatal(err)
		}
	}
	click("ann")
	click("bob")

	topo := stream.NewTopology()
	stream.Count(stream.GroupByKey(stream.Source(topo, "clicks", codec.String(), codec.JSON[string]())), "clicks-per-user")
	app, err := stream.NewApp(s, topo, "click-counter")
	if err != nil {
		log.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- app.Run(runCtx) }()
	if err := app.WaitCaughtUp(ctx); err != nil {
		log.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	click("cid") // not processed: lag

	st, err := app.Status(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.State, "lag", st.Lag)
	metrics, _ := json.Marshal(st.Metrics)
	fmt.Println(string(metrics))
	// Output:
	// stopped lag 1
	// {"processed_records":2,"skipped_records":0,"duplicate_records":0,"late_records":{}}
}
