package projection_test

import (
	"bytes"
	"testing"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/projection"
)

// FuzzOrdered checks the escaped encoding of composite key parts: any
// input decodes without panicking, and an encoded part decodes back to
// itself with the bytes after it untouched.
func FuzzOrdered(f *testing.F) {
	f.Add([]byte("abc"), []byte("rest"))
	f.Add([]byte{0, 0xff, 0, 1}, []byte{0})
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, part, rest []byte) {
		enc := projection.AppendOrdered(nil, part)
		got, tail, err := projection.DecodeOrdered(append(enc, rest...))
		if err != nil || !bytes.Equal(got, part) || !bytes.Equal(tail, rest) {
			t.Fatalf("round trip of %x + %x: %x, %x, %v", part, rest, got, tail, err)
		}
		_, _, _ = projection.DecodeOrdered(part) // arbitrary input: no panic
	})
}

// FuzzKeyDecode feeds arbitrary bytes to every key codec's Decode: no
// panic, and whatever decodes encodes back to the same bytes (a key has
// one encoding).
func FuzzKeyDecode(f *testing.F) {
	f.Add([]byte{0x80, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{'a', 0, 1, 0x80, 0, 0, 0, 0, 0, 0, 2})
	f.Add([]byte{0xff, 0xf8, 0, 0, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		reencode(t, projection.Int64Key(), b)
		reencode(t, projection.Uint64Key(), b)
		reencode(t, projection.Float64Key(), b)
		reencode(t, projection.PairKey(projection.StringKey(), projection.Int64Key()), b)
		if _, err := codec.Int64().Decode(b); err != nil && len(b) == 8 {
			t.Fatalf("codec.Int64 refused 8 bytes: %v", err)
		}
	})
}

func reencode[K any](t *testing.T, c projection.KeyCodec[K], b []byte) {
	k, err := c.Decode(b)
	if err != nil {
		return
	}
	enc, err := c.Append(nil, k)
	if err != nil {
		t.Fatalf("%T: %x decodes to %v, which does not encode: %v", c, b, k, err)
	}
	k2, err := c.Decode(enc)
	if err != nil {
		t.Fatalf("%T: re-encoding %x of %v does not decode: %v", c, enc, k, err)
	}
	enc2, _ := c.Append(nil, k2)
	if !bytes.Equal(enc, enc2) {
		t.Fatalf("%T: %v encodes as %x, then %x", c, k, enc, enc2)
	}
}
