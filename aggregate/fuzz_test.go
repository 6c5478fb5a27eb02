package aggregate_test

import (
	"errors"
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/eventstore"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// FuzzDecode feeds arbitrary records through the registry's upcasters and
// codecs: Decode returns an event or a *DecodeError, never panics.
func FuzzDecode(f *testing.F) {
	f.Add("tally.added", 3, []byte(`{"amount":1,"note":"x"}`))
	f.Add("tally.added", 2, []byte(`{"amount":1}`))
	f.Add("tally.add", 1, []byte(`{"n":1}`))
	f.Add("tally.add", 1, []byte(`[]`))
	f.Add("tally.cleared", 1, []byte(`{}`))
	f.Add("doc.changed", 1, []byte{0x0a, 0x03, 0x0a, 0x01, 0x61})
	f.Add("nope", 0, []byte(nil))
	events := tallyEvents(f)
	protoEvents, err := aggregate.NewEvents[proto.Message](aggregate.Type[*structpb.Struct]("doc.changed"))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, typ string, schema int, payload []byte) {
		rec := eventstore.Record{Topic: "t", Key: "k", Version: 1, Type: typ, SchemaVersion: schema, Payload: payload}
		check := func(err error) {
			var de *aggregate.DecodeError
			if err != nil && !errors.As(err, &de) {
				t.Fatalf("Decode error is not a *DecodeError: %v", err)
			}
		}
		e, err := events.Decode(rec)
		check(err)
		if err == nil {
			// What decodes encodes again.
			if _, err := events.Encode(e); err != nil {
				t.Fatalf("re-encode %#v: %v", e, err)
			}
		}
		_, err = protoEvents.Decode(rec)
		check(err)
	})
}

// FuzzDecodeSnapshot checks that the snapshot envelope decoder never panics
// and that what it accepts encodes back to the same bytes.
func FuzzDecodeSnapshot(f *testing.F) {
	f.Add(aggregate.EncodeSnapshot(aggregate.Snapshot{StreamVersion: 100, Schema: 1, State: []byte(`{"Total":1}`)}))
	f.Add(aggregate.EncodeSnapshot(aggregate.Snapshot{StreamVersion: 1 << 40, Schema: 7}))
	f.Add([]byte("MSN\x01"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := aggregate.DecodeSnapshot(b)
		if err != nil {
			return
		}
		if s.Schema < 1 {
			t.Fatalf("accepted schema %d", s.Schema)
		}
		again, err := aggregate.DecodeSnapshot(aggregate.EncodeSnapshot(s))
		if err != nil || again.StreamVersion != s.StreamVersion || again.Schema != s.Schema || string(again.State) != string(s.State) {
			t.Fatalf("round trip of %+v = %+v, %v", s, again, err)
		}
	})
}
