package bench

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninn-es/muninn/eventstore"
)

// rawSync measures the physical limit: writers goroutines, each committing
// one Pebble batch of one value under a key of its own, with
// Commit(pebble.Sync). Pebble's own group commit shares the fsyncs.
func (e *env) rawSync(ctx context.Context, writers int, warmup, d time.Duration) (float64, error) {
	e.seq++
	run := e.seq
	return e.closedLoopFor(ctx, writers, warmup, d, func(w int) func() error {
		key := fmt.Appendf(nil, "raw/%d/%d/", run, w)
		n := len(key)
		var seq uint64
		return func() error {
			seq++
			key = binary.BigEndian.AppendUint64(key[:n], seq)
			b := e.raw.NewBatch()
			_ = b.Set(key, e.payload(uint64(w)*7919+seq), nil)
			return errors.Join(b.Commit(pebble.Sync), b.Close())
		}
	})
}

// appendDurable measures durable appends: writers goroutines, each appending
// one event at a time to a stream of its own with the exact expected
// version, tracked locally.
func (e *env) appendDurable(ctx context.Context, writers int, warmup, d time.Duration) (float64, error) {
	e.seq++
	run := e.seq
	return e.closedLoopFor(ctx, writers, warmup, d, func(w int) func() error {
		key := fmt.Sprintf("writer-%d-%d", run, w)
		var version uint64
		events := make([]eventstore.Event, 1)
		return func() error {
			events[0] = eventstore.Event{Type: "bench.appended", Payload: e.payload(uint64(w)*7919 + version)}
			res, err := e.store.Append(ctx, appendTopic, key, eventstore.Exact(version), events)
			if err != nil {
				return err
			}
			version = res.LastVersion
			return nil
		}
	})
}

// slicesPerPair is how many alternating slices a raw-versus-store
// measurement is cut into.
const slicesPerPair = 3

// pair measures raw Pebble and durable appends at one concurrency in
// alternating slices (raw, store, raw, store, ...), each side running
// Duration in all. The disks here drift by a factor of two within seconds;
// slicing puts both sides of the ratio under the same drift. Both databases
// flush their memtables before each slice, so that neither slice inherits
// the other database's background writes.
func (e *env) pair(ctx context.Context, writers int) (raw, store float64, err error) {
	slice := max(e.cfg.Duration/slicesPerPair, 50*time.Millisecond)
	for i := range slicesPerPair {
		warmup := time.Duration(0)
		if i == 0 {
			warmup = e.cfg.Warmup
		}
		if err := e.quiesce(ctx); err != nil {
			return 0, 0, err
		}
		r, err := e.rawSync(ctx, writers, warmup, slice)
		if err != nil {
			return 0, 0, fmt.Errorf("raw Pebble: %w", err)
		}
		if err := e.quiesce(ctx); err != nil {
			return 0, 0, err
		}
		s, err := e.appendDurable(ctx, writers, warmup, slice)
		if err != nil {
			return 0, 0, fmt.Errorf("store: %w", err)
		}
		raw += r / slicesPerPair
		store += s / slicesPerPair
	}
	return raw, store, nil
}

// quiesce flushes both databases' memtables.
func (e *env) quiesce(ctx context.Context) error {
	if err := e.raw.Flush(); err != nil {
		return fmt.Errorf("flush raw Pebble: %w", err)
	}
	return e.store.Flush(ctx)
}

// errStopped ends the workers of a closed loop once the time is up.
var errStopped = errors.New("bench: measurement over")

// closedLoop runs workers goroutines, each calling its op in a loop, for the
// warm-up and then for the measured duration, and returns the ops completed
// per second during the latter. If no op completes within the duration (a
// stalled disk), the window is stretched to the first op that does, so that
// the rate is never a meaningless zero. It stops at the first error. Ops
// that are running when the time is up complete; they are not counted.
func (e *env) closedLoop(ctx context.Context, workers int, newOp func(worker int) func() error) (float64, error) {
	return e.closedLoopFor(ctx, workers, e.cfg.Warmup, e.cfg.Duration, newOp)
}

// closedLoopFor is closedLoop with an explicit warm-up and duration.
func (e *env) closedLoopFor(ctx context.Context, workers int, warmup, duration time.Duration, newOp func(worker int) func() error) (float64, error) {
	lctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var (
		ops atomic.Int64
		// next, if set, is closed by the next op to complete.
		next atomic.Pointer[chan struct{}]
		wg   sync.WaitGroup
	)
	for w := range workers {
		op := newOp(w)
		wg.Go(func() {
			for lctx.Err() == nil {
				if err := op(); err != nil {
					stop(err)
					return
				}
				ops.Add(1)
				if next.Load() != nil {
					if ch := next.Swap(nil); ch != nil {
						close(*ch)
					}
				}
			}
		})
	}
	var rate float64
	if sleep(lctx, warmup) {
		n0, t0 := ops.Load(), time.Now()
		ok := sleep(lctx, duration)
		if ok && ops.Load() == n0 {
			ch := make(chan struct{})
			next.Store(&ch)
			if ops.Load() == n0 { // else an op completed before it could see ch
				select {
				case <-ch:
				case <-lctx.Done():
					ok = false
				}
			}
		}
		if ok {
			rate = float64(ops.Load()-n0) / time.Since(t0).Seconds()
		}
	}
	stop(errStopped)
	wg.Wait()
	if err := context.Cause(lctx); err != errStopped {
		return 0, err
	}
	return rate, nil
}

