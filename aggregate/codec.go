package aggregate

import (
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Codec turns event payloads and snapshot states into bytes and back.
// Marshal receives the value itself; Unmarshal receives a pointer to a zero
// value, or, for a Protobuf message type, a new empty message. A Codec must
// be safe for concurrent use.
type Codec interface {
	// Name identifies the codec in error messages, such as "json".
	Name() string
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// DefaultCodec is the codec of an aggregate that names none: Protobuf's
// binary encoding for values that are proto messages, JSON for the rest.
var DefaultCodec Codec = defaultCodec{}

// JSONCodec encodes with encoding/json, and proto messages with protojson.
var JSONCodec Codec = jsonCodec{}

// ProtoCodec encodes proto messages in Protobuf's binary format, with
// deterministic map order; it refuses values that are not proto messages.
var ProtoCodec Codec = protoCodec{}

// errNotProto is returned by ProtoCodec for values that are not proto messages.
var errNotProto = errors.New("aggregate: protobuf codec: value is not a proto message")

type jsonCodec struct{}

func (jsonCodec) Name() string { return "json" }

func (jsonCodec) Marshal(v any) ([]byte, error) {
	if m, ok := v.(proto.Message); ok {
		return protojson.Marshal(m)
	}
	return json.Marshal(v)
}

func (jsonCodec) Unmarshal(data []byte, v any) error {
	if m, ok := v.(proto.Message); ok {
		return protojson.Unmarshal(data, m)
	}
	return json.Unmarshal(data, v)
}

type protoCodec struct{}

func (protoCodec) Name() string { return "protobuf" }

func (protoCodec) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%w: %T", errNotProto, v)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	if b == nil {
		// An empty message encodes to no bytes; a nil payload would be a
		// tombstone.
		b = []byte{}
	}
	return b, nil
}

func (protoCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("%w: %T", errNotProto, v)
	}
	return proto.Unmarshal(data, m)
}

type defaultCodec struct{}

func (defaultCodec) Name() string { return "default" }

func (defaultCodec) Marshal(v any) ([]byte, error) {
	if _, ok := v.(proto.Message); ok {
		return protoCodec{}.Marshal(v)
	}
	return json.Marshal(v)
}

func (defaultCodec) Unmarshal(data []byte, v any) error {
	if _, ok := v.(proto.Message); ok {
		return protoCodec{}.Unmarshal(data, v)
	}
	return json.Unmarshal(data, v)
}

// newTarget returns a value of type T ready to decode into, and what to
// hand the codec's Unmarshal: a pointer to a zero T, or, when T is a proto
// message type (a pointer to a generated struct), a new empty message.
func newTarget[T any]() (*T, any) {
	t := new(T)
	if m, ok := any(*t).(proto.Message); ok {
		// A generated message's ProtoReflect works on a nil pointer and
		// knows its type.
		nm := m.ProtoReflect().Type().New().Interface()
		*t = nm.(T)
		return t, nm
	}
	return t, t
}

// Decode decodes data into a T with c: into a zero T, or, when T is a proto
// message type, into a new empty message. Packages that store values with
// an aggregate Codec (sagas store their state, commands and timeouts) decode
// them with it.
func Decode[T any](c Codec, data []byte) (T, error) {
	t, target := newTarget[T]()
	if err := c.Unmarshal(data, target); err != nil {
		var zero T
		return zero, err
	}
	return *t, nil
}
