// Package broker carries Muninn's log beyond one machine through watermill
// (github.com/ThreeDotsLabs/watermill), the seam to distributed engines.
//
// Three parts:
//
//   - Relay (the outbox relay) tails topics of an eventstore.Store as a
//     consumer group and publishes every record to a watermill
//     message.Publisher: the message UUID is the event ID, the record's key
//     (aggregate ID) travels in the metadata so that an engine partitions by
//     it, and so do the event type, schema version, stream version,
//     correlation and causation IDs and the headers (see the Meta...
//     constants). Delivery is at least once: offsets are committed only after
//     the engine accepted the records; while it refuses them the relay backs
//     off and retries the same records, never skipping or reordering one.
//   - Inbound consumes a watermill message.Subscriber and hands each message,
//     decoded back into an eventstore.Record, to a handler inside a
//     Store.Update that also writes a deduplication mark for the event ID.
//     Effects the handler writes through the Txn therefore happen exactly
//     once although delivery is at least once; effects outside the Txn (a
//     network call, an email) are at least once.
//   - Publisher and Subscriber make the log itself a watermill Pub/Sub: any
//     watermill user gets a durable, embedded backend with consumer groups.
//     They pass watermill's conformance suite (pubsub/tests).
//
// Delivery guarantees, in short: the relay publishes at least once and
// keeps each key's order (it retries the same records, never the next ones);
// Inbound applies Txn effects exactly once within its deduplication window
// (InboundConfig.Retention, default 7 days) and other effects at least once;
// the log's Subscriber delivers at least once, in order per key.
//
// Both the relay and the inbound consumer run on package consume's loop:
// the relay is a consume.Loop on its consumer group whose handler publishes
// each polled batch before the loop commits the offsets, and an inbound
// consumer is a consume.Loop per engine topic, on a source that reads the
// topic's subscription and Acks its messages once their Update is durable.
// So they share the loop's options (BatchSize, Retries, Backoff, Clock),
// its error policies (a dead-letter publisher is consume.DeadLetter,
// none is consume.Stop: Run returns a *consume.HandlerError), and its
// Status, which marshals to readable JSON. Every wait, retries and purges
// alike, is on the configured clock.Clock.
//
// # State-space layout
//
// An inbound consumer keeps its deduplication marks in the state space
// under the keyspace tuple (keyspace.Broker, Name):
//
//	("broker", Name, "id", <event ID, 16 bytes>)              -> the mark's time (8-byte big-endian Unix ns)
//	("broker", Name, "t", <mark time>, <event ID, 16 bytes>)  -> empty: the time index Purge walks
//
// The relay keeps nothing there: its position is its group's offsets.
//
// Package broker/brokertest states the relay -> engine -> inbound contract
// as tests (every record arrives, effects once and in stream order, through
// duplicates and an engine outage); every engine runs it.
//
// The engines (Kafka through watermill-kafka, NATS JetStream through
// watermill-nats, watermill's GoChannel, and the log itself) are picked by
// name and URL in package broker/engines, which keeps the heavy Kafka and
// NATS client libraries out of this package.
package broker
