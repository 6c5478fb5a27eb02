// Package keyspace is the one key encoding of the state space (see
// eventstore.StateSpace): every key that Muninn, or a user's own consumer,
// keeps there is a tuple that starts with its owner and the owner's name
// for the thing (a projection, a saga, a bus), encoded so that
//
//   - byte order is tuple order: strings sort as strings, integers and
//     times as numbers (negative ones first), so prefix and range scans
//     walk keys in the order their elements mean;
//   - no two tuples share an encoding, and no encoded tuple is a prefix of
//     another unless the tuple itself is: the keys of different owners, and
//     of different names of one owner, can never collide or overlap, whatever
//     bytes their elements hold;
//   - a key can be read back, element by element (Reader), and shown to a
//     person (Format).
//
// # Owners
//
// The first element of every key is its owner, one of:
//
//	owner        package     what it keeps under (owner, name, ...)
//	"command"    command     a bus's idempotency records, by command ID and by time
//	"consume"    consume     a consume loop's own marks (records parked in a dead-letter topic)
//	"projection" projection  a projection's generations, tables, indexes and parked records
//	"saga"       saga        a saga's instances, outbox, deadlines and ended instances
//	"stream"     stream      a stream app's state stores, windows, stream times, dedup marks, counters
//	"broker"     broker      an inbound consumer's deduplication marks
//	"app"        (yours)     reserved for applications: keys of your own
//
// The second element is the name the owner gives (a projection's name, a
// bus's name), checked with eventstore.ValidateName by the owner.
//
// # Encoding
//
// Each element is a tag byte and its bytes:
//
//	0x02 string or bytes  the bytes, each 0x00 written as 0x00 0xFF, then 0x00
//	0x15 unsigned integer 8 bytes, big-endian
//	0x16 signed integer   8 bytes, big-endian, with the sign bit flipped
//	0x17 time             the signed integer of its Unix nanoseconds, clamped to int64's range
//	0x1f raw tail         the rest of the key, as is (an order-preserving encoding of the caller's)
//
// which is the scheme of FoundationDB's tuple layer, cut to what the state
// space needs.
package keyspace

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Owner names who owns a part of the state space: the first element of
// every key.
type Owner string

// The owners of the state space. See the package documentation for what
// each keeps.
const (
	Command    Owner = "command"
	Consume    Owner = "consume"
	Projection Owner = "projection"
	Saga       Owner = "saga"
	Stream     Owner = "stream"
	Broker     Owner = "broker"
	// App is reserved for applications' own keys.
	App Owner = "app"
)

// Owners lists every owner, in the order of the package documentation.
var Owners = []Owner{Command, Consume, Projection, Saga, Stream, Broker, App}

// Element tags.
const (
	tagString = 0x02
	tagUint   = 0x15
	tagInt    = 0x16
	tagTime   = 0x17
	tagRaw    = 0x1f
)

// ErrMalformed is wrapped by the errors of Reader for bytes that are not
// the element asked for.
var ErrMalformed = errors.New("keyspace: malformed key")

// Key is an encoded tuple. Its methods append an element and return the
// longer key; they never change the key they are called on, so a Key can be
// kept as a prefix and extended many times.
type Key []byte

// New returns the key (owner, name): the prefix of everything the owner
// keeps for name.
func New(owner Owner, name string) Key {
	k := make(Key, 0, len(owner)+len(name)+8)
	return k.String(string(owner)).String(name)
}

// grow returns a copy of k with room for n more bytes.
func (k Key) grow(n int) Key {
	out := make(Key, len(k), len(k)+n)
	copy(out, k)
	return out
}

// String appends a string element.
func (k Key) String(s string) Key {
	out := k.grow(len(s) + 2 + strings.Count(s, "\x00"))
	return AppendString(out, s)
}

// Bytes appends a byte-string element; it sorts and reads back as String
// does.
func (k Key) Bytes(b []byte) Key {
	out := k.grow(len(b) + 2 + bytes.Count(b, []byte{0}))
	return AppendBytes(out, b)
}

// Uint appends an unsigned integer element.
func (k Key) Uint(v uint64) Key { return AppendUint(k.grow(9), v) }

// Int appends a signed integer element.
func (k Key) Int(v int64) Key { return AppendInt(k.grow(9), v) }

// Time appends a time element: its Unix nanoseconds, clamped to the years
// 1678 to 2262 (what an int64 holds), so that a far-future deadline sorts
// last instead of wrapping around.
func (k Key) Time(t time.Time) Key { return AppendTime(k.grow(9), t) }

// Raw returns k followed by a raw tail: b as it is, for an order-preserving
// encoding of the caller's own (a table's key codec). Nothing can follow a
// raw tail.
func (k Key) Raw(b []byte) []byte {
	out := k.grow(1 + len(b))
	out = append(out, tagRaw)
	return append(out, b...)
}

// RawPrefix returns the prefix of every key k.Raw(...) makes.
func (k Key) RawPrefix() []byte { return append(k.grow(1), tagRaw) }

// Range returns the bounds [lower, upper) of every key that extends k with
// at least one more element (or a raw tail), for a scan. Use it rather than
// a byte-prefix scan of k: the key (…, "a") is a byte prefix of the key
// (…, "a\x00"), which Range excludes. Every element starts with a tag byte
// between 0x00 and 0xff exclusive, so the range is [k 0x00, k 0xff).
func (k Key) Range() (lower, upper []byte) {
	lower = append(k.grow(1), 0x00)
	upper = append(k.grow(1), 0xff)
	return lower, upper
}

// AppendString appends the encoding of a string element to dst.
func AppendString(dst []byte, s string) []byte {
	dst = append(dst, tagString)
	for i := 0; i < len(s); i++ {
		dst = append(dst, s[i])
		if s[i] == 0 {
			dst = append(dst, 0xff)
		}
	}
	return append(dst, 0)
}

