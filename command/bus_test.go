package command_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/backends"
	"github.com/muninn-es/muninn/keyspace"
)

// idemKey is the key of a bus's idempotency record of a command ID.
func idemKey(bus, id string) []byte {
	return keyspace.New(keyspace.Command, bus).String("c").String(id)
}

// idemRecords returns a bus's idempotency records by command ID.
func idemRecords(t *testing.T, s eventstore.Store, bus string) map[string][]byte {
	t.Helper()
	prefix := keyspace.New(keyspace.Command, bus).String("c")
	lower, upper := prefix.Range()
	out := map[string][]byte{}
	for kv, err := range s.Scan(context.Background(), lower, upper, false) {
		if err != nil {
			t.Fatal(err)
		}
		r, err := keyspace.Read(kv.Key, prefix)
		if err != nil {
			t.Fatal(err)
		}
		id, err := r.String()
		if err != nil || !r.Done() {
			t.Fatalf("idempotency key %s: %v", keyspace.Format(kv.Key), err)
		}
		out[id] = bytes.Clone(kv.Value)
	}
	return out
}

func orderAggregate(t testing.TB, opts ...aggregate.Option) *aggregate.Aggregate[Order, OrderCommand, OrderEvent] {
	t.Helper()
	events, err := aggregate.NewEvents[OrderEvent](
		aggregate.Type[OrderPlaced]("order.placed"),
		aggregate.Type[ItemAdded]("order.item_added"),
		aggregate.Type[OrderConfirmed]("order.confirmed"),
	)
	if err != nil {
		t.Fatal(err)
	}
	a, err := aggregate.New("order", aggregate.Decider[Order, OrderCommand, OrderEvent]{Decide: decide, Evolve: evolve}, events, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func openMem(t testing.TB, opts ...eventstore.Option) eventstore.Store {
	t.Helper()
	s, err := eventstore.OpenMem(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newBus(t testing.TB, s eventstore.Store, opts ...command.Option) *command.Bus {
	t.Helper()
	b, err := command.New(s, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func register(t testing.TB, b *command.Bus, opts ...aggregate.Option) *command.Handler[Order, OrderCommand, OrderEvent] {
	t.Helper()
	h, err := command.Register(t.Context(), b, orderAggregate(t, opts...))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func records(t testing.TB, s eventstore.Store, topic, key string) []eventstore.Record {
	t.Helper()
	var out []eventstore.Record
	for rec, err := range s.ReadStream(context.Background(), topic, key, 0) {
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rec)
	}
	return out
}

func TestDispatchResultAndLineage(t *testing.T) {
	s := openMem(t)
	orders := register(t, newBus(t, s))
	ctx := command.WithCorrelationID(t.Context(), "request-7")
	res, err := orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"}, command.WithCommandID("c-1"),
		command.WithHeaders(map[string]string{"user": "ada"}))
	if err != nil {
		t.Fatal(err)
	}
	recs := records(t, s, "order", "o-1")
	if len(recs) != 1 {
		t.Fatalf("%d records, want 1", len(recs))
	}
	r := recs[0]
	if res.CommandID != "c-1" || res.AggregateType != "order" || res.AggregateID != "o-1" || res.Topic != "order" ||
		res.Partition != r.Partition || res.FirstOffset != r.Offset || res.LastOffset != r.Offset ||
		res.FirstVersion != 1 || res.Version != 1 || len(res.EventIDs) != 1 || res.EventIDs[0] != r.ID ||
		res.Attempts != 1 || res.Duplicate || res.At.IsZero() {
		t.Errorf("result %+v does not match record %+v", res, r)
	}
	if r.CorrelationID != "request-7" || r.CausationID != "c-1" || r.Headers["user"] != "ada" {
		t.Errorf("record lineage: correlation %q causation %q headers %v", r.CorrelationID, r.CausationID, r.Headers)
	}

	// Without a correlation ID in the context, the command starts one.
	res, err = orders.Dispatch(t.Context(), "o-1", AddItem{"sku", 1})
	if err != nil {
		t.Fatal(err)
	}
	r = records(t, s, "order", "o-1")[1]
	if res.CommandID == "" || r.CorrelationID != res.CommandID || r.CausationID != res.CommandID {
		t.Errorf("generated lineage: command %q, correlation %q, causation %q", res.CommandID, r.CorrelationID, r.CausationID)
	}
	if _, ok := r.Headers[command.CausationHeader]; ok {
		t.Errorf("a command without a causation ID put header %q on its event", command.CausationHeader)
	}

	// A command caused by an event (a saga's) carries the event's ID, and
	// so does every event it produces, next to the caller's headers.
	if _, err := orders.Dispatch(ctx, "o-1", AddItem{"sku", 2}, command.WithCommandID("c-3"),
		command.WithCausationID("event-9"), command.WithHeaders(map[string]string{"user": "ada"})); err != nil {
		t.Fatal(err)
	}
	r = records(t, s, "order", "o-1")[2]
	if r.CausationID != "c-3" || r.Headers[command.CausationHeader] != "event-9" || r.Headers["user"] != "ada" {
		t.Errorf("caused command's event: causation %q, headers %v", r.CausationID, r.Headers)
	}
	if _, err := orders.Dispatch(ctx, "o-1", AddItem{"sku", 3}, command.WithCausationID(strings.Repeat("x", eventstore.MaxIDBytes+1))); command.KindOf(err) != command.KindInvalidArgument || !strings.Contains(err.Error(), "causation ID") {
		t.Errorf("overlong causation ID: %v", err)
	}
}

// TestConcurrentCommandsOnOneAggregate sends many commands from many
// goroutines to one aggregate: every command is applied exactly once or
// rejected with KindAborted, and the final state holds exactly the applied
// ones (no lost update). Optimistic, the commands conflict and retry;
// serialized (the default), they queue and all apply.
func TestConcurrentCommandsOnOneAggregate(t *testing.T) {
	backends.Run(t, func(t *testing.T, backend backends.Backend) {
		t.Run("optimistic", func(t *testing.T) { concurrentCommands(t, backend, false) })
		t.Run("serialized", func(t *testing.T) { concurrentCommands(t, backend, true) })
	})
}

func concurrentCommands(t *testing.T, backend backends.Backend, serialized bool) {
	s := backend.Open(t)
	counters := &observations{}
	b := newBus(t, s, command.WithRetry(command.RetryPolicy{Retries: 5, Backoff: clock.Backoff{Initial: 100 * time.Microsecond, Max: 2 * time.Millisecond, Jitter: 1}}),
		command.WithMiddleware(command.Metrics(counters)), command.WithSerializedAggregates(serialized))
	orders := register(t, b, aggregate.WithSnapshots(16), aggregate.WithCache(16))
	ctx := t.Context()
	if _, err := orders.Dispatch(ctx, "hot", PlaceOrder{"ada"}); err != nil {
		t.Fatal(err)
	}
	const goroutines, perG = 16, 12
	var (
		wg       sync.WaitGroup
		applied  sync.Map // SKU -> version
		rejected atomic.Int64
	)
	errs := make(chan error, goroutines*perG)
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				sku := fmt.Sprintf("g%d-i%d", g, i)
				res, err := orders.Dispatch(ctx, "hot", AddItem{sku, g + 1}, command.WithCommandID(sku))
				switch {
				case err == nil:
					applied.Store(sku, res.Version)
				case command.KindOf(err) == command.KindAborted && errors.Is(err, command.ErrConflict):
					rejected.Add(1)
				default:
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("unexpected error: %v", err)
	}
	st, err := orders.Load(ctx, "hot")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	versions := map[uint64]string{}
	applied.Range(func(k, v any) bool {
		n++
		sku, ver := k.(string), v.(uint64)
		if other, dup := versions[ver]; dup {
			t.Errorf("%s and %s both claim version %d", sku, other, ver)
		}
		versions[ver] = sku
		if _, ok := st.State.Items[sku]; !ok {
			t.Errorf("applied %s is not in the final state (lost update)", sku)
		}
		return true
	})
	if len(st.State.Items) != n {
		t.Errorf("final state has %d items, %d commands were applied", len(st.State.Items), n)
	}
	if st.Version != uint64(n)+1 || len(records(t, s, "order", "hot")) != n+1 {
		t.Errorf("version %d, want %d (one event per applied command)", st.Version, n+1)
	}
	if n+int(rejected.Load()) != goroutines*perG {
		t.Errorf("%d applied + %d rejected != %d sent", n, rejected.Load(), goroutines*perG)
	}
	c := counters.sum()
	switch {
	case !serialized && c.Retries == 0:
		t.Errorf("no retries counted: the test did not make conflicts")
	case serialized && (c.Retries != 0 || rejected.Load() != 0):
		t.Errorf("serialized: %d retries, %d rejected; want none", c.Retries, rejected.Load())
	}
	t.Logf("%d applied, %d rejected after retries, %d retries", n, rejected.Load(), c.Retries)
}

func TestRetryAfterConflict(t *testing.T) { backends.Run(t, testRetryAfterConflict) }

func testRetryAfterConflict(t *testing.T, backend backends.Backend) {
	s := backend.Open(t)
	ctx := t.Context()
	// A decider that, while conflicts > 0, makes another writer append to
	// the same stream behind the bus's back: a real version conflict.
	var conflicts atomic.Int64
	var decides atomic.Int64
	var cancelOnDecide atomic.Pointer[context.CancelFunc]
	events, _ := aggregate.NewEvents[OrderEvent](aggregate.Type[ItemAdded]("order.item_added"))
	agg, err := aggregate.New("racy", aggregate.Decider[Order, OrderCommand, OrderEvent]{
		Decide: func(o Order, c OrderCommand) ([]OrderEvent, error) {
			decides.Add(1)
			if c := cancelOnDecide.Load(); c != nil {
				(*c)()
			}
			if conflicts.Add(-1) >= 0 {
				if _, err := s.Append(ctx, "racy", "r-1", eventstore.Any, []eventstore.Event{{Type: "order.item_added", Payload: []byte(`{"SKU":"other","Qty":1}`)}}); err != nil {
					panic(err)
				}
			}
			return []OrderEvent{ItemAdded{"mine", 1}}, nil
		},
		Evolve: func(o Order, e OrderEvent) Order {
			if o.Items == nil {
				o.Items = map[string]int{}
			}
			return evolve(o, e)
		},
	}, events)
	if err != nil {
		t.Fatal(err)
	}
	b := newBus(t, s, command.WithRetry(command.RetryPolicy{Retries: 2, Backoff: clock.Backoff{Initial: time.Microsecond, Max: time.Millisecond, Jitter: 1}}))
	h, err := command.Register(ctx, b, agg)
	if err != nil {
		t.Fatal(err)
	}
	conflicts.Store(2)
	res, err := h.Dispatch(ctx, "r-1", AddItem{})
	if err != nil || res.Attempts != 3 || res.Version != 3 {
		t.Fatalf("after 2 conflicts: %+v, %v; want success on attempt 3 at version 3", res, err)
	}
	conflicts.Store(100)
	decides.Store(0)
	_, err = h.Dispatch(ctx, "r-1", AddItem{}, command.WithCommandID("doomed"))
	if command.KindOf(err) != command.KindAborted || !errors.Is(err, command.ErrConflict) || !errors.Is(err, eventstore.ErrVersionConflict) || decides.Load() != 3 {
		t.Fatalf("always conflicting: %v after %d decides; want KindAborted after 3", err, decides.Load())
	}
	if _, ok, _ := s.Get(ctx, idemKey("default", "doomed")); ok {
		t.Error("a failed command left an idempotency record")
	}
	// WithExpectedVersion fails at once, without retries.
	conflicts.Store(0)
	decides.Store(0)
	_, err = h.Dispatch(ctx, "r-1", AddItem{}, command.WithExpectedVersion(1))
	if command.KindOf(err) != command.KindAborted || decides.Load() != 0 {
		t.Fatalf("stale expected version: %v after %d decides", err, decides.Load())
	}
	head, _ := s.HeadVersion(ctx, "racy", "r-1")
	if res, err := h.Dispatch(ctx, "r-1", AddItem{}, command.WithExpectedVersion(head)); err != nil || res.Version != head+1 {
		t.Fatalf("current expected version: %+v, %v", res, err)
	}
	// A context that ends during the backoff ends the dispatch.
	conflicts.Store(100)
	cctx, cancel := context.WithCancel(ctx)
	b2 := newBus(t, s, command.WithName("b2"), command.WithRetry(command.RetryPolicy{Retries: 99, Backoff: clock.Constant(time.Hour)}))
	h2, err := command.Register(ctx, b2, agg)
	if err != nil {
		t.Fatal(err)
	}
	cancelOnDecide.Store(&cancel)
	if _, err := h2.Dispatch(cctx, "r-1", AddItem{}); command.KindOf(err) != command.KindCanceled {
		t.Fatalf("cancelled during backoff: %v", err)
	}
	// The back-off waits on the bus's clock: the retry runs once the clock
	// has moved past it.
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b3 := newBus(t, s, command.WithName("b3"), command.WithClock(clk), command.WithRetry(command.RetryPolicy{Retries: 1, Backoff: clock.Constant(time.Hour)}))
	h3, err := command.Register(ctx, b3, agg)
	if err != nil {
		t.Fatal(err)
	}
	cancelOnDecide.Store(nil)
	conflicts.Store(1)
	decides.Store(0)
	type outcome struct {
		res command.Result
		err error
	}
	got := make(chan outcome, 1)
	go func() {
		res, err := h3.Dispatch(ctx, "r-1", AddItem{})
		got <- outcome{res, err}
	}()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if next, _ := clk.Next(); next.Sub(clk.Now()) != time.Hour || decides.Load() != 1 {
		t.Fatalf("waiting until %s after %d decides; want an hour after 1", next, decides.Load())
	}
	clk.Advance(time.Hour)
	if o := <-got; o.err != nil || o.res.Attempts != 2 {
		t.Fatalf("after the clock moved: %+v, %v; want success on attempt 2", o.res, o.err)
	}
}

func TestIdempotencyAcrossRestart(t *testing.T) { backends.Run(t, testIdempotencyAcrossRestart) }

func testIdempotencyAcrossRestart(t *testing.T, backend backends.Backend) {
	open := backend.Reopener(t)
	ctx := t.Context()
	s := open()
	b, err := command.New(s)
	if err != nil {
		t.Fatal(err)
	}
	orders := register(t, b)
	first, err := orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"}, command.WithCommandID("place-1"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := orders.Dispatch(ctx, "o-1", AddItem{"sku", 1}, command.WithCommandID("add-1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(b.Close(), s.Close()); err != nil {
		t.Fatal(err)
	}

	s = open()
	defer s.Close()
	b = newBus(t, s)
	orders = register(t, b)
	for _, want := range []command.Result{first, second} {
		cmd := OrderCommand(PlaceOrder{"ada"})
		if want.CommandID == "add-1" {
			cmd = AddItem{"sku", 1}
		}
		got, err := orders.Dispatch(ctx, "o-1", cmd, command.WithCommandID(want.CommandID))
		if err != nil {
			t.Fatalf("%s after restart: %v", want.CommandID, err)
		}
		if !got.Duplicate || got.Version != want.Version || got.FirstOffset != want.FirstOffset || !slices.Equal(got.EventIDs, want.EventIDs) ||
			!got.At.Equal(want.At) || got.Partition != want.Partition {
			t.Errorf("%s after restart = %+v, want the first result %+v", want.CommandID, got, want)
		}
	}
	if n := len(records(t, s, "order", "o-1")); n != 2 {
		t.Errorf("%d events after resending both commands, want 2", n)
	}
}

func TestConcurrentDuplicatesApplyOnce(t *testing.T) {
	backends.Run(t, testConcurrentDuplicatesApplyOnce)
}

func testConcurrentDuplicatesApplyOnce(t *testing.T, backend backends.Backend) {
	s := backend.Open(t)
	orders := register(t, newBus(t, s))
	ctx := t.Context()
	if _, err := orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"}); err != nil {
		t.Fatal(err)
	}
	const n = 20
	results := make([]command.Result, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			results[i], errs[i] = orders.Dispatch(ctx, "o-1", AddItem{"sku", 1}, command.WithCommandID("same"))
		})
	}
	wg.Wait()
	dups := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("dispatch %d: %v", i, errs[i])
		}
		if !slices.Equal(results[i].EventIDs, results[0].EventIDs) || results[i].Version != 2 {
			t.Errorf("dispatch %d: %+v differs from %+v", i, results[i], results[0])
		}
		if results[i].Duplicate {
			dups++
		}
	}
	if dups != n-1 {
		t.Errorf("%d duplicates, want %d", dups, n-1)
	}
	if st, _ := orders.Load(ctx, "o-1"); st.State.Items["sku"] != 1 || st.Version != 2 {
		t.Errorf("state %+v v%d: the command was applied more than once", st.State, st.Version)
	}
}

