package eventstore

import (
	"errors"
	"log/slog"
	"testing"
)

// TestEngineFatalNeverReturns checks what a Fatalf of Pebble's does: it
// fails the store and never returns; within a pebbleCall the call returns
// the failure, elsewhere (Pebble's own goroutines) the goroutine ends after
// running its deferred calls.
func TestEngineFatalNeverReturns(t *testing.T) {
	h := newHealth(slog.New(slog.DiscardHandler))
	returned, deferred := false, false
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { deferred = true }()
		h.engineFatal("flush: MANIFEST sync failed")
		returned = true
	}()
	<-done
	if returned || !deferred {
		t.Errorf("outside a pebbleCall: returned %v, deferred calls ran %v; want false, true", returned, deferred)
	}
	if err := h.fatalErr(); !errors.Is(err, ErrStoreFailed) {
		t.Errorf("fatalErr = %v, want ErrStoreFailed", err)
	}
	select {
	case <-h.failed:
	default:
		t.Error("failed is not closed")
	}

	h = newHealth(slog.New(slog.DiscardHandler))
	err := pebbleCall(func() error {
		h.engineFatal("pebble: fatal commit error")
		returned = true
		return nil
	})
	if returned || !errors.Is(err, ErrStoreFailed) {
		t.Errorf("in a pebbleCall: returned %v, err %v; want false and ErrStoreFailed", returned, err)
	}
	defer func() {
		if r := recover(); r == nil {
			t.Error("pebbleCall swallowed a panic that is not a Fatalf")
		}
	}()
	_ = pebbleCall(func() error { panic("not ours") })
}

// TestCompactionGateStopsOnDamage checks that once damage is recorded the
// store's compaction scheduler grants nothing more.
func TestCompactionGateStopsOnDamage(t *testing.T) {
	s, err := OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s.health.corrupt(&CorruptFileError{Path: "000001.sst", Offset: -1, Reason: "test"})
	if ok, _ := s.gate.TrySchedule(); ok {
		t.Error("TrySchedule granted a compaction after damage was found")
	}
	if err := s.Health(t.Context()); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Health = %v", err)
	}
}
