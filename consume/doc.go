// Package consume is Muninn's one exactly-once consume loop. Projections,
// sagas, stream applications and the broker's inbound consumer are handlers
// on it, and users build their own exactly-once consumers on it the same way.
//
// A Loop polls a Source (by default a consumer group of the store, see
// New), hands each polled batch of records to a Handler inside one
// Store.Update, and commits the batch's effects together with the source's
// progress (the group's offsets) in that same durable batch: a crash never
// applies a record twice nor skips one.
//
// When the handler fails on a record, the loop applies the records before
// it on their own, then retries the record alone with back-off (WithRetries,
// WithBackoff, on the loop's clock.Clock), and when it keeps failing applies
// the ErrorPolicy: Stop (Run returns a *HandlerError), Park (the record goes
// to a dead-letter topic in the store, exactly once, and can be listed,
// replayed or discarded), DeadLetter (a function takes it elsewhere, such as
// a watermill publisher) or HandOff (the handler's batch takes the failure
// itself, as a saga fails the record's instance). A handler error wrapped
// with Permanent, and a panic in a handler, are not retried.
//
// A Loop reports its Status (state, position and lag per partition, in
// records and as the age of the oldest unprocessed event, counters, the
// last error) as a value that marshals to readable JSON, and WaitFor waits,
// woken by commits, until the loop has applied given positions.
//
// The simplest consumer is a function:
//
//	loop, err := consume.New(store, "order-totals", []string{"orders"},
//		consume.Func(func(ctx context.Context, tx eventstore.Txn, rec eventstore.Record) error {
//			return tx.Set(keyspace.New(keyspace.App, "order-totals").String(rec.Key), rec.Payload)
//		}))
//	go loop.Run(ctx)
//
// A Handler that keeps state across a batch (a write-back cache, counters)
// implements Begin, which opens a Batch for each Update.
package consume
