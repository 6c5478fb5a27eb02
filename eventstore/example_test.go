package eventstore_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
)

// The examples run on OpenMem: the real Pebble engine on an in-memory
// filesystem. Open(dir) gives the same store on disk.

// An event stream per aggregate: create a topic, append to a key (the
// aggregate ID) and read the key's stream back.
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

	// Both events are written atomically, and only if the stream is new.
	res, err := s.Append(ctx, "orders", "order-17", eventstore.NoStream, []eventstore.Event{
		{Type: "order.placed", Payload: []byte(`{"total":1299}`)},
		{Type: "order.paid", Payload: []byte(`{"amount":1299}`)},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("appended versions %d-%d at %s/%d offsets %d-%d\n",
		res.FirstVersion, res.LastVersion, res.Topic, res.Partition, res.FirstOffset, res.LastOffset)

	// Read the stream from its first event (version 0 or 1 means the start).
	for rec, err := range s.ReadStream(ctx, "orders", "order-17", 0) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("v%d %s %s\n", rec.Version, rec.Type, rec.Payload)
	}
	// Output:
	// appended versions 1-2 at orders/1 offsets 0-1
	// v1 order.placed {"total":1299}
	// v2 order.paid {"amount":1299}
}

// Optimistic concurrency: every append states which version it expects the
// stream to be at, and fails with a *VersionConflictError if it is not.
func ExampleStore_Append() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "accounts", eventstore.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	opened := []eventstore.Event{{Type: "account.opened", Payload: []byte(`{"owner":"ana"}`)}}
	deposited := []eventstore.Event{{Type: "money.deposited", Payload: []byte(`{"amount":100}`)}}

	// NoStream: only if the account does not exist yet.
	res, err := s.Append(ctx, "accounts", "acc-1", eventstore.NoStream, opened)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("opened at version", res.LastVersion)

	// Exact(v): only if nobody appended since we read version v.
	res, err = s.Append(ctx, "accounts", "acc-1", eventstore.Exact(res.LastVersion), deposited)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("deposited at version", res.LastVersion)

	// A writer that still believes the stream is at version 1 is refused,
	// and nothing of its append is written.
	_, err = s.Append(ctx, "accounts", "acc-1", eventstore.Exact(1), deposited)
	var conflict *eventstore.VersionConflictError
	if errors.As(err, &conflict) {
		fmt.Printf("conflict: expected %s, stream is at version %d\n", conflict.Expected, conflict.Actual)
	}
	fmt.Println("is ErrVersionConflict:", errors.Is(err, eventstore.ErrVersionConflict))

	// Opening the account twice is a conflict too.
	_, err = s.Append(ctx, "accounts", "acc-1", eventstore.NoStream, opened)
	if errors.As(err, &conflict) {
		fmt.Printf("conflict: expected %s, stream is at version %d\n", conflict.Expected, conflict.Actual)
	}

	// To retry, read the head again (in real code: reload the aggregate
	// and decide again), then append against it.
	head, err := s.HeadVersion(ctx, "accounts", "acc-1")
	if err != nil {
		log.Fatal(err)
	}
	res, err = s.Append(ctx, "accounts", "acc-1", eventstore.Exact(head), deposited)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("retried deposit at version", res.LastVersion)

	// StreamExists and Any skip the version check (Any even the existence
	// check): for events that do not depend on the stream's state.
	res, err = s.Append(ctx, "accounts", "acc-1", eventstore.Any, []eventstore.Event{{Type: "account.audited", Payload: []byte(`{}`)}})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("audited at version", res.LastVersion)
	_, err = s.Append(ctx, "accounts", "acc-2", eventstore.StreamExists, deposited)
	fmt.Println(err)
	// Output:
	// opened at version 1
	// deposited at version 2
	// conflict: expected version 1, stream is at version 2
	// is ErrVersionConflict: true
	// conflict: expected no stream, stream is at version 2
	// retried deposit at version 3
	// audited at version 4
	// eventstore: version conflict on accounts/"acc-2": expected stream exists, stream is at version 0
}

