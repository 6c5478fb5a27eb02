package stream_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
)

func TestNewAppReportsEveryProblem(t *testing.T) {
	s := openStore(t)
	topo := stream.NewTopology()
	src := stream.Source(topo, "in", codec.String(), codec.String())
	stream.Source(topo, "in", codec.String(), codec.String())         // read twice
	stream.Source(topo, "bad topic!", codec.String(), codec.String()) // bad name
	stream.Count(stream.GroupByKey(src), "dup")                       //
	stream.Count(stream.GroupByKey(src), "dup")                       // store defined twice
	stream.Count(stream.GroupByKey(src), "no/slash")                  // bad store name
	stream.WindowedCount(stream.WindowedBy(stream.GroupByKey(src), stream.Windows{}), "w")
	stream.Branch(src) // no predicates
	stream.Reduce(stream.GroupByKey(src), "r", nil)
	stream.Aggregate(stream.GroupByKey(src), "a", func() int { return 0 }, func(string, string, int) int { return 0 }, codec.Funcs[int](nil, nil))
	stream.ToTopic(src, "out", stream.EventType(""))
	stream.Source(topo, "events", codec.String(), stream.Events[any](nil))
	stream.WithCodecs(src, nil, codec.String())
	stream.Filter(src, nil)
	stream.Map[string, string, int, int](src, nil)
	stream.Join[string, string, int, int](src, stream.Table[string, int]{}, nil)

	_, err := stream.NewApp(s, topo, "bad app id", stream.WithBatchSize(0))
	if err == nil {
		t.Fatal("NewApp accepted a broken topology")
	}
	for _, want := range []string{
		`topic "in" is read by two sources`,
		`source topic`,
		`store "dup" is defined twice`,
		`store: name "no/slash"`,
		`Windows.Size`,
		`Branch needs at least one predicate`,
		`"a": the aggregate codec: codec.Funcs: the encode and decode functions are nil`,
		`source "events": value: stream.Events: the event registry is nil`,
		`WithCodecs: key: codec is nil`,
		`EventType is empty`,
		`Filter: pred is nil`,
		`Map: fn is nil`,
		`Reduce "r": fn is nil`,
		`application ID: name "bad app id"`,
		`WithBatchSize`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := stream.NewApp(nil, nil, ""); err == nil || !strings.Contains(err.Error(), "store is nil") || !strings.Contains(err.Error(), "topology is nil") {
		t.Errorf("NewApp(nil, nil, \"\") = %v", err)
	}
	if err := stream.NewTopology().Err(); err == nil || !strings.Contains(err.Error(), "no source") {
		t.Errorf("empty topology: %v", err)
	}
}

// Zero handles (not made by a topology's functions) are ignored, never a
// panic.
func TestZeroHandles(t *testing.T) {
	var s stream.Stream[string, int]
	stream.ToTopic(stream.Map(stream.Filter(s, func(string, int) bool { return true }), func(k string, v int) (int, string) { return v, k }), "x")
	stream.Count(stream.GroupByKey(s), "c")
	stream.WindowedCount(stream.WindowedBy(stream.GroupByKey(s), stream.Tumbling(time.Second)), "w")
	stream.Join(s, stream.Table[string, int]{}, func(string, int, int) int { return 0 })
	stream.ToStream(stream.ToTable(s, "t"))
	if got := stream.Branch(s, nil, nil); len(got) != 2 {
		t.Errorf("Branch of a zero stream returned %d streams, want 2", len(got))
	}
	if _, _, err := (stream.Table[string, int]{}).Get(context.Background(), nil, "k"); !errors.Is(err, stream.ErrWrongApp) {
		t.Errorf("Get on a zero table: %v", err)
	}
}

func TestMissingSourceTopic(t *testing.T) {
	s := openStore(t)
	topo := stream.NewTopology()
	stream.ToTopic(stream.Source(topo, "nowhere", codec.String(), codec.String()), "out")
	app, err := stream.NewApp(s, topo, "missing")
	if err != nil {
		t.Fatal(err)
	}
	err = app.Run(context.Background())
	if !errors.Is(err, eventstore.ErrTopicNotFound) || !strings.Contains(err.Error(), `"nowhere"`) {
		t.Errorf("Run = %v, want a topic-not-found error naming the topic", err)
	}
}

// A record that does not decode stops the App at that record, which it
// resumes from after a restart; SkipBadRecords counts and skips it instead.
func TestBadRecords(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	createTopic(t, s, "nums", 1, eventstore.Retain)
	put(t, s, "nums", "a", []byte("1"), sec(0))
	put(t, s, "nums", "a", []byte("not json"), sec(1))
	put(t, s, "nums", "a", nil, sec(1)) // a tombstone: skipped
	put(t, s, "nums", "a", []byte("2"), sec(2))
	build := func() (*stream.Topology, stream.Table[string, int]) {
		topo := stream.NewTopology()
		sum := stream.Reduce(stream.GroupByKey(stream.Source(topo, "nums", codec.String(), codec.JSON[int]())), "sum", func(a, b int) int { return a + b })
		return topo, sum
	}
	topo, _ := build()
	app, err := stream.NewApp(s, topo, "strict", stream.WithBatchSize(1))
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		err := app.Run(ctx)
		if !errors.Is(err, stream.ErrBadRecord) || !strings.Contains(err.Error(), "nums/0 offset 1") {
			t.Fatalf("Run = %v, want ErrBadRecord at nums/0 offset 1", err)
		}
	}

	topo, sum := build()
	app, err = stream.NewApp(s, topo, "lenient", stream.SkipBadRecords())
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app)
	if v, ok, err := sum.Get(ctx, app, "a"); err != nil || !ok || v != 3 {
		t.Errorf("sum = %d, %v, %v; want 3", v, ok, err)
	}
	if m, err := app.Metrics(ctx); err != nil || m.SkippedRecords != 2 || m.ProcessedRecords != 4 {
		t.Errorf("metrics = %+v, %v; want 2 skipped of 4", m, err)
	}
}

func TestRunTwice(t *testing.T) {
	s := openStore(t)
	createTopic(t, s, "in", 1, eventstore.Retain)
	topo := stream.NewTopology()
	stream.Count(stream.GroupByKey(stream.Source(topo, "in", codec.String(), codec.String())), "c")
	app, err := stream.NewApp(s, topo, "twice")
	if err != nil {
		t.Fatal(err)
	}
	start(t, app)
	waitCaughtUp(t, app)
	if err := app.Run(context.Background()); !errors.Is(err, consume.ErrRunning) {
		t.Errorf("second Run = %v, want consume.ErrRunning", err)
	}
	other, err := stream.NewApp(s, topo, "other")
	if err != nil {
		t.Fatal(err)
	}
	tb := stream.Count(stream.GroupByKey(stream.Source(stream.NewTopology(), "in", codec.String(), codec.String())), "c")
	if _, _, err := tb.Get(context.Background(), other, "k"); !errors.Is(err, stream.ErrWrongApp) {
		t.Errorf("Get through an app of another topology: %v, want ErrWrongApp", err)
	}
}
