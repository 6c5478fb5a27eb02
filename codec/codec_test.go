package codec_test

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/codec"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type order struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

// roundTrip encodes v with c, with and without Append, and decodes it back.
func roundTrip[T any](t *testing.T, c codec.Codec[T], v T) T {
	t.Helper()
	b, err := c.Encode(v)
	if err != nil {
		t.Fatalf("Encode(%v): %v", v, err)
	}
	ab, err := codec.Append(c, []byte("prefix"), v)
	if err != nil || !bytes.Equal(ab, append([]byte("prefix"), b...)) {
		t.Fatalf("Append(%v) = %q, %v; Encode gave %q", v, ab, err, b)
	}
	got, err := c.Decode(b)
	if err != nil {
		t.Fatalf("Decode(%q): %v", b, err)
	}
	sgot, err := codec.DecodeString(c, string(b))
	if err != nil {
		t.Fatalf("DecodeString(%q): %v", b, err)
	}
	b2, _ := c.Encode(sgot)
	if !bytes.Equal(b, b2) {
		t.Fatalf("DecodeString(%q) re-encodes to %q", b, b2)
	}
	return got
}

func TestRoundTrips(t *testing.T) {
	if got := roundTrip(t, codec.JSON[order](), order{ID: "o-1", Total: 5}); got != (order{ID: "o-1", Total: 5}) {
		t.Errorf("JSON: %+v", got)
	}
	if got := roundTrip(t, codec.String(), "héllo\x00"); got != "héllo\x00" {
		t.Errorf("String: %q", got)
	}
	if got := roundTrip(t, codec.Bytes(), []byte{0, 1, 2}); !bytes.Equal(got, []byte{0, 1, 2}) {
		t.Errorf("Bytes: %v", got)
	}
	for _, n := range []int64{0, 1, -1, 1 << 62, -1 << 63} {
		if got := roundTrip(t, codec.Int64(), n); got != n {
			t.Errorf("Int64(%d): %d", n, got)
		}
	}
	msg := wrapperspb.String("x")
	if got := roundTrip(t, codec.Proto[*wrapperspb.StringValue](), msg); !proto.Equal(got, msg) {
		t.Errorf("Proto: %v", got)
	}
	if got := roundTrip(t, codec.JSON[*wrapperspb.StringValue](), msg); !proto.Equal(got, msg) {
		t.Errorf("JSON of a proto message: %v", got)
	}
	f := codec.Funcs(func(n int) ([]byte, error) { return []byte{byte(n)}, nil },
		func(b []byte) (int, error) { return int(b[0]), nil })
	if got := roundTrip(t, f, 7); got != 7 {
		t.Errorf("Funcs: %d", got)
	}
	for _, format := range []codec.Format{codec.JSONFormat, codec.DefaultFormat} {
		if got := roundTrip(t, codec.Typed[order](format), order{ID: "o-2"}); got != (order{ID: "o-2"}) {
			t.Errorf("Typed(%s): %+v", format.Name(), got)
		}
	}
	for _, format := range []codec.Format{codec.JSONFormat, codec.ProtoFormat, codec.DefaultFormat} {
		if got := roundTrip(t, codec.Typed[*wrapperspb.StringValue](format), msg); !proto.Equal(got, msg) {
			t.Errorf("Typed(%s) of a proto message: %v", format.Name(), got)
		}
	}
}

