package projection_test

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
	"github.com/muninn-es/muninn/projection"
)

// retryClock is a manual clock that a goroutine of the test moves to each
// wait the code under test starts (its back-offs), at once, recording how
// long each wait was: retries happen without the test sleeping.
type retryClock struct {
	*clock.Manual
	start time.Time
	mu    sync.Mutex
	waits []time.Duration
}

func newRetryClock(t testing.TB) *retryClock {
	start := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	c := &retryClock{Manual: clock.NewManual(start), start: start}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c.BlockUntil(ctx, 1) == nil {
			next, ok := c.Next()
			if !ok {
				continue
			}
			c.mu.Lock()
			c.waits = append(c.waits, next.Sub(c.Now()))
			c.mu.Unlock()
			c.Set(next)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// get returns the waits so far.
func (c *retryClock) get() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

// genRange returns the bounds of everything generation gen of projection
// name holds in the state space.
func genRange(name string, gen uint64) (lower, upper []byte) {
	return keyspace.New(keyspace.Projection, name).String("g").Uint(gen).Range()
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// catchUp runs p until it has applied everything in topic, then stops it.
func catchUp(t testing.TB, s eventstore.Store, p *projection.Projection, topic string) {
	t.Helper()
	ctx := context.Background()
	info, err := s.DescribeTopic(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	var ends []projection.Position
	for _, pi := range info.Partitions {
		if pi.EndOffset > 0 {
			ends = append(ends, projection.Position{Topic: topic, Partition: pi.Partition, Offset: pi.EndOffset - 1})
		}
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	werr := p.WaitFor(wctx, ends...)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	if werr != nil {
		t.Fatalf("catch up: %v", werr)
	}
}

// scanAll reads a whole table through pages of 7 rows.
func scanAll[V any](t testing.TB, tbl *projection.Table[string, V], opts ...projection.QueryOption) map[string]V {
	t.Helper()
	out := map[string]V{}
	token := ""
	for {
		page, err := tbl.Scan(context.Background(), append([]projection.QueryOption{projection.Limit(7), projection.After(token)}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page.Entries {
			if _, dup := out[e.Key]; dup {
				t.Fatalf("scan of %s returned %q twice", tbl.Name(), e.Key)
			}
			out[e.Key] = e.Value
		}
		if page.Next == "" {
			return out
		}
		token = page.Next
	}
}

func equalMaps[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
