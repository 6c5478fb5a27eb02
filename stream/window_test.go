package stream_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
	"github.com/muninn-es/muninn/stream"
)

type timed struct {
	key string
	at  int // seconds after t0
}

func allWindows[V any](t *testing.T, app *stream.App, wt stream.WindowedTable[string, V]) []string {
	t.Helper()
	var got []string
	for kv, err := range wt.All(context.Background(), app) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, fmtWindow(kv))
	}
	return got
}

// Tumbling windows of 10 s with 5 s of grace, on one partition, with
// out-of-order and late records. The expected results are worked out by hand
// in the comments: st is the stream time after the record.
func TestTumblingWindowsByHand(t *testing.T) {
	s := openStore(t)
	createTopic(t, s, "clicks", 1, eventstore.Retain)
	input := []timed{
		{"a", 1},  // st 1:  a[0,10)=1
		{"a", 4},  // st 4:  a[0,10)=2
		{"b", 7},  // st 7:  b[0,10)=1
		{"a", 12}, // st 12: a[10,20)=1
		{"b", 9},  // st 12, out of order; [0,10) closes at 10+5=15 > 12: b[0,10)=2
		{"a", 16}, // st 16: a[10,20)=2
		{"a", 3},  // st 16; [0,10) closed at 15 <= 16: late, dropped
		{"b", 14}, // st 16: b[10,20)=1
		{"a", 25}, // st 25: a[20,30)=1
		{"b", 19}, // st 25; [10,20) closes at 20+5=25 <= 25: late (the boundary is closed)
		{"a", 21}, // st 25: a[20,30)=2
		{"b", 10}, // st 25; [10,20) closed: late
	}
	for _, in := range input {
		put(t, s, "clicks", in.key, []byte("{}"), sec(in.at))
	}
	topo := stream.NewTopology()
	clicks := stream.Source(topo, "clicks", codec.String(), codec.Bytes())
	counts := stream.WindowedCount(stream.WindowedBy(stream.GroupByKey(clicks), stream.Tumbling(10*time.Second).WithGrace(5*time.Second)), "clicks-10s")
	stream.ToTopic(stream.WindowedToStream(counts), "click-counts")
	var late []stream.LateRecord
	app, err := stream.NewApp(s, topo, "tumbling", stream.WithLateRecordHandler(func(l stream.LateRecord) { late = append(late, l) }))
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app)

	want := []string{"a [0,10)=2", "a [10,20)=2", "a [20,30)=2", "b [0,10)=2", "b [10,20)=1"}
	if got := allWindows(t, app, counts); !slices.Equal(got, want) {
		t.Errorf("windows:\n got %q\nwant %q", got, want)
	}
	var fetched []string
	for kv, err := range counts.Fetch(context.Background(), app, "a", sec(10), sec(20)) {
		if err != nil {
			t.Fatal(err)
		}
		fetched = append(fetched, fmtWindow(kv))
	}
	if want := []string{"a [10,20)=2", "a [20,30)=2"}; !slices.Equal(fetched, want) {
		t.Errorf("Fetch(a, 10s, 20s) = %q, want %q (windows starting in [10s, 20s])", fetched, want)
	}

	// Every update is emitted, in order.
	ws := stream.WindowedCodec(codec.String())
	var updates []string
	for _, rec := range readTopic(t, s, "click-counts") {
		w, err := ws.Decode([]byte(rec.Key))
		if err != nil {
			t.Fatal(err)
		}
		n, err := codec.Int64().Decode(rec.Payload)
		if err != nil {
			t.Fatal(err)
		}
		updates = append(updates, fmtWindow(stream.KeyValue[stream.Windowed[string], int64]{Key: w, Value: n}))
	}
	wantUpdates := []string{"a [0,10)=1", "a [0,10)=2", "b [0,10)=1", "a [10,20)=1", "b [0,10)=2", "a [10,20)=2", "b [10,20)=1", "a [20,30)=1", "a [20,30)=2"}
	if !slices.Equal(updates, wantUpdates) {
		t.Errorf("updates:\n got %q\nwant %q", updates, wantUpdates)
	}

	m, err := app.Metrics(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if m.LateRecords["clicks-10s"] != 3 || m.ProcessedRecords != int64(len(input)) {
		t.Errorf("metrics = %+v, want 3 late records of %d", m, len(input))
	}
	var offsets []int64
	for _, l := range late {
		offsets = append(offsets, l.Offset)
		if l.Store != "clicks-10s" || l.Windows != 1 {
			t.Errorf("late record %+v", l)
		}
	}
	if !slices.Equal(offsets, []int64{6, 9, 11}) {
		t.Errorf("late records at offsets %v, want [6 9 11]", offsets)
	}
	if !late[0].StreamTime.Equal(sec(16)) || !late[0].Timestamp.Equal(sec(3)) {
		t.Errorf("first late record: %+v, want event time 3s at stream time 16s", late[0])
	}
}

