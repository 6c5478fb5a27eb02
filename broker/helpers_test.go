package broker_test

import (
	"context"
	"testing"
	"time"

	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
)

func openStore(t *testing.T) eventstore.Store {
	t.Helper()
	s, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newClock returns a manual clock: time moves only when a test says so.
func newClock() *clock.Manual {
	return clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
}

// inStatus returns the inbound's status.
func inStatus(t *testing.T, in *broker.Inbound) broker.InboundStatus {
	t.Helper()
	st, err := in.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// waitFor checks cond every 10 ms until it holds or 30 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for: %s", what)
		case <-tick.C:
		}
	}
}

// runBG runs f in the background until the test ends, then checks that it
// returned nil.
func runBG(t *testing.T, f func(context.Context) error) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return cancel
}
