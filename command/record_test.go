package command

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestRecordRoundTrip(t *testing.T) {
	for _, res := range []Result{
		{CommandID: "c", AggregateType: "order", AggregateID: "o-1", Topic: "order", Partition: 3, FirstOffset: 10, LastOffset: 11,
			FirstVersion: 4, Version: 5, EventIDs: []uuid.UUID{uuid.New(), uuid.New()}, At: time.Unix(0, 1764000000123456789)},
		{CommandID: "noop", AggregateType: "a", AggregateID: "b", Topic: "a", FirstOffset: -1, LastOffset: -1, At: time.Unix(0, 0)},
	} {
		got, err := decodeRecord(encodeRecord(nil, res))
		if err != nil {
			t.Fatal(err)
		}
		if got.CommandID != res.CommandID || got.AggregateType != res.AggregateType || got.AggregateID != res.AggregateID ||
			got.Topic != res.Topic || got.Partition != res.Partition || got.FirstOffset != res.FirstOffset ||
			got.LastOffset != res.LastOffset || got.FirstVersion != res.FirstVersion || got.Version != res.Version ||
			!slices.Equal(got.EventIDs, res.EventIDs) || !got.At.Equal(res.At) {
			t.Errorf("round trip of %+v = %+v", res, got)
		}
	}
	b := encodeRecord(nil, Result{CommandID: "c", EventIDs: []uuid.UUID{uuid.New()}})
	for i := range len(b) {
		if _, err := decodeRecord(b[:i]); !errors.Is(err, errBadRecord) {
			t.Errorf("truncated at %d: %v", i, err)
		}
	}
	if _, err := decodeRecord(append(b, 0)); !errors.Is(err, errBadRecord) {
		t.Errorf("trailing byte: %v", err)
	}
}

// FuzzDecodeRecord checks that the idempotency record decoder never panics
// and that what it accepts encodes back to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	f.Add(encodeRecord(nil, Result{CommandID: "c", AggregateType: "order", AggregateID: "o-1", Topic: "order", Partition: 3,
		FirstOffset: 10, LastOffset: 11, FirstVersion: 4, Version: 5, EventIDs: []uuid.UUID{uuid.New()}, At: time.Unix(0, 1764000000123456789)}))
	f.Add(encodeRecord(nil, Result{FirstOffset: -1, LastOffset: -1}))
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		res, err := decodeRecord(b)
		if err != nil {
			if !errors.Is(err, errBadRecord) {
				t.Fatalf("error %v does not wrap errBadRecord", err)
			}
			return
		}
		// Varints may be non-minimal, so compare values, not bytes.
		again, err := decodeRecord(encodeRecord(nil, res))
		if err != nil || again.CommandID != res.CommandID || again.AggregateID != res.AggregateID || again.Topic != res.Topic ||
			again.Partition != res.Partition || again.FirstOffset != res.FirstOffset || again.Version != res.Version ||
			!slices.Equal(again.EventIDs, res.EventIDs) || !again.At.Equal(res.At) {
			t.Fatalf("re-encoding %+v gave %+v, %v", res, again, err)
		}
	})
}