func TestIdempotencyOfCommandsWithoutEvents(t *testing.T) {
	backends.Run(t, testIdempotencyOfCommandsWithoutEvents)
}

func testIdempotencyOfCommandsWithoutEvents(t *testing.T, backend backends.Backend) {
	s := backend.Open(t)
	ctx := t.Context()
	// A command that changes nothing still records its result durably.
	events, _ := aggregate.NewEvents[OrderEvent](aggregate.Type[OrderPlaced]("order.placed"))
	agg, err := aggregate.New("noop", aggregate.Decider[Order, OrderCommand, OrderEvent]{
		Decide: func(o Order, c OrderCommand) ([]OrderEvent, error) { return nil, nil },
		Evolve: evolve,
	}, events)
	if err != nil {
		t.Fatal(err)
	}
	h, err := command.Register(ctx, newBus(t, s), agg)
	if err != nil {
		t.Fatal(err)
	}
	first, err := h.Dispatch(ctx, "n-1", ConfirmOrder{}, command.WithCommandID("noop-1"))
	if err != nil || first.FirstOffset != -1 || first.Version != 0 || len(first.EventIDs) != 0 || first.Duplicate {
		t.Fatalf("first = %+v, %v", first, err)
	}
	again, err := h.Dispatch(ctx, "n-1", ConfirmOrder{}, command.WithCommandID("noop-1"))
	if err != nil || !again.Duplicate || !again.At.Equal(first.At) {
		t.Fatalf("again = %+v, %v", again, err)
	}
	// The same command ID for another aggregate is a client error.
	_, err = h.Dispatch(ctx, "n-2", ConfirmOrder{}, command.WithCommandID("noop-1"))
	if command.KindOf(err) != command.KindInvalidArgument || !strings.Contains(err.Error(), "already used for noop/n-1") {
		t.Fatalf("reused command ID = %v", err)
	}
}

