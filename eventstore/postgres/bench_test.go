package postgres_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/pgtest"
)

// BenchmarkAppend appends one ~200-byte event per append, durably, from 1,
// 16 and 64 goroutines to a topic of one partition (the worst case for a
// per-partition lock: every append meets the others) and of 16 partitions.
// Appends of one Store to one partition share a transaction (group commit).
func BenchmarkAppend(b *testing.B) {
	payload := make([]byte, 200)
	for _, parts := range []int{1, 16} {
		for _, writers := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("partitions=%d/writers=%d", parts, writers), func(b *testing.B) {
				s := pgtest.Open(b)
				if err := s.CreateTopic(context.Background(), "t", eventstore.TopicConfig{Partitions: parts}); err != nil {
					b.Fatal(err)
				}
				var n atomic.Int64
				b.SetParallelism((writers + 1) / 2) // GOMAXPROCS is 2 here
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					id := n.Add(1)
					i := 0
					for pb.Next() {
						i++
						key := fmt.Sprintf("w%d-%d", id, i)
						if _, err := s.Append(context.Background(), "t", key, eventstore.NoStream, []eventstore.Event{{Type: "e", Payload: payload}}); err != nil {
							b.Error(err)
							return
						}
					}
				})
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			})
		}
	}
}
