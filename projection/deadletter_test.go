package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/backends"
	"github.com/muninn-es/muninn/projection"
)

// flaky is a model whose handler fails on events of type "bad" while
// failing is set, and counts the events it applied per key.
type flaky struct {
	failing atomic.Bool
	calls   atomic.Int64
	tbl     *projection.Table[string, int64]
}

func newFlaky(t *testing.T, s eventstore.Store, name string, opts ...projection.Option) (*projection.Projection, *flaky) {
	t.Helper()
	f := &flaky{}
	f.failing.Store(true)
	var err error
	if f.tbl, err = projection.NewTable("applied", projection.StringKey(), codec.Int64()); err != nil {
		t.Fatal(err)
	}
	h := projection.HandlerFunc(func(tx *projection.Tx, rec eventstore.Record) error {
		f.calls.Add(1)
		n, _, err := f.tbl.Load(tx, rec.Key)
		if err != nil {
			return err
		}
		// The write happens before the failure: a failed attempt must
		// leave no trace.
		if err := f.tbl.Put(tx, rec.Key, n+1); err != nil {
			return err
		}
		if rec.Type == "bad" && f.failing.Load() {
			return fmt.Errorf("cannot handle %s", rec.Key)
		}
		return nil
	})
	p, err := projection.New(s, name, []string{"orders"}, h, append([]projection.Option{projection.WithTables(f.tbl)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p, f
}

func appendTyped(t *testing.T, s eventstore.Store, key, typ string) eventstore.AppendResult {
	t.Helper()
	res, err := s.Append(context.Background(), "orders", key, eventstore.Any,
		[]eventstore.Event{{Type: typ, Payload: []byte(`{"k":"` + key + `"}`), Headers: map[string]string{"h": "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestParkAndReplay(t *testing.T) {
	backends.Run(t, testParkAndReplay)
}

func testParkAndReplay(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	s := openOrdersOn(t, backend.Open(t), 1)
	clk := newRetryClock(t)
	p, f := newFlaky(t, s, "parking", projection.WithErrorPolicy(consume.Park("parking.dlq")), projection.WithRetries(2),
		projection.WithClock(clk), projection.WithBackoff(clock.Backoff{Initial: 100 * time.Millisecond, Multiplier: 2}))
	appendTyped(t, s, "a", "good")
	bad := appendTyped(t, s, "b", "bad")
	appendTyped(t, s, "c", "good")
	last := appendTyped(t, s, "d", "good")

	stop := startRun(t, p)
	defer stop()
	if err := p.WaitFor(ctx, projection.PositionOf(last)); err != nil {
		t.Fatal(err)
	}
	got := scanAll(t, f.tbl)
	if !equalMaps(got, map[string]int64{"a": 1, "c": 1, "d": 1}) {
		t.Errorf("applied %v; want a, c and d once and b not at all", got)
	}
	if d := clk.get(); len(d) != 2 || d[0] != 100*time.Millisecond || d[1] != 200*time.Millisecond {
		t.Errorf("backoffs %v, want [100ms 200ms]", d)
	}
	parked, err := p.Parked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 {
		t.Fatalf("parked %+v, want one record", parked)
	}
	pr := parked[0]
	if pr.Record.Key != "b" || pr.Record.Type != "bad" || pr.Record.Offset != bad.LastOffset || pr.Record.Topic != "orders" ||
		pr.Record.ID != bad.EventIDs[0] || pr.Record.Version != 1 || pr.Record.Headers["h"] != "v" || string(pr.Record.Payload) != `{"k":"b"}` {
		t.Errorf("parked record %+v does not match the original", pr.Record)
	}
	// Parked after the two back-offs, on the projection's clock.
	if pr.Attempts != 3 || !strings.Contains(pr.Error, "cannot handle b") || !pr.ReplayedAt.IsZero() || !pr.ParkedAt.Equal(clk.start.Add(300*time.Millisecond)) {
		t.Errorf("parked %+v", pr)
	}
	// The dead-letter topic holds the record with headers naming its origin.
	for rec, err := range s.ReadPartition(ctx, p.DeadLetterTopic(), 0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		h := rec.Headers
		if h[consume.HeaderTopic] != "orders" || h[consume.HeaderPartition] != "0" || h[consume.HeaderOffset] != fmt.Sprint(bad.LastOffset) ||
			!strings.Contains(h[consume.HeaderError], "cannot handle b") || rec.CausationID != bad.EventIDs[0].String() ||
			h[projection.HeaderProjection] != "parking" || h[projection.HeaderGeneration] != "1" {
			t.Errorf("dead letter %+v", rec)
		}
	}

	// A replay that fails leaves it parked; one that succeeds applies it
	// once and marks it.
	if err := p.Replay(ctx, pr.Record.Position()); err == nil {
		t.Fatal("replay of a still failing record succeeded")
	}
	f.failing.Store(false)
	if err := p.Replay(ctx, pr.Record.Position()); err != nil {
		t.Fatal(err)
	}
	if err := p.Replay(ctx, pr.Record.Position()); !errors.Is(err, consume.ErrNotParked) {
		t.Errorf("second replay: %v, want ErrNotParked", err)
	}
	if err := p.Replay(ctx, projection.Position{Topic: "orders", Offset: 0}); !errors.Is(err, consume.ErrNotParked) {
		t.Errorf("replay of a record never parked: %v, want ErrNotParked", err)
	}
	if n, _, err := f.tbl.Get(ctx, "b"); err != nil || n != 1 {
		t.Errorf("b after replay = %d, %v; want 1", n, err)
	}
	parked, err = p.Parked(ctx)
	if err != nil || len(parked) != 1 || parked[0].ReplayedAt.IsZero() {
		t.Errorf("after replay: %+v, %v", parked, err)
	}
	// Discard forgets it; a second discard finds nothing.
	if err := p.Discard(ctx, pr.Record.Position()); err != nil {
		t.Fatal(err)
	}
	if err := p.Discard(ctx, pr.Record.Position()); !errors.Is(err, consume.ErrNotParked) {
		t.Errorf("second discard: %v, want ErrNotParked", err)
	}
	if parked, err = p.Parked(ctx); err != nil || len(parked) != 0 {
		t.Errorf("after discard: %+v, %v", parked, err)
	}
	if n, _, err := f.tbl.Get(ctx, "b"); err != nil || n != 1 {
		t.Errorf("b after discard = %d, %v; want 1 (discard applies nothing)", n, err)
	}
}

// Discard of a record that was never replayed: it is never applied, not
// even by a restart.
func TestDiscard(t *testing.T) {
	backends.Run(t, testDiscard)
}

func testDiscard(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	s := openOrdersOn(t, backend.Open(t), 1)
	opts := []projection.Option{projection.WithErrorPolicy(consume.Park("discarding.dlq")), projection.WithRetries(0)}
	p, f := newFlaky(t, s, "discarding", opts...)
	bad := appendTyped(t, s, "b", "bad")
	last := appendTyped(t, s, "c", "good")
	catchUp(t, s, p, "orders")
	if err := p.WaitFor(ctx, projection.PositionOf(last)); err != nil {
		t.Fatal(err)
	}
	if err := p.Discard(ctx, bad.Position()); err != nil {
		t.Fatal(err)
	}
	if err := p.Replay(ctx, bad.Position()); !errors.Is(err, consume.ErrNotParked) {
		t.Errorf("replay of a discarded record: %v, want ErrNotParked", err)
	}
	f.failing.Store(false)
	p2, f2 := newFlaky(t, s, "discarding", opts...)
	f2.failing.Store(false)
	catchUp(t, s, p2, "orders")
	if got := scanAll(t, f2.tbl); !equalMaps(got, map[string]int64{"c": 1}) {
		t.Errorf("after discard and restart: %v; want only c", got)
	}
	if parked, err := p2.Parked(ctx); err != nil || len(parked) != 0 {
		t.Errorf("parked after discard: %+v, %v", parked, err)
	}
}

// A crash between parking a record and committing past it: the record is
// parked (its marker written with the dead letter) but the checkpoint is
// still at it. On restart it must be skipped, not applied.
func TestParkedBeforeCommitIsNotApplied(t *testing.T) {
	backends.Run(t, testParkedBeforeCommitIsNotApplied)
}

func testParkedBeforeCommitIsNotApplied(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	s := openOrdersOn(t, backend.Open(t), 1)
	opts := []projection.Option{projection.WithErrorPolicy(consume.Park("crashpark.dlq")), projection.WithRetries(0)}
	p, f := newFlaky(t, s, "crashpark", opts...)
	appendTyped(t, s, "a", "good")
	bad := appendTyped(t, s, "b", "bad")
	stop := startRun(t, p)
	if err := p.WaitFor(ctx, projection.PositionOf(bad)); err != nil {
		t.Fatal(err)
	}
	stop()

	// Put the checkpoint back on the parked record, as a crash right
	// after the park would have left it.
	c, err := s.JoinGroup(ctx, "projection.crashpark.1", []string{"orders"})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CommitOffsets(ctx, map[eventstore.TopicPartition]int64{{Topic: "orders", Partition: 0}: bad.LastOffset}); err != nil {
		t.Fatal(err)
	}
	c.Close()

	p2, f2 := newFlaky(t, s, "crashpark", opts...)
	f2.failing.Store(false) // were it applied, it would succeed and count
	after := appendTyped(t, s, "c", "good")
	catchUp(t, s, p2, "orders")
	_ = f
	got := scanAll(t, f2.tbl)
	if !equalMaps(got, map[string]int64{"a": 1, "c": 1}) {
		t.Errorf("after restart: %v; want a and c once, b (parked) not applied", got)
	}
	if err := p2.WaitFor(ctx, projection.PositionOf(after)); err != nil {
		t.Fatal(err)
	}
	parked, err := p2.Parked(ctx)
	if err != nil || len(parked) != 1 {
		t.Errorf("parked after restart: %+v, %v; want the one record", parked, err)
	}
	n := 0
	for _, err := range s.ReadPartition(ctx, p2.DeadLetterTopic(), 0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 1 {
		t.Errorf("dead-letter topic holds %d records, want 1", n)
	}
}

func TestStopPolicy(t *testing.T) {
	backends.Run(t, testStopPolicy)
}

func testStopPolicy(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	s := openOrdersOn(t, backend.Open(t), 1)
	clk := newRetryClock(t)
	p, f := newFlaky(t, s, "stopping", projection.WithRetries(3), projection.WithClock(clk),
		projection.WithBackoff(clock.Backoff{Initial: time.Second, Multiplier: 2}))
	appendTyped(t, s, "a", "good")
	bad := appendTyped(t, s, "b", "bad")
	appendTyped(t, s, "c", "good")

	err := p.Run(ctx)
	var he *consume.HandlerError
	if !errors.As(err, &he) || he.Attempts != 4 || he.Offset != bad.LastOffset || he.EventType != "bad" || he.Consumer != "projection.stopping.1" {
		t.Fatalf("Run: %v, want a *HandlerError after 4 attempts at offset %d", err, bad.LastOffset)
	}
	if d := clk.get(); len(d) != 3 || d[0] != time.Second || d[2] != 4*time.Second {
		t.Errorf("backoffs %v, want [1s 2s 4s]", d)
	}
	st, serr := p.Status(ctx)
	if serr != nil || st.State != consume.StateFailed || !strings.Contains(st.Error, he.Err.Error()) {
		t.Errorf("status %+v, %v; want failed with the handler's error", st, serr)
	}
	// The record before the failing one in the batch was committed; the
	// failing one and the rest were not.
	if got := scanAll(t, f.tbl); !equalMaps(got, map[string]int64{"a": 1}) {
		t.Errorf("applied %v, want only a", got)
	}
	if st.Partitions[0].Position != bad.LastOffset || st.Partitions[0].Lag != 2 {
		t.Errorf("partition status %+v; want position %d, lag 2", st.Partitions[0], bad.LastOffset)
	}
	if err := p.WaitFor(ctx, projection.PositionOf(bad)); !errors.Is(err, consume.ErrFailed) {
		t.Errorf("WaitFor on a failed projection: %v, want ErrFailed", err)
	}

	// Fixed and restarted, it resumes at the failed record.
	p2, f2 := newFlaky(t, s, "stopping")
	f2.failing.Store(false)
	catchUp(t, s, p2, "orders")
	if got := scanAll(t, f2.tbl); !equalMaps(got, map[string]int64{"a": 1, "b": 1, "c": 1}) {
		t.Errorf("after restart: %v", got)
	}
}

func TestPermanentErrorsAndPanicsAreNotRetried(t *testing.T) {
	ctx := context.Background()
	s := openOrders(t, 1)
	clk := newRetryClock(t)
	r := projection.NewRouter()
	type ev struct {
		N int `json:"n"`
	}
	events, err := aggregate.NewEvents[any](aggregate.Type[ev]("typed"))
	if err != nil {
		t.Fatal(err)
	}
	if err := projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, e ev) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, e ev) error { return nil }); !errors.Is(err, projection.ErrInvalidArgument) {
		t.Errorf("duplicate route: %v", err)
	}
	r.Otherwise(func(tx *projection.Tx, rec eventstore.Record) error { panic("boom") })
	p, err := projection.New(s, "perm", []string{"orders"}, r, projection.WithClock(clk), projection.WithErrorPolicy(consume.Park("perm.dlq")))
	if err != nil {
		t.Fatal(err)
	}
	appendTyped(t, s, "a", "typed") // {"k":"a"} decodes into ev (unknown field ignored)
	if _, err := s.Append(ctx, "orders", "b", eventstore.Any, []eventstore.Event{{Type: "typed", Payload: []byte(`{"n":"x"}`)}}); err != nil {
		t.Fatal(err)
	}
	last := appendTyped(t, s, "c", "other")
	stop := startRun(t, p)
	defer stop()
	if err := p.WaitFor(ctx, projection.PositionOf(last)); err != nil {
		t.Fatal(err)
	}
	parked, err := p.Parked(ctx)
	if err != nil || len(parked) != 2 {
		t.Fatalf("parked %+v, %v; want the undecodable and the panicking record", parked, err)
	}
	for _, pr := range parked {
		if pr.Attempts != 1 {
			t.Errorf("%s: %d attempts, want 1 (permanent)", pr.Record.Key, pr.Attempts)
		}
	}
	if !strings.Contains(parked[0].Error, "decode typed payload") || !strings.Contains(parked[1].Error, "panicked: boom") {
		t.Errorf("errors %q, %q", parked[0].Error, parked[1].Error)
	}
	if d := clk.get(); len(d) != 0 {
		t.Errorf("backoffs %v, want none", d)
	}
	if st, err := p.Status(ctx); err != nil || st.Counters.Retries != 0 || st.Counters.Parked != 2 || st.Counters.Failures != 2 {
		t.Errorf("counters %+v, %v; want 2 failures, 2 parked, no retries", st.Counters, err)
	}
}

// A rebuild that parked a record and was interrupted: the next rebuild
// (same generation number, markers wiped) finds the parked copy and lists
// it again, without a second copy.
func TestParkDuringInterruptedRebuild(t *testing.T) {
	backends.Run(t, testParkDuringInterruptedRebuild)
}

func testParkDuringInterruptedRebuild(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	s := openOrdersOn(t, backend.Open(t), 1)
	p, _ := newFlaky(t, s, "reparking", projection.WithErrorPolicy(consume.Park("reparking.dlq")), projection.WithRetries(0),
		projection.WithBatchSize(10), projection.WithProgressInterval(0))
	appendTyped(t, s, "b", "bad")
	for i := range 50 {
		appendTyped(t, s, fmt.Sprintf("g%d", i), "good")
	}
	catchUp(t, s, p, "orders")
	rctx, cancel := context.WithCancel(ctx)
	err := p.Rebuild(rctx, projection.OnProgress(func(pr projection.Progress) {
		if pr.Done >= 20 {
			cancel()
		}
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted rebuild: %v", err)
	}
	if err := p.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	parked, err := p.Parked(ctx)
	if err != nil || len(parked) != 1 || parked[0].Record.Key != "b" {
		t.Fatalf("parked after the rebuild: %+v, %v", parked, err)
	}
	info, err := s.DescribeTopic(ctx, p.DeadLetterTopic())
	if err != nil {
		t.Fatal(err)
	}
	// One copy from generation 1, one from generation 2 (parked twice by
	// the two rebuild attempts, written once).
	if info.Partitions[0].Records != 2 {
		t.Errorf("dead-letter topic holds %d records, want 2", info.Partitions[0].Records)
	}
	if err := p.Replay(ctx, parked[0].Record.Position()); err == nil {
		t.Error("replay of a record that still fails succeeded")
	}
	// Generation 3 has generation 1's consumer group, under whose name the
	// record was parked first: its mark points at that copy, and the
	// dead-letter topic gets no third one.
	if err := p.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	parked, err = p.Parked(ctx)
	if err != nil || len(parked) != 1 || parked[0].Record.Key != "b" || parked[0].DeadLetter.Offset != 0 {
		t.Fatalf("parked in generation 3: %+v, %v", parked, err)
	}
	if info, err := s.DescribeTopic(ctx, p.DeadLetterTopic()); err != nil || info.Partitions[0].Records != 2 {
		t.Errorf("dead-letter topic after generation 3: %+v, %v; want 2 records", info, err)
	}
}
