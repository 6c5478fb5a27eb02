// Package storetest states the contract of a Muninn event store as tests.
// Every store implementation, the Pebble one included (in memory and on
// disk), runs Run from its own tests; a later backend proves itself by
// passing the same suite.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			Open: func(t *testing.T, c clock.Clock) storetest.Store { ... },
//		})
//	}
package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
)

// Store is what the suite exercises: a whole backend.
type Store = eventstore.Store

// Harness tells the suite how to make stores.
type Harness struct {
	// Open returns a new, empty store whose clock (record timestamps and
	// retention) is now. The suite closes it. Background cleanup should be
	// off, so that the suite decides when cleanup runs.
	Open func(t *testing.T, c clock.Clock) Store
	// Reopen, if set, closes s and opens the same data again; the suite then
	// checks that everything acknowledged survives a restart.
	Reopen func(t *testing.T, s Store) Store
}

// Run runs the whole contract as subtests.
func Run(t *testing.T, h Harness) {
	t.Run("Topics", func(t *testing.T) { runTopics(t, h) })
	t.Run("Append", func(t *testing.T) { runAppend(t, h) })
	t.Run("Read", func(t *testing.T) { runRead(t, h) })
	t.Run("Subscribe", func(t *testing.T) { runSubscribe(t, h) })
	t.Run("Cleanup", func(t *testing.T) { runCleanup(t, h) })
	t.Run("Context", func(t *testing.T) { runContext(t, h) })
	if h.Reopen != nil {
		t.Run("Reopen", func(t *testing.T) { runReopen(t, h) })
	}
}

func open(t *testing.T, h Harness) (Store, *clock.Manual) {
	t.Helper()
	c := clock.NewManual(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	s := h.Open(t, c)
	t.Cleanup(func() { _ = s.Close() })
	return s, c
}

func ctx(t *testing.T) context.Context { return t.Context() }
