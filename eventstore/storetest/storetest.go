// Package storetest states the contract of a Muninn event store as tests.
// Every store implementation, the Pebble one included (in memory and on
// disk), runs Run from its own tests; a later backend proves itself by
// passing the same suite.
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			Open: func(t *testing.T, now func() time.Time) storetest.Store { ... },
//		})
//	}
package storetest

import (
	"context"
	"iter"
	"testing"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

// Store is the part of a store's API that the suite exercises. It uses the
// types of package eventstore, which every backend shares.
type Store interface {
	CreateTopic(ctx context.Context, name string, cfg eventstore.TopicConfig) error
	UpdateTopic(ctx context.Context, name string, cfg eventstore.TopicConfig) error
	DeleteTopic(ctx context.Context, name string) error
	DescribeTopic(ctx context.Context, name string) (eventstore.TopicInfo, error)
	ListTopics(ctx context.Context) ([]string, error)
	Append(ctx context.Context, topic, key string, expected eventstore.ExpectedVersion, events []eventstore.Event, opts ...eventstore.AppendOption) (eventstore.AppendResult, error)
	ReadStream(ctx context.Context, topic, key string, from uint64, opts ...eventstore.ReadOption) iter.Seq2[eventstore.Record, error]
	ReadPartition(ctx context.Context, topic string, partition int, from int64) iter.Seq2[eventstore.Record, error]
	HeadVersion(ctx context.Context, topic, key string) (uint64, error)
	Subscribe(ctx context.Context, topic string, partition int, from int64) iter.Seq2[eventstore.Record, error]
	Cleanup(ctx context.Context) (eventstore.CleanupStats, error)
	Close() error
}

// Harness tells the suite how to make stores.
type Harness struct {
	// Open returns a new, empty store whose clock (record timestamps and
	// retention) is now. The suite closes it. Background cleanup should be
	// off, so that the suite decides when cleanup runs.
	Open func(t *testing.T, now func() time.Time) Store
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
	if h.Reopen != nil {
		t.Run("Reopen", func(t *testing.T) { runReopen(t, h) })
	}
}

// clock is a settable clock for the suite.
type clock struct{ now time.Time }

// Now returns the clock's time.
func (c *clock) Now() time.Time { return c.now }

func open(t *testing.T, h Harness) (Store, *clock) {
	t.Helper()
	c := &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	s := h.Open(t, c.Now)
	t.Cleanup(func() { _ = s.Close() })
	return s, c
}

func ctx(t *testing.T) context.Context { return t.Context() }
