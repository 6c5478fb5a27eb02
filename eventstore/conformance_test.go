package eventstore_test

import (
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/eventstore/storetest"
)

func TestConformanceMem(t *testing.T) {
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, now clock.Clock) storetest.Store {
			s, err := eventstore.OpenMem(eventstore.WithClock(now), eventstore.WithCleanupInterval(0))
			if err != nil {
				t.Fatal(err)
			}
			return s
		},
	})
}

// TestConformanceDisk runs the suite on a real directory, with reopening:
// what a store acknowledged must be there after Close and Open.
func TestConformanceDisk(t *testing.T) {
	type diskStore struct {
		dir string
		now clock.Clock
	}
	dirs := map[storetest.Store]diskStore{}
	open := func(t *testing.T, dir string, now clock.Clock) storetest.Store {
		s, err := eventstore.Open(dir, eventstore.WithClock(now), eventstore.WithCleanupInterval(0))
		if err != nil {
			t.Fatal(err)
		}
		dirs[s] = diskStore{dir, now}
		return s
	}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, now clock.Clock) storetest.Store {
			return open(t, t.TempDir(), now)
		},
		Reopen: func(t *testing.T, s storetest.Store) storetest.Store {
			d := dirs[s]
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, d.dir, d.now)
		},
	})
}

// TestConformanceMemReopen reopens an in-memory filesystem, which keeps its
// files across Close: the same check, without disk I/O.
func TestConformanceMemReopen(t *testing.T) {
	fss := map[storetest.Store]vfs.FS{}
	nows := map[storetest.Store]clock.Clock{}
	open := func(t *testing.T, fs vfs.FS, now clock.Clock) storetest.Store {
		s, err := eventstore.Open("db", eventstore.WithFS(fs), eventstore.WithClock(now), eventstore.WithCleanupInterval(0))
		if err != nil {
			t.Fatal(err)
		}
		fss[s], nows[s] = fs, now
		return s
	}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, now clock.Clock) storetest.Store { return open(t, vfs.NewMem(), now) },
		Reopen: func(t *testing.T, s storetest.Store) storetest.Store {
			fs, now := fss[s], nows[s]
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, fs, now)
		},
	})
}
