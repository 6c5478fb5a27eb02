package projection_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/backends"
	"github.com/muninn-es/muninn/projection"
)

// One projection over two topics: both feed one table, read-your-writes
// waits on positions of either, and a rebuild covers both.
func TestTwoTopics(t *testing.T) {
	backends.Run(t, testTwoTopics)
}

func testTwoTopics(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	s := openOrdersOn(t, backend.Open(t), 2)
	if err := s.CreateTopic(ctx, "payments", eventstore.TopicConfig{Partitions: 3}); err != nil {
		t.Fatal(err)
	}
	tbl, err := projection.NewTable("by-topic", projection.PairKey(projection.StringKey(), projection.StringKey()), codec.Int64())
	if err != nil {
		t.Fatal(err)
	}
	h := projection.HandlerFunc(func(tx *projection.Tx, rec eventstore.Record) error {
		k := projection.Pair[string, string]{A: rec.Topic, B: rec.Key}
		n, _, err := tbl.Load(tx, k)
		if err != nil {
			return err
		}
		return tbl.Put(tx, k, n+1)
	})
	p, err := projection.New(s, "two", []string{"orders", "payments"}, h, projection.WithTables(tbl))
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, p)
	defer stop()
	// Read your writes over every partition written: the last position of
	// each (a position only speaks for its own partition).
	lastOf := map[eventstore.TopicPartition]projection.Position{}
	for i := range 40 {
		for _, topic := range []string{"orders", "payments"} {
			res, err := s.Append(ctx, topic, fmt.Sprintf("k%d", i%4), eventstore.Any, []eventstore.Event{{Type: "x", Payload: []byte{}}})
			if err != nil {
				t.Fatal(err)
			}
			lastOf[eventstore.TopicPartition{Topic: res.Topic, Partition: res.Partition}] = projection.PositionOf(res)
		}
	}
	var last []projection.Position
	for _, pos := range lastOf {
		last = append(last, pos)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	check := func(when string) {
		t.Helper()
		for _, topic := range []string{"orders", "payments"} {
			prefix, err := projection.PairPrefix(projection.StringKey(), topic)
			if err != nil {
				t.Fatal(err)
			}
			page, err := tbl.ScanPrefixBytes(wctx, prefix, projection.AtLeast(last...))
			if err != nil {
				t.Fatal(err)
			}
			if len(page.Entries) != 4 {
				t.Errorf("%s: %s has %d keys, want 4", when, topic, len(page.Entries))
			}
			for _, e := range page.Entries {
				if e.Key.A != topic || e.Value != 10 {
					t.Errorf("%s: %+v, want 10 events of a %s key", when, e, topic)
				}
			}
		}
	}
	check("live")
	if err := p.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	check("after rebuild")
	st, err := p.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Partitions) != 5 || st.Lag != 0 {
		t.Errorf("status over two topics: %+v", st)
	}
}

// A Tx kept past its handler refuses to be used: its writes would be lost.
func TestTxAfterHandler(t *testing.T) {
	backends.Run(t, testTxAfterHandler)
}

func testTxAfterHandler(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	s := openOrdersOn(t, backend.Open(t), 1)
	tbl, err := projection.NewTable("t", projection.StringKey(), codec.Int64())
	if err != nil {
		t.Fatal(err)
	}
	var kept *projection.Tx
	p, err := projection.New(s, "keeper", []string{"orders"}, projection.HandlerFunc(func(tx *projection.Tx, rec eventstore.Record) error {
		kept = tx
		return tbl.Put(tx, rec.Key, 1)
	}), projection.WithTables(tbl))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 1, 1, "x")
	catchUp(t, s, p, "orders")
	if err := tbl.Put(kept, "late", 2); err == nil {
		t.Error("Put through a Tx whose batch was written succeeded")
	}
	if _, _, err := tbl.Load(kept, "k00"); err == nil {
		t.Error("Load through a finished Tx succeeded")
	}
	if n, ok, err := tbl.Get(ctx, "k00"); err != nil || !ok || n != 1 {
		t.Errorf("k00 = %d, %v, %v", n, ok, err)
	}
}
