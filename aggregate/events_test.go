package aggregate_test

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/codec"
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
	jev, err := aggregate.NewEvents[proto.Message](aggregate.WithCodec(codec.JSONFormat),
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
	pev, err := aggregate.NewEvents[TallyEvent](aggregate.WithCodec(codec.ProtoFormat), aggregate.Type[Added]("a"))
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

// TestTypeOfAndResolve: the typed view of one event type, and the
// resolution of records through renames and upcasts, as routers use them.
func TestTypeOfAndResolve(t *testing.T) {
	ev := tallyEvents(t)
	if got := ev.Renamed(); len(got) != 1 || got[0] != "tally.add" {
		t.Errorf("Renamed = %q, want [tally.add]", got)
	}
	added, err := aggregate.TypeOf[Added](ev)
	if err != nil {
		t.Fatal(err)
	}
	if added.Name() != "tally.added" || added.SchemaVersion() != 3 {
		t.Errorf("TypeOf[Added] = %q v%d", added.Name(), added.SchemaVersion())
	}
	b, err := added.Codec().Encode(Added{Amount: 2, Note: "x"})
	if err != nil || string(b) != `{"amount":2,"note":"x"}` {
		t.Errorf("Codec().Encode = %s, %v", b, err)
	}

	// A v1 record under the old name resolves to the current type.
	old := eventstore.Record{Topic: "tally", Key: "t-1", Type: "tally.add", SchemaVersion: 1, Payload: []byte(`{"n":4}`)}
	raw, err := ev.Resolve(old)
	if err != nil || raw.Type != "tally.added" || raw.SchemaVersion != 3 {
		t.Fatalf("Resolve(v1) = %+v, %v", raw, err)
	}
	got, err := added.Codec().Decode(raw.Payload)
	if err != nil || got != (Added{Amount: 4, Note: "from v2"}) {
		t.Errorf("decode the resolved payload = %+v, %v", got, err)
	}
	if got, err := added.Decode(old); err != nil || got != (Added{Amount: 4, Note: "from v2"}) {
		t.Errorf("EventType.Decode(v1) = %+v, %v", got, err)
	}

	// A record that resolves to another type is not an Added.
	cleared := eventstore.Record{Type: "tally.cleared", SchemaVersion: 1, Payload: []byte(`{}`)}
	var de *aggregate.DecodeError
	if _, err := added.Decode(cleared); !errors.Is(err, aggregate.ErrUnknownEventType) || !errors.As(err, &de) || !strings.Contains(err.Error(), `not "tally.added"`) {
		t.Errorf("EventType.Decode(cleared) = %v", err)
	}
	for name, rec := range map[string]eventstore.Record{
		"tombstone": {Type: "tally.added", SchemaVersion: 3},
		"newer":     {Type: "tally.added", SchemaVersion: 4, Payload: []byte(`{}`)},
		"unknown":   {Type: "tally.other", SchemaVersion: 1, Payload: []byte(`{}`)},
	} {
		if _, err := ev.Resolve(rec); !errors.As(err, &de) {
			t.Errorf("Resolve(%s) = %v, want a *DecodeError", name, err)
		}
	}

	if gt, ok := ev.GoType("tally.added"); !ok || gt != reflect.TypeFor[Added]() {
		t.Errorf("GoType(tally.added) = %v, %v", gt, ok)
	}
	if _, ok := ev.GoType("tally.add"); ok {
		t.Error("GoType of a renamed name")
	}
	if _, err := aggregate.TypeOf[unregistered](ev); !errors.Is(err, aggregate.ErrUnknownEventType) || !strings.Contains(err.Error(), "aggregate_test.unregistered is not registered") {
		t.Errorf("TypeOf[unregistered] = %v", err)
	}
	if _, err := aggregate.TypeOf[Added, TallyEvent](nil); !errors.Is(err, aggregate.ErrUnknownEventType) {
		t.Errorf("TypeOf(nil) = %v", err)
	}
	var zero aggregate.EventType[Added]
	if _, err := zero.Decode(cleared); err == nil {
		t.Error("the zero EventType decoded a record")
	}
}

// TestTypeOfProto: a proto message type's codec is Protobuf's binary
// format under the default format.
func TestTypeOfProto(t *testing.T) {
	ev, err := aggregate.NewEvents[proto.Message](aggregate.Type[*wrapperspb.StringValue]("doc.renamed"))
	if err != nil {
		t.Fatal(err)
	}
	et, err := aggregate.TypeOf[*wrapperspb.StringValue](ev)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := ev.Encode(wrapperspb.String("n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := et.Codec().Encode(wrapperspb.String("n"))
	if err != nil || !bytes.Equal(b, rec.Payload) {
		t.Errorf("Codec().Encode = %x, %v; registry wrote %x", b, err, rec.Payload)
	}
	got, err := et.Decode(eventstore.Record{Type: rec.Type, SchemaVersion: rec.SchemaVersion, Payload: rec.Payload})
	if err != nil || got.GetValue() != "n" {
		t.Errorf("Decode = %v, %v", got, err)
	}
}
