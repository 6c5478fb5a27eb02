package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/eventstore/postgres"
)

// pgMaxConns is the pool size of the PostgreSQL measurements when the URL
// does not set pool_max_conns: room for 64 writers and the store's own
// connections, so that the pool is not what limits either side.
const pgMaxConns = 80

// pgEnv is the PostgreSQL part of a Run: one pool, the store on it in a
// schema of the run's own, and the raw table beside the store's in that
// schema.
type pgEnv struct {
	pool   *pgxpool.Pool
	store  *postgres.Store
	schema string
	// raw is the qualified name of the raw table.
	raw    string
	loaded bool
}

// pgOpen connects to cfg.PostgresURL, opens the store in a new schema and
// creates the raw table and the benchmark topics.
func (e *env) pgOpen(ctx context.Context) error {
	pcfg, err := pgxpool.ParseConfig(e.cfg.PostgresURL)
	if err != nil {
		return fmt.Errorf("postgres: parse the URL: %w", err)
	}
	if !strings.Contains(e.cfg.PostgresURL, "pool_max_conns") {
		pcfg.MaxConns = pgMaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return fmt.Errorf("postgres: connect: %w", err)
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	p := &pgEnv{pool: pool, schema: "muninn_bench_" + hex.EncodeToString(b[:])}
	p.raw = pgx.Identifier{p.schema, "raw_events"}.Sanitize()
	e.progress("postgres store in schema %s\n", p.schema)
	p.store, err = postgres.Open(ctx, "", postgres.WithPool(pool), postgres.WithSchema(p.schema),
		postgres.WithCleanupInterval(0))
	if err != nil {
		pool.Close()
		return fmt.Errorf("postgres: %w", err)
	}
	e.pg = p
	if _, err := pool.Exec(ctx, `CREATE TABLE `+p.raw+` (stream text NOT NULL, version bigint NOT NULL,
		payload bytea NOT NULL, UNIQUE (stream, version))`); err != nil {
		return fmt.Errorf("postgres: create the raw table: %w", err)
	}
	topic := eventstore.TopicConfig{Partitions: e.cfg.Partitions, Cleanup: eventstore.Retain}
	for _, name := range []string{appendTopic, readTopic} {
		if err := p.store.CreateTopic(ctx, name, topic); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
	}
	return nil
}

// pgClose closes the store, drops the run's schema and closes the pool.
func (e *env) pgClose() error {
	p := e.pg
	if p == nil {
		return nil
	}
	e.pg = nil
	err := p.store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, derr := p.pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{p.schema}.Sanitize()+" CASCADE"); derr != nil {
		err = errors.Join(err, fmt.Errorf("postgres: drop schema %s: %w", p.schema, derr))
	}
	p.pool.Close()
	return err
}

// pgPlan returns the PostgreSQL measurements, or none without a server.
func (e *env) pgPlan() []step {
	if e.pg == nil {
		return nil
	}
	pair := func(writers int) step {
		return step{
			keys: []string{fmt.Sprintf("pg_raw_insert_%d_per_s", writers), fmt.Sprintf("pg_append_durable_%d_per_s", writers)},
			run: func(ctx context.Context) ([]float64, error) {
				raw, store, err := e.pgPair(ctx, writers)
				return []float64{raw, store}, err
			},
		}
	}
	one := func(key string, f func(context.Context) (float64, error)) step {
		return step{keys: []string{key}, run: func(ctx context.Context) ([]float64, error) {
			v, err := f(ctx)
			return []float64{v}, err
		}}
	}
	return []step{
		one("pg_stream_read_events_per_s", e.pgStreamRead),
		one("pg_partition_scan_events_per_s", e.pgPartitionScan),
		pair(1),
		pair(16),
		pair(64),
	}
}

// pgPair measures plain INSERTs and the store's durable appends at one
// concurrency in alternating slices, as pair does for Pebble.
func (e *env) pgPair(ctx context.Context, writers int) (raw, store float64, err error) {
	slice := max(e.cfg.Duration/slicesPerPair, 50*time.Millisecond)
	for i := range slicesPerPair {
		warmup := time.Duration(0)
		if i == 0 {
			warmup = e.cfg.Warmup
		}
		r, err := e.pgRawInsert(ctx, writers, warmup, slice)
		if err != nil {
			return 0, 0, fmt.Errorf("plain INSERT: %w", err)
		}
		s, err := e.pgAppendDurable(ctx, writers, warmup, slice)
		if err != nil {
			return 0, 0, fmt.Errorf("store: %w", err)
		}
		raw += r / slicesPerPair
		store += s / slicesPerPair
	}
	return raw, store, nil
}

// pgRawInsert is the engine's limit here: writers goroutines, each
// inserting one row at a time (its own stream, the next version) into a
// table with a unique (stream, version) constraint, each INSERT its own
// durable transaction, through the store's pool.
func (e *env) pgRawInsert(ctx context.Context, writers int, warmup, d time.Duration) (float64, error) {
	e.seq++
	run := e.seq
	query := `INSERT INTO ` + e.pg.raw + ` (stream, version, payload) VALUES ($1, $2, $3)`
	return e.closedLoopFor(ctx, writers, warmup, d, func(w int) func() error {
		stream := fmt.Sprintf("raw-%d-%d", run, w)
		var version int64
		return func() error {
			version++
			_, err := e.pg.pool.Exec(ctx, query, stream, version, e.payload(uint64(w)*7919+uint64(version)))
			return err
		}
	})
}

// pgAppendDurable is appendDurable on the PostgreSQL store.
func (e *env) pgAppendDurable(ctx context.Context, writers int, warmup, d time.Duration) (float64, error) {
	e.seq++
	run := e.seq
	return e.closedLoopFor(ctx, writers, warmup, d, func(w int) func() error {
		key := fmt.Sprintf("writer-%d-%d", run, w)
		var version uint64
		events := make([]eventstore.Event, 1)
		return func() error {
			events[0] = eventstore.Event{Type: "bench.appended", Payload: e.payload(uint64(w)*7919 + version)}
			res, err := e.pg.store.Append(ctx, appendTopic, key, eventstore.Exact(version), events)
			if err != nil {
				return err
			}
			version = res.LastVersion
			return nil
		}
	})
}

// pgLoad fills the PostgreSQL read topic as load fills Pebble's:
// non-durable appends of up to 100 events from several goroutines, then
// Sync.
func (e *env) pgLoad(ctx context.Context) error {
	if e.pg.loaded {
		return nil
	}
	if err := e.fillReadTopic(ctx, e.pg.store, " into PostgreSQL"); err != nil {
		return err
	}
	e.pg.loaded = true
	return nil
}

// pgStreamRead is streamRead on the PostgreSQL store.
func (e *env) pgStreamRead(ctx context.Context) (float64, error) {
	if err := e.pgLoad(ctx); err != nil {
		return 0, err
	}
	return e.timedRead(func(yield func(iter.Seq2[eventstore.Record, error]) bool) {
		for _, key := range e.keys {
			if !yield(e.pg.store.ReadStream(ctx, readTopic, key, 0)) {
				return
			}
		}
	})
}

// pgPartitionScan is partitionScan on the PostgreSQL store.
func (e *env) pgPartitionScan(ctx context.Context) (float64, error) {
	if err := e.pgLoad(ctx); err != nil {
		return 0, err
	}
	return e.timedRead(func(yield func(iter.Seq2[eventstore.Record, error]) bool) {
		for p := range e.cfg.Partitions {
			if !yield(e.pg.store.ReadPartition(ctx, readTopic, p, 0)) {
				return
			}
		}
	})
}
