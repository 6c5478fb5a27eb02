package projection_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/projection"
)

// sleeps records the backoffs a projection asked for, without waiting.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.d = append(s.d, d)
	return ctx.Err()
}

func (s *sleeps) get() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

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
	ctx := context.Background()
	s := openOrders(t, 1)
	var sl sleeps
	p, f := newFlaky(t, s, "parking", projection.WithErrorPolicy(projection.Park), projection.WithRetries(2),
		projection.WithSleep(sl.sleep), projection.WithClock(func() time.Time { return time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC) }))
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
	if d := sl.get(); len(d) != 2 || d[0] != 100*time.Millisecond || d[1] != 200*time.Millisecond {
		t.Errorf("backoffs %v, want [100ms 200ms]", d)
	}
	parked, next, err := p.Parked(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(parked) != 1 || next != "" {
		t.Fatalf("parked %+v (next %q), want one record", parked, next)
	}
	pr := parked[0]
	if pr.Record.Key != "b" || pr.Record.Type != "bad" || pr.Record.Offset != bad.LastOffset || pr.Record.Topic != "orders" ||
		pr.Record.ID != bad.EventIDs[0] || pr.Record.Version != 1 || pr.Record.Headers["h"] != "v" || string(pr.Record.Payload) != `{"k":"b"}` {
		t.Errorf("parked record %+v does not match the original", pr.Record)
	}
	if pr.Attempts != 3 || !strings.Contains(pr.Error, "cannot handle b") || pr.Replayed || !pr.ParkedAt.Equal(time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("parked %+v", pr)
	}
	// The dead-letter topic holds the record with headers naming its origin.
	for rec, err := range s.ReadPartition(ctx, p.DeadLetterTopic(), 0, 0) {
		if err != nil {
			t.Fatal(err)
		}
		h := rec.Headers
		if h[projection.HeaderTopic] != "orders" || h[projection.HeaderPartition] != "0" || h[projection.HeaderOffset] != fmt.Sprint(bad.LastOffset) ||
			!strings.Contains(h[projection.HeaderError], "cannot handle b") || rec.CausationID != bad.EventIDs[0].String() {
			t.Errorf("dead letter %+v", rec)
		}
	}

	// A replay that fails leaves it parked; one that succeeds applies it
	// once and marks it.
	if err := p.Replay(ctx, pr.Position()); err == nil {
		t.Fatal("replay of a still failing record succeeded")
	}
	f.failing.Store(false)
	if err := p.Replay(ctx, pr.Position()); err != nil {
		t.Fatal(err)
	}
	if err := p.Replay(ctx, pr.Position()); !errors.Is(err, projection.ErrNotParked) {
		t.Errorf("second replay: %v, want ErrNotParked", err)
	}
	if err := p.Replay(ctx, projection.Position{Topic: "orders", Offset: 0}); !errors.Is(err, projection.ErrNotParked) {
		t.Errorf("replay of a record never parked: %v, want ErrNotParked", err)
	}
	if n, _, err := f.tbl.Get(ctx, "b"); err != nil || n != 1 {
		t.Errorf("b after replay = %d, %v; want 1", n, err)
	}
	parked, _, err = p.Parked(ctx)
	if err != nil || len(parked) != 1 || !parked[0].Replayed || parked[0].ReplayedAt.IsZero() {
		t.Errorf("after replay: %+v, %v", parked, err)
	}
}

// A crash between parking a record and committing past it: the record is
// parked (its marker written with the dead letter) but the checkpoint is
// still at it. On restart it must be skipped, not applied.
func TestParkedBeforeCommitIsNotApplied(t *testing.T) {
	ctx := context.Background()
	s := openOrders(t, 1)
	var sl sleeps
	opts := []projection.Option{projection.WithErrorPolicy(projection.Park), projection.WithRetries(0), projection.WithSleep(sl.sleep)}
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
	parked, _, err := p2.Parked(ctx)
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
	ctx := context.Background()
	s := openOrders(t, 1)
	var sl sleeps
	p, f := newFlaky(t, s, "stopping", projection.WithRetries(3), projection.WithSleep(sl.sleep),
		projection.WithBackoff(func(a int) time.Duration { return time.Duration(a) * time.Second }))
	appendTyped(t, s, "a", "good")
	bad := appendTyped(t, s, "b", "bad")
	appendTyped(t, s, "c", "good")

	err := p.Run(ctx)
	var he *projection.HandlerError
	if !errors.As(err, &he) || he.Attempts != 4 || he.Offset != bad.LastOffset || he.EventType != "bad" || he.Projection != "stopping" {
		t.Fatalf("Run: %v, want a *HandlerError after 4 attempts at offset %d", err, bad.LastOffset)
	}
	if d := sl.get(); len(d) != 3 || d[0] != time.Second || d[2] != 3*time.Second {
		t.Errorf("backoffs %v, want [1s 2s 3s]", d)
	}
	st, serr := p.Status(ctx)
	if serr != nil || st.State != projection.StateFailed || !errors.Is(st.Err, he.Err) {
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
	if err := p.WaitFor(ctx, projection.PositionOf(bad)); !errors.Is(err, projection.ErrFailed) {
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
	var sl sleeps
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
	p, err := projection.New(s, "perm", []string{"orders"}, r, projection.WithSleep(sl.sleep), projection.WithErrorPolicy(projection.Park))
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
	parked, _, err := p.Parked(ctx)
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
	if d := sl.get(); len(d) != 0 {
		t.Errorf("backoffs %v, want none", d)
	}
}

// A rebuild that parked a record and was interrupted: the next rebuild
// (same generation number, markers wiped) finds the parked copy and lists
// it again, without a second copy.
func TestParkDuringInterruptedRebuild(t *testing.T) {
	ctx := context.Background()
	s := openOrders(t, 1)
	var sl sleeps
	p, _ := newFlaky(t, s, "reparking", projection.WithErrorPolicy(projection.Park), projection.WithRetries(0),
		projection.WithSleep(sl.sleep), projection.WithBatchSize(10), projection.WithProgressInterval(0))
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
	parked, _, err := p.Parked(ctx)
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
	if err := p.Replay(ctx, parked[0].Position()); err == nil {
		t.Error("replay of a record that still fails succeeded")
	}
}
