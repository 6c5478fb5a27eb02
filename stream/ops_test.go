package stream_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
)

type reading struct {
	Sensor string `json:"sensor"`
	Value  int    `json:"value"`
	At     int    `json:"at"` // seconds after t0: the event time
}

type stats struct {
	N   int `json:"n"`
	Sum int `json:"sum"`
}

// The stateless steps, ToTable, Aggregate and WindowedAggregate, and event
// time taken from the value, on one topology.
func TestStepsEndToEnd(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	createTopic(t, s, "lines", 2, eventstore.Retain)
	createTopic(t, s, "readings", 2, eventstore.Retain)
	put(t, s, "lines", "l1", []byte(`"the quick fox"`), sec(0))
	put(t, s, "lines", "l2", []byte(`"the lazy dog"`), sec(0))
	for _, r := range []string{
		`{"sensor":"s1","value":3,"at":5}`,
		`{"sensor":"s1","value":4,"at":65}`,
		`{"sensor":"s2","value":10,"at":7}`,
		`{"sensor":"s1","value":-1,"at":8}`, // filtered out
	} {
		// The record timestamps are all 0: the event time is in the value.
		put(t, s, "readings", "r", []byte(r), t0)
	}

	topo := stream.NewTopology()
	lines := stream.Source(topo, "lines", codec.String(), codec.JSON[string]())
	words := stream.FlatMap(lines, func(_ string, line string) []stream.KeyValue[string, int] {
		var out []stream.KeyValue[string, int]
		for _, w := range strings.Fields(line) {
			out = append(out, stream.KeyValue[string, int]{Key: w, Value: 1})
		}
		return out
	})
	words = stream.WithCodecs(words, codec.String(), codec.JSON[int]())
	parts := stream.Branch(words,
		func(w string, _ int) bool { return len(w) == 3 },
		func(string, int) bool { return true })
	short := stream.MapValues(parts[0], func(string, int) string { return "short" })
	long := stream.MapValues(parts[1], func(string, int) string { return "long" })
	var peeked []string
	both := stream.Peek(stream.Merge(short, long), func(w, kind string, _ time.Time) { peeked = append(peeked, w+":"+kind) })
	lengths := stream.ToTable(both, "word-kinds")
	wordCounts := stream.Count(stream.GroupByKey(words), "word-counts")

	readings := stream.Source(topo, "readings", codec.String(), codec.JSON[reading]())
	readings = stream.Filter(readings, func(_ string, r reading) bool { return r.Value >= 0 })
	readings = stream.WithTimestamp(readings, func(_ string, r reading, _ time.Time) time.Time { return sec(r.At) })
	bySensor := stream.GroupBy(readings, func(_ string, r reading) string { return r.Sensor }, codec.String())
	add := func(_ string, r reading, s stats) stats { return stats{N: s.N + 1, Sum: s.Sum + r.Value} }
	totals := stream.Aggregate(bySensor, "sensor-totals", func() stats { return stats{} }, add, codec.JSON[stats]())
	perMinute := stream.WindowedAggregate(stream.WindowedBy(bySensor, stream.Tumbling(time.Minute).WithGrace(time.Minute)), "sensor-minutes",
		func() stats { return stats{} }, add, codec.JSON[stats]())

	app, err := stream.NewApp(s, topo, "steps")
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app)

	for w, want := range map[string]string{"the": "short", "fox": "short", "dog": "short", "quick": "long", "lazy": "long"} {
		if got, ok, err := lengths.Get(ctx, app, w); err != nil || !ok || got != want {
			t.Errorf("word-kinds[%s] = %q, %v, %v; want %q", w, got, ok, err, want)
		}
	}
	if n, _, _ := wordCounts.Get(ctx, app, "the"); n != 2 {
		t.Errorf("count of \"the\" = %d, want 2", n)
	}
	slices.Sort(peeked)
	if want := []string{"dog:short", "fox:short", "lazy:long", "quick:long", "the:short", "the:short"}; !slices.Equal(peeked, want) {
		t.Errorf("peeked %q, want %q", peeked, want)
	}
	if got, _, _ := totals.Get(ctx, app, "s1"); got != (stats{N: 2, Sum: 7}) {
		t.Errorf("totals[s1] = %+v, want 2 readings summing to 7", got)
	}
	var windows []string
	for kv, err := range perMinute.All(ctx, app) {
		if err != nil {
			t.Fatal(err)
		}
		windows = append(windows, fmtWindow(kv))
	}
	if want := []string{"s1 [0,60)={1 3}", "s1 [60,120)={1 4}", "s2 [0,60)={1 10}"}; !slices.Equal(windows, want) {
		t.Errorf("windows %q, want %q (event time from the value)", windows, want)
	}
}
