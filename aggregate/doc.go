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
// schema version, and a payload format (codec.Format: JSON by default,
// Protobuf for proto messages). Old schema versions are upcast on read by
// Upcasters registered per (type, from-version); they chain, and may
// rename a type.
//
// The registry is the one way an aggregate's events are read: the
// repository decodes with it, and so do projections (projection.On),
// stream processors (stream.Events) and sagas (saga.UseEvents), so that an
// event stored at an old schema version reads alike everywhere. TypeOf
// gives one event type's name, schema version and typed codec (a
// codec.Codec), and Resolve upcasts a record without decoding it, for
// routers that dispatch by the name a record resolves to.
//
// The untyped codec of this package moved to package codec: Codec,
// DefaultCodec, JSONCodec, ProtoCodec and Decode remain as deprecated
// aliases of codec.Format, codec.DefaultFormat, codec.JSONFormat,
// codec.ProtoFormat and codec.Unmarshal.
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
