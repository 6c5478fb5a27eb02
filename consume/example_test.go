package consume_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"log"

	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
)

// An exactly-once consumer of your own: a total per customer, kept in the
// state space under the App owner. Each batch of records and the group's
// offsets commit together, so a crash neither loses nor doubles an amount.
func Example() {
	ctx := context.Background()
	store, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	_ = store.CreateTopic(ctx, "payments", eventstore.TopicConfig{Partitions: 2})
	var last eventstore.Position
	for i, customer := range []string{"ada", "bob", "ada"} {
		res, err := store.Append(ctx, "payments", fmt.Sprintf("payment-%d", i), eventstore.NoStream,
			[]eventstore.Event{{Type: "payment.made", Payload: []byte(customer)}})
		if err != nil {
			log.Fatal(err)
		}
		last = res.Position()
	}

	totals := keyspace.New(keyspace.App, "payments-per-customer")
	loop, err := consume.New(store, "payments-per-customer", []string{"payments"},
		consume.Func(func(ctx context.Context, tx eventstore.Txn, rec eventstore.Record) error {
			k := totals.String(string(rec.Payload))
			v, _, err := tx.Get(k)
			if err != nil {
				return err
			}
			var n uint64
			if len(v) == 8 {
				n = binary.BigEndian.Uint64(v)
			}
			return tx.Set(k, binary.BigEndian.AppendUint64(nil, n+1))
		}),
		consume.WithErrorPolicy(consume.Park("payments.dlq")))
	if err != nil {
		log.Fatal(err)
	}
	if err := loop.CatchUp(ctx); err != nil { // or go loop.Run(ctx)
		log.Fatal(err)
	}
	_ = loop.WaitFor(ctx, last)

	lo, hi := totals.Range()
	for kv, err := range store.Scan(ctx, lo, hi, false) {
		if err != nil {
			log.Fatal(err)
		}
		r, _ := keyspace.Read(kv.Key, totals)
		customer, _ := r.String()
		fmt.Println(customer, binary.BigEndian.Uint64(kv.Value))
	}
	st, _ := loop.Status(ctx)
	fmt.Println(st.State, st.Counters.Applied, "applied, lag", st.Lag)
	// Output:
	// ada 2
	// bob 1
	// live 3 applied, lag 0
}