// sleep waits for d and reports whether it did, or false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// loadWorkers is how many goroutines load the read topic.
const loadWorkers = 8

// load fills the read topic with cfg.Streams streams of cfg.EventsPerStream
// events, fast: non-durable appends of up to 100 events from several
// goroutines, then one Store.Sync. It runs once per Run.
func (e *env) load(ctx context.Context) error {
	if e.loaded {
		return nil
	}
	if err := e.fillReadTopic(ctx, e.store, ""); err != nil {
		return err
	}
	e.loaded = true
	return nil
}

// fillReadTopic is the work of load and pgLoad on store s; where names the
// store in the progress line ("" for the embedded one).
func (e *env) fillReadTopic(ctx context.Context, s eventstore.Store, where string) error {
	total := e.cfg.Streams * e.cfg.EventsPerStream
	e.progress("      loading %s streams x %d events%s (NoSync appends, %d goroutines, then Sync)\n",
		thousands(float64(e.cfg.Streams)), e.cfg.EventsPerStream, where, loadWorkers)
	start := time.Now()
	lctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	chunk := min(e.cfg.EventsPerStream, 100)
	var wg sync.WaitGroup
	for w := range loadWorkers {
		wg.Go(func() {
			events := make([]eventstore.Event, chunk)
			for i := w; i < len(e.keys) && lctx.Err() == nil; i += loadWorkers {
				var version uint64
				for version < uint64(e.cfg.EventsPerStream) {
					n := min(chunk, e.cfg.EventsPerStream-int(version))
					for j := range n {
						events[j] = eventstore.Event{Type: "bench.loaded", Payload: e.payload(uint64(i) + version + uint64(j))}
					}
					res, err := s.Append(lctx, readTopic, e.keys[i], eventstore.Exact(version), events[:n], eventstore.NoSync())
					if err != nil {
						stop(err)
						return
					}
					version = res.LastVersion
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(lctx); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	if err := s.Sync(ctx); err != nil {
		return fmt.Errorf("load: %w", err)
	}
	el := time.Since(start)
	e.progress("      loaded %s events in %s (%s events/s)\n",
		thousands(float64(total)), el.Round(time.Millisecond), thousands(float64(total)/el.Seconds()))
	return nil
}

// streamRead reads every stream of the read topic with ReadStream, from one
// goroutine, and returns events per second.
func (e *env) streamRead(ctx context.Context) (float64, error) {
	if err := e.load(ctx); err != nil {
		return 0, err
	}
	// Read from the tables on disk (through the block cache), not from the
	// memtable: the case of a store that has been running for a while.
	if err := e.store.Flush(ctx); err != nil {
		return 0, err
	}
	return e.timedRead(func(yield func(iter.Seq2[eventstore.Record, error]) bool) {
		for _, key := range e.keys {
			if !yield(e.store.ReadStream(ctx, readTopic, key, 0)) {
				return
			}
		}
	})
}

// partitionScan reads every partition of the read topic from offset 0 with
// ReadPartition, from one goroutine, and returns events per second.
func (e *env) partitionScan(ctx context.Context) (float64, error) {
	if err := e.load(ctx); err != nil {
		return 0, err
	}
	return e.timedRead(func(yield func(iter.Seq2[eventstore.Record, error]) bool) {
		for p := range e.cfg.Partitions {
			if !yield(e.store.ReadPartition(ctx, readTopic, p, 0)) {
				return
			}
		}
	})
}

// timedRead drains every read that reads yields, checks that together they
// saw every loaded event whole, and repeats that whole pass until
// cfg.Duration has passed (once at least), so that one short pass (a
// tenth of a second at 100,000 events) cannot make the figure; the first
// pass, on cold caches, counts like the others. It returns events per
// second over all passes.
func (e *env) timedRead(reads iter.Seq[iter.Seq2[eventstore.Record, error]]) (float64, error) {
	var total int
	start := time.Now()
	for {
		var events, bytes int
		for read := range reads {
			for rec, err := range read {
				if err != nil {
					return 0, err
				}
				events++
				bytes += len(rec.Payload)
			}
		}
		if err := e.checkRead(events, bytes); err != nil {
			return 0, err
		}
		total += events
		if time.Since(start) >= e.cfg.Duration {
			break
		}
	}
	return float64(total) / time.Since(start).Seconds(), nil
}

// checkRead verifies that a read saw every loaded event, whole.
func (e *env) checkRead(events, bytes int) error {
	want := e.cfg.Streams * e.cfg.EventsPerStream
	if events != want || bytes != want*e.cfg.PayloadBytes {
		return fmt.Errorf("read %d events with %d payload bytes, want %d events with %d bytes",
			events, bytes, want, want*e.cfg.PayloadBytes)
	}
	return nil
}
