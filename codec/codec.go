package codec

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// Codec encodes values of type T into bytes and decodes them back. Encode
// and Decode must be deterministic and each other's inverse. Encode returns
// a slice the caller may keep (not a buffer it reuses); Decode must return
// an error, never panic, for bytes it cannot read, and the value it returns
// must not alias b. A Codec must be safe for concurrent use.
type Codec[T any] interface {
	Encode(v T) ([]byte, error)
	Decode(b []byte) (T, error)
}

// Appender is the optional ability of a Codec to append the encoding of v
// to dst, saving the allocation of a slice of its own. Append uses it.
type Appender[T any] interface {
	AppendEncode(dst []byte, v T) ([]byte, error)
}

// StringDecoder is the optional ability of a Codec to decode from a string
// without converting it to bytes first, such as a record key. DecodeString
// uses it.
type StringDecoder[T any] interface {
	DecodeString(s string) (T, error)
}

// Append appends the encoding of v with c to dst and returns the result:
// with c's AppendEncode if it has one, else with Encode and a copy. On an
// error it returns dst as it was.
func Append[T any](c Codec[T], dst []byte, v T) ([]byte, error) {
	if a, ok := c.(Appender[T]); ok {
		return a.AppendEncode(dst, v)
	}
	b, err := c.Encode(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// DecodeString decodes s with c: with c's DecodeString if it has one, else
// with Decode on a copy of s as bytes.
func DecodeString[T any](c Codec[T], s string) (T, error) {
	if d, ok := c.(StringDecoder[T]); ok {
		return d.DecodeString(s)
	}
	return c.Decode([]byte(s))
}

// Check reports whether c can be used: it is an error if c is nil, made by
// Funcs with a nil function, or by Typed with a nil format. A Codec of
// another package can take part: if it has a method Check() error, Check
// returns what that reports. Packages that take a Codec check it when they
// are given it, rather than when it is first used.
func Check[T any](c Codec[T]) error {
	if c == nil {
		return errors.New("codec is nil")
	}
	if ch, ok := c.(interface{ Check() error }); ok {
		return ch.Check()
	}
	return nil
}

// Funcs returns the Codec made of encode and decode. Both are required
// (Check reports a nil one; the Codec then fails every call that needs it).
func Funcs[T any](encode func(T) ([]byte, error), decode func([]byte) (T, error)) Codec[T] {
	return funcs[T]{enc: encode, dec: decode}
}

type funcs[T any] struct {
	enc func(T) ([]byte, error)
	dec func([]byte) (T, error)
}

// Check reports a nil function.
func (f funcs[T]) Check() error {
	switch {
	case f.enc == nil && f.dec == nil:
		return errors.New("codec.Funcs: the encode and decode functions are nil")
	case f.enc == nil:
		return errors.New("codec.Funcs: the encode function is nil")
	case f.dec == nil:
		return errors.New("codec.Funcs: the decode function is nil")
	}
	return nil
}

func (f funcs[T]) Encode(v T) ([]byte, error) {
	if f.enc == nil {
		return nil, f.Check()
	}
	return f.enc(v)
}

func (f funcs[T]) Decode(b []byte) (T, error) {
	if f.dec == nil {
		var zero T
		return zero, f.Check()
	}
	return f.dec(b)
}

// JSON returns the Codec that encodes T with encoding/json, or, when T is a
// proto message type (a pointer to a generated struct), with protojson.
func JSON[T any]() Codec[T] {
	var zero T
	_, isProto := any(zero).(proto.Message)
	return jsonCodec[T]{proto: isProto}
}

type jsonCodec[T any] struct{ proto bool }

func (c jsonCodec[T]) Encode(v T) ([]byte, error) {
	var b []byte
	var err error
	if c.proto {
		b, err = protojson.Marshal(any(v).(proto.Message))
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		return nil, fmt.Errorf("codec: json: %w", err)
	}
	return b, nil
}

func (c jsonCodec[T]) Decode(b []byte) (T, error) {
	var v T
	var err error
	if c.proto {
		var m proto.Message
		v, m = newMessage[T]()
		err = protojson.Unmarshal(b, m)
	} else {
		err = json.Unmarshal(b, &v)
	}
	if err != nil {
		var zero T
		return zero, fmt.Errorf("codec: json: %w", err)
	}
	return v, nil
}

// String returns the Codec that writes a string as its bytes. It has the
// Appender and StringDecoder abilities.
func String() Codec[string] { return stringCodec{} }

type stringCodec struct{}

func (stringCodec) Encode(s string) ([]byte, error) { return []byte(s), nil }
func (stringCodec) Decode(b []byte) (string, error) { return string(b), nil }
func (stringCodec) AppendEncode(dst []byte, s string) ([]byte, error) {
	return append(dst, s...), nil
}
func (stringCodec) DecodeString(s string) (string, error) { return s, nil }

// Bytes returns the Codec that keeps bytes as they are: Encode returns its
// argument, and Decode a copy, so that a decoded value never aliases the
// buffer it was read from. It has the Appender ability.
func Bytes() Codec[[]byte] { return bytesCodec{} }

type bytesCodec struct{}

func (bytesCodec) Encode(b []byte) ([]byte, error) { return b, nil }
func (bytesCodec) Decode(b []byte) ([]byte, error) { return slices.Clone(b), nil }
func (bytesCodec) AppendEncode(dst, b []byte) ([]byte, error) {
	return append(dst, b...), nil
}

// Int64 returns the compact Codec of int64: 8 bytes big-endian (two's
// complement), cheaper than JSON for counters. It has the Appender ability.
// Decode refuses anything but 8 bytes.
func Int64() Codec[int64] { return int64Codec{} }

type int64Codec struct{}

func (int64Codec) Encode(v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(v)), nil
}

func (int64Codec) AppendEncode(dst []byte, v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(dst, uint64(v)), nil
}

func (int64Codec) Decode(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("codec: int64: want 8 bytes, got %d", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}
