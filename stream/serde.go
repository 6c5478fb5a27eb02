package stream

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
)

// Serde encodes and decodes keys or values of type T: where a stream is read
// from a topic, written to one, or kept in a state store. Both functions must
// be deterministic and each other's inverse, and Decode must return an error
// (never panic) for bytes it cannot read.
type Serde[T any] struct {
	// Name says what the serde is, for Describe and error messages.
	Name string
	// Encode turns a value into bytes.
	Encode func(T) ([]byte, error)
	// Decode turns bytes back into a value.
	Decode func([]byte) (T, error)
}

func (s Serde[T]) valid() bool { return s.Encode != nil && s.Decode != nil }

// JSON returns the serde that encodes T with encoding/json. It is the default
// where a step changes a key or value type without naming a serde.
func JSON[T any]() Serde[T] {
	return Serde[T]{
		Name:   "json",
		Encode: func(v T) ([]byte, error) { return json.Marshal(v) },
		Decode: func(b []byte) (T, error) {
			var v T
			if err := json.Unmarshal(b, &v); err != nil {
				return v, fmt.Errorf("stream: json: %w", err)
			}
			return v, nil
		},
	}
}

// String returns the serde that writes a string as its bytes.
func String() Serde[string] {
	return Serde[string]{
		Name:   "string",
		Encode: func(s string) ([]byte, error) { return []byte(s), nil },
		Decode: func(b []byte) (string, error) { return string(b), nil },
	}
}

// Bytes returns the serde that keeps bytes as they are (copied on decode, so
// that a value never aliases the store's buffers).
func Bytes() Serde[[]byte] {
	return Serde[[]byte]{
		Name:   "bytes",
		Encode: func(b []byte) ([]byte, error) { return b, nil },
		Decode: func(b []byte) ([]byte, error) { return slices.Clone(b), nil },
	}
}

// Int64 returns the serde that writes an int64 as 8 big-endian bytes. Counts
// are stored with it.
func Int64() Serde[int64] {
	return Serde[int64]{
		Name:   "int64",
		Encode: func(v int64) ([]byte, error) { return binary.BigEndian.AppendUint64(nil, uint64(v)), nil },
		Decode: func(b []byte) (int64, error) {
			if len(b) != 8 {
				return 0, fmt.Errorf("stream: int64: want 8 bytes, got %d", len(b))
			}
			return int64(binary.BigEndian.Uint64(b)), nil
		},
	}
}
