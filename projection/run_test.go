package projection_test

import (
	"context"
	"encoding/json"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/backends"
	"github.com/muninn-es/muninn/projection"
)

type cartOpened struct {
	Customer string `json:"customer"`
}

type cartCmd struct {
	Customer string
	// Noop makes the command change nothing (no event).
	Noop bool
}

// cartAggregate is an aggregate of topic "cart" whose command opens a cart.
func cartAggregate(t *testing.T) (*aggregate.Aggregate[int, cartCmd, any], *aggregate.Events[any]) {
	t.Helper()
	events, err := aggregate.NewEvents[any](aggregate.Type[cartOpened]("cart.opened"))
	if err != nil {
		t.Fatal(err)
	}
	agg, err := aggregate.New("cart", aggregate.Decider[int, cartCmd, any]{
		Decide: func(_ int, c cartCmd) ([]any, error) {
			if c.Noop {
				return nil, nil
			}
			return []any{cartOpened{Customer: c.Customer}}, nil
		},
		Evolve: func(n int, _ any) int { return n + 1 },
	}, events)
	if err != nil {
		t.Fatal(err)
	}
	return agg, events
}

// A projection may start before its topic exists (before command.Register
// created it): Run waits, looking again on the projection's clock, and
// Status names the missing topic. Then a query waits for what the bus
// returned, as returned and as parsed from its text form.
func TestRunWaitsForTopics(t *testing.T) {
	ctx := t.Context()
	s, err := eventstore.OpenMem(eventstore.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	agg, events := cartAggregate(t)
	carts, err := projection.NewTable("carts", projection.StringKey(), codec.JSON[cartOpened]())
	if err != nil {
		t.Fatal(err)
	}
	r := projection.NewRouter()
	if err := projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, e cartOpened) error {
		return carts.Put(tx, rec.Key, e)
	}); err != nil {
		t.Fatal(err)
	}
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	p, err := projection.New(s, "carts", []string{"cart"}, r, projection.WithTables(carts), projection.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, p)
	defer stop()

	// Run has looked for the topic and waits on the clock to look again.
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	st, err := p.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(st.MissingTopics, []string{"cart"}) || st.State != consume.StateCatchingUp || len(st.Partitions) != 0 {
		t.Errorf("status while waiting for the topic: %+v", st)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if err := p.WaitFor(wctx, projection.Position{Topic: "cart", Partition: 3, Offset: 0}); !errors.Is(err, consume.ErrNotReached) {
		t.Errorf("WaitFor on a topic not created yet: %v, want ErrNotReached", err)
	}

	bus, err := command.New(s)
	if err != nil {
		t.Fatal(err)
	}
	defer bus.Close()
	h, err := command.Register(ctx, bus, agg)
	if err != nil {
		t.Fatal(err)
	}
	res, err := h.Dispatch(ctx, "cart-1", cartCmd{Customer: "ada"})
	if err != nil {
		t.Fatal(err)
	}
	// The topic exists; Run finds it at its next look.
	clk.Advance(time.Second)

	qctx, qcancel := context.WithTimeout(ctx, time.Minute)
	defer qcancel()
	if c, ok, err := carts.Get(qctx, "cart-1", projection.AtLeast(projection.PositionOf(res))); err != nil || !ok || c.Customer != "ada" {
		t.Fatalf("cart-1 after the command = %+v, %v, %v", c, ok, err)
	}
	res2, err := h.Dispatch(ctx, "cart-2", cartCmd{Customer: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	// A client sends the position back as text.
	pos, err := eventstore.ParsePosition(res2.Position().String())
	if err != nil {
		t.Fatal(err)
	}
	if c, ok, err := carts.Get(qctx, "cart-2", projection.AtLeast(pos)); err != nil || !ok || c.Customer != "bob" {
		t.Fatalf("cart-2 at parsed position %s = %+v, %v, %v", pos, c, ok, err)
	}
	// A command that appended nothing has a position every reader has
	// reached.
	none, err := h.Dispatch(ctx, "cart-1", cartCmd{Noop: true})
	if err != nil {
		t.Fatal(err)
	}
	if none.Position().Offset != -1 {
		t.Fatalf("a command without events has position %s", none.Position())
	}
	ictx, icancel := context.WithCancel(ctx)
	icancel() // no waiting at all
	if err := p.WaitFor(ictx, projection.PositionOf(none)); err != nil {
		t.Errorf("WaitFor a command without events: %v", err)
	}
	if st, err := p.Status(ctx); err != nil || len(st.MissingTopics) != 0 || len(st.Partitions) != aggregate.DefaultPartitions {
		t.Errorf("status once the topic exists: %+v, %v", st, err)
	}
}

// Rebuild, like Run, waits for its topics.
func TestRebuildWaitsForTopics(t *testing.T) {
	ctx := t.Context()
	s, err := eventstore.OpenMem(eventstore.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	p, tbl := newCounter(t, s, "early", projection.WithClock(clk))
	done := make(chan error, 1)
	go func() { done <- p.Rebuild(ctx) }()
	if err := clk.BlockUntil(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	appendN(t, s, 10, 3, "x")
	clk.Advance(time.Second)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if total, gens := sumCounts(scanAll(t, tbl)); total != 10 || gens[2] != 3 {
		t.Errorf("after the rebuild: total %d, generations %v", total, gens)
	}
}

// Status marshals to readable JSON: states by name, errors as strings,
// lag in records and seconds, the generation and a rebuild's progress.
func TestStatusJSON(t *testing.T) {
	ctx := t.Context()
	s := openOrders(t, 2)
	p, _ := newCounter(t, s, "json", projection.WithBatchSize(10), projection.WithProgressInterval(0))
	last := appendN(t, s, 50, 5, "x")
	stop := startRun(t, p)
	defer stop()
	if err := p.WaitFor(ctx, last...); err != nil {
		t.Fatal(err)
	}
	decode := func(st projection.Status) map[string]any {
		t.Helper()
		b, err := json.Marshal(st)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	// WaitFor returns once the positions are committed; the loop turns live
	// when its next poll finds nothing more, which may come just after.
	st, err := p.Status(ctx)
	for err == nil && st.State == consume.StateCatchingUp && ctx.Err() == nil {
		runtime.Gosched()
		st, err = p.Status(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	m := decode(st)
	if m["name"] != "json" || m["group"] != "projection.json.1" || m["state"] != "live" || m["generation"] != 1.0 ||
		m["lag"] != 0.0 || m["lag_seconds"] != 0.0 || m["policy"] != "stop" || m["rebuild"] != nil {
		t.Errorf("status JSON %v", m)
	}
	if parts, _ := m["partitions"].([]any); len(parts) != 2 {
		t.Errorf("partitions %v", m["partitions"])
	} else if p0, _ := parts[0].(map[string]any); p0["topic"] != "orders" || p0["lag"] != 0.0 {
		t.Errorf("partition %v", p0)
	}
	if c, _ := m["counters"].(map[string]any); c["applied"] != 50.0 {
		t.Errorf("counters %v", m["counters"])
	}

	var during map[string]any
	err = p.Rebuild(ctx, projection.OnProgress(func(pr projection.Progress) {
		if during == nil && pr.Done > 0 && !pr.Finished {
			st, err := p.Status(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			during = decode(st)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	rb, _ := during["rebuild"].(map[string]any)
	if during["generation"] != 1.0 || rb["generation"] != 2.0 || rb["total"] != 50.0 || rb["done"] == 0.0 ||
		rb["finished"] != false || rb["elapsed_seconds"] == nil || rb["fraction"] == nil {
		t.Errorf("status JSON during the rebuild: %v", during)
	}
	var back projection.Progress
	if b, err := json.Marshal(rb); err != nil || json.Unmarshal(b, &back) != nil || back.Generation != 2 || back.Total != 50 {
		t.Errorf("progress JSON does not read back: %+v, %v", back, err)
	}

	// A failed projection reports its error as a string.
	f, _ := newFlaky(t, s, "json-failing", projection.WithRetries(0))
	appendTyped(t, s, "z", "bad")
	if err := f.Run(ctx); err == nil {
		t.Fatal("Run of a failing handler returned nil")
	}
	st, err = f.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m = decode(st)
	if e, _ := m["error"].(string); m["state"] != "failed" || !strings.Contains(e, "cannot handle z") || m["lag"] == 0.0 {
		t.Errorf("failed status JSON %v", m)
	}
}

// Two rebuilds in a row while Run runs: after each swap the old live loop
// has left its group before Rebuild returns, so the next rebuild finds it
// empty, and Run follows each new generation.
func TestRebuildTwiceWhileRunning(t *testing.T) {
	backends.Run(t, testRebuildTwiceWhileRunning)
}

func testRebuildTwiceWhileRunning(t *testing.T, backend backends.Backend) {
	ctx := t.Context()
	s := openOrdersOn(t, backend.Open(t), 3)
	p, tbl := newCounter(t, s, "twice-live", projection.WithBatchSize(20))
	last := appendN(t, s, 200, 10, "x")
	stop := startRun(t, p)
	defer stop()
	if err := p.WaitFor(ctx, last...); err != nil {
		t.Fatal(err)
	}
	// Back to back: each rebuild's group is the one the live loop left at
	// the swap before.
	for want := uint64(2); want <= 4; want++ {
		if err := p.Rebuild(ctx); err != nil {
			t.Fatalf("rebuild to generation %d: %v", want, err)
		}
	}
	res := appendN(t, s, 3, 10, "x")
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, _, err := tbl.Get(wctx, "k00", projection.AtLeast(res...)); err != nil {
		t.Fatalf("live after the rebuilds: %v", err)
	}
	total, gens := sumCounts(scanAll(t, tbl))
	if total != 203 || len(gens) != 1 || gens[4] == 0 {
		t.Errorf("after three rebuilds: total %d, generations %v", total, gens)
	}
	if g, err := p.Generation(ctx); err != nil || g != 4 {
		t.Errorf("generation %d, %v; want 4", g, err)
	}
}
