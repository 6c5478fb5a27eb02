// Package projection turns the event log into read models that answer
// queries: the read side of CQRS.
//
// A Projection consumes one or more topics and applies each record with a
// Handler (a HandlerFunc on raw records, or a Router of typed handlers, one
// per event type). A Router takes an aggregate's event types from its
// registry (On): their names come from it, and records are decoded through
// it, upcast from old schema versions as the aggregate reads them, Protobuf
// events included; OnCodec routes a type of no registry with an explicit
// codec.
//
// The runner is a consume.Loop (package consume, the framework's one
// exactly-once consume loop) on the consumer group of the current
// generation: records are polled in batches, and each batch's effects on
// the read model and the group's offsets are written in one durable
// Update, so a crash never applies a record twice nor skips one, and
// catching up costs one fsync per batch. A projection is the loop's
// handler plus its own state: each batch is a Tx, a write-back cache of
// the batch's table writes that the batch's Flush stages.
//
// The read model is made of typed tables (Table[K, V], with a key codec,
// whose order keys sort in, and a value codec.Codec) and secondary indexes
// (Index), maintained in the same batch as the rows. Queries (Get, Scan,
// ScanPrefix, ScanRange, Index.Lookup) return pages with an opaque token to
// continue from. A query can wait until the projection has applied a given
// log position (AtLeast, WaitFor): read your writes. A position is an
// eventstore.Position, such as what command.Result.Position or
// eventstore.AppendResult.Position return (PositionOf), and it travels as
// text ("orders/3@1041", eventstore.ParsePosition).
//
// Rebuild applies the whole log again into a new generation of the read
// model, with a loop of its own on the other generation's group, while
// queries keep reading the current one; it reports its progress, and swaps
// the new generation in atomically once it has caught up.
//
// A handler that fails is retried with back-off (WithRetries, WithBackoff,
// on the projection's clock.Clock, WithClock); then the ErrorPolicy of the
// loop applies (WithErrorPolicy): consume.Stop (Run returns the
// *consume.HandlerError), consume.Park (the record goes to a dead-letter
// topic, exactly once, and goes on: Parked, Replay and Discard manage the
// parked records of the current generation) or consume.DeadLetter. A
// handler error wrapped with consume.Permanent, or a panic, is not retried.
// Status reports the loop's state, position and lag per partition (in
// records and seconds), the generation and a rebuild's progress, as a
// value that marshals to readable JSON.
//
// Handlers run inside the store's serialized Update: they must be quick,
// must not call the store, and must be deterministic, since a batch in
// which a record fails is applied again without it.
//
// # Topics that do not exist yet
//
// New does no I/O, and a projection's topics need not exist when it is
// created or when Run starts: a read model may start before the aggregate
// that owns its topic (command.Register creates it) or the stream app
// that writes it. Run (and Rebuild) waits for every topic to exist before
// it starts its loop, and never creates one: only a topic's owner knows
// its partition count, which can never change, and a projection guessing
// it would fix the aggregate's partitioning for good. The store gives no
// notice of new topics, so Run looks again after a back-off on the
// projection's clock (10 ms, doubling, at most 1 s); Status lists the
// topics it waits for as MissingTopics, and WaitFor and queries with
// AtLeast wait meanwhile as for any position not reached.
//
// # State
//
// Everything a projection keeps in the state space is under the keyspace
// key (keyspace.Projection, <name>):
//
//	("gen")                                            the current generation, 8 bytes big-endian (none: 1)
//	("building")                                       the generation a rebuild is writing
//	("g", <gen>, "t", <table>, raw <key>)              a table's row; the raw tail is the table's KeyCodec encoding
//	("g", <gen>, "i", <table>, <index>, <index key>, raw <row key>)
//	                                                   an index entry: the index key as a byte-string
//	                                                   element (AppendOrdered), the row's key as a raw tail
//	("g", <gen>, "parked", <topic>, <partition>, <offset>)
//	                                                   the generation's loop's park marks (consume.WithStatePrefix)
//
// so that a generation is one key range, dropped at once by the swap or by
// an abandoned rebuild. The consumer group of generation g is
// "projection.<name>.<g mod 2>": the two alternate, so that a rebuild's
// group never is the live one. A name must leave room for them within
// eventstore.MaxNameLen.
package projection
