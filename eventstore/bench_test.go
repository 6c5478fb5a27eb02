package eventstore_test

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/muninn-es/muninn/eventstore"
)

// The figures that matter are measured by `muninn bench` against raw Pebble
// on a real disk (see BENCHMARKS.md); these benchmarks run on the in-memory
// filesystem and show the CPU cost of each path.

func benchStore(b *testing.B, partitions int) *eventstore.PebbleStore {
	b.Helper()
	s, err := eventstore.OpenMem(eventstore.WithCleanupInterval(0))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.Close() })
	if err := s.CreateTopic(context.Background(), "t", eventstore.TopicConfig{Partitions: partitions}); err != nil {
		b.Fatal(err)
	}
	return s
}

func BenchmarkAppend(b *testing.B) {
	s := benchStore(b, 8)
	ctx := context.Background()
	payload := make([]byte, 200)
	var streams atomic.Int64
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.RunParallel(func(pb *testing.PB) {
		key := "s" + strconv.FormatInt(streams.Add(1), 10)
		var v uint64
		for pb.Next() {
			if _, err := s.Append(ctx, "t", key, eventstore.Exact(v), []eventstore.Event{{Type: "e", Payload: payload}}); err != nil {
				b.Fatal(err)
			}
			v++
		}
	})
}

func load(b *testing.B, s *eventstore.PebbleStore, streams, events int) {
	b.Helper()
	ctx := context.Background()
	payload := make([]byte, 200)
	for i := range streams {
		evs := make([]eventstore.Event, events)
		for j := range evs {
			evs[j] = eventstore.Event{Type: "e", Payload: payload}
		}
		if _, err := s.Append(ctx, "t", fmt.Sprint("s", i), eventstore.NoStream, evs, eventstore.NoSync()); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadStream10(b *testing.B) {
	s := benchStore(b, 8)
	load(b, s, 1000, 10)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		n := 0
		for _, err := range s.ReadStream(ctx, "t", fmt.Sprint("s", i%1000), 0) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 10 {
			b.Fatalf("read %d events", n)
		}
	}
	b.ReportMetric(float64(b.N*10)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkReadPartition(b *testing.B) {
	s := benchStore(b, 1)
	load(b, s, 1000, 10)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	total := 0
	for b.Loop() {
		for _, err := range s.ReadPartition(ctx, "t", 0, 0) {
			if err != nil {
				b.Fatal(err)
			}
			total++
		}
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "events/s")
}

func BenchmarkReadStream1000(b *testing.B) {
	s := benchStore(b, 8)
	load(b, s, 20, 1000)
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		n := 0
		for _, err := range s.ReadStream(ctx, "t", fmt.Sprint("s", i%20), 0) {
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != 1000 {
			b.Fatalf("read %d events", n)
		}
	}
	b.ReportMetric(float64(b.N*1000)/b.Elapsed().Seconds(), "events/s")
}
