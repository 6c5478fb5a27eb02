package projection_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/backends"
	"github.com/muninn-es/muninn/projection"
)

// counted is a row of the rebuild test: a count, and the generation that
// wrote it, so that a query shows which generation answered.
type counted struct {
	N   int64  `json:"n"`
	Gen uint64 `json:"gen"`
}

func newCounter(t *testing.T, s eventstore.Store, name string, opts ...projection.Option) (*projection.Projection, *projection.Table[string, counted]) {
	t.Helper()
	tbl, err := projection.NewTable("counts", projection.StringKey(), codec.JSON[counted]())
	if err != nil {
		t.Fatal(err)
	}
	h := projection.HandlerFunc(func(tx *projection.Tx, rec eventstore.Record) error {
		c, _, err := tbl.Load(tx, rec.Key)
		if err != nil {
			return err
		}
		return tbl.Put(tx, rec.Key, counted{N: c.N + 1, Gen: tx.Generation()})
	})
	p, err := projection.New(s, name, []string{"orders"}, h, append([]projection.Option{projection.WithTables(tbl)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return p, tbl
}

func openOrders(t *testing.T, partitions int) eventstore.Store {
	t.Helper()
	s, err := eventstore.OpenMem(eventstore.WithLogger(quietLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return openOrdersOn(t, s, partitions)
}

// openOrdersOn creates the topic "orders" on a store of the test's (see
// package internal/backends) and returns the store.
func openOrdersOn(t *testing.T, s eventstore.Store, partitions int) eventstore.Store {
	t.Helper()
	if err := s.CreateTopic(context.Background(), "orders", eventstore.TopicConfig{Partitions: partitions}); err != nil {
		t.Fatal(err)
	}
	return s
}

// appendN appends n events over keys keys of topic "orders" (non-durably)
// and returns the last position of every partition it wrote to: what a
// reader waits for to have seen all of them (a position only speaks for its
// own partition).
func appendN(t *testing.T, s eventstore.Store, n, keys int, typ string) []projection.Position {
	t.Helper()
	last := map[int]projection.Position{}
	for i := range n {
		res, err := s.Append(context.Background(), "orders", fmt.Sprintf("k%02d", i%keys), eventstore.Any,
			[]eventstore.Event{{Type: typ, Payload: []byte(`{}`)}}, eventstore.NoSync())
		if err != nil {
			t.Fatal(err)
		}
		last[res.Partition] = projection.PositionOf(res)
	}
	var out []projection.Position
	for _, pos := range last {
		out = append(out, pos)
	}
	return out
}

func sumCounts(m map[string]counted) (total int64, gens map[uint64]int) {
	gens = map[uint64]int{}
	for _, c := range m {
		total += c.N
		gens[c.Gen]++
	}
	return total, gens
}

func startRun(t *testing.T, p *projection.Projection) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
}

func TestRebuildWhileQuerying(t *testing.T) {
	backends.Run(t, testRebuildWhileQuerying)
}

func testRebuildWhileQuerying(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	s := openOrdersOn(t, backend.Open(t), 3)
	p, tbl := newCounter(t, s, "counter", projection.WithBatchSize(50), projection.WithProgressInterval(0))
	last := appendN(t, s, 1200, 20, "order.placed")

	stop := startRun(t, p)
	defer stop()
	if err := p.WaitFor(ctx, last...); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx); !errors.Is(err, consume.ErrRunning) {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}

	applied := int64(1200)
	var reports []projection.Progress
	var midQueries atomic.Int32
	err := p.Rebuild(ctx, projection.OnProgress(func(pr projection.Progress) {
		reports = append(reports, pr)
		if pr.Finished {
			return
		}
		// During the rebuild: the old generation answers, complete and
		// consistent, and keeps following the log (read your writes).
		res := appendN(t, s, 1, 20, "order.placed")
		applied++
		qctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if _, _, err := tbl.Get(qctx, "k00", projection.AtLeast(res...)); err != nil {
			t.Errorf("read-your-writes during rebuild: %v", err)
			return
		}
		total, gens := sumCounts(scanAll(t, tbl))
		if total != applied || len(gens) != 1 || gens[1] == 0 {
			t.Errorf("query during rebuild (at %d/%d): total %d over generations %v; want %d, all from generation 1",
				pr.Done, pr.Total, total, gens, applied)
		}
		st, err := p.Status(ctx)
		if err != nil || st.Rebuild == nil || st.Rebuild.Generation != 2 || st.Generation != 1 {
			t.Errorf("Status during rebuild: %+v, %v", st, err)
		}
		if err := p.Rebuild(ctx); !errors.Is(err, consume.ErrRunning) {
			t.Errorf("concurrent Rebuild: %v, want ErrRunning", err)
		}
		midQueries.Add(1)
	}))
	if err != nil {
		t.Fatal(err)
	}
	if midQueries.Load() < 5 {
		t.Errorf("only %d queries ran during the rebuild", midQueries.Load())
	}
	if g, err := p.Generation(ctx); err != nil || g != 2 {
		t.Errorf("generation after rebuild = %d, %v; want 2", g, err)
	}
	final := reports[len(reports)-1]
	if !final.Finished || final.Done != final.Total || final.Total != 1200 || final.Fraction() != 1 {
		t.Errorf("final progress %+v", final)
	}
	for i := 1; i < len(reports); i++ {
		if reports[i].Done < reports[i-1].Done {
			t.Errorf("progress went back: %d then %d", reports[i-1].Done, reports[i].Done)
		}
	}
	total, gens := sumCounts(scanAll(t, tbl))
	if total != applied || len(gens) != 1 || gens[2] == 0 {
		t.Errorf("after the swap: total %d over generations %v; want %d, all from generation 2", total, gens, applied)
	}
	// The old generation is gone.
	oldLo, oldHi := genRange("counter", 1)
	for kv, err := range s.Scan(ctx, oldLo, oldHi, false) {
		t.Fatalf("old generation left behind: %q, %v", kv.Key, err)
	}
	// The live runner moved to the new generation and goes on.
	res := appendN(t, s, 5, 20, "order.placed")
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	got, _, err := tbl.Get(wctx, "k04", projection.AtLeast(res...))
	if err != nil {
		t.Fatal(err)
	}
	total, gens = sumCounts(scanAll(t, tbl))
	if total != applied+5 || got.Gen != 2 || len(gens) != 1 {
		t.Errorf("after the swap, live: total %d (want %d), generations %v, k04 %+v", total, applied+5, gens, got)
	}
	st, err := p.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Generation != 2 || st.Rebuild != nil || (st.State != consume.StateLive && st.State != consume.StateCatchingUp) {
		t.Errorf("status after rebuild: %+v", st)
	}
}

// A rebuild without a running projection, then a second one: the
// alternating consumer groups start from zero each time.
func TestRebuildTwiceWithoutRun(t *testing.T) {
	backends.Run(t, testRebuildTwiceWithoutRun)
}

func testRebuildTwiceWithoutRun(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	s := openOrdersOn(t, backend.Open(t), 2)
	p, tbl := newCounter(t, s, "twice")
	appendN(t, s, 300, 7, "x")
	catchUp(t, s, p, "orders")
	for want := uint64(2); want <= 3; want++ {
		if err := p.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		total, gens := sumCounts(scanAll(t, tbl))
		if total != 300 || len(gens) != 1 || gens[want] != 7 {
			t.Errorf("after rebuild to %d: total %d, generations %v", want, total, gens)
		}
	}
	// A fresh Projection value (a restart) reads the swapped generation
	// and its checkpoint.
	p2, tbl2 := newCounter(t, s, "twice")
	appendN(t, s, 10, 7, "x")
	catchUp(t, s, p2, "orders")
	total, gens := sumCounts(scanAll(t, tbl2))
	if total != 310 || gens[3] != 7 {
		t.Errorf("after restart: total %d, generations %v", total, gens)
	}
}

// An interrupted rebuild leaves the current generation serving, and the
// next rebuild starts over.
func TestRebuildInterrupted(t *testing.T) {
	backends.Run(t, testRebuildInterrupted)
}

func testRebuildInterrupted(t *testing.T, backend backends.Backend) {
	ctx := context.Background()
	s := openOrdersOn(t, backend.Open(t), 2)
	p, tbl := newCounter(t, s, "interrupted", projection.WithBatchSize(10), projection.WithProgressInterval(0))
	appendN(t, s, 200, 5, "x")
	catchUp(t, s, p, "orders")
	rctx, cancel := context.WithCancel(ctx)
	err := p.Rebuild(rctx, projection.OnProgress(func(pr projection.Progress) {
		if pr.Done >= 50 {
			cancel()
		}
	}))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted rebuild: %v, want context.Canceled", err)
	}
	total, gens := sumCounts(scanAll(t, tbl))
	if total != 200 || gens[1] != 5 || len(gens) != 1 {
		t.Errorf("after an interrupted rebuild: total %d, generations %v", total, gens)
	}
	partialLo, partialHi := genRange("interrupted", 2)
	count := func() int {
		n := 0
		for _, err := range s.Scan(ctx, partialLo, partialHi, false) {
			if err != nil {
				t.Fatal(err)
			}
			n++
		}
		return n
	}
	if count() == 0 {
		t.Fatal("the interrupted rebuild wrote nothing; the test needs a partial generation")
	}
	// Run drops the abandoned partial generation before it applies the
	// next record.
	appendN(t, s, 1, 5, "x")
	catchUp(t, s, p, "orders")
	if n := count(); n != 0 {
		t.Errorf("%d keys of the abandoned generation left after Run", n)
	}
	if err := p.Rebuild(ctx); err != nil {
		t.Fatal(err)
	}
	total, gens = sumCounts(scanAll(t, tbl))
	if total != 201 || gens[2] != 5 || len(gens) != 1 {
		t.Errorf("after the next rebuild: total %d, generations %v", total, gens)
	}
}

func TestRebuildProgressClock(t *testing.T) {
	ctx := context.Background()
	s := openOrders(t, 1)
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	p, _ := newCounter(t, s, "clocked", projection.WithBatchSize(100), projection.WithClock(clk), projection.WithProgressInterval(0))
	appendN(t, s, 400, 4, "x")
	var reports []projection.Progress
	// A second passes on the projection's clock after each report.
	if err := p.Rebuild(ctx, projection.OnProgress(func(pr projection.Progress) {
		reports = append(reports, pr)
		clk.Advance(time.Second)
	})); err != nil {
		t.Fatal(err)
	}
	var mid *projection.Progress
	for i := range reports {
		if reports[i].Done == 200 {
			mid = &reports[i]
		}
	}
	if mid == nil {
		t.Fatalf("no report at 200 of 400: %+v", reports)
	}
	// Two reports (at 0 and 100) came before: two seconds, 100 a second,
	// two seconds to go.
	if mid.Rate != 100 || mid.ETA != 2*time.Second || mid.Elapsed != 2*time.Second || mid.Total != 400 {
		t.Errorf("progress at half-way: %+v", *mid)
	}
	wantETA := time.Duration(float64(200) / mid.Rate * float64(time.Second))
	if mid.ETA != wantETA {
		t.Errorf("ETA %v, want %v (200 left at %.1f/s)", mid.ETA, wantETA, mid.Rate)
	}
}
