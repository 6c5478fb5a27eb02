package broker_test

import (
	"context"
	"fmt"

	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/eventstore"
)

// The relay publishes a store's records to a watermill engine (here the
// in-process GoChannel); an Inbound consumer of another store applies them
// once each, writing its read model in the same transaction as its
// deduplication marks.
func Example() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	orders, _ := eventstore.OpenMem()
	defer orders.Close()
	shipping, _ := eventstore.OpenMem()
	defer shipping.Close()
	orders.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 2})

	// BlockPublishUntilSubscriberAck: a Publish returns once the inbound
	// consumer has Acked the message, which it does once the message is
	// applied (or recognised as a duplicate) and counted.
	engine := gochannel.NewGoChannel(gochannel.Config{Persistent: true, BlockPublishUntilSubscriberAck: true}, watermill.NopLogger{})
	defer engine.Close()

	relay, err := broker.NewRelay(orders, engine, broker.RelayConfig{Group: "orders-relay", Topics: []string{"orders"}})
	if err != nil {
		panic(err)
	}
	done := make(chan string)
	in, err := broker.NewInbound(shipping, engine, func(ctx context.Context, tx eventstore.Txn, rec eventstore.Record) error {
		if err := tx.Set([]byte("to-ship/"+rec.Key), rec.Payload); err != nil {
			return err
		}
		done <- fmt.Sprintf("%s v%d %s %s", rec.Key, rec.Version, rec.Type, rec.Payload)
		return nil
	}, broker.InboundConfig{Name: "shipping", Topics: []string{"orders"}})
	if err != nil {
		panic(err)
	}
	go relay.Run(ctx)
	go in.Run(ctx)

	orders.Append(ctx, "orders", "order-1", eventstore.NoStream, []eventstore.Event{{Type: "order.placed", Payload: []byte(`{"sku":"raven"}`)}})
	fmt.Println(<-done)

	// The same message delivered again is recognised and not applied; the
	// next one is. Publish returns once the copy is Acked, so it is
	// counted by then.
	rec, _ := firstRecord(ctx, orders)
	engine.Publish("orders", broker.EncodeRecord(rec))
	orders.Append(ctx, "orders", "order-1", eventstore.Exact(1), []eventstore.Event{{Type: "order.paid", Payload: []byte(`{}`)}})
	fmt.Println(<-done)
	st, _ := in.Status(ctx)
	fmt.Println("duplicates:", st.Duplicates)
	// Output:
	// order-1 v1 order.placed {"sku":"raven"}
	// order-1 v2 order.paid {}
	// duplicates: 1
}

func firstRecord(ctx context.Context, s eventstore.Store) (eventstore.Record, error) {
	for rec, err := range s.ReadStream(ctx, "orders", "order-1", 0) {
		return rec, err
	}
	return eventstore.Record{}, nil
}

// The log as a watermill Pub/Sub: a durable, embedded backend with
// consumer groups for any watermill user.
func ExampleSubscriber() {
	store, _ := eventstore.OpenMem()
	defer store.Close()
	pub, _ := broker.NewPublisher(store, broker.PublisherConfig{})
	sub, _ := broker.NewSubscriber(store, broker.SubscriberConfig{ConsumerGroup: "mailer"})
	defer sub.Close()

	msg := message.NewMessage(watermill.NewUUID(), []byte("hello"))
	msg.Metadata.Set(broker.MetaKey, "user-7")
	if err := pub.Publish("greetings", msg); err != nil {
		panic(err)
	}
	msgs, _ := sub.Subscribe(context.Background(), "greetings")
	got := <-msgs
	fmt.Println(string(got.Payload), got.Metadata.Get(broker.MetaKey), got.Metadata.Get(broker.MetaStreamVersion), got.UUID == msg.UUID)
	got.Ack()
	// Output: hello user-7 1 true
}