// TestStoredFormats pins encodings that stored data relies on.
func TestStoredFormats(t *testing.T) {
	for n, want := range map[int64]string{
		0:        "\x00\x00\x00\x00\x00\x00\x00\x00",
		1:        "\x00\x00\x00\x00\x00\x00\x00\x01",
		-1:       "\xff\xff\xff\xff\xff\xff\xff\xff",
		1 << 40:  "\x00\x00\x01\x00\x00\x00\x00\x00",
		-1 << 63: "\x80\x00\x00\x00\x00\x00\x00\x00",
	} {
		if b, _ := codec.Int64().Encode(n); string(b) != want {
			t.Errorf("Int64(%d) = %q, want %q", n, b, want)
		}
	}
	if b, _ := codec.JSON[order]().Encode(order{ID: "a", Total: 1}); string(b) != `{"id":"a","total":1}` {
		t.Errorf("JSON = %s", b)
	}
	// protojson, not encoding/json, for a proto message.
	if b, _ := codec.JSON[*wrapperspb.StringValue]().Encode(wrapperspb.String("x")); string(b) != `"x"` {
		t.Errorf("JSON of a StringValue = %s", b)
	}
	// An empty message is an empty, non-nil payload (nil is a tombstone).
	for _, b := range [][]byte{must(codec.Proto[*wrapperspb.StringValue]().Encode(&wrapperspb.StringValue{})),
		must(codec.ProtoFormat.Marshal(&wrapperspb.StringValue{}))} {
		if b == nil || len(b) != 0 {
			t.Errorf("empty message encodes to %#v", b)
		}
	}
	// Deterministic map order.
	s, _ := structpb.NewStruct(map[string]any{"b": 1.0, "a": 2.0, "c": 3.0})
	first := must(codec.Proto[*structpb.Struct]().Encode(s))
	for range 20 {
		if b := must(codec.Proto[*structpb.Struct]().Encode(s)); !bytes.Equal(b, first) {
			t.Fatal("Proto encoding of a map is not deterministic")
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestDecodeErrors(t *testing.T) {
	for name, err := range map[string]error{
		"int64 short":   second(codec.Int64().Decode([]byte{1, 2})),
		"int64 long":    second(codec.Int64().Decode(make([]byte, 9))),
		"json":          second(codec.JSON[order]().Decode([]byte(`{"id":`))),
		"json of proto": second(codec.JSON[*wrapperspb.StringValue]().Decode([]byte(`{`))),
		"proto":         second(codec.Proto[*wrapperspb.StringValue]().Decode([]byte{0xff, 0xff})),
		"typed":         second(codec.Typed[order](codec.JSONFormat).Decode([]byte(`[`))),
		"proto format":  second(codec.Typed[order](codec.ProtoFormat).Decode([]byte{})),
	} {
		if err == nil {
			t.Errorf("%s: no error", name)
		} else if !strings.HasPrefix(err.Error(), "codec: ") {
			t.Errorf("%s: error %q does not name the package", name, err)
		}
	}
	if _, err := codec.ProtoFormat.Marshal(order{}); err == nil || !strings.Contains(err.Error(), "not a proto message") {
		t.Errorf("ProtoFormat.Marshal(struct) = %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestCheck(t *testing.T) {
	if err := codec.Check[int](nil); err == nil {
		t.Error("Check(nil) = nil")
	}
	for _, c := range []codec.Codec[int]{
		codec.Funcs[int](nil, nil),
		codec.Funcs[int](nil, func([]byte) (int, error) { return 0, nil }),
		codec.Funcs(func(int) ([]byte, error) { return nil, nil }, nil),
		codec.Typed[int](nil),
	} {
		err := codec.Check(c)
		if err == nil {
			t.Errorf("Check(%#v) = nil", c)
			continue
		}
		// Using it anyway fails with the same error, never panics.
		_, eerr := c.Encode(1)
		_, derr := c.Decode([]byte{1})
		if eerr == nil && derr == nil {
			t.Errorf("%#v: Encode and Decode both succeed", c)
		}
	}
	for _, c := range []codec.Codec[int64]{codec.Int64(), codec.JSON[int64](), codec.Typed[int64](codec.DefaultFormat)} {
		if err := codec.Check(c); err != nil {
			t.Errorf("Check(%T) = %v", c, err)
		}
	}
}

func TestUnmarshal(t *testing.T) {
	m, err := codec.Unmarshal[*wrapperspb.StringValue](codec.DefaultFormat, must(codec.ProtoFormat.Marshal(wrapperspb.String("y"))))
	if err != nil || m.GetValue() != "y" {
		t.Fatalf("Unmarshal proto = %v, %v", m, err)
	}
	o, err := codec.Unmarshal[order](codec.DefaultFormat, []byte(`{"id":"z"}`))
	if err != nil || o.ID != "z" {
		t.Fatalf("Unmarshal struct = %+v, %v", o, err)
	}
	boom := errors.New("boom")
	fails := codec.Funcs(func(int) ([]byte, error) { return nil, boom }, func([]byte) (int, error) { return 0, boom })
	if b, err := codec.Append(fails, []byte("keep"), 1); !errors.Is(err, boom) || string(b) != "keep" {
		t.Errorf("Append of a failing codec = %q, %v", b, err)
	}
}
