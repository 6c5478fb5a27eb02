package postgres_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/eventstore/postgres"
)

// Open a store on a PostgreSQL server, append to a stream with an expected
// version and read it back. Every replica of a service opens the same URL
// and schema; they share the log, the state space and consumer groups.
// (Not run as a test: it needs a server.)
func ExampleOpen() {
	ctx := context.Background()
	s, err := postgres.Open(ctx, os.Getenv("MUNINN_PG_URL"),
		postgres.WithSchema("orders_service"),
		postgres.WithLeaseTimeout(10*time.Second))
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()

	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 8}); err != nil {
		log.Fatal(err)
	}
	res, err := s.Append(ctx, "orders", "order-1", eventstore.NoStream, []eventstore.Event{
		{Type: "order.placed", Payload: []byte(`{"total":12}`)},
	})
	if err != nil {
		log.Fatal(err) // a *eventstore.VersionConflictError if another replica won
	}
	fmt.Println("appended at", res.Position())
	for rec, err := range s.ReadStream(ctx, "orders", "order-1", 0) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(rec.Version, rec.Type)
	}

	// A consumer group whose members may be in other processes.
	c, err := s.JoinGroup(ctx, "billing", []string{"orders"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	recs, err := c.Poll(ctx, 100)
	if err != nil {
		log.Fatal(err)
	}
	err = s.Update(ctx, func(tx eventstore.Txn) error {
		// The read model and the group's offsets commit in one transaction.
		if err := tx.Set([]byte("billing/count"), fmt.Append(nil, len(recs))); err != nil {
			return err
		}
		offsets := map[eventstore.TopicPartition]int64{}
		for _, r := range recs {
			offsets[eventstore.TopicPartition{Topic: r.Topic, Partition: r.Partition}] = r.Offset + 1
		}
		return tx.CommitOffsets(c, offsets)
	})
	if err != nil {
		log.Fatal(err) // wraps eventstore.ErrNotAssigned if a rebalance took a partition
	}
}
