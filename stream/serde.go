package stream

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
)

// Serde encodes and decodes keys or values of type T: where a stream is read
// from a topic, written to one, or kept in a state store. Encode and Decode
// must be deterministic and each other's inverse, and Decode must return an
// error (never panic) for bytes it cannot read. SerdeFuncs makes one from two
// functions.
//
// A serde may also have the methods AppendEncode(dst []byte, v T) ([]byte,
// error), which appends the encoding to dst, and DecodeString(s string) (T,
// error), which decodes a record key without copying it to bytes; the App
// uses them where present to save allocations. The built-in serdes have
// them where they help.
type Serde[T any] interface {
	Encode(T) ([]byte, error)
	Decode([]byte) (T, error)
}

// appender is the optional ability of a serde to encode into a buffer
// without allocating.
type appender[T any] interface {
	AppendEncode(dst []byte, v T) ([]byte, error)
}

// stringDecoder is the optional ability of a serde to decode a record key
// (a string) without converting it to bytes first.
type stringDecoder[T any] interface {
	DecodeString(s string) (T, error)
}

// appendEncode encodes v onto dst, without an intermediate slice if the
// serde can.
func appendEncode[T any](s Serde[T], dst []byte, v T) ([]byte, error) {
	if a, ok := s.(appender[T]); ok {
		return a.AppendEncode(dst, v)
	}
	b, err := s.Encode(v)
	if err != nil {
		return dst, err
	}
	return append(dst, b...), nil
}

// decodeString decodes a record key.
func decodeString[T any](s Serde[T], key string) (T, error) {
	if d, ok := s.(stringDecoder[T]); ok {
		return d.DecodeString(key)
	}
	return s.Decode([]byte(key))
}

type funcSerde[T any] struct {
	enc func(T) ([]byte, error)
	dec func([]byte) (T, error)
}

func (s funcSerde[T]) Encode(v T) ([]byte, error) { return s.enc(v) }
func (s funcSerde[T]) Decode(b []byte) (T, error) { return s.dec(b) }

// validSerde reports whether s can be used: not nil, and not made of nil
// functions.
func validSerde[T any](s Serde[T]) bool {
	if s == nil {
		return false
	}
	if f, ok := s.(funcSerde[T]); ok {
		return f.enc != nil && f.dec != nil
	}
	return true
}

// SerdeFuncs returns the serde made of encode and decode (both required).
func SerdeFuncs[T any](encode func(T) ([]byte, error), decode func([]byte) (T, error)) Serde[T] {
	return funcSerde[T]{enc: encode, dec: decode}
}

type jsonSerde[T any] struct{}

func (jsonSerde[T]) Encode(v T) ([]byte, error) { return json.Marshal(v) }
func (jsonSerde[T]) Decode(b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("stream: json: %w", err)
	}
	return v, nil
}

// JSON returns the serde that encodes T with encoding/json. It is the default
// where a step changes a key or value type without naming a serde.
func JSON[T any]() Serde[T] { return jsonSerde[T]{} }

type stringSerde struct{}

func (stringSerde) Encode(s string) ([]byte, error) { return []byte(s), nil }
func (stringSerde) Decode(b []byte) (string, error) { return string(b), nil }
func (stringSerde) AppendEncode(dst []byte, s string) ([]byte, error) {
	return append(dst, s...), nil
}
func (stringSerde) DecodeString(s string) (string, error) { return s, nil }

// String returns the serde that writes a string as its bytes.
func String() Serde[string] { return stringSerde{} }

type bytesSerde struct{}

func (bytesSerde) Encode(b []byte) ([]byte, error) { return b, nil }
func (bytesSerde) Decode(b []byte) ([]byte, error) { return slices.Clone(b), nil }
func (bytesSerde) AppendEncode(dst, b []byte) ([]byte, error) {
	return append(dst, b...), nil
}

// Bytes returns the serde that keeps bytes as they are (copied on decode, so
// that a value never aliases the store's buffers).
func Bytes() Serde[[]byte] { return bytesSerde{} }

type int64Serde struct{}

func (int64Serde) Encode(v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(nil, uint64(v)), nil
}
func (int64Serde) AppendEncode(dst []byte, v int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(dst, uint64(v)), nil
}
func (int64Serde) Decode(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("stream: int64: want 8 bytes, got %d", len(b))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// Int64 returns the serde that writes an int64 as 8 big-endian bytes. Counts
// are stored with it.
func Int64() Serde[int64] { return int64Serde{} }
