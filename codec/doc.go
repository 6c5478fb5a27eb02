// Package codec turns values into bytes and back: the one codec notion of
// Muninn.
//
// A Codec[T] encodes and decodes values of one Go type T. Tables and
// indexes of projections keep their values with one, stream processors read
// and write keys and values with them, and an aggregate's event registry
// (aggregate.Events) gives one per event type. The constructors cover the
// common encodings: JSON (encoding/json, or protojson for proto messages),
// Proto (Protobuf's binary format), String, Bytes and Int64 (8 bytes
// big-endian); Funcs makes a Codec of two functions.
//
// A Format is the untyped counterpart: it encodes a value of any type
// (Marshal) and decodes into a value it is given (Unmarshal), and has a
// name for error messages. An aggregate's event payloads and snapshots, and
// a saga's state, commands and timeout messages, are stored with one:
// JSONFormat, ProtoFormat, or DefaultFormat (Protobuf for proto messages,
// JSON for the rest). Typed turns a Format into the Codec of one type, and
// Unmarshal decodes into a new value of a type parameter.
//
// A Codec may have optional abilities, found by type assertion: Appender
// (encode onto the end of a buffer, to save an allocation) and
// StringDecoder (decode from a string without copying it to bytes first).
// Append and DecodeString use them where present and fall back to Encode
// and Decode otherwise.
//
// The package imports nothing of Muninn's, so that every other package can
// use it.
package codec
