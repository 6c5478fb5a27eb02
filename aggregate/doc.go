// Package aggregate is Muninn's write model: an aggregate is a decider,
// three plain functions typed with Go generics over its state S, commands C
// and events E:
//
//	Initial() S
//	Decide(S, C) ([]E, error)
//	Evolve(S, E) S
//
// There is no reflection in user code, no global registry, no base struct to
// embed. New puts a Decider together with its event registry (NewEvents),
// which gives every event Go type a stable name ("order.placed") and a
// schema version, and a Codec (JSON by default, Protobuf for proto
// messages). Old schema versions are upcast on read by Upcasters registered
// per (type, from-version); they chain.
//
// A Repository loads an aggregate from the store, from its newest snapshot
// and the events after it, and saves new events with the expected version
// (optimistic concurrency). Snapshots live in a compacted topic keyed by
// aggregate ID (<topic>.snapshots); they are taken every N events
// (WithSnapshots) and carry the stream version and a snapshot schema
// version: one of another schema version, or newer than the stream, is
// ignored and the stream replayed. Snapshots are written after the append,
// without an fsync of their own: a snapshot lost in a crash only costs a
// longer replay. WithCache keeps recently used states in memory, so that a
// busy aggregate is loaded from the events after its cached version only.
//
// Package command dispatches commands to aggregates; package aggregatetest
// tests deciders as given-when-then scenarios.
package aggregate