// A partition holds the records of many keys, in the order they were
// appended. ReadPartition reads it by offset, as a Kafka consumer would.
func ExampleStore_ReadPartition() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "carts", eventstore.TopicConfig{Partitions: 2}); err != nil {
		log.Fatal(err)
	}
	// Each key goes to the partition Kafka's default partitioner picks.
	for _, key := range []string{"cart-1", "cart-2", "cart-3", "cart-1", "cart-5", "cart-3"} {
		_, err := s.Append(ctx, "carts", key, eventstore.Any, []eventstore.Event{{Type: "item.added", Payload: []byte(key)}})
		if err != nil {
			log.Fatal(err)
		}
	}
	for _, key := range []string{"cart-1", "cart-2", "cart-3", "cart-5"} {
		p, err := s.PartitionFor("carts", key)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s -> partition %d\n", key, p)
	}

	fmt.Println("partition 0 from offset 0:")
	for rec, err := range s.ReadPartition(ctx, "carts", 0, 0) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("  offset %d: %s v%d\n", rec.Offset, rec.Key, rec.Version)
	}

	// Resume from a saved position: the offset after the last one handled.
	fmt.Println("partition 1 from offset 2:")
	for rec, err := range s.ReadPartition(ctx, "carts", 1, 2) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("  offset %d: %s v%d\n", rec.Offset, rec.Key, rec.Version)
	}

	info, err := s.DescribeTopic(ctx, "carts")
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range info.Partitions {
		fmt.Printf("partition %d: offsets [%d, %d), %d records\n", p.Partition, p.StartOffset, p.EndOffset, p.Records)
	}
	// Output:
	// cart-1 -> partition 1
	// cart-2 -> partition 0
	// cart-3 -> partition 1
	// cart-5 -> partition 0
	// partition 0 from offset 0:
	//   offset 0: cart-2 v1
	//   offset 1: cart-5 v1
	// partition 1 from offset 2:
	//   offset 2: cart-1 v2
	//   offset 3: cart-3 v2
	// partition 0: offsets [0, 2), 2 records
	// partition 1: offsets [0, 4), 4 records
}

// Subscribe catches up on what is in the partition, then waits for new
// records and yields each as soon as its append is acknowledged. Cancel the
// context to stop it.
func ExampleStore_Subscribe() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "sensors", eventstore.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	for _, reading := range []string{"20.5", "20.7"} {
		if _, err := s.Append(ctx, "sensors", "kitchen", eventstore.Any,
			[]eventstore.Event{{Type: "temperature.read", Payload: []byte(reading)}}); err != nil {
			log.Fatal(err)
		}
	}

	// Another part of the program appends once the subscriber has caught up.
	caughtUp := make(chan struct{})
	go func() {
		<-caughtUp
		if _, err := s.Append(ctx, "sensors", "kitchen", eventstore.Any,
			[]eventstore.Event{{Type: "temperature.read", Payload: []byte("21.0")}}); err != nil {
			log.Fatal(err)
		}
	}()

	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	for rec, err := range s.Subscribe(subCtx, "sensors", 0, 0) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("offset %d: %s\n", rec.Offset, rec.Payload)
		switch rec.Offset {
		case 1: // the last record that was there when we subscribed
			close(caughtUp)
		case 2: // the live one
			cancel() // the loop ends, without an error
		}
	}
	fmt.Println("subscription stopped")
	// Output:
	// offset 0: 20.5
	// offset 1: 20.7
	// offset 2: 21.0
	// subscription stopped
}

// A consumer group spreads a topic's partitions over its members and keeps
// each partition's committed offset in the store, so that processing resumes
// where it stopped.
func ExampleStore_JoinGroup() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "payments", eventstore.TopicConfig{Partitions: 2}); err != nil {
		log.Fatal(err)
	}
	for _, key := range []string{"pay-1", "pay-2", "pay-3", "pay-1"} {
		if _, err := s.Append(ctx, "payments", key, eventstore.Any,
			[]eventstore.Event{{Type: "payment.captured", Payload: []byte(`{}`)}}); err != nil {
			log.Fatal(err)
		}
	}

	// Member IDs are random unless set; a fixed one keeps logs readable.
	c, err := s.JoinGroup(ctx, "billing", []string{"payments"}, eventstore.WithMemberID("billing-1"))
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	fmt.Println("assigned:", c.Assignment())

	// Records runs until its context ends or the consumer closes; this
	// example stops once it has handled the four records.
	handled := 0
	for rec, err := range c.Records(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s/%d@%d %s v%d\n", rec.Topic, rec.Partition, rec.Offset, rec.Key, rec.Version)
		// Commit after handling: a restart resumes after this record.
		if err := c.Commit(ctx, rec); err != nil {
			log.Fatal(err)
		}
		if handled++; handled == 4 {
			break
		}
	}

	info, err := s.DescribeGroup(ctx, "billing")
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range info.Partitions {
		fmt.Printf("%s: member %s, committed %d, end %d, lag %d\n", p.TopicPartition, p.Member, p.Committed, p.End, p.Lag)
	}
	// Output:
	// assigned: [payments/0 payments/1]
	// payments/0@0 pay-1 v1
	// payments/0@1 pay-3 v1
	// payments/0@2 pay-1 v2
	// payments/1@0 pay-2 v1
	// payments/0: member billing-1, committed 3, end 3, lag 0
	// payments/1: member billing-1, committed 1, end 1, lag 0
}

