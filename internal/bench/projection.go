package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/projection"
)

// projectionTopic is the topic the projection measurement loads.
const projectionTopic = "bench-projection"

// projectionKeys is how many aggregates the projection's events belong to,
// and projectionTypes how many event types they have.
const (
	projectionKeys  = 10_000
	projectionTypes = 8
)

// projectionCatchup loads cfg.ProjectionEvents events into a topic of a
// store of its own (NoSync appends, then Sync and Flush), then times a fresh projection catching
// up from offset zero into a counter read model: one count per event type
// and one per aggregate, each a read-modify-write of a table row per
// event, committed with the offsets one Update (one fsync) per batch. It
// returns events per second and checks the counts.
func (e *env) projectionCatchup(ctx context.Context) (res float64, err error) {
	n := e.cfg.ProjectionEvents
	e.seq++
	topic := fmt.Sprintf("%s-%d", projectionTopic, e.seq)
	// A store of its own, without automatic compactions: a catch-up reads
	// a log written long before, while on two cores the compaction of the
	// freshly loaded events (and of the earlier steps' appends) would take
	// most of the CPU. The loaded events are flushed to tables first.
	dir, err := os.MkdirTemp(e.cfg.Dir, "muninn-bench-projection-")
	if err != nil {
		return 0, err
	}
	defer func() {
		if rmErr := os.RemoveAll(dir); rmErr != nil && err == nil {
			err = rmErr
		}
	}()
	store, err := eventstore.Open(dir, eventstore.WithPebbleOptions(func(o *pebble.Options) { o.DisableAutomaticCompactions = true }))
	if err != nil {
		return 0, err
	}
	defer func() {
		if cErr := store.Close(); cErr != nil && err == nil {
			err = cErr
		}
	}()
	if err := store.CreateTopic(ctx, topic, eventstore.TopicConfig{Partitions: e.cfg.Partitions}); err != nil {
		return 0, err
	}
	e.progress("      loading %s events into %s (NoSync appends, %d goroutines, then Sync)\n", thousands(float64(n)), topic, loadWorkers)
	keys := min(projectionKeys, n)
	types := make([]string, projectionTypes)
	for i := range types {
		types[i] = fmt.Sprintf("bench.type%d", i)
	}
	lctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var wg sync.WaitGroup
	for w := range loadWorkers {
		wg.Go(func() {
			events := make([]eventstore.Event, 0, 100)
			for k := w; k < keys && lctx.Err() == nil; k += loadWorkers {
				// Key k gets the events i with i % keys == k.
				count := n / keys
				if k < n%keys {
					count++
				}
				key := fmt.Sprintf("agg-%06d", k)
				for sent := 0; sent < count; {
					events = events[:0]
					for j := 0; j < 100 && sent+j < count; j++ {
						i := (sent+j)*keys + k
						events = append(events, eventstore.Event{Type: types[i%projectionTypes], Payload: e.payload(uint64(i))})
					}
					if _, err := store.Append(lctx, topic, key, eventstore.Any, events, eventstore.NoSync()); err != nil {
						stop(err)
						return
					}
					sent += len(events)
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(lctx); err != nil {
		return 0, fmt.Errorf("load: %w", err)
	}
	if err := store.Sync(ctx); err != nil {
		return 0, fmt.Errorf("load: %w", err)
	}
	// A catch-up reads a log written earlier, from tables rather than the
	// memtable, and without the load's flush running beside it.
	if err := store.Flush(ctx); err != nil {
		return 0, fmt.Errorf("load: %w", err)
	}

	byType, err := projection.NewTable("by-type", projection.StringKey(), codec.Int64())
	if err != nil {
		return 0, err
	}
	byKey, err := projection.NewTable("by-aggregate", projection.StringKey(), codec.Int64())
	if err != nil {
		return 0, err
	}
	incr := func(tx *projection.Tx, t *projection.Table[string, int64], k string) error {
		c, _, err := t.Load(tx, k)
		if err != nil {
			return err
		}
		return t.Put(tx, k, c+1)
	}
	h := projection.HandlerFunc(func(tx *projection.Tx, rec eventstore.Record) error {
		if err := incr(tx, byType, rec.Type); err != nil {
			return err
		}
		return incr(tx, byKey, rec.Key)
	})
	p, err := projection.New(store, fmt.Sprintf("bench-counter-%d", e.seq), []string{topic}, h, projection.WithTables(byType, byKey))
	if err != nil {
		return 0, err
	}
	info, err := store.DescribeTopic(ctx, topic)
	if err != nil {
		return 0, err
	}
	var ends []projection.Position
	for _, pi := range info.Partitions {
		if pi.EndOffset > 0 {
			ends = append(ends, projection.Position{Topic: topic, Partition: pi.Partition, Offset: pi.EndOffset - 1})
		}
	}

	e.progress("      projecting %s events into counters by type and by aggregate\n", thousands(float64(n)))
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- p.Run(rctx) }()
	waitErr := p.WaitFor(ctx, ends...)
	el := time.Since(start)
	cancel()
	if err := <-done; err != nil {
		return 0, fmt.Errorf("projection: %w", err)
	}
	if waitErr != nil {
		return 0, waitErr
	}

	var total int64
	page, err := byType.Scan(ctx)
	if err != nil {
		return 0, err
	}
	for _, en := range page.Entries {
		total += en.Value
	}
	one, _, err := byKey.Get(ctx, "agg-000000")
	if err != nil {
		return 0, err
	}
	if want := int64((n + keys - 1) / keys); total != int64(n) || one != want {
		return 0, fmt.Errorf("projection counted %d events (%d for agg-000000), want %d (%d)", total, one, n, want)
	}
	return float64(n) / el.Seconds(), nil
}
