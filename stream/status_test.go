package stream_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
)

// Status reports the loop's state and lag on the source and repartition
// topics with the App's metrics, and marshals to readable JSON.
func TestStatus(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	loadViews(t, s, 300)
	topo, _, _ := restartTopology()
	now := t0.Add(time.Hour)
	app, err := stream.NewApp(s, topo, "status", stream.WithClock(clock.NewManual(now)), stream.WithBatchSize(50))
	if err != nil {
		t.Fatal(err)
	}
	st, err := app.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != consume.StateIdle || st.Group != "status" || len(st.Partitions) != 0 || st.Metrics.ProcessedRecords != 0 {
		t.Errorf("status before Run = %+v", st)
	}

	runOnce(t, app)
	st, err = app.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != consume.StateStopped || st.Lag != 0 || st.Error != "" {
		t.Errorf("status after a run = %+v", st)
	}
	// Each view is read from the source and from the repartition topic of
	// each of the two stateful steps.
	if st.Metrics.ProcessedRecords != 900 || st.Counters.Applied != 900 || st.Metrics.LateRecords["per-minute"] != 300/50 {
		t.Errorf("metrics %+v, counters %+v; want 900 records applied, 6 late", st.Metrics, st.Counters)
	}
	topics := map[string]int{}
	for _, p := range st.Partitions {
		topics[p.Topic]++
		if p.Lag != 0 || p.Position != p.End {
			t.Errorf("partition %+v not caught up", p)
		}
	}
	if len(topics) != 3 || topics["views"] != 4 || topics["status-total-repartition"] != 4 || topics["status-per-minute-repartition"] != 4 {
		t.Errorf("partitions by topic %v; want views and both repartition topics, 4 each", topics)
	}

	// Records that wait are lag, in records and in seconds of the oldest.
	put(t, s, "views", "page-1", []byte(`{"user":"user-1"}`), now.Add(-90*time.Second))
	st, err = app.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lag != 1 || st.LagSeconds != 90 {
		t.Errorf("lag %d records, %v s; want 1 record, 90 s", st.Lag, st.LagSeconds)
	}

	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name":"status"`, `"group":"status"`, `"state":"stopped"`, `"lag":1`, `"lag_seconds":90`,
		`"metrics":{"processed_records":900,"skipped_records":0,"duplicate_records":0,"late_records":{"per-minute":6}}`,
		`"topic":"status-total-repartition"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON lacks %s:\n%s", want, b)
		}
	}
}

// A record that fails stops the App with a *consume.HandlerError naming
// its position, after the records before it in its batch commit; Status
// reports the failure.
func TestFailedRecordStopsAfterTheOnesBefore(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	createTopic(t, s, "nums", 1, eventstore.Retain)
	for i, v := range []string{"1", "2", "x", "4"} {
		put(t, s, "nums", "a", []byte(v), sec(i))
	}
	topo := stream.NewTopology()
	sum := stream.Reduce(stream.GroupByKey(stream.Source(topo, "nums", codec.String(), codec.JSON[int]())), "sum", func(a, b int) int { return a + b })
	app, err := stream.NewApp(s, topo, "strict-batch")
	if err != nil {
		t.Fatal(err)
	}
	err = app.Run(ctx)
	var he *consume.HandlerError
	if !errors.As(err, &he) || !errors.Is(err, stream.ErrBadRecord) || he.Offset != 2 || !strings.Contains(err.Error(), "nums/0 offset 2") {
		t.Fatalf("Run = %v, want a *consume.HandlerError wrapping ErrBadRecord at nums/0 offset 2", err)
	}
	if v, ok, err := sum.Get(ctx, app, "a"); err != nil || !ok || v != 3 {
		t.Errorf("sum = %d, %v, %v; want 3, the records before the bad one", v, ok, err)
	}
	st, err := app.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.State != consume.StateFailed || !strings.Contains(st.Error, "nums/0 offset 2") || st.Metrics.ProcessedRecords != 2 {
		t.Errorf("status = %+v; want failed at nums/0 offset 2 with 2 records processed", st)
	}
	if off, ok, err := s.CommittedOffset(ctx, "strict-batch", "nums", 0); err != nil || !ok || off != 2 {
		t.Errorf("committed offset %d, %v, %v; want 2", off, ok, err)
	}
}
