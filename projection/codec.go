package projection

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/muninn-es/muninn/keyspace"
)

// KeyCodec encodes the keys of a table or an index. Its encoding must
// preserve order: for keys a < b, Encode(a) must sort before Encode(b) as
// bytes, because scans and pagination run in encoded order. Decode must
// accept what Encode produced and reject anything else with an error.
type KeyCodec[K any] interface {
	// Append appends the encoding of k to dst and returns the result.
	Append(dst []byte, k K) ([]byte, error)
	// Decode decodes a whole encoded key.
	Decode(b []byte) (K, error)
}

// StringKey returns the key codec of strings: the string's bytes, which
// sort as Go compares strings. A string prefix is a prefix of the
// encoding, so ScanPrefix on a StringKey table finds every key that starts
// with the given prefix. The empty string is not a valid key.
func StringKey() KeyCodec[string] { return stringKey{} }

type stringKey struct{}

func (stringKey) Append(dst []byte, k string) ([]byte, error) { return append(dst, k...), nil }
func (stringKey) Decode(b []byte) (string, error)             { return string(b), nil }

// BytesKey returns the key codec of byte slices, stored as they are.
func BytesKey() KeyCodec[[]byte] { return bytesKey{} }

type bytesKey struct{}

func (bytesKey) Append(dst []byte, k []byte) ([]byte, error) { return append(dst, k...), nil }
func (bytesKey) Decode(b []byte) ([]byte, error)             { return append([]byte(nil), b...), nil }

// Int64Key returns the key codec of int64: 8 bytes big-endian with the sign
// bit flipped, so that negative numbers sort before positive ones.
func Int64Key() KeyCodec[int64] { return int64Key{} }

type int64Key struct{}

func (int64Key) Append(dst []byte, k int64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(dst, uint64(k)^(1<<63)), nil
}

func (int64Key) Decode(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("projection: int64 key has %d bytes, want 8", len(b))
	}
	return int64(binary.BigEndian.Uint64(b) ^ (1 << 63)), nil
}

// Uint64Key returns the key codec of uint64: 8 bytes big-endian.
func Uint64Key() KeyCodec[uint64] { return uint64Key{} }

type uint64Key struct{}

func (uint64Key) Append(dst []byte, k uint64) ([]byte, error) {
	return binary.BigEndian.AppendUint64(dst, k), nil
}

func (uint64Key) Decode(b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("projection: uint64 key has %d bytes, want 8", len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}

// Float64Key returns the key codec of float64, ordered as numbers (-Inf
// first, +Inf last). NaN is rejected: it has no place in an order.
func Float64Key() KeyCodec[float64] { return float64Key{} }

type float64Key struct{}

func (float64Key) Append(dst []byte, k float64) ([]byte, error) {
	if math.IsNaN(k) {
		return dst, fmt.Errorf("projection: NaN is not a valid float64 key")
	}
	if k == 0 {
		k = 0 // -0 and +0 are one key
	}
	u := math.Float64bits(k)
	if u&(1<<63) != 0 {
		u = ^u
	} else {
		u |= 1 << 63
	}
	return binary.BigEndian.AppendUint64(dst, u), nil
}

func (float64Key) Decode(b []byte) (float64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("projection: float64 key has %d bytes, want 8", len(b))
	}
	u := binary.BigEndian.Uint64(b)
	if u&(1<<63) != 0 {
		u &^= 1 << 63
	} else {
		u = ^u
	}
	f := math.Float64frombits(u)
	if math.IsNaN(f) {
		return 0, fmt.Errorf("projection: float64 key decodes to NaN")
	}
	return f, nil
}

// Pair is a composite key of two parts, ordered by A, then by B.
type Pair[A, B any] struct {
	A A
	B B
}

// PairKey returns the codec of composite keys ordered by their first part,
// then their second. The first part is written as a keyspace byte-string
// element (see AppendOrdered), which is prefix-free: its encoding is a
// prefix of every key that shares it, so ScanPrefix with PairPrefix lists
// every key with a given first part, in order of the second.
func PairKey[A, B any](a KeyCodec[A], b KeyCodec[B]) KeyCodec[Pair[A, B]] {
	return pairKey[A, B]{a: a, b: b}
}

type pairKey[A, B any] struct {
	a KeyCodec[A]
	b KeyCodec[B]
}

func (c pairKey[A, B]) Append(dst []byte, k Pair[A, B]) ([]byte, error) {
	first, err := c.a.Append(nil, k.A)
	if err != nil {
		return dst, err
	}
	dst = AppendOrdered(dst, first)
	return c.b.Append(dst, k.B)
}

func (c pairKey[A, B]) Decode(b []byte) (Pair[A, B], error) {
	first, rest, err := DecodeOrdered(b)
	if err != nil {
		return Pair[A, B]{}, err
	}
	a, err := c.a.Decode(first)
	if err != nil {
		return Pair[A, B]{}, err
	}
	bv, err := c.b.Decode(rest)
	if err != nil {
		return Pair[A, B]{}, err
	}
	return Pair[A, B]{A: a, B: bv}, nil
}

// PairPrefix returns the encoded prefix shared by every key of a PairKey
// codec whose first part is a, for Table.ScanPrefixBytes.
func PairPrefix[A any](c KeyCodec[A], a A) ([]byte, error) {
	first, err := c.Append(nil, a)
	if err != nil {
		return nil, err
	}
	return AppendOrdered(nil, first), nil
}

// AppendOrdered appends b to dst as a part of a composite key that sorts
// as b does and whose encoding is a prefix of no other part's: the
// byte-string element of package keyspace (0x02, b with each 0x00 written
// as 0x00 0xFF, then 0x00), followed by keyspace's raw-tail tag 0x1F, so
// that whatever follows (the next part) cannot be mistaken for more of b.
// It is the state space's one encoding of an ordered element; composite
// keys use it for every part but the last, and index entries for their
// index key.
func AppendOrdered(dst, b []byte) []byte {
	return append(keyspace.AppendBytes(dst, b), rawTag)
}

// rawTag is keyspace's tag of a raw tail: keyspace.Key(nil).RawPrefix().
var rawTag = keyspace.Key(nil).RawPrefix()[0]

// DecodeOrdered decodes a part written by AppendOrdered from the start of
// b and returns it and the bytes after it.
func DecodeOrdered(b []byte) (part, rest []byte, err error) {
	r := keyspace.NewReader(b)
	if part, err = r.Bytes(); err != nil {
		return nil, nil, fmt.Errorf("projection: ordered key part: %w", err)
	}
	if rest, err = r.Raw(); err != nil {
		return nil, nil, fmt.Errorf("projection: ordered key part: %w", err)
	}
	return part, rest, nil
}
