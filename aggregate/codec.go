package aggregate

import "github.com/muninn-es/muninn/codec"

// The untyped codec of event payloads and snapshot states moved to package
// codec, as codec.Format. The names below are aliases of it, kept so that
// code written against aggregate.Codec compiles unchanged during the
// transition; new code uses package codec.

// Codec is codec.Format: it turns event payloads and snapshot states into
// bytes and back.
//
// Deprecated: use codec.Format.
type Codec = codec.Format

// DefaultCodec is codec.DefaultFormat: Protobuf's binary encoding for proto
// messages, JSON for the rest.
//
// Deprecated: use codec.DefaultFormat.
var DefaultCodec = codec.DefaultFormat

// JSONCodec is codec.JSONFormat: encoding/json, and protojson for proto
// messages.
//
// Deprecated: use codec.JSONFormat.
var JSONCodec = codec.JSONFormat

// ProtoCodec is codec.ProtoFormat: Protobuf's binary format; it refuses
// values that are not proto messages.
//
// Deprecated: use codec.ProtoFormat.
var ProtoCodec = codec.ProtoFormat

// Decode decodes data into a new T with the format f, as codec.Unmarshal
// does.
//
// Deprecated: use codec.Unmarshal.
func Decode[T any](f codec.Format, data []byte) (T, error) { return codec.Unmarshal[T](f, data) }