// A compacted topic keeps only the newest record of each key, like a table:
// the right place for snapshots and changelogs. A tombstone (nil payload)
// deletes its key, and is itself removed once its grace period has passed.
func ExampleStore_Cleanup() {
	ctx := context.Background()
	// A clock the example moves by hand, instead of waiting; background
	// cleanup is off so that only the explicit Cleanup calls run.
	clk := clock.NewManual(time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC))
	s, err := eventstore.OpenMem(
		eventstore.WithClock(clk),
		eventstore.WithCleanupInterval(0),
	)
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	err = s.CreateTopic(ctx, "profiles", eventstore.TopicConfig{
		Partitions:     1,
		Cleanup:        eventstore.Compact,
		TombstoneGrace: time.Hour,
	})
	if err != nil {
		log.Fatal(err)
	}
	appendOne := func(key string, payload []byte) {
		ev := eventstore.Event{Type: "profile.set", Payload: payload}
		if payload == nil {
			ev.Type = "profile.deleted" // a tombstone
		}
		if _, err := s.Append(ctx, "profiles", key, eventstore.Any, []eventstore.Event{ev}); err != nil {
			log.Fatal(err)
		}
	}
	appendOne("ana", []byte("Ana"))
	appendOne("bob", []byte("Bob"))
	appendOne("ana", []byte("Ana Lima"))
	appendOne("bob", nil)

	show := func() {
		for rec, err := range s.ReadPartition(ctx, "profiles", 0, 0) {
			if err != nil {
				log.Fatal(err)
			}
			value := string(rec.Payload)
			if rec.IsTombstone() {
				value = "<tombstone>"
			}
			fmt.Printf("  offset %d: %s v%d = %s\n", rec.Offset, rec.Key, rec.Version, value)
		}
	}
	cleanup := func() {
		st, err := s.Cleanup(ctx)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("cleanup removed %d records (%d tombstones)\n", st.Records, st.Tombstones)
	}

	cleanup()
	show()

	// Two hours later the tombstone is past its grace: bob is gone.
	clk.Advance(2 * time.Hour)
	cleanup()
	show()
	// Output:
	// cleanup removed 2 records (0 tombstones)
	//   offset 2: ana v2 = Ana Lima
	//   offset 3: bob v2 = <tombstone>
	// cleanup removed 1 records (1 tombstones)
	//   offset 2: ana v2 = Ana Lima
}

// A batching consumer polls what is there, applies it to a read model in
// the state space, and commits the model and the group's offsets in one
// Update: after a crash the model and the offsets agree, so no record is
// applied twice or skipped.
func ExampleStore_Update() {
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 1}); err != nil {
		log.Fatal(err)
	}
	for _, key := range []string{"o-1", "o-2", "o-1"} {
		if _, err := s.Append(ctx, "orders", key, eventstore.Any,
			[]eventstore.Event{{Type: "order.changed", Payload: []byte(`{}`)}}); err != nil {
			log.Fatal(err)
		}
	}
	c, err := s.JoinGroup(ctx, "order-counts", []string{"orders"})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	recs, err := c.Poll(ctx, 100) // fewer than 100: caught up
	if err != nil {
		log.Fatal(err)
	}
	err = s.Update(ctx, func(tx eventstore.Txn) error {
		next := map[eventstore.TopicPartition]int64{}
		for _, rec := range recs {
			key := []byte("counts/" + rec.Key)
			v, _, err := tx.Get(key) // sees this Txn's own writes
			if err != nil {
				return err
			}
			if err := tx.Set(key, append(v, '+')); err != nil {
				return err
			}
			next[eventstore.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}] = rec.Offset + 1
		}
		return tx.CommitOffsets(c, next)
	})
	if err != nil {
		log.Fatal(err)
	}
	prefix := []byte("counts/")
	for kv, err := range s.Scan(ctx, prefix, eventstore.PrefixEnd(prefix), false) {
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s %s\n", kv.Key, kv.Value)
	}
	off, _, _ := s.CommittedOffset(ctx, "order-counts", "orders", 0)
	fmt.Println("committed:", off)
	// Output:
	// counts/o-1 ++
	// counts/o-2 +
	// committed: 3
}

// A Position prints and parses as "topic/partition@offset": the form an API
// takes as a query's minimum position.
func ExampleParsePosition() {
	p, err := eventstore.ParsePosition("orders/3@1024")
	fmt.Println(p.Topic, p.Partition, p.Offset, err)
	_, err = eventstore.ParsePosition("orders@12")
	fmt.Println(err)
	// Output:
	// orders 3 1024 <nil>
	// muninn: invalid argument: position: "orders@12" lacks the '/' before its partition (want topic/partition@offset)
}
