package aggregate_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/eventstore"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func TestNewEventsReportsEveryProblem(t *testing.T) {
	type NotAnEvent struct{}
	_, err := aggregate.NewEvents[TallyEvent](
		aggregate.Type[Added](""),
		aggregate.Type[Added]("a"),
		aggregate.Type[Cleared]("a"),
		aggregate.Type[Added]("b"),
		aggregate.Type[NotAnEvent]("c"),
		aggregate.Type[Cleared]("d", aggregate.Schema(0)),
		aggregate.Type[Cleared](strings.Repeat("x", eventstore.MaxTypeBytes+1)),
		aggregate.Upcast("a", 1, nil),
		aggregate.Upcast("a", 1, func(r aggregate.Raw) (aggregate.Raw, error) { return r, nil }),
		aggregate.Upcast("z", 0, func(r aggregate.Raw) (aggregate.Raw, error) { return r, nil }),
		aggregate.WithCodec(nil),
	)
	if err == nil {
		t.Fatal("NewEvents accepted bad registrations")
	}
	for _, want := range []string{
		"empty name",
		`name "a" is registered for both`,
		`registered as both "a" and "b"`,
		"does not implement",
		"schema version must be at least 1",
		"longer than",
		`upcaster for "a" v1 is nil`,
		`current version is 1, so there is nothing to upcast`,
		"from version must be at least 1",
		"nil codec",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

func TestEncodeDecodeJSON(t *testing.T) {
	ev := tallyEvents(t)
	rec, err := ev.Encode(Added{Amount: 7, Note: "n"})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Type != "tally.added" || rec.SchemaVersion != 3 || string(rec.Payload) != `{"amount":7,"note":"n"}` {
		t.Fatalf("Encode = %+v (payload %s)", rec, rec.Payload)
	}
	got, err := ev.Decode(eventstore.Record{Type: rec.Type, SchemaVersion: 3, Payload: rec.Payload})
	if err != nil || got != (Added{Amount: 7, Note: "n"}) {
		t.Fatalf("Decode = %#v, %v", got, err)
	}
	// An empty struct still has a non-nil payload: nil would be a tombstone.
	rec, err = ev.Encode(Cleared{})
	if err != nil || rec.Payload == nil {
		t.Fatalf("Encode(Cleared) = %+v, %v", rec, err)
	}
	if name, v, ok := ev.Name(Cleared{}); name != "tally.cleared" || v != 1 || !ok {
		t.Errorf("Name(Cleared) = %q %d %v", name, v, ok)
	}
	if _, err := ev.Encode(nil); !errors.Is(err, aggregate.ErrUnknownEventType) {
		t.Errorf("Encode(nil) = %v, want ErrUnknownEventType", err)
	}
}

type unregistered struct{}

func (unregistered) isTallyEvent() {}

func TestDecodeErrorsNameStreamVersionType(t *testing.T) {
	ev := tallyEvents(t)
	if _, err := ev.Encode(unregistered{}); !errors.Is(err, aggregate.ErrUnknownEventType) || !strings.Contains(err.Error(), "unregistered") {
		t.Errorf("Encode(unregistered) = %v", err)
	}
	base := eventstore.Record{Topic: "tally", Key: "t-1", Version: 42, Offset: 99}
	for _, tc := range []struct {
		name     string
		typ      string
		schema   int
		payload  []byte
		sentinel error
		detail   string
	}{
		{"unknown type", "tally.exploded", 1, []byte(`{}`), aggregate.ErrUnknownEventType, "no Go type"},
		{"bad JSON", "tally.added", 3, []byte(`{"amount":"seven"}`), aggregate.ErrUndecodable, "json"},
		{"newer schema", "tally.added", 4, []byte(`{}`), aggregate.ErrUndecodable, "newer than this program's v3"},
		{"tombstone", "tally.cleared", 0, nil, aggregate.ErrUndecodable, "tombstone"},
		{"upcaster fails", "tally.add", 1, []byte(`[1]`), aggregate.ErrUpcast, "decode JSON object"},
		{"gap in chain", "tally.added", 1, []byte(`{}`), aggregate.ErrUpcast, "no upcaster from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := base
			rec.Type, rec.SchemaVersion, rec.Payload = tc.typ, tc.schema, tc.payload
			_, err := ev.Decode(rec)
			var de *aggregate.DecodeError
			if !errors.As(err, &de) || !errors.Is(err, tc.sentinel) {
				t.Fatalf("Decode = %v, want a *DecodeError wrapping %v", err, tc.sentinel)
			}
			for _, want := range []string{`"tally"`, `stream "t-1"`, "version 42", `type "` + tc.typ + `"`, tc.detail} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error lacks %q: %v", want, err)
				}
			}
		})
	}
}

