// Package stream is stream processing in the manner of Kafka Streams, on the
// event store's log and state space.
//
// A Topology is built with typed, package-level functions (Go methods cannot
// have type parameters): Source reads a topic as a Stream[K, V]; Filter,
// Map, MapValues, FlatMap, Branch, Merge and Peek are stateless; SelectKey
// and GroupBy re-key; GroupByKey with Count, Reduce or Aggregate keeps state
// per key in a Table; WindowedBy with Tumbling or Hopping windows and
// WindowedCount, WindowedReduce or WindowedAggregate keeps state per key and
// event-time window; ToTopic writes a stream to a topic, ToTable turns it
// into a table, SourceTable reads a topic as a table (stream/table duality),
// and Join and LeftJoin enrich a stream with a table's current values.
// Topology.Describe prints the graph.
//
// Keys and values are encoded with codec.Codec values (package codec):
// codec.String, codec.Int64, codec.JSON (the default where a step changes
// a type without naming a codec; see WithCodecs), codec.Proto and others.
// Events is the value codec of an aggregate's events: it decodes each
// record through the aggregate's registry, by its event type and schema
// version, so a stream sees events stored long ago upcast to their current
// schema, as the aggregate, projections and sagas do.
//
// An App runs a topology as the consumer group named by its application ID,
// on a consume.Loop. Each polled batch is processed against a write-back
// cache of the state it touches; then the batch's output is written to its
// topics, its state changes are appended to the stores' compacted changelog
// topics, and the state, the counters and the group's offsets commit in one
// Store.Update. App.Status reports the loop's state, positions and lag with
// the App's Metrics; App.WaitCaughtUp waits for the group to have applied
// everything.
// State is exactly once with respect to the input; records written to sink
// topics are at least once, with event IDs derived from the input position so
// consumers can deduplicate. A stateful step after a re-key reads through a
// repartition topic, and drops records that a crash made it write twice, so
// its state stays exactly once too.
//
// Windows use event time (the record timestamp, or WithTimestamp). Stream
// time is the largest event time seen on a partition; a record for a window
// that closed (end + grace <= stream time) is late, counted and dropped.
// Windows are removed once stream time passes their retention.
//
// Internal topics are named "<appID>-<name>-repartition" and
// "<appID>-<store>-changelog"; the application ID and the names of stores
// and repartitions are checked with eventstore.ValidateName, and the topic
// names derived from them must fit eventstore.MaxNameLen too.
//
// # State
//
// An App keeps its state in the state space under the keyspace key
// (keyspace.Stream, appID):
//
//	("store", store, "k", raw key)                  key-value entry: the value
//	("store", store, "w", key, start)               window: partition (4 bytes) + aggregate
//	("store", store, "x", partition, start, key)    index of windows by partition and start, for expiry
//	("time", store, partition)                      stream time of a window store's partition: a time element
//	("dedup", topic, partition, upstream topic, upstream partition)
//	                                                last upstream position seen in a repartition partition
//	("changelog", store, partition)                 changelog end offset matching the state
//	("init", store)                                 the store exists (else it is restored from its changelog)
//	("metric", name), ("metric", "late", store)     counters (8-byte big-endian values)
//
// where store, topic and the names are string elements, partitions unsigned
// integers, start a window's start as a time element, key a record key as
// the store's key codec encodes it (a string element, or the raw tail of a
// key-value entry, so that entries sort by their encoded keys). A restore
// clears ("store", store).
//
// The keys of a changelog topic's records are the entries' encoded keys for
// a key-value store, and for a window store the windows' keys as
// WindowedCodec writes them (the encoded key, the window's start and end),
// so that a reader of the changelog decodes them with the store's key
// codec or WindowedCodec of it; the values are the entries' values.
//
// Differences from Kafka Streams worth knowing:
//   - Like Kafka Streams, an App processes the records it has polled oldest
//     event time first across partitions, and before each batch it polls
//     until every partition with records to read has some in hand. It holds
//     at most two batches of records that way: when one partition of a
//     backlog is much denser than another, event time can still run ahead on
//     the sparse one by up to what those two batches span, and a grace
//     period shorter than that drops records as late. (Kafka Streams pauses
//     the partitions that are ahead; the event store's consumer has no
//     pause.)
//   - Windowed and aggregated results are emitted on every update; there is
//     no suppression of intermediate results.
//   - Tables live in the process's state space, so a join looks a key up
//     whatever partition the stream record came from: no co-partitioning is
//     needed, and a table is in effect global.
//   - Repartition topics keep their records (cleanup Retain); nothing purges
//     what the App has committed.
package stream
