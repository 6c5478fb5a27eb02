// Package engines opens a watermill publisher and subscriber for an engine
// picked by name and URL: "gochannel" (watermill's in-process GoChannel),
// "kafka" (watermill-kafka over sarama), "nats" (NATS JetStream through
// watermill-nats) or "muninn" (the embedded log, package broker).
//
// It is the one package of Muninn that links the Kafka and NATS client
// libraries; users of the relay with GoChannel or the embedded log import
// package broker alone.
//
// Every engine is configured for the relay and Inbound of package broker:
// Kafka messages are keyed (partitioned) by the record's key, JetStream
// messages carry the event ID as their deduplication ID (Nats-Msg-Id),
// consumer groups start from the oldest message they have not committed,
// and clients reconnect by themselves after an outage.
package engines
