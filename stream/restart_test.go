package stream_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
)

// restartTopology counts views per user (re-keyed through a repartition
// topic) in total and per minute, and writes the total's updates to a topic.
// The grace period is longer than the input's time span, so that which
// records are late does not depend on the order in which the App happens to
// read the partitions (which differs with the batch size).
func restartTopology() (*stream.Topology, stream.Table[string, int64], stream.WindowedTable[string, int64]) {
	topo := stream.NewTopology()
	views := stream.Source(topo, "views", codec.String(), codec.JSON[PageView]())
	byUser := stream.GroupBy(views, func(_ string, v PageView) string { return v.User }, codec.String())
	total := stream.Count(byUser, "total")
	perMinute := stream.WindowedCount(stream.WindowedBy(byUser, stream.Tumbling(time.Minute).WithGrace(10*time.Minute)), "per-minute")
	stream.ToTopic(stream.ToStream(total), "totals")
	return topo, total, perMinute
}

func loadViews(t *testing.T, s eventstore.Store, n int) {
	createTopic(t, s, "views", 4, eventstore.Retain)
	for i := range n {
		at := i / 3
		switch {
		case i%10 == 5:
			at -= 30 // out of order, within the grace period
		case i%50 == 49:
			at -= 2000 // late, whatever order the partitions are read in
		}
		put(t, s, "views", fmt.Sprintf("page-%d", i%11), fmt.Appendf(nil, `{"user":"user-%d"}`, i%9), sec(at))
	}
}

type snapshot struct {
	total   map[string]int64
	windows []string
	late    int64
	// outputs are the distinct (by event ID) records of "totals" as
	// "key=value", sorted.
	outputs []string
}

func takeSnapshot(t *testing.T, s eventstore.Store, app *stream.App, total stream.Table[string, int64], perMinute stream.WindowedTable[string, int64]) snapshot {
	t.Helper()
	ctx := context.Background()
	snap := snapshot{total: map[string]int64{}}
	for kv, err := range total.All(ctx, app) {
		if err != nil {
			t.Fatal(err)
		}
		snap.total[kv.Key] = kv.Value
	}
	snap.windows = allWindows(t, app, perMinute)
	m, err := app.Metrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	snap.late = m.LateRecords["per-minute"]
	seen := map[string]bool{}
	for _, rec := range readTopic(t, s, "totals") {
		if seen[rec.ID.String()] {
			continue
		}
		seen[rec.ID.String()] = true
		n, err := codec.Int64().Decode(rec.Payload)
		if err != nil {
			t.Fatal(err)
		}
		snap.outputs = append(snap.outputs, fmt.Sprintf("%s=%d", rec.Key, n))
	}
	slices.Sort(snap.outputs)
	return snap
}

func compareSnapshots(t *testing.T, got, want snapshot) {
	t.Helper()
	if !maps.Equal(got.total, want.total) {
		t.Errorf("totals:\n got %v\nwant %v", got.total, want.total)
	}
	if !slices.Equal(got.windows, want.windows) {
		t.Errorf("windows differ:\n got %q\nwant %q", got.windows, want.windows)
	}
	if got.late != want.late {
		t.Errorf("late records: got %d, want %d", got.late, want.late)
	}
	if !slices.Equal(got.outputs, want.outputs) {
		t.Errorf("distinct outputs differ: got %d, want %d", len(got.outputs), len(want.outputs))
	}
}

// State is exactly once with respect to the input: an App stopped (by
// cancelling it, or by a failure between writing a batch's output and
// committing it, as a crash would) and restarted any number of times ends
// with the state, counters and distinct output of a single uninterrupted run.
func TestExactlyOnceAcrossRestarts(t *testing.T) {
	const n = 1500
	s := openStore(t)
	loadViews(t, s, n)

	topo, total, perMinute := restartTopology()
	single, err := stream.NewApp(s, topo, "single", stream.WithBatchSize(64))
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, single)
	want := takeSnapshot(t, s, single, total, perMinute)
	if len(want.total) != 9 || want.late != n/50 {
		t.Fatalf("reference run: %d users, %d late records; the input should give 9 users and n/50 late records", len(want.total), want.late)
	}

	// The interrupted app shares the store (with its own app ID: its own
	// state, internal topics and group) and gets its own sink topic.
	topo2 := stream.NewTopology()
	views := stream.Source(topo2, "views", codec.String(), codec.JSON[PageView]())
	byUser := stream.GroupBy(views, func(_ string, v PageView) string { return v.User }, codec.String())
	total2 := stream.Count(byUser, "total")
	perMinute2 := stream.WindowedCount(stream.WindowedBy(byUser, stream.Tumbling(time.Minute).WithGrace(10*time.Minute)), "per-minute")
	stream.ToTopic(stream.ToStream(total2), "totals2")

	crash := errors.New("simulated crash")
	for round := range 8 {
		app, err := stream.NewApp(s, topo2, "interrupted", stream.WithBatchSize(37+round))
		if err != nil {
			t.Fatal(err)
		}
		commits := 0
		ctx, cancel := context.WithCancel(context.Background())
		stream.SetBeforeUpdate(app, func() error {
			commits++
			switch {
			case round%2 == 0 && commits == 3+round:
				return crash // output written, state not committed
			case round%2 == 1 && commits == 2+round:
				cancel() // the Update sees the cancelled context
			}
			return nil
		})
		err = app.Run(ctx)
		cancel()
		if round%2 == 0 && !errors.Is(err, crash) || round%2 == 1 && err != nil {
			t.Fatalf("round %d: Run = %v", round, err)
		}
	}
	app, err := stream.NewApp(s, topo2, "interrupted", stream.WithBatchSize(50))
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app)

	got := takeSnapshot(t, s, app, total2, perMinute2)
	// The sink topic differs; compare its distinct records.
	seen := map[string]bool{}
	got.outputs = nil
	for _, rec := range readTopic(t, s, "totals2") {
		if !seen[rec.ID.String()] {
			seen[rec.ID.String()] = true
			v, _ := codec.Int64().Decode(rec.Payload)
			got.outputs = append(got.outputs, fmt.Sprintf("%s=%d", rec.Key, v))
		}
	}
	slices.Sort(got.outputs)
	compareSnapshots(t, got, want)

	m, err := app.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := single.Metrics(context.Background())
	if m.DuplicateRecords == 0 {
		t.Error("no repartition duplicates were dropped; the crashes did not exercise deduplication")
	}
	if m.ProcessedRecords-m.DuplicateRecords != ms.ProcessedRecords {
		t.Errorf("processed %d - duplicates %d != %d processed by the single run", m.ProcessedRecords, m.DuplicateRecords, ms.ProcessedRecords)
	}
	if raw := len(readTopic(t, s, "totals2")); raw <= len(got.outputs) {
		t.Errorf("sink has %d records, %d distinct: the crashes should have written some twice", raw, len(got.outputs))
	}
}