func TestIdempotencyWindowAndPurge(t *testing.T) { backends.Run(t, testIdempotencyWindowAndPurge) }

func testIdempotencyWindowAndPurge(t *testing.T, backend backends.Backend) {
	s := backend.Open(t)
	ctx := t.Context()
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	advance := clk.Advance
	b := newBus(t, s, command.WithClock(clk), command.WithIdempotencyWindow(time.Hour))
	orders := register(t, b)
	if _, err := orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := orders.Dispatch(ctx, "o-1", AddItem{"sku", 1}, command.WithCommandID(fmt.Sprint("old-", i))); err != nil {
			t.Fatal(err)
		}
	}
	advance(30 * time.Minute)
	if _, err := orders.Dispatch(ctx, "o-1", AddItem{"sku", 1}, command.WithCommandID("young")); err != nil {
		t.Fatal(err)
	}
	if res, _ := orders.Dispatch(ctx, "o-1", AddItem{"sku", 1}, command.WithCommandID("old-0")); !res.Duplicate {
		t.Fatal("old-0 within the window was applied again")
	}
	advance(31 * time.Minute) // old-* are 61 minutes old, young 31

	// Expired records are not returned, even before a purge: old-1 runs again.
	res, err := orders.Dispatch(ctx, "o-1", AddItem{"sku", 1}, command.WithCommandID("old-1"))
	if err != nil || res.Duplicate || res.Version != 8 {
		t.Fatalf("expired old-1 = %+v, %v; want applied again at version 8", res, err)
	}
	n, err := b.Purge(ctx)
	if err != nil || n != 4 {
		t.Fatalf("Purge = %d, %v; want 4 (old-0, old-2, old-3, old-4)", n, err)
	}
	keys := maps.Keys(idemRecords(t, s, "default"))
	if !slices.Equal(slices.Sorted(keys), []string{"old-1", "young"}) {
		t.Fatalf("records after purge: %v, want [old-1 young]", keys)
	}
	if res, _ := orders.Dispatch(ctx, "o-1", AddItem{"sku", 1}, command.WithCommandID("old-1")); !res.Duplicate || res.Version != 8 {
		t.Errorf("re-applied old-1 is not remembered: %+v", res)
	}
	advance(2 * time.Hour)
	if n, err := b.Purge(ctx); err != nil || n != 2 {
		t.Errorf("second Purge = %d, %v; want 2", n, err)
	}
	idx := 0
	lower, upper := keyspace.New(keyspace.Command, "default").Range()
	for _, err := range s.Scan(ctx, lower, upper, false) {
		if err != nil {
			t.Fatal(err)
		}
		idx++
	}
	if idx != 0 {
		t.Errorf("%d idempotency keys left after everything expired", idx)
	}
}

