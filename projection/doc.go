// Package projection turns the event log into read models that answer
// queries: the read side of CQRS.
//
// A Projection consumes one or more topics as a consumer group and applies
// each record with a Handler (a HandlerFunc on raw records, or a Router of
// typed handlers, one per event type). A Router takes an aggregate's event
// types from its registry (On): their names come from it, and records are
// decoded through it, upcast from old schema versions as the aggregate
// reads them, Protobuf events included; OnCodec routes a type of no
// registry with an explicit codec. Records are polled in batches; each
// batch's effects on the read model and the group's offsets are written in
// one Pebble batch (eventstore.Store.Update), so a crash never applies a
// record twice nor skips one, and catching up costs one fsync per batch.
//
// The read model is made of typed tables (Table[K, V], with a key codec,
// whose order keys sort in, and a value codec.Codec) and secondary indexes
// (Index), maintained in the same batch as the rows. Queries (Get, Scan,
// ScanPrefix, ScanRange, Index.Lookup) return pages with an opaque token to
// continue from. A query can wait until the projection has applied a given
// log position, such as the one an append returned (AtLeast, WaitFor):
// read your own writes.
//
// Rebuild applies the whole log again into a new generation of the read
// model while queries keep reading the current one, reports its progress,
// and swaps the new generation in atomically once it has caught up.
//
// A handler that fails is retried with backoff; then the projection either
// stops with the error (Stop) or parks the record in a dead-letter topic
// and goes on (Park). Parked records can be listed (Parked) and replayed
// (Replay). Parking is exactly-once too: the dead letter and a marker in
// the state space are written in one append, keyed by the record's
// position with NoStream, and a record found parked at a partition's
// checkpoint after a crash is skipped, never applied. A replay applies the
// record and marks it replayed in one Update. Status reports the state,
// and the position and lag per partition.
//
// Handlers run inside the store's serialized Update: they must be quick,
// must not call the store, and must be deterministic, since a batch in
// which a record fails is applied again without it.
//
// Everything lives in the store's state space under
// "projection/<name>/"; the projection's consumer groups are
// "projection.<name>.0" and "projection.<name>.1".
package projection
