package stream_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// shopEvent is the event type of a shop aggregate.
type shopEvent interface{ isShopEvent() }

// sold is schema 2 of "item.sold": schema 1 called the item field "sku".
// Before it was "item.sold" it was "item.bought".
type sold struct {
	Item string `json:"item"`
	Qty  int    `json:"qty"`
}

type restocked struct {
	Item string `json:"item"`
	Qty  int    `json:"qty"`
}

func (sold) isShopEvent()      {}
func (restocked) isShopEvent() {}

func shopEvents(t testing.TB) *aggregate.Events[shopEvent] {
	t.Helper()
	skuToItem := aggregate.JSONUpcaster(2, func(m map[string]any) error {
		m["item"] = m["sku"]
		delete(m, "sku")
		return nil
	})
	ev, err := aggregate.NewEvents[shopEvent](
		aggregate.Type[sold]("item.sold", aggregate.Schema(2)),
		aggregate.Type[restocked]("item.restocked"),
		aggregate.Upcast("item.sold", 1, skuToItem),
		aggregate.Upcast("item.bought", 1, func(r aggregate.Raw) (aggregate.Raw, error) {
			r, err := skuToItem(r)
			r.Type = "item.sold"
			return r, err
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func appendEvent(t testing.TB, s eventstore.Store, topic, key string, ev eventstore.Event) {
	t.Helper()
	ev.Timestamp = t0
	if _, err := s.Append(context.Background(), topic, key, eventstore.Any, []eventstore.Event{ev}, eventstore.NoSync()); err != nil {
		t.Fatal(err)
	}
}

// TestEventsSource: a stream sourced with stream.Events sees an
// aggregate's events as the aggregate reads them, upcast from older schema
// versions and old names; the events survive a repartition, a state store
// and a sink topic (read back by another App), where the App keeps them
// self-describing; and a table sourced with Events serves them back.
func TestEventsSource(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	createTopic(t, s, "shop", 2, eventstore.Retain)
	events := shopEvents(t)
	encode := func(e shopEvent) eventstore.Event {
		ev, err := events.Encode(e)
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	appendEvent(t, s, "shop", "shop-1", eventstore.Event{Type: "item.sold", SchemaVersion: 1, Payload: []byte(`{"sku":"apple","qty":2}`)})
	appendEvent(t, s, "shop", "shop-2", eventstore.Event{Type: "item.bought", SchemaVersion: 1, Payload: []byte(`{"sku":"apple","qty":3}`)})
	appendEvent(t, s, "shop", "shop-1", encode(sold{Item: "pear", Qty: 1}))
	appendEvent(t, s, "shop", "shop-2", encode(restocked{Item: "apple", Qty: 10}))

	topo := stream.NewTopology()
	shop := stream.Source(topo, "shop", codec.String(), stream.Events(events))
	// Re-keyed by item: the events go through a repartition topic.
	byItem := stream.SelectKey(shop, func(_ string, e shopEvent) string {
		switch e := e.(type) {
		case sold:
			return e.Item
		case restocked:
			return e.Item
		}
		return ""
	})
	byItem = stream.WithCodecs(byItem, codec.String(), stream.Events(events))
	// The last event of each item, kept in a store.
	last := stream.ToTable(byItem, "last-event")
	stock := stream.Aggregate(stream.GroupByKey(byItem), "stock", func() int { return 0 }, func(_ string, e shopEvent, n int) int {
		switch e := e.(type) {
		case sold:
			return n - e.Qty
		case restocked:
			return n + e.Qty
		}
		return n
	}, codec.JSON[int]())
	stream.ToTopic(byItem, "shop-by-item")
	app, err := stream.NewApp(s, topo, "shop-stock")
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app)

	for item, want := range map[string]int{"apple": 5, "pear": -1} {
		if got, ok, err := stock.Get(ctx, app, item); err != nil || !ok || got != want {
			t.Errorf("stock[%s] = %d, %v, %v; want %d (the upcast sku reaches the stream as item)", item, got, ok, err, want)
		}
	}
	if got, ok, err := last.Get(ctx, app, "pear"); err != nil || !ok || got != (sold{Item: "pear", Qty: 1}) {
		t.Errorf("last[pear] = %#v, %v, %v", got, ok, err)
	}

	// Another App reads the sink topic back with the same codec, and a
	// table sourced from the aggregate's own topic keeps its events.
	topo2 := stream.NewTopology()
	var items []string
	stream.Peek(stream.Source(topo2, "shop-by-item", codec.String(), stream.Events(events)), func(k string, e shopEvent, _ time.Time) {
		if _, ok := e.(sold); ok {
			items = append(items, k)
		}
	})
	latest := stream.SourceTable(topo2, "shop", "latest-by-shop", codec.String(), stream.Events(events))
	app2, err := stream.NewApp(s, topo2, "shop-reader")
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app2)
	if strings.Join(sorted(items), ",") != "apple,apple,pear" {
		t.Errorf("sold items read back from the sink: %v", items)
	}
	if got, ok, err := latest.Get(ctx, app2, "shop-1"); err != nil || !ok || got != (sold{Item: "pear", Qty: 1}) {
		t.Errorf("latest[shop-1] = %#v, %v, %v", got, ok, err)
	}
	if got, ok, err := latest.Get(ctx, app2, "shop-2"); err != nil || !ok || got != (restocked{Item: "apple", Qty: 10}) {
		t.Errorf("latest[shop-2] = %#v, %v, %v", got, ok, err)
	}
}

// TestEventsSourceBadRecord: a record the registry cannot read stops the
// App with an error naming it, or is skipped with SkipBadRecords.
func TestEventsSourceBadRecord(t *testing.T) {
	s := openStore(t)
	createTopic(t, s, "shop", 1, eventstore.Retain)
	appendEvent(t, s, "shop", "shop-1", eventstore.Event{Type: "item.sold", SchemaVersion: 3, Payload: []byte(`{}`)})
	topo := stream.NewTopology()
	stream.Source(topo, "shop", codec.String(), stream.Events(shopEvents(t)))
	app, err := stream.NewApp(s, topo, "shop-bad")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = app.Run(ctx)
	if !errors.Is(err, stream.ErrBadRecord) || !strings.Contains(err.Error(), "schema v3 is newer than this program's v2") {
		t.Errorf("Run = %v, want a bad record with the registry's decode error", err)
	}

	skipping, err := stream.NewApp(s, topo, "shop-skip", stream.SkipBadRecords())
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, skipping)
	if m, err := skipping.Metrics(context.Background()); err != nil || m.SkippedRecords != 1 {
		t.Errorf("SkippedRecords = %d, %v; want 1", m.SkippedRecords, err)
	}
}

// TestEventsCodec: the self-describing encoding round-trips, upcasts what
// was encoded at an older schema version, and refuses what it did not
// write.
func TestEventsCodec(t *testing.T) {
	events := shopEvents(t)
	c := stream.Events(events)
	b, err := c.Encode(sold{Item: "fig", Qty: 4})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.Decode(b); err != nil || got != (sold{Item: "fig", Qty: 4}) {
		t.Errorf("Decode(Encode) = %#v, %v", got, err)
	}
	if ab, err := codec.Append(c, []byte("x"), shopEvent(sold{Item: "fig", Qty: 4})); err != nil || string(ab) != "x"+string(b) {
		t.Errorf("Append = %q, %v", ab, err)
	}
	// What an older program encoded at schema 1 (type, version, payload).
	old := append([]byte{0, 1, byte(len("item.bought"))}, "item.bought"...)
	old = append(old, `{"sku":"kiwi","qty":1}`...)
	if got, err := c.Decode(old); err != nil || got != (sold{Item: "kiwi", Qty: 1}) {
		t.Errorf("Decode(schema 1) = %#v, %v", got, err)
	}
	for name, bad := range map[string][]byte{
		"empty":        {},
		"no marker":    []byte(`{"item":"x"}`),
		"no version":   {0},
		"version 0":    {0, 0, 1, 'a'},
		"long name":    {0, 1, 9, 'a'},
		"empty name":   {0, 1, 0},
		"unregistered": append([]byte{0, 1, 1, 'z'}, `{}`...),
	} {
		if _, err := c.Decode(bad); err == nil {
			t.Errorf("Decode(%s) succeeded", name)
		}
	}
	if _, err := c.Encode(nil); !errors.Is(err, aggregate.ErrUnknownEventType) {
		t.Errorf("Encode(nil) = %v", err)
	}
	if err := codec.Check(c); err != nil {
		t.Errorf("Check = %v", err)
	}
	nilc := stream.Events[shopEvent](nil)
	if err := codec.Check(nilc); err == nil {
		t.Error("Check(Events(nil)) = nil")
	}
	if _, err := nilc.Encode(sold{}); err == nil {
		t.Error("Events(nil).Encode succeeded")
	}
	if _, err := nilc.Decode(b); err == nil {
		t.Error("Events(nil).Decode succeeded")
	}
}

// TestEventsProto: Protobuf events go through a stream too.
func TestEventsProto(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	createTopic(t, s, "docs", 1, eventstore.Retain)
	events, err := aggregate.NewEvents[proto.Message](aggregate.Type[*wrapperspb.StringValue]("doc.renamed"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b"} {
		ev, err := events.Encode(wrapperspb.String(name))
		if err != nil {
			t.Fatal(err)
		}
		appendEvent(t, s, "docs", "doc-1", ev)
	}
	topo := stream.NewTopology()
	names := stream.ToTable(stream.Source(topo, "docs", codec.String(), stream.Events(events)), "doc-names")
	app, err := stream.NewApp(s, topo, "docs")
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app)
	if got, ok, err := names.Get(ctx, app, "doc-1"); err != nil || !ok || got.(*wrapperspb.StringValue).GetValue() != "b" {
		t.Errorf("doc-names[doc-1] = %v, %v, %v", got, ok, err)
	}
}

func sorted(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
