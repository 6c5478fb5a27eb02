package broker_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/eventstore"
)

func TestCodecRoundTrip(t *testing.T) {
	recs := []eventstore.Record{
		{ID: uuid.New(), Topic: "orders", Partition: 3, Offset: 42, Key: "order-1", Version: 7, Type: "order.placed",
			SchemaVersion: 2, Payload: []byte(`{"a":1}`), Timestamp: time.Date(2026, 3, 4, 5, 6, 7, 8, time.UTC),
			CorrelationID: "c", CausationID: "d", Headers: map[string]string{"x": "y", "muninn_key": "h1", "muninn_h_z": "h2"}},
		{ID: uuid.New(), Topic: "t", Key: "k", Version: 1, SchemaVersion: 1, Payload: nil}, // tombstone
		{ID: uuid.New(), Topic: "t", Key: "k", Version: 2, Type: "e", SchemaVersion: 1, Payload: []byte{}},
	}
	for _, rec := range recs {
		got, err := broker.DecodeMessage(broker.EncodeRecord(rec))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, rec) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, rec)
		}
	}
}

func TestDecodeForeignMessage(t *testing.T) {
	msg := message.NewMessage("not-a-uuid", []byte("p"))
	msg.Metadata.Set("name", "v")
	rec, err := broker.DecodeMessage(msg)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := broker.DecodeMessage(message.NewMessage("not-a-uuid", nil))
	if rec.ID != again.ID || rec.ID == (uuid.UUID{}) {
		t.Errorf("derived IDs %s and %s differ", rec.ID, again.ID)
	}
	if rec.SchemaVersion != 1 || rec.Headers["name"] != "v" || string(rec.Payload) != "p" || again.Payload == nil {
		t.Errorf("decoded %+v / %+v", rec, again)
	}
	if _, err := broker.DecodeMessage(message.NewMessage("", nil)); err == nil {
		t.Error("empty UUID accepted")
	}
}

func FuzzDecodeMessage(f *testing.F) {
	f.Add("6f1c6f4e-5a4c-4b43-9d7e-0d1c0b7f2a11", []byte("{}"), "muninn_schema_version", "2", "muninn_timestamp", "2026-01-02T03:04:05.000000006Z")
	f.Add("x", []byte(nil), "muninn_offset", "-1", "muninn_h_muninn_key", "v")
	f.Add("", []byte("p"), "muninn_tombstone", "true", "muninn_stream_version", "18446744073709551615")
	f.Fuzz(func(t *testing.T, id string, payload []byte, k1, v1, k2, v2 string) {
		msg := message.NewMessage(id, payload)
		msg.Metadata.Set(k1, v1)
		msg.Metadata.Set(k2, v2)
		rec, err := broker.DecodeMessage(msg)
		if err != nil {
			return
		}
		// What decodes re-encodes to a message that decodes the same.
		again, err := broker.DecodeMessage(broker.EncodeRecord(rec))
		if err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if !rec.Timestamp.IsZero() {
			rec.Timestamp = rec.Timestamp.UTC()
		}
		if again.ID != rec.ID || again.Key != rec.Key || again.Type != rec.Type || again.Version != rec.Version ||
			again.SchemaVersion != rec.SchemaVersion || !again.Timestamp.Equal(rec.Timestamp) ||
			string(again.Payload) != string(rec.Payload) || (again.Payload == nil) != (rec.Payload == nil) ||
			!reflect.DeepEqual(again.Headers, rec.Headers) {
			t.Fatalf("not stable:\n%+v\n%+v", rec, again)
		}
	})
}
