package codec

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Proto returns the Codec of the proto message type T (a pointer to a
// generated struct, such as *orderpb.Placed) in Protobuf's binary format,
// with deterministic map order. An empty message encodes to an empty,
// non-nil slice. Decode returns a new message.
func Proto[T proto.Message]() Codec[T] { return protoCodec[T]{} }

type protoCodec[T proto.Message] struct{}

func (protoCodec[T]) Encode(v T) ([]byte, error) {
	b, err := marshalProto(v)
	if err != nil {
		return nil, fmt.Errorf("codec: protobuf: %w", err)
	}
	return b, nil
}

func (protoCodec[T]) AppendEncode(dst []byte, v T) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(dst, v)
	if err != nil {
		return dst, fmt.Errorf("codec: protobuf: %w", err)
	}
	return b, nil
}

func (protoCodec[T]) Decode(b []byte) (T, error) {
	v, m := newMessage[T]()
	if err := proto.Unmarshal(b, m); err != nil {
		var zero T
		return zero, fmt.Errorf("codec: protobuf: %w", err)
	}
	return v, nil
}

// marshalProto encodes m deterministically, as a non-nil slice: an empty
// message encodes to no bytes, and a nil payload would be a tombstone in
// the log.
func marshalProto(m proto.Message) ([]byte, error) {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// newMessage returns a new empty message of the proto message type T, both
// as a T and as a proto.Message. A generated message's ProtoReflect works on
// a nil pointer and knows its type.
func newMessage[T any]() (T, proto.Message) {
	var zero T
	m := any(zero).(proto.Message).ProtoReflect().Type().New().Interface()
	return m.(T), m
}