// TestRunPurgesOnTheClock: Run waits for each purge on the bus's clock.
func TestRunPurgesOnTheClock(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	b := newBus(t, s, command.WithClock(clk), command.WithPurgeInterval(time.Minute), command.WithIdempotencyWindow(time.Hour))
	orders := register(t, b)
	if _, err := orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"}, command.WithCommandID("p")); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	has := func() bool {
		_, ok, err := s.Get(ctx, idemKey("default", "p"))
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	// Each BlockUntil returns once Run waits again: the purge before it is done.
	for minute := 1; minute <= 61; minute++ {
		if err := clk.BlockUntil(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if minute == 60 && !has() {
			t.Fatal("Run purged a record inside the window")
		}
		clk.Advance(time.Minute)
	}
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if has() {
		t.Fatal("Run did not purge the expired record")
	}
	st, err := b.Status(ctx)
	if err != nil || !st.Running || st.Closed || st.Purges != 61 || st.Purged != 1 || !st.LastPurgeAt.Equal(clk.Now()) ||
		st.LastPurgeError != "" || st.IdempotencyWindowSeconds != 3600 || st.PurgeIntervalSeconds != 60 || st.Name != "default" {
		t.Errorf("Status = %+v, %v", st, err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run = %v after Close", err)
	}
	if n := clk.Waiters(); n != 0 {
		t.Errorf("%d waits left after Run returned", n)
	}
	st, _ = b.Status(ctx)
	if st.Running || !st.Closed {
		t.Errorf("Status after Close = %+v", st)
	}
	js, _ := json.Marshal(st)
	for _, want := range []string{`"closed":true`, `"purged":1`, `"idempotency_window_seconds":3600`, `"filter_ready":`} {
		if !strings.Contains(string(js), want) {
			t.Errorf("status JSON %s lacks %s", js, want)
		}
	}
}

func TestRunPurgesAndStops(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s, err := eventstore.OpenMem(eventstore.WithCleanupInterval(0))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ctx := context.Background()
		b, err := command.New(s, command.WithPurgeInterval(time.Minute), command.WithIdempotencyWindow(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		orders, err := command.Register(ctx, b, orderAggregate(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"}, command.WithCommandID("p")); err != nil {
			t.Fatal(err)
		}
		done := make(chan error)
		go func() { done <- b.Run(ctx) }()
		has := func() bool {
			_, ok, err := s.Get(ctx, idemKey("default", "p"))
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		time.Sleep(59 * time.Minute) // fake time: 59 purges, nothing expired yet
		synctest.Wait()
		if !has() {
			t.Fatal("Run purged a record inside the window")
		}
		time.Sleep(2 * time.Minute)
		synctest.Wait()
		if has() {
			t.Fatal("Run did not purge the expired record")
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatalf("Run = %v after Close", err)
		}
		if err := b.Close(); err != nil {
			t.Fatalf("second Close = %v", err)
		}
		if _, err := orders.Dispatch(ctx, "o-1", AddItem{"x", 1}); command.KindOf(err) != command.KindUnavailable || !errors.Is(err, command.ErrClosed) {
			t.Errorf("Dispatch after Close = %v", err)
		}
	})
}

type validatedAdd struct{ AddItem }

func (v validatedAdd) Validate() error {
	if v.SKU == "" {
		return errors.New("SKU is required")
	}
	return nil
}

type boom struct{}

func (boom) isOrderCommand() {}

func TestErrorKinds(t *testing.T) {
	s := openMem(t)
	b := newBus(t, s)
	events, _ := aggregate.NewEvents[OrderEvent](aggregate.Type[ItemAdded]("order.item_added"))
	ctx := t.Context()
	agg, err := aggregate.New("kinds", aggregate.Decider[Order, OrderCommand, OrderEvent]{
		Decide: func(o Order, c OrderCommand) ([]OrderEvent, error) {
			switch c := c.(type) {
			case boom:
				panic("boom")
			case PlaceOrder:
				return nil, errors.New("plain domain error")
			case ConfirmOrder:
				return nil, command.NotFound("no order")
			case validatedAdd:
				return []OrderEvent{ItemAdded{c.SKU, c.Qty}}, nil
			}
			return nil, command.Rejected("nope")
		},
		Evolve: func(o Order, e OrderEvent) Order { return o },
	}, events)
	if err != nil {
		t.Fatal(err)
	}
	h, err := command.Register(ctx, b, agg)
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for _, tc := range []struct {
		name     string
		ctx      context.Context
		id       string
		cmd      any
		kind     command.Kind
		sentinel error
		text     string
	}{
		{"validation", ctx, "k", validatedAdd{}, command.KindInvalidArgument, command.ErrInvalidArgument, "SKU is required"},
		{"rule", ctx, "k", AddItem{}, command.KindFailedPrecondition, command.ErrRejected, "nope"},
		{"plain decide error", ctx, "k", PlaceOrder{}, command.KindFailedPrecondition, command.ErrRejected, "plain domain error"},
		{"not found", ctx, "k", ConfirmOrder{}, command.KindNotFound, command.ErrNotFound, "no order"},
		{"panic", ctx, "k", boom{}, command.KindInternal, command.ErrInternal, "panic"},
		{"unknown command", ctx, "k", 42, command.KindInvalidArgument, command.ErrInvalidArgument, "no aggregate handles commands of type int"},
		{"nil command", ctx, "k", nil, command.KindInvalidArgument, command.ErrInvalidArgument, "nil command"},
		{"empty aggregate ID", ctx, "", AddItem{}, command.KindInvalidArgument, command.ErrInvalidArgument, "empty aggregate ID"},
		{"cancelled", cancelled, "k", validatedAdd{AddItem{"a", 1}}, command.KindCanceled, context.Canceled, "canceled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := b.Dispatch(tc.ctx, tc.id, tc.cmd)
			if command.KindOf(err) != tc.kind || !errors.Is(err, tc.sentinel) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("err = %v (kind %v), want kind %v matching %v with %q", err, command.KindOf(err), tc.kind, tc.sentinel, tc.text)
			}
			var ce *command.Error
			if !errors.As(err, &ce) {
				t.Fatalf("err %T is not a *command.Error", err)
			}
		})
	}
	// A long command ID is refused.
	if _, err := h.Dispatch(ctx, "k", AddItem{}, command.WithCommandID(strings.Repeat("x", eventstore.MaxIDBytes+1))); command.KindOf(err) != command.KindInvalidArgument {
		t.Errorf("long command ID: %v", err)
	}
	// KindOf on raw errors.
	for err, want := range map[error]command.Kind{
		nil:                                command.KindOK,
		errors.New("x"):                    command.KindInternal,
		&eventstore.VersionConflictError{}: command.KindAborted,
		fmt.Errorf("w: %w", eventstore.ErrClosed): command.KindUnavailable,
		context.DeadlineExceeded:                  command.KindDeadlineExceeded,
		fmt.Errorf("w: %w", command.Denied("no")): command.KindPermissionDenied,
	} {
		if got := command.KindOf(err); got != want {
			t.Errorf("KindOf(%v) = %v, want %v", err, got, want)
		}
	}
}

func TestRegisterAndNewValidation(t *testing.T) {
	s := openMem(t)
	b := newBus(t, s)
	register(t, b)
	if _, err := command.Register(t.Context(), b, orderAggregate(t)); err == nil || !strings.Contains(err.Error(), "already registered") {
		t.Errorf("second Register of order = %v", err)
	}
	if _, err := command.Register(t.Context(), b, orderAggregate(t, aggregate.WithTopic("order2"))); err == nil {
		t.Error("Register accepted a second aggregate of the same name")
	}
	events, _ := aggregate.NewEvents[OrderEvent]()
	other, err := aggregate.New("other", aggregate.Decider[Order, OrderCommand, OrderEvent]{Decide: decide, Evolve: evolve}, events, aggregate.WithTopic("order"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := command.Register(t.Context(), b, other); err == nil || !strings.Contains(err.Error(), `topic "order" is already the topic`) {
		t.Errorf("Register of a second aggregate on topic order = %v", err)
	}
	var nilCmd fmt.Stringer
	if _, err := register2(t, b).Dispatch(t.Context(), "x", nilCmd); command.KindOf(err) != command.KindInvalidArgument {
		t.Errorf("typed Dispatch of a nil command = %v", err)
	}
	_, err = command.New(nil, command.WithName("bad/name"), command.WithIdempotencyWindow(0), command.WithPurgeInterval(-1),
		command.WithRetry(command.RetryPolicy{Retries: -1, Backoff: clock.Backoff{Initial: -1}}), command.WithClock(nil), command.WithLogger(nil), command.WithMiddleware(nil))
	if err == nil {
		t.Fatal("New accepted a bad configuration")
	}
	for _, want := range []string{"nil store", "WithName", "WithIdempotencyWindow", "WithPurgeInterval", "Retries", "Backoff.Initial", "WithClock", "WithLogger", "middleware 0 is nil"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestMiddleware(t *testing.T) {
	s := openMem(t)
	var logs bytes.Buffer
	counters := &observations{}
	var order []string
	trace := func(name string) command.Middleware {
		return func(next command.HandlerFunc) command.HandlerFunc {
			return func(ctx context.Context, cmd *command.Command) (command.Result, error) {
				order = append(order, name)
				if command.CorrelationID(ctx) != cmd.CorrelationID {
					t.Errorf("middleware context lacks the correlation ID")
				}
				return next(ctx, cmd)
			}
		}
	}
	b := newBus(t, s, command.WithMiddleware(
		trace("outer"),
		command.Logging(slog.New(slog.NewJSONHandler(&logs, nil))),
		command.Metrics(counters),
		command.Authorize(func(ctx context.Context, cmd *command.Command) error {
			if cmd.AggregateID == "forbidden" {
				return errors.New("not yours")
			}
			return nil
		}),
		trace("inner"),
	))
	orders := register(t, b)
	ctx := t.Context()
	if _, err := orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"}, command.WithCommandID("c1")); err != nil {
		t.Fatal(err)
	}
	if _, err := orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"}, command.WithCommandID("c1")); err != nil {
		t.Fatal(err)
	}
	_, err := orders.Dispatch(ctx, "forbidden", PlaceOrder{"eve"})
	if command.KindOf(err) != command.KindPermissionDenied || !errors.Is(err, command.ErrPermissionDenied) {
		t.Fatalf("forbidden = %v", err)
	}
	if len(records(t, s, "order", "forbidden")) != 0 {
		t.Error("a refused command appended events")
	}
	_, _ = orders.Dispatch(ctx, "o-1", ConfirmOrder{})
	if !slices.Equal(order, []string{"outer", "inner", "outer", "inner", "outer", "outer", "inner"}) {
		t.Errorf("middleware order %v", order)
	}
	c := counters.sum()
	if c.Applied != 2 || c.Duplicates != 1 || c.Events != 1 || c.Failed[command.KindPermissionDenied] != 1 || c.Failed[command.KindFailedPrecondition] != 1 {
		t.Errorf("counters %+v", c)
	}
	var lines []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 4 {
		t.Fatalf("%d log lines, want 4:\n%s", len(lines), logs.String())
	}
	if l := lines[0]; l["msg"] != "command applied" || l["command_id"] != "c1" || l["aggregate"] != "order" || l["aggregate_id"] != "o-1" ||
		l["command"] != "command_test.PlaceOrder" || l["correlation_id"] != "c1" || l["version"] != 1.0 {
		t.Errorf("first log line %v", l)
	}
	if l := lines[1]; l["duplicate"] != true {
		t.Errorf("duplicate log line %v", l)
	}
	if l := lines[2]; l["level"] != "WARN" || l["kind"] != "permission denied" {
		t.Errorf("refused log line %v", l)
	}
}

// register2 registers a second aggregate type, with its own commands.
func register2(t testing.TB, b *command.Bus) *command.Handler[int, fmt.Stringer, OrderEvent] {
	t.Helper()
	events, _ := aggregate.NewEvents[OrderEvent]()
	a, err := aggregate.New("second", aggregate.Decider[int, fmt.Stringer, OrderEvent]{
		Decide: func(int, fmt.Stringer) ([]OrderEvent, error) { return nil, nil },
		Evolve: func(s int, _ OrderEvent) int { return s },
	}, events)
	if err != nil {
		t.Fatal(err)
	}
	h, err := command.Register(t.Context(), b, a)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestSerializedWaitHonoursContext(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	entered, release := make(chan struct{}), make(chan struct{})
	events, _ := aggregate.NewEvents[OrderEvent](aggregate.Type[ItemAdded]("order.item_added"))
	agg, err := aggregate.New("slow", aggregate.Decider[Order, OrderCommand, OrderEvent]{
		Decide: func(o Order, c OrderCommand) ([]OrderEvent, error) {
			if _, ok := c.(PlaceOrder); ok {
				close(entered)
				<-release
			}
			return []OrderEvent{ItemAdded{"x", 1}}, nil
		},
		Evolve: func(o Order, e OrderEvent) Order { return o },
	}, events)
	if err != nil {
		t.Fatal(err)
	}
	h, err := command.Register(ctx, newBus(t, s), agg)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error)
	go func() {
		_, err := h.Dispatch(ctx, "a", PlaceOrder{})
		first <- err
	}()
	<-entered
	// Another aggregate is not held up.
	if _, err := h.Dispatch(ctx, "b", AddItem{}); err != nil {
		t.Fatal(err)
	}
	// The same aggregate waits, until its context ends.
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := h.Dispatch(cctx, "a", AddItem{}); command.KindOf(err) != command.KindDeadlineExceeded {
		t.Fatalf("waiting for a busy aggregate = %v, want KindDeadlineExceeded", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if res, err := h.Dispatch(ctx, "a", AddItem{}); err != nil || res.Version != 2 || res.Attempts != 1 {
		t.Fatalf("after the first finished: %+v, %v", res, err)
	}
}

// TestStaleCacheNeverDecides checks the bus's use of cached states: a state
// made stale by an append outside the bus never decides an outcome. An
// append on it conflicts and is retried on fresh state; a rejection or a
// no-change outcome is confirmed against the stream first.
func TestStaleCacheNeverDecides(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	orders := register(t, newBus(t, s), aggregate.WithCache(100))
	if _, err := orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"}); err != nil {
		t.Fatal(err)
	}
	behind := func(v uint64, sku string) {
		t.Helper()
		ev, err := orders.Repository().Aggregate().Events().Encode(ItemAdded{sku, 1})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Append(ctx, "order", "o-1", eventstore.Exact(v), []eventstore.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	// The cache says the order is empty; the stream says otherwise.
	behind(1, "a")
	res, err := orders.Dispatch(ctx, "o-1", ConfirmOrder{})
	if err != nil || res.Version != 3 {
		t.Fatalf("confirm on a stale cached state = %+v, %v; want it confirmed at version 3", res, err)
	}
	// A rejection on a stale state is confirmed on the fresh one.
	behind(3, "b")
	res, err = orders.Dispatch(ctx, "o-1", AddItem{"c", 1})
	if command.KindOf(err) != command.KindFailedPrecondition {
		t.Fatalf("add to a confirmed order = %+v, %v; want rejected", res, err)
	}
	st, err := orders.Load(ctx, "o-1")
	if err != nil || st.Version != 4 || st.State.Items["b"] != 1 || !st.State.Confirmed {
		t.Fatalf("state = %+v, %v", st, err)
	}
	// An expected version checks the stream, not the cache.
	behind(4, "d")
	if _, err := orders.Dispatch(ctx, "o-1", ConfirmOrder{}, command.WithExpectedVersion(5)); err != nil {
		t.Fatalf("confirm with the stream's version = %v", err)
	}
}

func TestStaleCacheAppendRetries(t *testing.T) {
	s := openMem(t)
	ctx := t.Context()
	orders := register(t, newBus(t, s), aggregate.WithCache(100))
	if _, err := orders.Dispatch(ctx, "o-1", PlaceOrder{"ada"}); err != nil {
		t.Fatal(err)
	}
	ev, _ := orders.Repository().Aggregate().Events().Encode(ItemAdded{"a", 1})
	if _, err := s.Append(ctx, "order", "o-1", eventstore.Exact(1), []eventstore.Event{ev}); err != nil {
		t.Fatal(err)
	}
	res, err := orders.Dispatch(ctx, "o-1", AddItem{"b", 1})
	if err != nil || res.Version != 3 || res.Attempts != 2 {
		t.Fatalf("add on a stale cached state = %+v, %v; want version 3 on attempt 2", res, err)
	}
	st, _ := orders.Load(ctx, "o-1")
	if st.State.Items["a"] != 1 || st.State.Items["b"] != 1 {
		t.Fatalf("state %+v lost an update", st.State)
	}
}

// The idempotency filter, once loaded from the records of an earlier run,
// still finds every recorded command ID (no false negative), and lets a
// new ID through.
func TestIdempotencyFilterAcrossRestart(t *testing.T) {
	backends.Run(t, testIdempotencyFilterAcrossRestart)
}

func testIdempotencyFilterAcrossRestart(t *testing.T, backend backends.Backend) {
	open := backend.Reopener(t)
	ctx := t.Context()
	s := open()
	b, err := command.New(s)
	if err != nil {
		t.Fatal(err)
	}
	orders := register(t, b)
	const n = 200
	for i := range n {
		if _, err := orders.Dispatch(ctx, fmt.Sprint("o-", i), PlaceOrder{"ada"}, command.WithCommandID(fmt.Sprint("place-", i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := errors.Join(b.Close(), s.Close()); err != nil {
		t.Fatal(err)
	}

	s = open()
	defer s.Close()
	b = newBus(t, s)
	command.WaitFilterLoaded(b)
	orders = register(t, b)
	for i := range n {
		res, err := orders.Dispatch(ctx, fmt.Sprint("o-", i), PlaceOrder{"ada"}, command.WithCommandID(fmt.Sprint("place-", i)))
		if err != nil || !res.Duplicate {
			t.Fatalf("place-%d after restart: duplicate %v, err %v; want the first result", i, res.Duplicate, err)
		}
	}
	res, err := orders.Dispatch(ctx, "o-new", PlaceOrder{"bob"}, command.WithCommandID("place-new"))
	if err != nil || res.Duplicate || res.Version != 1 {
		t.Fatalf("a new command ID: %+v, %v", res, err)
	}
	if got := len(records(t, s, "order", "o-0")); got != 1 {
		t.Fatalf("o-0 has %d events, want 1", got)
	}
}

// Two replicas of a service, each with its bus, on one shared store: a
// command applied by one returns its first result at the other, and
// duplicates sent to both at once are applied once. (The embedded store is
// one process's, so only shared backends run this.)
func TestIdempotencyAcrossReplicas(t *testing.T) {
	backends.Run(t, testIdempotencyAcrossReplicas)
}

func testIdempotencyAcrossReplicas(t *testing.T, backend backends.Backend) {
	stores := backend.Replicas(t, 2)
	ctx := t.Context()
	busA, busB := newBus(t, stores[0]), newBus(t, stores[1])
	command.WaitFilterLoaded(busA)
	command.WaitFilterLoaded(busB)
	a, b := register(t, busA), register(t, busB)

	// Applied at a, retried at b (a client whose answer from a was lost).
	first, err := a.Dispatch(ctx, "o-1", PlaceOrder{"ada"}, command.WithCommandID("place-1"))
	if err != nil {
		t.Fatal(err)
	}
	again, err := b.Dispatch(ctx, "o-1", PlaceOrder{"ada"}, command.WithCommandID("place-1"))
	if err != nil || !again.Duplicate || again.Version != first.Version || !slices.Equal(again.EventIDs, first.EventIDs) {
		t.Fatalf("the retry at the other replica = %+v, %v; want the first result %+v", again, err, first)
	}

	// The same command to both replicas at once, many times over.
	const perReplica = 6
	var wg sync.WaitGroup
	results := make([]command.Result, 2*perReplica)
	errs := make([]error, 2*perReplica)
	for i := range results {
		h := a
		if i%2 == 1 {
			h = b
		}
		wg.Go(func() {
			results[i], errs[i] = h.Dispatch(ctx, "o-1", AddItem{"sku", 1}, command.WithCommandID("add-once"))
		})
	}
	wg.Wait()
	dups := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("dispatch %d: %v", i, errs[i])
		}
		if !slices.Equal(results[i].EventIDs, results[0].EventIDs) || results[i].Version != 2 {
			t.Errorf("dispatch %d: %+v differs from %+v", i, results[i], results[0])
		}
		if results[i].Duplicate {
			dups++
		} else {
			t.Logf("dispatch %d applied it: %+v", i, results[i])
		}
	}
	if dups != len(results)-1 {
		t.Errorf("%d duplicates of %d dispatches, want %d", dups, len(results), len(results)-1)
	}
	if n := len(records(t, stores[0], "order", "o-1")); n != 2 {
		t.Errorf("o-1 has %d events, want 2 (placed, one item added)", n)
	}
	if st, err := b.Load(ctx, "o-1"); err != nil || st.State.Items["sku"] != 1 {
		t.Errorf("state %+v, %v: the command was applied more than once", st.State, err)
	}
}

// observations is a MetricsRecorder that keeps what the Metrics middleware
// reports.
type observations struct {
	mu  sync.Mutex
	obs []command.Observation
}

func (o *observations) ObserveCommand(_ context.Context, ob command.Observation) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.obs = append(o.obs, ob)
}

type observed struct {
	Applied, Duplicates, Events, Retries int
	Failed                               map[command.Kind]int
}

func (o *observations) sum() observed {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := observed{Failed: map[command.Kind]int{}}
	for _, ob := range o.obs {
		if ob.Err != nil {
			s.Failed[ob.Kind]++
		} else {
			s.Applied++
			if ob.Duplicate {
				s.Duplicates++
			}
		}
		s.Events += ob.Events
		s.Retries += max(ob.Attempts-1, 0)
	}
	return s
}
