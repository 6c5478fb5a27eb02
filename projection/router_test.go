package projection_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/projection"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// paymentMade is schema 2 of "payment.made": schema 1 called the customer
// field "payer". Before it was "payment.made" it was "payment.done", which
// had only schema 1.
type paymentMade struct {
	Customer string `json:"customer"`
	Amount   int64  `json:"amount"`
}

type refunded struct {
	Customer string `json:"customer"`
	Amount   int64  `json:"amount"`
}

func paymentEvents(t *testing.T) *aggregate.Events[any] {
	t.Helper()
	renamePayer := aggregate.JSONUpcaster(2, func(m map[string]any) error {
		m["customer"] = m["payer"]
		delete(m, "payer")
		return nil
	})
	ev, err := aggregate.NewEvents[any](
		aggregate.Type[paymentMade]("payment.made", aggregate.Schema(2)),
		aggregate.Type[refunded]("payment.refunded"),
		aggregate.Upcast("payment.made", 1, renamePayer),
		aggregate.Upcast("payment.done", 1, func(r aggregate.Raw) (aggregate.Raw, error) {
			r, err := renamePayer(r)
			r.Type = "payment.made"
			return r, err
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

// runRouted appends events (one stream each) to a fresh topic, runs a
// projection of r over them to the end and returns it.
func runRouted(t *testing.T, name string, r *projection.Router, tables []projection.AnyTable, events ...eventstore.Event) (eventstore.Store, *projection.Projection) {
	t.Helper()
	ctx := context.Background()
	s, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.CreateTopic(ctx, "payments", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	for i, e := range events {
		if _, err := s.Append(ctx, "payments", string(rune('a'+i)), eventstore.NoStream, []eventstore.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	p, err := projection.New(s, name, []string{"payments"}, r, projection.WithTables(tables...),
		projection.WithErrorPolicy(consume.Park(name+".dlq")), projection.WithRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	catchUp(t, s, p, "payments")
	return s, p
}

// TestOnUpcasts is the read side of upcasting: an event stored at schema
// version 1, before a field was renamed, reaches the projection's handler
// upcast to the registry's version 2, the renamed field filled; so does
// one stored under the type's old name. (Decoding the payload as stored,
// as a JSON router without the registry did, leaves the field empty.)
func TestOnUpcasts(t *testing.T) {
	events := paymentEvents(t)
	totals, err := projection.NewTable("totals", projection.StringKey(), codec.Int64())
	if err != nil {
		t.Fatal(err)
	}
	var seen []paymentMade
	r := projection.NewRouter()
	if err := projection.On(r, events, func(tx *projection.Tx, _ eventstore.Record, e paymentMade) error {
		seen = append(seen, e)
		n, _, err := totals.Load(tx, e.Customer)
		if err != nil {
			return err
		}
		return totals.Put(tx, e.Customer, n+e.Amount)
	}); err != nil {
		t.Fatal(err)
	}
	current, err := events.Encode(paymentMade{Customer: "ada", Amount: 1})
	if err != nil {
		t.Fatal(err)
	}
	_, p := runRouted(t, "upcasting", r, []projection.AnyTable{totals},
		eventstore.Event{Type: "payment.made", SchemaVersion: 1, Payload: []byte(`{"payer":"ada","amount":10}`)},
		eventstore.Event{Type: "payment.done", SchemaVersion: 1, Payload: []byte(`{"payer":"ada","amount":100}`)},
		current,
	)
	for _, e := range seen {
		if e.Customer == "" {
			t.Errorf("the handler saw %+v: the renamed field is empty", e)
		}
	}
	if got := scanAll(t, totals); !equalMaps(got, map[string]int64{"ada": 111}) {
		t.Errorf("totals = %v, want ada: 111 (seen %+v)", got, seen)
	}
	if parked, err := p.Parked(context.Background()); err != nil || len(parked) != 0 {
		t.Errorf("parked %+v, %v", parked, err)
	}
}

// TestOnProto routes a Protobuf event type, which a JSON router could not
// decode: the registry's default format reads it in Protobuf's binary
// encoding.
func TestOnProto(t *testing.T) {
	events, err := aggregate.NewEvents[proto.Message](
		aggregate.Type[*wrapperspb.StringValue]("doc.renamed"),
		aggregate.Type[*wrapperspb.Int64Value]("doc.resized"),
	)
	if err != nil {
		t.Fatal(err)
	}
	names, err := projection.NewTable("names", projection.StringKey(), codec.String())
	if err != nil {
		t.Fatal(err)
	}
	sizes, err := projection.NewTable("sizes", projection.StringKey(), codec.Proto[*wrapperspb.Int64Value]())
	if err != nil {
		t.Fatal(err)
	}
	r := projection.NewRouter()
	if err := projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, e *wrapperspb.StringValue) error {
		return names.Put(tx, rec.Key, e.GetValue())
	}); err != nil {
		t.Fatal(err)
	}
	if err := projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, e *wrapperspb.Int64Value) error {
		return sizes.Put(tx, rec.Key, e)
	}); err != nil {
		t.Fatal(err)
	}
	var evs []eventstore.Event
	for _, m := range []proto.Message{wrapperspb.String("draft"), wrapperspb.Int64(42), wrapperspb.String("")} {
		e, err := events.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	if evs[0].Payload[0] == '"' || evs[0].Payload[0] == '{' {
		t.Fatalf("payload %q is JSON, not Protobuf", evs[0].Payload)
	}
	runRouted(t, "docs", r, []projection.AnyTable{names, sizes}, evs...)
	if got := scanAll(t, names); !equalMaps(got, map[string]string{"a": "draft", "c": ""}) {
		t.Errorf("names = %v", got)
	}
	if got := scanAll(t, sizes); len(got) != 1 || got["b"].GetValue() != 42 {
		t.Errorf("sizes = %v", got)
	}
}

// TestOnSkipsAndParks: a record of a registered type without a handler is
// skipped even when this program cannot read it (a newer schema), while
// one the router would hand to a handler and cannot read is parked.
func TestOnSkipsAndParks(t *testing.T) {
	events := paymentEvents(t)
	// Handlers record what they see in a table: a batch in which a record
	// fails is applied again without it, so effects outside the read
	// model would be counted twice.
	seen, err := projection.NewTable("seen", projection.StringKey(), codec.String())
	if err != nil {
		t.Fatal(err)
	}
	r := projection.NewRouter()
	if err := projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, e paymentMade) error {
		return seen.Put(tx, rec.Key, "handled "+e.Customer)
	}); err != nil {
		t.Fatal(err)
	}
	r.Otherwise(func(tx *projection.Tx, rec eventstore.Record) error { return seen.Put(tx, rec.Key, "other "+rec.Type) })
	_, p := runRouted(t, "skips", r, []projection.AnyTable{seen},
		eventstore.Event{Type: "payment.refunded", SchemaVersion: 1, Payload: []byte(`{}`)},           // a: no handler
		eventstore.Event{Type: "payment.refunded", SchemaVersion: 7, Payload: []byte(`{}`)},           // b: no handler, unreadable
		eventstore.Event{Type: "payment.made", SchemaVersion: 3, Payload: []byte(`{}`)},               // c: newer than this program
		eventstore.Event{Type: "payment.made", SchemaVersion: 2, Payload: []byte(`{"amount":"x"}`)},   // d: does not decode
		eventstore.Event{Type: "payment.done", SchemaVersion: 1, Payload: []byte(`not json`)},         // e: the upcaster fails
		eventstore.Event{Type: "unrelated", Payload: []byte(`{}`)},                                    // f: no registry's
		eventstore.Event{Type: "payment.made", SchemaVersion: 2, Payload: []byte(`{"customer":"x"}`)}, // g: handled
	)
	want := map[string]string{"a": "other payment.refunded", "b": "other payment.refunded", "f": "other unrelated", "g": "handled x"}
	if got := scanAll(t, seen); !equalMaps(got, want) {
		t.Errorf("seen %v, want %v", got, want)
	}
	parked, err := p.Parked(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, pr := range parked {
		keys = append(keys, pr.Record.Key)
		if pr.Record.Key == "c" && !strings.Contains(pr.Error, "newer than this program") {
			t.Errorf("parked c: %s", pr.Error)
		}
	}
	if len(keys) != 3 || !strings.Contains(strings.Join(keys, ","), "c") || !strings.Contains(strings.Join(keys, ","), "d") || !strings.Contains(strings.Join(keys, ","), "e") {
		t.Errorf("parked %v, want c, d and e", keys)
	}
}

// TestOnRegistrationErrors: mistakes fail at registration, naming what was
// wrong, instead of leaving a handler that never sees an event.
func TestOnRegistrationErrors(t *testing.T) {
	events := paymentEvents(t)
	type notRegistered struct{}
	noop := func(*projection.Tx, eventstore.Record, paymentMade) error { return nil }
	r := projection.NewRouter()
	check := func(what string, err error, want string) {
		t.Helper()
		if !errors.Is(err, projection.ErrInvalidArgument) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an invalid argument mentioning %q", what, err, want)
		}
	}
	check("a type not in the registry",
		projection.On(r, events, func(*projection.Tx, eventstore.Record, notRegistered) error { return nil }),
		"projection_test.notRegistered is not registered")
	if err := projection.On(r, events, func(*projection.Tx, eventstore.Record, notRegistered) error { return nil }); !errors.Is(err, aggregate.ErrUnknownEventType) {
		t.Errorf("a type not in the registry: %v, want it to wrap aggregate.ErrUnknownEventType too", err)
	}
	check("a pointer to a registered struct",
		projection.On(r, events, func(*projection.Tx, eventstore.Record, *paymentMade) error { return nil }),
		"*projection_test.paymentMade is not registered")
	check("nil registry", projection.On[paymentMade, any](r, nil, noop), "registry")
	check("nil handler", projection.On[paymentMade](r, events, nil), "handler")
	check("nil router", projection.On(nil, events, noop), "router")
	if err := projection.On(r, events, noop); err != nil {
		t.Fatal(err)
	}
	check("the same type twice", projection.On(r, events, noop), `"payment.made" (projection_test.paymentMade) already has a handler`)

	// Another registry that reads one of the same names.
	other, err := aggregate.NewEvents[any](aggregate.Type[refunded]("payment.refunded"))
	if err != nil {
		t.Fatal(err)
	}
	check("a name in two registries",
		projection.On(r, other, func(*projection.Tx, eventstore.Record, refunded) error { return nil }),
		`"payment.refunded" is read by two registries`)

	// OnCodec bypasses registries, but not for a name one reads, its old
	// names included.
	for _, name := range []string{"payment.refunded", "payment.done"} {
		check("OnCodec of "+name,
			projection.OnCodec(r, name, codec.JSON[refunded](), func(*projection.Tx, eventstore.Record, refunded) error { return nil }),
			"route it with On")
	}
	check("OnCodec with a nil codec", projection.OnCodec[int](r, "x", nil, func(*projection.Tx, eventstore.Record, int) error { return nil }), "codec is nil")
	check("OnCodec with nil functions", projection.OnCodec(r, "x", codec.Funcs[int](nil, nil), func(*projection.Tx, eventstore.Record, int) error { return nil }), "nil")
	check("OnCodec of an empty name", projection.OnCodec(r, "", codec.Int64(), func(*projection.Tx, eventstore.Record, int64) error { return nil }), "empty")
	r2 := projection.NewRouter()
	if err := projection.OnCodec(r2, "payment.refunded", codec.JSON[refunded](), func(*projection.Tx, eventstore.Record, refunded) error { return nil }); err != nil {
		t.Fatal(err)
	}
	check("On of a registry with a name OnCodec took", projection.On(r2, events, noop), "already has an OnCodec handler")
}
