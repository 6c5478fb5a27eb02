package stream

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/codec"
)

// FuzzWindowedCodec decodes arbitrary bytes as a windowed key: never a
// panic, and what decodes encodes back to the same bytes.
func FuzzWindowedCodec(f *testing.F) {
	ws := WindowedCodec(codec.String())
	seed, _ := ws.Encode(Windowed[string]{Key: "user-1", Start: time.Unix(60, 0), End: time.Unix(120, 0)})
	f.Add(seed)
	f.Add([]byte{})
	f.Add(make([]byte, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		w, err := ws.Decode(b)
		if err != nil {
			return
		}
		again, err := ws.Encode(w)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("round trip of %x gave %x, %v", b, again, err)
		}
	})
}

// FuzzStateKeys parses arbitrary bytes as the tails of window keys and
// index keys (after a store's prefixes), as window values and as window
// changelog keys: never a panic, and what parses rebuilds the same bytes.
func FuzzStateKeys(f *testing.F) {
	sk := newStoreKeys(newAppKeys("app"), "store")
	part := sk.indexPartPrefix(3)
	f.Add(sk.appendWindowKey(nil, []byte("user-1"), 42)[len(sk.win):])
	f.Add(sk.indexKey(3, -7, []byte("k"))[len(part):])
	f.Add(windowValue(2, []byte{1, 2, 3}))
	f.Add([]byte(changelogWindowKey([]byte("user-1"), 60, time.Minute)))
	f.Add([]byte{0x02, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if key, start, err := sk.parseWindowKey(append(slices.Clone([]byte(sk.win)), b...)); err == nil {
			if got := sk.appendWindowKey(nil, key, start)[len(sk.win):]; !bytes.Equal(got, b) {
				t.Fatalf("window key tail %x rebuilt as %x", b, got)
			}
		}
		if start, key, err := parseIndexKey(append(slices.Clone([]byte(part)), b...), part); err == nil {
			if got := sk.indexKey(3, start, key)[len(part):]; !bytes.Equal(got, b) {
				t.Fatalf("index key tail %x rebuilt as %x", b, got)
			}
		}
		if part, agg, err := parseWindowValue(b); err == nil {
			if got := windowValue(part, agg); !bytes.Equal(got, b) {
				t.Fatalf("window value %x rebuilt as %x", b, got)
			}
		}
		if key, start, err := parseChangelogWindowKey(string(b), time.Minute); err == nil {
			if got := changelogWindowKey(key, start, time.Minute); got != string(b) {
				t.Fatalf("window changelog key %x rebuilt as %x", b, got)
			}
		}
		if v, err := codec.Int64().Decode(b); err == nil {
			if got, _ := codec.Int64().Encode(v); !bytes.Equal(got, b) {
				t.Fatalf("int64 %x rebuilt as %x", b, got)
			}
		}
	})
}

func TestWindowStarts(t *testing.T) {
	cases := []struct {
		w    Windows
		ts   int64
		want []int64
	}{
		{Tumbling(10), 0, []int64{0}},
		{Tumbling(10), 9, []int64{0}},
		{Tumbling(10), -1, []int64{-10}},
		{Hopping(10, 5), 3, []int64{-5, 0}},
		{Hopping(10, 5), 5, []int64{0, 5}},
		{Hopping(10, 3), 10, []int64{3, 6, 9}},
		{Hopping(10, 3), -4, []int64{-12, -9, -6}},
	}
	for _, c := range cases {
		var got []int64
		_ = c.w.starts(c.ts, func(s int64) error { got = append(got, s); return nil })
		if len(got) != len(c.want) {
			t.Errorf("%v at %d: %v, want %v", c.w, c.ts, got, c.want)
			continue
		}
		for i := range got {
			if got[i] != c.want[i] {
				t.Errorf("%v at %d: %v, want %v", c.w, c.ts, got, c.want)
				break
			}
		}
	}
}

// FuzzEventsCodec decodes arbitrary bytes as self-describing events: never
// a panic, and what decodes re-encodes to bytes that decode to the same.
func FuzzEventsCodec(f *testing.F) {
	type note struct {
		Text string `json:"text"`
	}
	events, err := aggregate.NewEvents[any](aggregate.Type[note]("note", aggregate.Schema(2)),
		aggregate.Upcast("note", 1, aggregate.JSONUpcaster(2, func(map[string]any) error { return nil })))
	if err != nil {
		f.Fatal(err)
	}
	c := Events(events)
	seed, _ := c.Encode(note{Text: "hi"})
	f.Add(seed)
	f.Add(append([]byte{0, 1, 4}, `note{"text":"old"}`...))
	f.Add([]byte{0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := c.Decode(b)
		if err != nil {
			return
		}
		again, err := c.Encode(v)
		if err != nil {
			t.Fatalf("%x decoded to %#v, which does not encode: %v", b, v, err)
		}
		if v2, err := c.Decode(again); err != nil || v2 != v {
			t.Fatalf("%x: re-encoded %x decodes to %#v, %v; want %#v", b, again, v2, err, v)
		}
	})
}
