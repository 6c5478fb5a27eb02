package eventstore_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/muninn-es/muninn/eventstore"
)

// manifestSyncFails returns a filesystem whose MANIFEST syncs fail while
// on is set, and counts the failures.
func manifestSyncFails(on *atomic.Bool, failures *atomic.Int64) vfs.FS {
	return errorfs.Wrap(vfs.NewMem(), errorfs.InjectorFunc(func(op errorfs.Op) error {
		if on.Load() && op.Kind == errorfs.OpFileSync && strings.Contains(op.Path, "MANIFEST") {
			failures.Add(1)
			return errorfs.ErrInjected
		}
		return nil
	}))
}

// TestEngineFailureInBackground makes Pebble's manifest sync fail during a
// flush, where Pebble calls Fatalf from its flush goroutine. The process
// must not exit (Pebble's default logger exits) and the flush must not be
// retried forever (what Pebble does when Fatalf returns): the store fails,
// every call returns an error wrapping ErrStoreFailed, and Flush, Health
// and Close report it.
func TestEngineFailureInBackground(t *testing.T) {
	ctx := context.Background()
	var on atomic.Bool
	var failures atomic.Int64
	s, err := eventstore.Open("db", eventstore.WithFS(manifestSyncFails(&on, &failures)), eventstore.WithCleanupInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "t", "k", eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	on.Store(true)
	var ferr error
	withinWatchdog(t, "Flush", func() { ferr = s.Flush(ctx) })
	if !errors.Is(ferr, eventstore.ErrStoreFailed) || !strings.Contains(ferr.Error(), "MANIFEST sync failed") {
		t.Fatalf("Flush = %v, want the engine's failure", ferr)
	}
	if err := s.Health(ctx); !errors.Is(err, eventstore.ErrStoreFailed) {
		t.Errorf("Health = %v, want ErrStoreFailed", err)
	}
	if _, err := s.Append(ctx, "t", "k", eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte("y")}}); !errors.Is(err, eventstore.ErrStoreFailed) {
		t.Errorf("Append after the failure = %v, want ErrStoreFailed", err)
	}
	for _, err := range s.ReadPartition(ctx, "t", 0, 0) {
		if !errors.Is(err, eventstore.ErrStoreFailed) {
			t.Errorf("ReadPartition after the failure: %v, want ErrStoreFailed", err)
		}
		break
	}
	var cerr error
	withinWatchdog(t, "Close", func() { cerr = s.Close() })
	if !errors.Is(cerr, eventstore.ErrStoreFailed) {
		t.Errorf("Close = %v, want ErrStoreFailed", cerr)
	}
	if n := failures.Load(); n != 1 {
		t.Errorf("the manifest sync was tried %d times, want once: the failed flush must stop", n)
	}
}

// TestEngineFailureInCall makes the manifest sync fail while Open creates
// the store, where Pebble calls Fatalf on the caller's goroutine: Open
// returns the failure.
func TestEngineFailureInCall(t *testing.T) {
	var on atomic.Bool
	var failures atomic.Int64
	on.Store(true)
	var s *eventstore.PebbleStore
	var err error
	withinWatchdog(t, "Open", func() {
		s, err = eventstore.Open("db", eventstore.WithFS(manifestSyncFails(&on, &failures)))
	})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded though the manifest cannot be synced")
	}
	if !errors.Is(err, eventstore.ErrStoreFailed) || !strings.Contains(err.Error(), "MANIFEST") {
		t.Errorf("Open = %v, want the engine's failure", err)
	}
}
