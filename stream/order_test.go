package stream_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
)

// A backlog whose partitions hold different shares of the data is processed
// in event-time order across partitions: after a re-key, the windowed count
// sees event time in order, and a short grace drops nothing.
func TestBacklogInEventTimeOrder(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	createTopic(t, s, "skew", 2, eventstore.Retain)
	var k0, k1 string // a key in each partition
	for i := 0; k0 == "" || k1 == ""; i++ {
		k := fmt.Sprintf("sensor-%d", i)
		if p, _ := s.PartitionFor("skew", k); p == 0 && k0 == "" {
			k0 = k
		} else if p == 1 && k1 == "" {
			k1 = k
		}
	}
	const n = 4000
	for j := range n { // three records in partition 0 for each in partition 1
		key := k0
		if j%4 == 3 {
			key = k1
		}
		put(t, s, "skew", key, []byte("{}"), sec(j))
	}
	topo := stream.NewTopology()
	all := stream.GroupBy(stream.Source(topo, "skew", codec.String(), codec.Bytes()),
		func(string, []byte) string { return "all" }, codec.String())
	counts := stream.WindowedCount(stream.WindowedBy(all, stream.Tumbling(time.Minute).WithGrace(10*time.Second)), "per-minute")
	app, err := stream.NewApp(s, topo, "ordered", stream.WithBatchSize(2000))
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app)
	m, err := app.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if m.LateRecords["per-minute"] != 0 {
		t.Errorf("%d records dropped as late; the partitions were not read in event-time order", m.LateRecords["per-minute"])
	}
	var total int64
	for kv, err := range counts.All(ctx, app) {
		if err != nil {
			t.Fatal(err)
		}
		if start := int(kv.Key.Start.Sub(t0) / time.Second); start+60 <= n && kv.Value != 60 {
			t.Errorf("window at %ds counted %d, want 60", start, kv.Value)
		}
		total += kv.Value
	}
	if total != n {
		t.Errorf("windows hold %d records, want %d", total, n)
	}
}
