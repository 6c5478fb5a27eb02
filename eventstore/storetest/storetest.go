// Package storetest states the contract of a Muninn backend
// (eventstore.Store: the log, the state space and consumer groups) as
// tests. Every backend runs Run from its own tests, the Pebble one included
// (in memory, on disk, and on an in-memory filesystem that it reopens); a
// new backend, PostgreSQL say, is done when it passes the suite unchanged.
//
// The suite uses the eventstore.Store interface only, with package
// eventstore's types, so a backend's errors must match the same sentinels
// (errors.Is: ErrTopicNotFound, ErrNotAssigned, ErrInvalidArgument, ...).
// It holds every promise the layers above the log rely on:
//
//   - Topics: create, describe, list, update and delete; names and configs
//     are checked, each bad field named.
//   - Append: versions and offsets, expected versions, metadata defaults,
//     bad input, concurrent writers.
//   - Read: streams forward and backward, partitions from an offset, early
//     breaks and cancelled reads.
//   - Subscribe: catch-up then live, woken by each commit; it ends without
//     an error when its context ends and with ErrClosed when the store
//     closes. A Consumer's Records loop likewise, and it ends on Close.
//   - Cleanup: deletion by age and size, compaction, tombstones.
//   - State: Get and Scan (bounds, order, prefixes, snapshots); a Txn
//     reads its own writes, which nobody else sees before it commits; a
//     failed Update writes nothing, neither state nor offsets; bad keys,
//     values and ranges are ErrInvalidArgument; concurrent Updates are
//     serialized; WithState writes commit with their append, or neither
//     does.
//   - Groups: partitions spread over members and rebalanced on JoinGroup
//     and Close; Poll and TryPoll; commits, direct or in a Txn atomically
//     with state writes; fencing of a member that lost a partition, or had
//     it back after another member held it; a Txn refusing another
//     store's consumer; Rewind; start positions; DescribeGroup,
//     ListGroups, CommittedOffset.
//   - Reopen (only with Harness.Reopen): topics, records, state and
//     committed offsets survive a restart, and a group resumes from its
//     offsets.
//
// A backend's test gives Run a Harness:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Harness{
//			Open: func(t *testing.T, c clock.Clock) storetest.Store {
//				s, err := mybackend.Open(freshDatabase(t), mybackend.WithClock(c))
//				if err != nil {
//					t.Fatal(err)
//				}
//				return s
//			},
//			Reopen: func(t *testing.T, s storetest.Store) storetest.Store {
//				// close s, open its database again
//			},
//		})
//	}
//
// The suite takes for granted, of one Store: JoinGroup and Consumer.Close
// rebalance before they return, so that every member's Assignment shows
// the change at once; an Update's function may read the store (Get, Scan)
// while it runs.
// No subtest depends on timing: each waits for what it checks (a record
// yielded, a call returned), with a generous guard against hangs.
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
	// Open returns a new, empty store, independent of every other it
	// returned (a subtest may hold two at once), whose clock is c: record
	// timestamps and retention read it, and the suite advances it to age
	// records. The suite closes the store, and may close it itself
	// mid-test. Background cleanup should be off, so that the suite
	// decides when cleanup runs.
	Open func(t *testing.T, c clock.Clock) Store
	// Reopen, if set, closes s and opens the same data again, as a restart
	// of the process would (consumers of s are gone); the Reopen subtests
	// then check that everything acknowledged survives: topics, records,
	// state, committed offsets. Without it they do not run.
	Reopen func(t *testing.T, s Store) Store
}

// Run runs the whole contract as subtests.
func Run(t *testing.T, h Harness) {
	t.Run("Topics", func(t *testing.T) { runTopics(t, h) })
	t.Run("Append", func(t *testing.T) { runAppend(t, h) })
	t.Run("Read", func(t *testing.T) { runRead(t, h) })
	t.Run("Subscribe", func(t *testing.T) { runSubscribe(t, h) })
	t.Run("Cleanup", func(t *testing.T) { runCleanup(t, h) })
	t.Run("State", func(t *testing.T) { runState(t, h) })
	t.Run("Groups", func(t *testing.T) { runGroups(t, h) })
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
