package backends

import (
	"context"
	"testing"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/eventstore/postgres"
	"github.com/muninn-es/muninn/internal/pgtest"
)

func init() { all = append(all, postgresBackend) }

// postgresBackend is the PostgreSQL store on a schema of the test's own on
// the server of MUNINN_PG_URL (skipped without one, outside CI).
var postgresBackend = Backend{
	Name:   "postgres",
	shared: true,
	open: func(t testing.TB) (eventstore.Store, func(testing.TB) eventstore.Store) {
		t.Helper()
		url := pgtest.URL(t)
		schema := pgtest.Schema(t)
		open := func(t testing.TB) eventstore.Store {
			t.Helper()
			s, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema), postgres.WithLogger(quiet))
			if err != nil {
				t.Fatalf("backends: open postgres store on schema %s: %v", schema, err)
			}
			t.Cleanup(func() { _ = s.Close() })
			return s
		}
		return open(t), open
	},
}
