package bench

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
)

// The write side's benchmark aggregate: a counter whose events carry a
// payload of Config.PayloadBytes (as a hex string, half as many raw bytes).

type benchState struct {
	Count int
	Last  string
}

type benchCommand struct{ Data string }

type benchEvent struct {
	Seq  int    `json:"seq"`
	Data string `json:"data"`
}

// Names of the write-side benchmark aggregates (and so of their topics).
const (
	busAggregate      = "bench-bus"
	loadAggregate     = "bench-load"
	loadSnapAggregate = "bench-load-snap"
	// loadEvents is the length of the stream the load measurements read,
	// and loadSnapshotEvery the snapshot interval of the second one.
	loadEvents        = 1000
	loadSnapshotEvery = 100
	// busClients is the command bus measurement's concurrency.
	busClients = 16
)

func benchAggregate(name string, partitions int, opts ...aggregate.Option) (*aggregate.Aggregate[benchState, benchCommand, benchEvent], error) {
	events, err := aggregate.NewEvents[benchEvent](aggregate.Type[benchEvent]("bench.counted"))
	if err != nil {
		return nil, err
	}
	return aggregate.New(name, aggregate.Decider[benchState, benchCommand, benchEvent]{
		Decide: func(s benchState, c benchCommand) ([]benchEvent, error) {
			return []benchEvent{{Seq: s.Count + 1, Data: c.Data}}, nil
		},
		Evolve: func(s benchState, e benchEvent) benchState {
			s.Count, s.Last = e.Seq, e.Data
			return s
		},
	}, events, append([]aggregate.Option{aggregate.WithPartitions(partitions)}, opts...)...)
}

// data returns one of the pool's payloads as a hex string of about
// PayloadBytes characters.
func (e *env) data(i uint64) string {
	p := e.payload(i)
	return hex.EncodeToString(p[:max(len(p)/2, 1)])
}

// commandBus measures durable commands per second through the command bus:
// busClients goroutines, each sending commands with their own command IDs
// to an aggregate of its own (load, decide, durable append with the
// idempotency record in the same batch). The aggregate caches states and
// snapshots every 100 events, as a production setup would. Like pair, it
// alternates slices of the bus with slices of plain durable appends from as
// many goroutines, and returns both rates: the disks here drift by a factor
// of several within a run, and only rates measured side by side make a
// meaningful ratio.
func (e *env) commandBus(ctx context.Context) ([]float64, error) {
	agg, err := benchAggregate(busAggregate, e.cfg.Partitions, aggregate.WithCache(4096), aggregate.WithSnapshots(loadSnapshotEvery))
	if err != nil {
		return nil, err
	}
	e.seq++
	run := e.seq
	bus, err := command.New(e.store, command.WithName("bench-"+strconv.Itoa(run)))
	if err != nil {
		return nil, err
	}
	defer bus.Close()
	h, err := command.Register(ctx, bus, agg)
	if err != nil {
		return nil, err
	}
	seqs := make([]uint64, busClients) // per client, across slices
	slice := max(e.cfg.Duration/slicesPerPair, 50*time.Millisecond)
	var busRate, appendRate float64
	for i := range slicesPerPair {
		warmup := time.Duration(0)
		if i == 0 {
			warmup = e.cfg.Warmup
		}
		if err := e.store.Flush(ctx); err != nil {
			return nil, err
		}
		b, err := e.closedLoopFor(ctx, busClients, warmup, slice, func(w int) func() error {
			id := fmt.Sprintf("agg-%d-%d", run, w)
			prefix := id + "-cmd-"
			return func() error {
				seqs[w]++
				seq := seqs[w]
				res, err := h.Dispatch(ctx, id, benchCommand{Data: e.data(uint64(w)*7919 + seq)},
					command.WithCommandID(prefix+strconv.FormatUint(seq, 10)))
				if err != nil {
					return err
				}
				if res.Version != seq {
					return fmt.Errorf("command %d on %s: version %d", seq, id, res.Version)
				}
				return nil
			}
		})
		if err != nil {
			return nil, fmt.Errorf("command bus: %w", err)
		}
		if err := e.store.Flush(ctx); err != nil {
			return nil, err
		}
		a, err := e.appendDurable(ctx, busClients, warmup, slice)
		if err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
		busRate += b / slicesPerPair
		appendRate += a / slicesPerPair
	}
	return []float64{busRate, appendRate}, nil
}

