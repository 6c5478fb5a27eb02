package backends

import (
	"io"
	"log/slog"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/muninn-es/muninn/eventstore"
)

// Backend is one event-store backend a test runs on.
type Backend struct {
	// Name names the backend and its subtest: "pebble" or "postgres".
	Name string
	// shared is set for a backend that several processes (here: several
	// stores) may hold open at once.
	shared bool
	// open opens a fresh, empty store; reopen, given the last store of the
	// same place, closes it and opens that place again.
	open func(t testing.TB) (s eventstore.Store, reopen func(t testing.TB) eventstore.Store)
}

// String returns the backend's name.
func (b Backend) String() string { return b.Name }

// Open returns a fresh, empty store of the backend, closed when the test
// ends.
func (b Backend) Open(t testing.TB) eventstore.Store {
	t.Helper()
	s, _ := b.open(t)
	return s
}

// Reopener returns a function that opens one place of the backend (an
// in-memory filesystem, a PostgreSQL schema) each time it is called: the
// first call opens it empty; every later call opens it again, as a process
// that restarts does. The caller closes each store before it calls the
// function again; every store is closed when the test ends.
func (b Backend) Reopener(t testing.TB) func() eventstore.Store {
	t.Helper()
	var reopen func(t testing.TB) eventstore.Store
	return func() eventstore.Store {
		t.Helper()
		if reopen == nil {
			var s eventstore.Store
			s, reopen = b.open(t)
			return s
		}
		return reopen(t)
	}
}

// Replicas returns n stores of one fresh place of the backend, open at the
// same time, as n replicas of a service sharing one store are; each is
// closed when the test ends. A backend that one process holds alone (the
// embedded Pebble store, whose directory is locked) skips the test.
func (b Backend) Replicas(t testing.TB, n int) []eventstore.Store {
	t.Helper()
	if !b.shared {
		t.Skipf("backends: a %s store is held by one process; replicas need a shared backend", b.Name)
	}
	s, reopen := b.open(t)
	out := []eventstore.Store{s}
	for len(out) < n {
		out = append(out, reopen(t))
	}
	return out
}

// All returns every backend, Pebble first. Opening a PostgreSQL store skips
// the test when no server is configured (see package internal/pgtest).
func All() []Backend { return all }

// all is filled in here and by the init functions of the backends' files.
var all = []Backend{pebbleBackend}

// Run runs fn as a subtest for each backend of All, named after it.
func Run(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Helper()
	for _, b := range All() {
		t.Run(b.Name, func(t *testing.T) { fn(t, b) })
	}
}

// quiet keeps the stores' routine log lines out of the test output.
var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// pebbleBackend is the embedded store on an in-memory filesystem (the real
// engine on vfs.NewMem()), which keeps its files across Close, so that it
// can be reopened.
var pebbleBackend = Backend{
	Name: "pebble",
	open: func(t testing.TB) (eventstore.Store, func(testing.TB) eventstore.Store) {
		t.Helper()
		fs := vfs.NewMem()
		open := func(t testing.TB) eventstore.Store {
			t.Helper()
			s, err := eventstore.Open("db", eventstore.WithFS(fs), eventstore.WithLogger(quiet))
			if err != nil {
				t.Fatalf("backends: open pebble store: %v", err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
		return open(t), open
	},
}
