package postgres_test

import (
	"context"
	"testing"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore/postgres"
	"github.com/muninn-es/muninn/eventstore/storetest"
	"github.com/muninn-es/muninn/internal/pgtest"
)

// TestConformance runs the store contract on PostgreSQL, each store on a
// schema of its own, with reopening: what a store acknowledged must be there
// after Close and Open.
func TestConformance(t *testing.T) {
	url := pgtest.URL(t)
	type opened struct {
		schema string
		now    clock.Clock
	}
	stores := map[storetest.Store]opened{}
	open := func(t *testing.T, schema string, now clock.Clock) storetest.Store {
		s, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema), postgres.WithClock(now), postgres.WithCleanupInterval(0))
		if err != nil {
			t.Fatal(err)
		}
		stores[s] = opened{schema, now}
		return s
	}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, now clock.Clock) storetest.Store {
			return open(t, pgtest.Schema(t), now)
		},
		Reopen: func(t *testing.T, s storetest.Store) storetest.Store {
			o := stores[s]
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, o.schema, o.now)
		},
	})
}
