// Package backends runs a test on every event-store backend Muninn has: the
// embedded Pebble store (in memory, always) and PostgreSQL (when a server is
// configured, through package internal/pgtest: skipped when MUNINN_PG_URL is
// unset, a failure when it is unset in CI).
//
// A test of a layer above the log (projection, saga, broker, the command
// bus) that holds on every backend is written once, against
// eventstore.Store, and run by Run:
//
//	func TestHappyPath(t *testing.T) { backends.Run(t, testHappyPath) }
//
//	func testHappyPath(t *testing.T, b backends.Backend) {
//		s := b.Open(t) // closed when the test ends
//		...
//	}
//
// Each backend is a subtest named after it ("pebble", "postgres"), so that
// `go test -run 'TestHappyPath/postgres'` picks one. What a test asserts is
// the same on every backend; only the store differs.
//
// No binary links this package: it is a test helper.
package backends
