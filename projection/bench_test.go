package projection_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/projection"
)

// BenchmarkCatchup projects b.N events, loaded beforehand, into counters
// by event type and by aggregate on a disk store: the shape of muninn
// bench's projection_catchup_events_per_s, for profiling.
func BenchmarkCatchup(b *testing.B) {
	ctx := context.Background()
	s, err := eventstore.Open(b.TempDir(), eventstore.WithLogger(quietLogger()))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.CreateTopic(ctx, "bench", eventstore.TopicConfig{Partitions: 8}); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 200)
	events := make([]eventstore.Event, 100)
	for i := 0; i < b.N; i += len(events) {
		n := min(len(events), b.N-i)
		for j := range n {
			events[j] = eventstore.Event{Type: fmt.Sprintf("bench.type%d", (i+j)%8), Payload: payload}
		}
		if _, err := s.Append(ctx, "bench", fmt.Sprintf("agg-%d", (i/100)%10000), eventstore.Any, events[:n], eventstore.NoSync()); err != nil {
			b.Fatal(err)
		}
	}
	if err := errors.Join(s.Sync(ctx), s.Flush(ctx)); err != nil {
		b.Fatal(err)
	}
	byType, _ := projection.NewTable("by-type", projection.StringKey(), codec.Int64())
	byKey, _ := projection.NewTable("by-key", projection.StringKey(), codec.Int64())
	incr := func(tx *projection.Tx, t *projection.Table[string, int64], k string) error {
		c, _, err := t.Load(tx, k)
		if err != nil {
			return err
		}
		return t.Put(tx, k, c+1)
	}
	p, err := projection.New(s, "bench", []string{"bench"}, projection.HandlerFunc(func(tx *projection.Tx, rec eventstore.Record) error {
		if err := incr(tx, byType, rec.Type); err != nil {
			return err
		}
		return incr(tx, byKey, rec.Key)
	}), projection.WithTables(byType, byKey))
	if err != nil {
		b.Fatal(err)
	}
	info, err := s.DescribeTopic(ctx, "bench")
	if err != nil {
		b.Fatal(err)
	}
	var ends []projection.Position
	for _, pi := range info.Partitions {
		if pi.EndOffset > 0 {
			ends = append(ends, projection.Position{Topic: "bench", Partition: pi.Partition, Offset: pi.EndOffset - 1})
		}
	}
	b.ResetTimer()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	if err := p.WaitFor(ctx, ends...); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
