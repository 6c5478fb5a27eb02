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
//     decoded back into an eventstore.Record, to a handler inside one
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
// Package broker/brokertest states the relay -> engine -> inbound contract
// as tests (every record arrives, effects once and in stream order, through
// duplicates and an engine outage); every engine runs it.
//
// The engines (Kafka through watermill-kafka, NATS JetStream through
// watermill-nats, watermill's GoChannel, and the log itself) are picked by
// name and URL in package broker/engines, which keeps the heavy Kafka and
// NATS client libraries out of this package.
package broker