// Hopping windows of 10 s every 5 s, no grace: each record is in two
// windows, and may be late for one of them only.
func TestHoppingWindowsByHand(t *testing.T) {
	s := openStore(t)
	createTopic(t, s, "temps", 1, eventstore.Retain)
	input := []struct {
		at int
		v  int
	}{
		{3, 10},  // st 3:  [-5,5)=10 [0,10)=10
		{7, 20},  // st 7:  [0,10)=30 [5,15)=20
		{12, 5},  // st 12: [5,15)=25 [10,20)=5
		{4, 100}, // st 12: [-5,5) and [0,10) closed: late for both, dropped
		{9, 1},   // st 12: [0,10) closed (late), [5,15)=26
		{20, 7},  // st 20: [15,25)=7 [20,30)=7
	}
	for _, in := range input {
		put(t, s, "temps", "k", fmt.Appendf(nil, "%d", in.v), sec(in.at))
	}
	topo := stream.NewTopology()
	temps := stream.Source(topo, "temps", codec.String(), codec.JSON[int]())
	sums := stream.WindowedReduce(stream.WindowedBy(stream.GroupByKey(temps), stream.Hopping(10*time.Second, 5*time.Second)), "sums",
		func(a, b int) int { return a + b })
	var late []stream.LateRecord
	app, err := stream.NewApp(s, topo, "hopping", stream.WithLateRecordHandler(func(l stream.LateRecord) { late = append(late, l) }))
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app)
	want := []string{"k [-5,5)=10", "k [0,10)=30", "k [5,15)=26", "k [10,20)=5", "k [15,25)=7", "k [20,30)=7"}
	if got := allWindows(t, app, sums); !slices.Equal(got, want) {
		t.Errorf("windows:\n got %q\nwant %q", got, want)
	}
	if len(late) != 2 || late[0].Offset != 3 || late[0].Windows != 2 || late[1].Offset != 4 || late[1].Windows != 1 {
		t.Errorf("late records = %+v, want offset 3 (2 windows) and offset 4 (1 window)", late)
	}
	m, err := app.Metrics(context.Background())
	if err != nil || m.LateRecords["sums"] != 2 {
		t.Errorf("metrics = %+v, %v; want 2 late records", m, err)
	}
}

// Stream time is per partition: a record late for one partition's stream
// time is on time in a partition that has not seen that time.
func TestStreamTimePerPartition(t *testing.T) {
	s := openStore(t)
	createTopic(t, s, "ev", 2, eventstore.Retain)
	// Pick two keys in different partitions.
	var k0, k1 string
	for i := 0; k0 == "" || k1 == ""; i++ {
		k := fmt.Sprintf("key-%d", i)
		if p, _ := s.PartitionFor("ev", k); p == 0 && k0 == "" {
			k0 = k
		} else if p == 1 && k1 == "" {
			k1 = k
		}
	}
	put(t, s, "ev", k0, []byte("1"), sec(100)) // partition 0 reaches 100 s
	put(t, s, "ev", k1, []byte("1"), sec(5))   // partition 1 is still at 5 s: on time
	put(t, s, "ev", k0, []byte("1"), sec(5))   // partition 0: late
	topo := stream.NewTopology()
	counts := stream.WindowedCount(stream.WindowedBy(stream.GroupByKey(stream.Source(topo, "ev", codec.String(), codec.Bytes())), stream.Tumbling(10*time.Second)), "c")
	app, err := stream.NewApp(s, topo, "per-partition")
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app)
	got := allWindows(t, app, counts)
	want := []string{k0 + " [100,110)=1", k1 + " [0,10)=1"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("windows = %q, want %q", got, want)
	}
	if m, _ := app.Metrics(context.Background()); m.LateRecords["c"] != 1 {
		t.Errorf("late = %d, want 1", m.LateRecords["c"])
	}
}

// Windows are removed once stream time passes their retention, with their
// index entries, and the removal is logged as tombstones.
func TestWindowRetention(t *testing.T) {
	s := openStore(t)
	createTopic(t, s, "ev", 1, eventstore.Retain)
	for _, at := range []int{1, 11, 21, 31, 41} {
		put(t, s, "ev", "k", []byte("x"), sec(at))
	}
	topo := stream.NewTopology()
	w := stream.Tumbling(10 * time.Second).WithRetention(20 * time.Second)
	counts := stream.WindowedCount(stream.WindowedBy(stream.GroupByKey(stream.Source(topo, "ev", codec.String(), codec.Bytes())), w), "c")
	app, err := stream.NewApp(s, topo, "retention")
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app)
	// Stream time 41 s: windows starting at or before 21 s are gone.
	if got, want := allWindows(t, app, counts), []string{"k [30,40)=1", "k [40,50)=1"}; !slices.Equal(got, want) {
		t.Errorf("windows = %q, want %q", got, want)
	}
	var index int
	lo, hi := keyspace.New(keyspace.Stream, "retention").String("store").String("c").String("x").Range()
	for _, err := range s.Scan(context.Background(), lo, hi, false) {
		if err != nil {
			t.Fatal(err)
		}
		index++
	}
	if index != 2 {
		t.Errorf("%d index entries left, want 2", index)
	}
	var tombstones int
	for _, rec := range readTopic(t, s, "retention-c-changelog") {
		if rec.IsTombstone() {
			tombstones++
		}
	}
	if tombstones != 3 {
		t.Errorf("changelog has %d tombstones, want 3 (one per expired window)", tombstones)
	}
}

func TestWindowsValidate(t *testing.T) {
	err := stream.Windows{Size: -1, Advance: 0, Grace: -1}.Validate()
	for _, field := range []string{"Size", "Advance", "Grace"} {
		if err == nil || !strings.Contains(err.Error(), "Windows."+field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
	if err := stream.Tumbling(time.Minute).WithRetention(time.Second).Validate(); err == nil || !strings.Contains(err.Error(), "Windows.Retention") {
		t.Errorf("retention shorter than the window: %v", err)
	}
	if err := stream.Hopping(time.Hour, time.Millisecond).Validate(); err == nil || !strings.Contains(err.Error(), "Windows.Advance") {
		t.Errorf("3,600,000 windows per record: %v", err)
	}
	if err := stream.Hopping(time.Minute, 10*time.Second).WithGrace(time.Second).Validate(); err != nil {
		t.Error(err)
	}
}
