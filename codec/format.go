package codec

import (
	"encoding/json"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Format is an untyped codec: it encodes values of any type and decodes
// into a value it is handed. Marshal receives the value itself; Unmarshal
// receives a pointer to a zero value, or, for a proto message type, a new
// empty message (Unmarshal and Typed hand it the right one). A Format must
// be safe for concurrent use.
type Format interface {
	// Name identifies the format in error messages, such as "json".
	Name() string
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// DefaultFormat is Protobuf's binary encoding for values that are proto
// messages, and encoding/json for the rest: the format of an aggregate or a
// saga that names none.
var DefaultFormat Format = defaultFormat{}

// JSONFormat encodes with encoding/json, and proto messages with protojson.
var JSONFormat Format = jsonFormat{}

// ProtoFormat encodes proto messages in Protobuf's binary format, with
// deterministic map order; it refuses values that are not proto messages.
var ProtoFormat Format = protoFormat{}

// errNotProto is returned by ProtoFormat for values that are not proto
// messages.
var errNotProto = errors.New("codec: protobuf format: value is not a proto message")

type jsonFormat struct{}

func (jsonFormat) Name() string { return "json" }

func (jsonFormat) Marshal(v any) ([]byte, error) {
	if m, ok := v.(proto.Message); ok {
		return protojson.Marshal(m)
	}
	return json.Marshal(v)
}

func (jsonFormat) Unmarshal(data []byte, v any) error {
	if m, ok := v.(proto.Message); ok {
		return protojson.Unmarshal(data, m)
	}
	return json.Unmarshal(data, v)
}

type protoFormat struct{}

func (protoFormat) Name() string { return "protobuf" }

func (protoFormat) Marshal(v any) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("%w: %T", errNotProto, v)
	}
	return marshalProto(m)
}

func (protoFormat) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("%w: %T", errNotProto, v)
	}
	return proto.Unmarshal(data, m)
}

type defaultFormat struct{}

func (defaultFormat) Name() string { return "default" }

func (defaultFormat) Marshal(v any) ([]byte, error) {
	if _, ok := v.(proto.Message); ok {
		return protoFormat{}.Marshal(v)
	}
	return json.Marshal(v)
}

func (defaultFormat) Unmarshal(data []byte, v any) error {
	if _, ok := v.(proto.Message); ok {
		return protoFormat{}.Unmarshal(data, v)
	}
	return json.Unmarshal(data, v)
}

// newTarget returns a value of type T ready to decode into, and what to
// hand a Format's Unmarshal: a pointer to a zero T, or, when T is a proto
// message type, a new empty message.
func newTarget[T any]() (*T, any) {
	t := new(T)
	if _, ok := any(*t).(proto.Message); ok {
		v, m := newMessage[T]()
		*t = v
		return t, m
	}
	return t, t
}

// Unmarshal decodes data with f into a new T: into a zero T, or, when T is
// a proto message type, into a new empty message.
func Unmarshal[T any](f Format, data []byte) (T, error) {
	t, target := newTarget[T]()
	if err := f.Unmarshal(data, target); err != nil {
		var zero T
		return zero, err
	}
	return *t, nil
}

// Typed returns the Codec of T in the format f: Encode is f.Marshal, and
// Decode is Unmarshal[T] with f. Errors name the format. f must not be nil
// (Typed returns a Codec that fails every call if it is).
func Typed[T any](f Format) Codec[T] { return typed[T]{f: f} }

type typed[T any] struct{ f Format }

// Check reports a nil format.
func (c typed[T]) Check() error {
	if c.f == nil {
		return errors.New("codec.Typed: the format is nil")
	}
	return nil
}

func (c typed[T]) Encode(v T) ([]byte, error) {
	if c.f == nil {
		return nil, errors.New("codec: Typed: nil format")
	}
	b, err := c.f.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("codec: %s: %w", c.f.Name(), err)
	}
	return b, nil
}

func (c typed[T]) Decode(b []byte) (T, error) {
	if c.f == nil {
		var zero T
		return zero, errors.New("codec: Typed: nil format")
	}
	v, err := Unmarshal[T](c.f, b)
	if err != nil {
		return v, fmt.Errorf("codec: %s: %w", c.f.Name(), err)
	}
	return v, nil
}