// AppendBytes appends the encoding of a byte-string element to dst.
func AppendBytes(dst, b []byte) []byte {
	dst = append(dst, tagString)
	for _, c := range b {
		dst = append(dst, c)
		if c == 0 {
			dst = append(dst, 0xff)
		}
	}
	return append(dst, 0)
}

// AppendUint appends the encoding of an unsigned integer element to dst.
func AppendUint(dst []byte, v uint64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tagUint), v)
}

// AppendInt appends the encoding of a signed integer element to dst.
func AppendInt(dst []byte, v int64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tagInt), uint64(v)^(1<<63))
}

// The range of times a key holds: that of int64 Unix nanoseconds.
var (
	minTime = time.Unix(0, math.MinInt64).UTC()
	maxTime = time.Unix(0, math.MaxInt64).UTC()
)

// ClampTime returns t in UTC, moved into the range of times a key holds.
func ClampTime(t time.Time) time.Time {
	switch {
	case t.Before(minTime):
		return minTime
	case t.After(maxTime):
		return maxTime
	}
	return t.UTC()
}

// AppendTime appends the encoding of a time element to dst.
func AppendTime(dst []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(append(dst, tagTime), uint64(ClampTime(t).UnixNano())^(1<<63))
}

// Reader reads a key back, element by element. Each method fails with an
// error wrapping ErrMalformed if the next element is not of its kind.
type Reader struct {
	b   []byte
	pos int
}

// NewReader returns a Reader of key.
func NewReader(key []byte) *Reader { return &Reader{b: key} }

// Read returns a Reader of key positioned after prefix, or an error if key
// does not start with it.
func Read(key []byte, prefix Key) (*Reader, error) {
	if !bytes.HasPrefix(key, prefix) {
		return nil, fmt.Errorf("%w: %s does not start with %s", ErrMalformed, Format(key), Format(prefix))
	}
	return &Reader{b: key, pos: len(prefix)}, nil
}

// Done reports whether every element has been read.
func (r *Reader) Done() bool { return r.pos >= len(r.b) }

func (r *Reader) fail(want string) error {
	return fmt.Errorf("%w: want %s at byte %d of %x", ErrMalformed, want, r.pos, r.b)
}

// Bytes reads a string element into a new slice.
func (r *Reader) Bytes() ([]byte, error) {
	if r.pos >= len(r.b) || r.b[r.pos] != tagString {
		return nil, r.fail("a string")
	}
	var out []byte
	for i := r.pos + 1; i < len(r.b); i++ {
		c := r.b[i]
		if c != 0 {
			out = append(out, c)
			continue
		}
		if i+1 < len(r.b) && r.b[i+1] == 0xff {
			out = append(out, 0)
			i++
			continue
		}
		r.pos = i + 1
		if out == nil {
			out = []byte{}
		}
		return out, nil
	}
	return nil, r.fail("a terminated string")
}

// String reads a string element.
func (r *Reader) String() (string, error) {
	b, err := r.Bytes()
	return string(b), err
}

func (r *Reader) fixed(tag byte, want string) (uint64, error) {
	if r.pos+9 > len(r.b) || r.b[r.pos] != tag {
		return 0, r.fail(want)
	}
	v := binary.BigEndian.Uint64(r.b[r.pos+1:])
	r.pos += 9
	return v, nil
}

// Uint reads an unsigned integer element.
func (r *Reader) Uint() (uint64, error) { return r.fixed(tagUint, "an unsigned integer") }

// Int reads a signed integer element.
func (r *Reader) Int() (int64, error) {
	v, err := r.fixed(tagInt, "a signed integer")
	return int64(v ^ (1 << 63)), err
}

// Time reads a time element, in UTC.
func (r *Reader) Time() (time.Time, error) {
	v, err := r.fixed(tagTime, "a time")
	if err != nil {
		return time.Time{}, err
	}
	return time.Unix(0, int64(v^(1<<63))).UTC(), nil
}

// Raw reads a raw tail: the rest of the key.
func (r *Reader) Raw() ([]byte, error) {
	if r.pos >= len(r.b) || r.b[r.pos] != tagRaw {
		return nil, r.fail("a raw tail")
	}
	out := r.b[r.pos+1:]
	r.pos = len(r.b)
	return out, nil
}

// Format returns a readable form of an encoded key, such as
// ("saga", "checkout", "i", "order-1"), for logs and tools. Bytes that do
// not decode are shown in hex after a "!".
func Format(key []byte) string {
	var b strings.Builder
	b.WriteByte('(')
	r := NewReader(key)
	for i := 0; !r.Done(); i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		start := r.pos
		var err error
		switch r.b[r.pos] {
		case tagString:
			var s string
			if s, err = r.String(); err == nil {
				b.WriteString(strconv.Quote(s))
			}
		case tagUint:
			var v uint64
			if v, err = r.Uint(); err == nil {
				b.WriteString(strconv.FormatUint(v, 10))
			}
		case tagInt:
			var v int64
			if v, err = r.Int(); err == nil {
				b.WriteString(strconv.FormatInt(v, 10))
			}
		case tagTime:
			var t time.Time
			if t, err = r.Time(); err == nil {
				b.WriteString(t.Format(time.RFC3339Nano))
			}
		case tagRaw:
			var raw []byte
			if raw, err = r.Raw(); err == nil {
				fmt.Fprintf(&b, "raw %x", raw)
			}
		default:
			err = ErrMalformed
		}
		if err != nil {
			fmt.Fprintf(&b, "!%x", r.b[start:])
			break
		}
	}
	b.WriteByte(')')
	return b.String()
}