// loadTimes loads an aggregate of loadEvents events, once without
// snapshots and once with a snapshot every loadSnapshotEvery events, and
// returns the median time of a Load of each, in microseconds. The
// aggregates are written once per Run (non-durable saves, then a Sync) and
// read from the tables on disk.
func (e *env) loadTimes(ctx context.Context) ([]float64, error) {
	plain, err := benchAggregate(loadAggregate, e.cfg.Partitions)
	if err != nil {
		return nil, err
	}
	snap, err := benchAggregate(loadSnapAggregate, e.cfg.Partitions, aggregate.WithSnapshots(loadSnapshotEvery))
	if err != nil {
		return nil, err
	}
	plainRepo, err := aggregate.NewRepository(ctx, e.store, plain)
	if err != nil {
		return nil, err
	}
	snapRepo, err := aggregate.NewRepository(ctx, e.store, snap)
	if err != nil {
		return nil, err
	}
	const id = "aggregate-of-1000"
	if err := fill(ctx, e, plainRepo, id); err != nil {
		return nil, err
	}
	if err := fill(ctx, e, snapRepo, id); err != nil {
		return nil, err
	}
	if err := e.store.Sync(ctx); err != nil {
		return nil, err
	}
	if err := e.store.Flush(ctx); err != nil {
		return nil, err
	}
	budget := max(e.cfg.Duration/2, 50*time.Millisecond)
	plainUs, err := medianLoad(ctx, plainRepo, id, budget, 0)
	if err != nil {
		return nil, fmt.Errorf("load without snapshots: %w", err)
	}
	snapUs, err := medianLoad(ctx, snapRepo, id, budget, loadEvents)
	if err != nil {
		return nil, fmt.Errorf("load with snapshots: %w", err)
	}
	e.progress("      a load of %d events took %.0f µs; from the snapshot at %d, %.1f µs\n", loadEvents, plainUs, loadEvents, snapUs)
	return []float64{plainUs, snapUs}, nil
}

// fill writes loadEvents events to id, in saves of 100 (each of which
// snapshots, if the aggregate does), non-durably.
func fill(ctx context.Context, e *env, r *aggregate.Repository[benchState, benchCommand, benchEvent], id string) error {
	st, err := r.Load(ctx, id)
	if err != nil {
		return err
	}
	if st.Version == loadEvents {
		return nil // loaded by an earlier round
	}
	if st.Version != 0 {
		return fmt.Errorf("%s has %d events, want 0 or %d", id, st.Version, loadEvents)
	}
	batch := make([]benchEvent, 0, 100)
	for st.Version < loadEvents {
		batch = batch[:0]
		for i := range min(100, loadEvents-int(st.Version)) {
			n := int(st.Version) + i + 1
			batch = append(batch, benchEvent{Seq: n, Data: e.data(uint64(n))})
		}
		if _, err := r.Save(ctx, st, batch, aggregate.WithAppendOptions(eventstore.NoSync())); err != nil {
			return err
		}
	}
	return nil
}

// medianLoad loads id repeatedly for about budget (at least 5 and at most
// 10,000 times) and returns the median duration in microseconds. Each load
// must reach version loadEvents, from the snapshot at wantSnapshot.
func medianLoad(ctx context.Context, r *aggregate.Repository[benchState, benchCommand, benchEvent], id string, budget time.Duration, wantSnapshot uint64) (float64, error) {
	var times []time.Duration
	start := time.Now()
	for len(times) < 5 || (time.Since(start) < budget && len(times) < 10_000) {
		t0 := time.Now()
		st, err := r.Load(ctx, id)
		d := time.Since(t0)
		if err != nil {
			return 0, err
		}
		if st.Version != loadEvents || st.State.Count != loadEvents || st.SnapshotVersion != wantSnapshot {
			return 0, errors.New("loaded " + strconv.FormatUint(st.Version, 10) + " events from snapshot " + strconv.FormatUint(st.SnapshotVersion, 10))
		}
		times = append(times, d)
	}
	slices.Sort(times)
	return float64(times[len(times)/2].Nanoseconds()) / 1e3, nil
}