func TestUpcastChain(t *testing.T) {
	ev := tallyEvents(t)
	for _, tc := range []struct {
		typ     string
		version int
		payload string
		want    Added
	}{
		{"tally.add", 1, `{"n":5}`, Added{Amount: 5, Note: "from v2"}},
		{"tally.added", 2, `{"amount":6}`, Added{Amount: 6, Note: "from v2"}},
		{"tally.added", 3, `{"amount":7,"note":"x"}`, Added{Amount: 7, Note: "x"}},
	} {
		got, err := ev.Decode(eventstore.Record{Type: tc.typ, SchemaVersion: tc.version, Payload: []byte(tc.payload)})
		if err != nil || got != tc.want {
			t.Errorf("Decode(%s v%d %s) = %#v, %v; want %#v", tc.typ, tc.version, tc.payload, got, err, tc.want)
		}
	}
	// Upcasters that do not raise the version, drop the type or panic fail
	// the read instead of looping or crashing.
	bad, err := aggregate.NewEvents[TallyEvent](
		aggregate.Type[Added]("x", aggregate.Schema(5)),
		aggregate.Upcast("x", 1, func(r aggregate.Raw) (aggregate.Raw, error) { return r, nil }),
		aggregate.Upcast("x", 2, func(r aggregate.Raw) (aggregate.Raw, error) { r.Type = ""; r.SchemaVersion = 3; return r, nil }),
		aggregate.Upcast("x", 3, func(r aggregate.Raw) (aggregate.Raw, error) { panic("boom") }),
	)
	if err != nil {
		t.Fatal(err)
	}
	for v, want := range map[int]string{1: "version must increase", 2: "empty type name", 3: "panic: boom"} {
		_, err := bad.Decode(eventstore.Record{Key: "k", Type: "x", SchemaVersion: v, Payload: []byte(`{}`)})
		if !errors.Is(err, aggregate.ErrUpcast) || !strings.Contains(err.Error(), want) {
			t.Errorf("v%d: Decode = %v, want ErrUpcast with %q", v, err, want)
		}
	}
}

func TestProtobufCodec(t *testing.T) {
	ev, err := aggregate.NewEvents[proto.Message](
		aggregate.Type[*wrapperspb.StringValue]("doc.renamed"),
		aggregate.Type[*structpb.Struct]("doc.changed", aggregate.Schema(2)),
	)
	if err != nil {
		t.Fatal(err)
	}
	s, err := structpb.NewStruct(map[string]any{"title": "hello", "pages": 3.0, "tags": []any{"a", "b"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []proto.Message{wrapperspb.String("new name"), s, wrapperspb.String("")} {
		rec, err := ev.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		want, _ := proto.MarshalOptions{Deterministic: true}.Marshal(e)
		if string(rec.Payload) != string(want) || rec.Payload == nil {
			t.Errorf("%T payload is not the binary encoding: %x", e, rec.Payload)
		}
		got, err := ev.Decode(eventstore.Record{Type: rec.Type, SchemaVersion: rec.SchemaVersion, Payload: rec.Payload})
		if err != nil || !proto.Equal(got, e) {
			t.Errorf("round trip of %v = %v, %v", e, got, err)
		}
	}
	// JSONCodec writes proto messages as protojson.
	jev, err := aggregate.NewEvents[proto.Message](aggregate.WithCodec(aggregate.JSONCodec),
		aggregate.Type[*wrapperspb.StringValue]("doc.renamed"))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := jev.Encode(wrapperspb.String("x"))
	if err != nil || string(rec.Payload) != `"x"` {
		t.Fatalf("protojson encode = %s, %v", rec.Payload, err)
	}
	got, err := jev.Decode(eventstore.Record{Type: rec.Type, SchemaVersion: 1, Payload: rec.Payload})
	if err != nil || got.(*wrapperspb.StringValue).GetValue() != "x" {
		t.Fatalf("protojson decode = %v, %v", got, err)
	}
	// ProtoCodec refuses what is not a proto message.
	pev, err := aggregate.NewEvents[TallyEvent](aggregate.WithCodec(aggregate.ProtoCodec), aggregate.Type[Added]("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pev.Encode(Added{}); err == nil || !strings.Contains(err.Error(), "not a proto message") {
		t.Errorf("ProtoCodec encoded a struct: %v", err)
	}
	if _, err := ev.Decode(eventstore.Record{Type: "doc.changed", SchemaVersion: 2, Payload: []byte{0xff, 0xff}}); !errors.Is(err, aggregate.ErrUndecodable) {
		t.Errorf("bad protobuf payload: %v", err)
	}
}

// An event changed shape twice; old records are upcast on read.
func ExampleUpcast() {
	type ItemAdded struct {
		SKU      string `json:"sku"`
		Quantity int    `json:"quantity"`
		Currency string `json:"currency"`
	}
	events, err := aggregate.NewEvents[any](
		aggregate.Type[ItemAdded]("cart.item_added", aggregate.Schema(3)),
		// v1 -> v2: "qty" became "quantity".
		aggregate.Upcast("cart.item_added", 1, aggregate.JSONUpcaster(2, func(m map[string]any) error {
			m["quantity"] = m["qty"]
			delete(m, "qty")
			return nil
		})),
		// v2 -> v3: prices got a currency, EUR before.
		aggregate.Upcast("cart.item_added", 2, aggregate.JSONUpcaster(3, func(m map[string]any) error {
			m["currency"] = "EUR"
			return nil
		})),
	)
	if err != nil {
		panic(err)
	}
	old := eventstore.Record{Key: "cart-1", Version: 1, Type: "cart.item_added", SchemaVersion: 1, Payload: []byte(`{"sku":"a","qty":2}`)}
	e, err := events.Decode(old)
	fmt.Printf("%+v %v\n", e, err)
	// Output: {SKU:a Quantity:2 Currency:EUR} <nil>
}
