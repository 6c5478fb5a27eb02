// Package command is Muninn's command bus. Register an aggregate
// (package aggregate) with a Bus and dispatch commands to it:
//
//	orders, err := command.Register(ctx, bus, orderAggregate)
//	res, err := orders.Dispatch(ctx, "order-1", PlaceOrder{...}, command.WithCommandID(id))
//
// For each command the bus loads the aggregate (snapshot, then the events
// after it), lets it decide, and appends the events with the expected
// version; on a version conflict it reloads, decides again and retries, with
// bounded, jittered exponential backoff (RetryPolicy: Retries and a
// clock.Backoff, waited on the bus's clock.Clock, WithClock). Commands to one
// aggregate run one at a time in the process (WithSerializedAggregates), so
// conflicts come only from writers outside the bus. The Result carries
// the aggregate ID, the new version, the event IDs and the log position.
//
// Idempotency: a dispatch with a command ID (WithCommandID) records its
// result in the store's state space in the same atomic batch as its events,
// so a command ID seen again within the window (WithIdempotencyWindow,
// default 24 h) returns the first result without a second append, across
// restarts too. Concurrent duplicates in one process wait for each other. An in-memory Bloom filter of the IDs
// within the window (loaded in the background when the bus starts, from the
// records' time index) answers for a new command ID without reading the store;
// only its rare false positives, and lookups before it has loaded, read the
// record. The filter is trusted only on a store no other process writes
// (eventstore.PebbleStore.Exclusive). On a store that several replicas
// share (the PostgreSQL backend) every command ID is read from the store,
// and a command whose append conflicts, or that its aggregate refuses or
// leaves unchanged, looks again before it answers: a duplicate sent to two
// replicas at once, or retried at one after the other applied it, returns
// the first result and is applied once.
// Run purges expired records, every purge interval on the bus's clock;
// expired ones are never returned.
//
// Lineage: every event a command produces carries the correlation ID of the
// context (WithCorrelationID; the command ID if there is none) and the
// command ID as its causation ID.
//
// Errors are *Error values with a Kind (KindInvalidArgument,
// KindFailedPrecondition, KindNotFound, KindAborted, ...) that a transport
// maps to status codes; KindOf classifies any error. Middleware wraps
// dispatch: Logging (log/slog), Metrics, Authorize.
//
// # State-space layout
//
// The idempotency records of a bus live under the keyspace tuple
// (keyspace.Command, bus name):
//
//	("command", bus, "c", <command ID>)                -> the result
//	("command", bus, "t", <applied at>, <command ID>)  -> empty: the time index
//
// The time is a keyspace time element, so the index sorts by time (negative
// Unix times first) the way every time in the state space does.
package command
