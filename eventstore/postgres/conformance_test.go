package postgres_test

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore/postgres"
	"github.com/muninn-es/muninn/eventstore/storetest"
	"github.com/muninn-es/muninn/internal/pgtest"
)

// schemaPool hands out schemas for the suite's stores and takes them back
// emptied when a subtest ends: creating and dropping a schema costs far
// more than deleting a few rows, and the suite opens over a hundred stores.
type schemaPool struct {
	t    *testing.T
	conn *pgx.Conn
	mu   sync.Mutex
	free []string
}

func (p *schemaPool) get(t *testing.T) string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var name string
	if n := len(p.free); n > 0 {
		name, p.free = p.free[n-1], p.free[:n-1]
	} else {
		name = pgtest.Schema(p.t) // dropped when the whole suite ends
	}
	// Runs after the subtest's stores closed (cleanups run last first).
	t.Cleanup(func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		q := pgx.Identifier{name}.Sanitize()
		_, err := p.conn.Exec(context.Background(), `BEGIN;
			DELETE FROM `+q+`.group_offsets; DELETE FROM `+q+`.group_partitions; DELETE FROM `+q+`.group_members;
			DELETE FROM `+q+`.groups; DELETE FROM `+q+`.state; DELETE FROM `+q+`.heads; DELETE FROM `+q+`.records;
			DELETE FROM `+q+`.partitions; DELETE FROM `+q+`.topics; COMMIT`, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Errorf("emptying schema %s: %v", name, err)
			return
		}
		p.free = append(p.free, name)
	})
	return name
}

// TestConformance runs the store contract on PostgreSQL, each store on a
// schema of its own, with reopening: what a store acknowledged must be there
// after Close and Open.
func TestConformance(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	pool := &schemaPool{t: t, conn: conn}
	type opened struct {
		schema string
		now    clock.Clock
	}
	var mu sync.Mutex
	stores := map[storetest.Store]opened{}
	open := func(t *testing.T, schema string, now clock.Clock) storetest.Store {
		s, err := postgres.Open(context.Background(), url, postgres.WithSchema(schema), postgres.WithClock(now), postgres.WithCleanupInterval(0))
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		stores[s] = opened{schema, now}
		mu.Unlock()
		return s
	}
	storetest.Run(t, storetest.Harness{
		Open: func(t *testing.T, now clock.Clock) storetest.Store {
			return open(t, pool.get(t), now)
		},
		Reopen: func(t *testing.T, s storetest.Store) storetest.Store {
			mu.Lock()
			o := stores[s]
			mu.Unlock()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, o.schema, o.now)
		},
	})
}
