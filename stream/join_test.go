package stream_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
)

type order struct {
	ID     string `json:"id"`
	Amount int    `json:"amount"`
}

type enriched struct {
	Order string `json:"order"`
	Name  string `json:"name"`
	Known bool   `json:"known"`
}

// A stream of orders keyed by user joined with a table of user names read
// from a compacted topic: inner and left joins, through updates and deletes
// of the table.
func TestStreamTableJoin(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	createTopic(t, s, "users", 3, eventstore.Compact)
	createTopic(t, s, "orders", 3, eventstore.Retain)

	topo := stream.NewTopology()
	users := stream.SourceTable(topo, "users", "users-by-id", codec.String(), codec.String())
	orders := stream.Source(topo, "orders", codec.String(), codec.JSON[order]())
	inner := stream.Join(orders, users, func(_ string, o order, name string) enriched {
		return enriched{Order: o.ID, Name: name, Known: true}
	})
	left := stream.LeftJoin(orders, users, func(_ string, o order, name string, ok bool) enriched {
		return enriched{Order: o.ID, Name: name, Known: ok}
	})
	stream.ToTopic(inner, "orders-inner", stream.EventType("order.enriched"))
	stream.ToTopic(left, "orders-left")
	app, err := stream.NewApp(s, topo, "join")
	if err != nil {
		t.Fatal(err)
	}
	r := start(t, app)

	put(t, s, "users", "u1", []byte("Ann"), sec(0))
	put(t, s, "users", "u2", []byte("Bob"), sec(0))
	waitCaughtUp(t, app)
	put(t, s, "orders", "u1", []byte(`{"id":"o1"}`), sec(1))
	put(t, s, "orders", "u3", []byte(`{"id":"o2"}`), sec(1))
	waitCaughtUp(t, app)

	put(t, s, "users", "u1", []byte("Anna"), sec(2)) // update
	put(t, s, "users", "u2", nil, sec(2))            // delete
	put(t, s, "users", "u3", []byte("Cid"), sec(2))  // insert
	waitCaughtUp(t, app)
	put(t, s, "orders", "u1", []byte(`{"id":"o3"}`), sec(3))
	put(t, s, "orders", "u2", []byte(`{"id":"o4"}`), sec(3))
	put(t, s, "orders", "u3", []byte(`{"id":"o5"}`), sec(3))
	waitCaughtUp(t, app)
	if err := r.stop(); err != nil {
		t.Fatal(err)
	}

	results := func(topic string) []string {
		var out []string
		for _, rec := range readTopic(t, s, topic) {
			var e enriched
			if err := json.Unmarshal(rec.Payload, &e); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s:%s:%s:%v", rec.Key, e.Order, e.Name, e.Known))
			if rec.Headers[stream.HeaderSource] == "" || rec.CausationID == "" {
				t.Errorf("record %+v lacks its source position or causation", rec)
			}
		}
		slices.Sort(out)
		return out
	}
	if got, want := results("orders-inner"), []string{"u1:o1:Ann:true", "u1:o3:Anna:true", "u3:o5:Cid:true"}; !slices.Equal(got, want) {
		t.Errorf("inner join:\n got %q\nwant %q", got, want)
	}
	if got, want := results("orders-left"), []string{"u1:o1:Ann:true", "u1:o3:Anna:true", "u2:o4::false", "u3:o2::false", "u3:o5:Cid:true"}; !slices.Equal(got, want) {
		t.Errorf("left join:\n got %q\nwant %q", got, want)
	}
	if recs := readTopic(t, s, "orders-inner"); recs[0].Type != "order.enriched" {
		t.Errorf("sink event type %q, want order.enriched", recs[0].Type)
	}

	// The table answers queries by key.
	if name, ok, err := users.Get(ctx, app, "u1"); err != nil || !ok || name != "Anna" {
		t.Errorf("Get(u1) = %q, %v, %v; want Anna", name, ok, err)
	}
	if _, ok, err := users.Get(ctx, app, "u2"); err != nil || ok {
		t.Errorf("Get(u2) after its tombstone = %v, %v; want absent", ok, err)
	}
	var all []string
	for kv, err := range users.All(ctx, app) {
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, kv.Key+"="+kv.Value)
	}
	if want := []string{"u1=Anna", "u3=Cid"}; !slices.Equal(all, want) {
		t.Errorf("All = %q, want %q", all, want)
	}
}

// A stream re-keyed and counted: the count reads through a repartition
// topic, and its table and update stream hold the per-key totals.
func TestRekeyAndCount(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	createTopic(t, s, "views", 4, eventstore.Retain)
	want := map[string]int64{}
	for i := range 200 {
		user := fmt.Sprintf("user-%d", i%7)
		put(t, s, "views", fmt.Sprintf("page-%d", i%13), fmt.Appendf(nil, `{"user":%q,"page":"p"}`, user), sec(i))
		want[user]++
	}
	topo := stream.NewTopology()
	views := stream.Source(topo, "views", codec.String(), codec.JSON[PageView]())
	byUser := stream.Map(views, func(_ string, v PageView) (string, string) { return v.User, v.Page })
	byUser = stream.WithCodecs(byUser, codec.String(), codec.String())
	counts := stream.Count(stream.GroupByKey(byUser), "views-by-user")
	stream.ToTopic(stream.ToStream(counts), "user-counts")
	app, err := stream.NewApp(s, topo, "rekey", stream.WithBatchSize(16))
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app)

	for user, n := range want {
		if got, ok, err := counts.Get(ctx, app, user); err != nil || !ok || got != n {
			t.Errorf("Get(%s) = %d, %v, %v; want %d", user, got, ok, err, n)
		}
	}
	// The last update of each key in the output topic is its total.
	last := map[string]int64{}
	for _, rec := range readTopic(t, s, "user-counts") {
		n, err := codec.Int64().Decode(rec.Payload)
		if err != nil {
			t.Fatal(err)
		}
		last[rec.Key] = max(last[rec.Key], n)
	}
	for user, n := range want {
		if last[user] != n {
			t.Errorf("output for %s ends at %d, want %d", user, last[user], n)
		}
	}
	rep := readTopic(t, s, "rekey-views-by-user-repartition")
	if len(rep) != 200 {
		t.Errorf("repartition topic has %d records, want 200", len(rep))
	}
	for _, rec := range rep {
		if p, _ := s.PartitionFor(rec.Topic, rec.Key); p != rec.Partition {
			t.Fatalf("repartition record of %s in partition %d, want %d", rec.Key, rec.Partition, p)
		}
	}
	m, err := app.Metrics(ctx)
	if err != nil || m.ProcessedRecords != 400 {
		t.Errorf("metrics %+v, %v; want 400 processed (200 source + 200 repartition)", m, err)
	}
}
