package codec_test

import (
	"testing"

	"github.com/muninn-es/muninn/codec"
	"google.golang.org/protobuf/types/known/structpb"
)

// FuzzDecode decodes arbitrary bytes with every built-in codec: an error or
// a value, never a panic; and a value decoded re-encodes to bytes that
// decode to the same encoding again.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"a","total":1}`))
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte{0x0a, 0x03, 0x0a, 0x01, 0x61})
	f.Fuzz(func(t *testing.T, b []byte) {
		stable(t, codec.JSON[order](), b)
		stable(t, codec.Int64(), b)
		stable(t, codec.Proto[*structpb.Struct](), b)
		stable(t, codec.JSON[*structpb.Struct](), b)
		stable(t, codec.Typed[map[string]any](codec.DefaultFormat), b)
	})
}

func stable[T any](t *testing.T, c codec.Codec[T], b []byte) {
	v, err := c.Decode(b)
	if err != nil {
		return
	}
	e1, err := c.Encode(v)
	if err != nil {
		return // such as a NaN a Struct may hold: not encodable as JSON
	}
	v2, err := c.Decode(e1)
	if err != nil {
		t.Fatalf("%T: %q re-encoded as %q, which does not decode: %v", c, b, e1, err)
	}
	if e2, err := c.Encode(v2); err != nil || string(e2) != string(e1) {
		t.Fatalf("%T: %q re-encodes unstably: %q then %q (%v)", c, b, e1, e2, err)
	}
}
