package stream_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
)

var t0 = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

func sec(n int) time.Time { return t0.Add(time.Duration(n) * time.Second) }

func openStore(t testing.TB) eventstore.Store {
	t.Helper()
	s, err := eventstore.OpenMem(eventstore.WithCleanupInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func createTopic(t testing.TB, s eventstore.Store, name string, partitions int, policy eventstore.CleanupPolicy) {
	t.Helper()
	if err := s.CreateTopic(context.Background(), name, eventstore.TopicConfig{Partitions: partitions, Cleanup: policy}); err != nil {
		t.Fatal(err)
	}
}

// put appends one record; a nil payload is a tombstone.
func put(t testing.TB, s eventstore.Store, topic, key string, payload []byte, ts time.Time) {
	t.Helper()
	ev := eventstore.Event{Type: "test", Payload: payload, Timestamp: ts}
	if _, err := s.Append(context.Background(), topic, key, eventstore.Any, []eventstore.Event{ev}, eventstore.NoSync()); err != nil {
		t.Fatal(err)
	}
}

// running runs app in the background; stop cancels it and returns Run's
// result.
type running struct {
	cancel context.CancelFunc
	done   chan error
}

func start(t testing.TB, app *stream.App) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- app.Run(ctx) }()
	t.Cleanup(func() { r.cancel(); <-r.done })
	return r
}

func (r *running) stop() error {
	r.cancel()
	err := <-r.done
	r.done <- err // for the cleanup
	return err
}

func waitCaughtUp(t testing.TB, app *stream.App) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := app.WaitCaughtUp(ctx); err != nil {
		t.Fatalf("WaitCaughtUp: %v", err)
	}
}

// runOnce runs app until it has processed everything, then stops it.
func runOnce(t testing.TB, app *stream.App) {
	t.Helper()
	r := start(t, app)
	waitCaughtUp(t, app)
	if err := r.stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// readTopic returns "key=payload" of every record of topic, partition by
// partition.
func readTopic(t testing.TB, s eventstore.Store, topic string) []eventstore.Record {
	t.Helper()
	n, err := s.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var out []eventstore.Record
	for p := range n {
		for rec, err := range s.ReadPartition(context.Background(), topic, p, 0) {
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, rec)
		}
	}
	return out
}

func fmtWindow[V any](kv stream.KeyValue[stream.Windowed[string], V]) string {
	return fmt.Sprintf("%s [%d,%d)=%v", kv.Key.Key, kv.Key.Start.Sub(t0)/time.Second, kv.Key.End.Sub(t0)/time.Second, kv.Value)
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
