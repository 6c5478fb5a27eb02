package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
)

// streamTopic is the input topic of the stream-processing measurement.
const streamTopic = "bench-stream"

// streamKeys is how many distinct keys (users) the windowed count sees.
const streamKeys = 1000

// streamChunk is how many events of one key one load append carries; their
// timestamps are streamKeys ms apart, so a partition's records are out of
// event-time order by at most streamChunk*streamKeys ms, well inside the
// grace period.
const streamChunk = 10

// loadStream writes cfg.StreamEvents events to the stream topic once: event i
// has key user-(i mod streamKeys) and event time base + i ms, so the input
// spans StreamEvents ms (1,000,000 events: about 17 one-minute windows).
func (e *env) loadStream(ctx context.Context) error {
	if e.streamLoaded {
		return nil
	}
	n := e.cfg.StreamEvents
	if err := e.store.CreateTopic(ctx, streamTopic, eventstore.TopicConfig{Partitions: e.cfg.Partitions}); err != nil {
		return err
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	start := time.Now()
	// Rounds of streamChunk events per key, written by parallel writers
	// and finished one after the other, so that event time in each
	// partition moves forward round by round.
	const writers = 8
	errs := make([]error, writers)
	for round := 0; round*streamKeys*streamChunk < n; round++ {
		var wg sync.WaitGroup
		for w := range writers {
			wg.Go(func() {
				events := make([]eventstore.Event, 0, streamChunk)
				for k := w; k < streamKeys && errs[w] == nil; k += writers {
					events = events[:0]
					for j := range streamChunk {
						i := (round*streamChunk+j)*streamKeys + k
						if i >= n {
							break
						}
						events = append(events, eventstore.Event{Type: "bench.viewed", Payload: e.payload(uint64(i)),
							Timestamp: base.Add(time.Duration(i) * time.Millisecond)})
					}
					if len(events) == 0 {
						continue
					}
					_, errs[w] = e.store.Append(ctx, streamTopic, fmt.Sprintf("user-%04d", k), eventstore.Any, events, eventstore.NoSync())
				}
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
	}
	if err := errors.Join(e.store.Sync(ctx), e.store.Flush(ctx)); err != nil {
		return err
	}
	e.progress("      loaded %s events for the stream processor in %s\n", thousands(float64(n)), time.Since(start).Round(time.Millisecond))
	e.streamLoaded = true
	return nil
}

// windowedCount times a topology that counts each key's events in tumbling
// one-minute windows (30 s grace), from its start on the loaded topic to
// caught up (every record processed and its state and offsets committed
// durably), and returns input events per second. With a warm-up configured,
// an identical topology under another application ID first processes the
// whole topic untimed, so that the timed run does not measure Pebble
// compacting the freshly loaded input in the background.
func (e *env) windowedCount(ctx context.Context) (float64, error) {
	if err := e.loadStream(ctx); err != nil {
		return 0, err
	}
	if e.cfg.Warmup > 0 {
		rate, err := e.windowedCountOnce(ctx)
		if err != nil {
			return 0, err
		}
		e.progress("      warm-up pass: %s events/s\n", thousands(rate))
	}
	return e.windowedCountOnce(ctx)
}

func (e *env) windowedCountOnce(ctx context.Context) (float64, error) {
	e.seq++
	topo := stream.NewTopology()
	views := stream.Source(topo, streamTopic, codec.String(), codec.Bytes())
	w := stream.Tumbling(time.Minute).WithGrace(30 * time.Second)
	counts := stream.WindowedCount(stream.WindowedBy(stream.GroupByKey(views), w), "views-per-minute")
	app, err := stream.NewApp(e.store, topo, fmt.Sprintf("bench-windowed-count-%d", e.seq))
	if err != nil {
		return 0, err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- app.Run(runCtx) }()
	waitErr := app.WaitCaughtUp(ctx)
	elapsed := time.Since(start)
	cancel()
	if err := errors.Join(waitErr, <-done); err != nil {
		return 0, err
	}
	m, err := app.Metrics(ctx)
	if err != nil {
		return 0, err
	}
	if m.ProcessedRecords != int64(e.cfg.StreamEvents) || m.LateRecords["views-per-minute"] != 0 {
		return 0, fmt.Errorf("windowed count processed %d records (%d late), want %d (0 late)",
			m.ProcessedRecords, m.LateRecords["views-per-minute"], e.cfg.StreamEvents)
	}
	var sum int64
	for kv, err := range counts.All(ctx, app) {
		if err != nil {
			return 0, err
		}
		sum += kv.Value
	}
	if sum != int64(e.cfg.StreamEvents) {
		return 0, fmt.Errorf("windowed count: the windows hold %d events, want %d", sum, e.cfg.StreamEvents)
	}
	return float64(e.cfg.StreamEvents) / elapsed.Seconds(), nil
}
