package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/muninn-es/muninn/eventstore"
)

// txn is the Store's Txn: one PostgreSQL transaction. Writes are queued
// and sent, in one round trip, before the next read and at commit; reads
// run in the transaction, so they see its writes.
type txn struct {
	s       *Store
	ctx     context.Context
	conn    *pgxpool.Conn
	w       batchWriter
	offsets []txnOffsets
	done    bool
}

type txnOffsets struct {
	c       *consumer
	offsets map[eventstore.TopicPartition]int64
}

var errTxnDone = errors.New("postgres: Txn used after its Update returned")

func (tx *txn) check() error {
	if tx.done {
		return errTxnDone
	}
	return nil
}

// flush sends the queued writes.
func (tx *txn) flush() error {
	if tx.w.b.Len() == 0 {
		return nil
	}
	b := tx.w.b
	tx.w.b = &pgx.Batch{}
	if err := tx.conn.SendBatch(tx.ctx, b).Close(); err != nil {
		return tx.s.dbErr(tx.ctx, "update", err)
	}
	return nil
}

// Set stages key = value.
func (tx *txn) Set(key, value []byte) error {
	if err := tx.check(); err != nil {
		return err
	}
	return tx.w.Set(key, value)
}

// Delete stages the removal of key.
func (tx *txn) Delete(key []byte) error {
	if err := tx.check(); err != nil {
		return err
	}
	return tx.w.Delete(key)
}

// DeleteRange stages the removal of every key in [lower, upper); a nil
// upper bound means to the end of the state space.
func (tx *txn) DeleteRange(lower, upper []byte) error {
	if err := tx.check(); err != nil {
		return err
	}
	return tx.w.DeleteRange(lower, upper)
}

// Get returns a copy of key's value as the Txn sees it, and false if key
// has none.
func (tx *txn) Get(key []byte) ([]byte, bool, error) {
	if err := tx.check(); err != nil {
		return nil, false, err
	}
	if err := eventstore.ValidateStateKey(key); err != nil {
		return nil, false, err
	}
	if err := tx.flush(); err != nil {
		return nil, false, err
	}
	return getState(tx.ctx, tx.s, tx.conn, key)
}

// Scan yields the entries in [lower, upper) as the Txn sees them, in key
// order (or reverse order with reverse); a nil upper bound means to the
// end of the state space. It reads in chunks, so the loop may call the
// Txn.
func (tx *txn) Scan(lower, upper []byte, reverse bool) iter.Seq2[eventstore.KV, error] {
	return func(yield func(eventstore.KV, error) bool) {
		if err := tx.check(); err != nil {
			yield(eventstore.KV{}, err)
			return
		}
		if err := eventstore.ValidateStateRange(lower, upper); err != nil {
			yield(eventstore.KV{}, err)
			return
		}
		lo, hi := rangeArgs(lower, upper)
		for {
			if err := tx.check(); err != nil {
				yield(eventstore.KV{}, err)
				return
			}
			if err := tx.flush(); err != nil {
				yield(eventstore.KV{}, err)
				return
			}
			order := "ORDER BY pfx, k"
			if reverse {
				order = "ORDER BY pfx DESC, k DESC"
			}
			rows, err := tx.conn.Query(tx.ctx, tx.s.q(`SELECT k, v FROM {s}.state WHERE `+rangeCond+` `+order+` LIMIT $3`), lo, hi, readChunk)
			if err != nil {
				yield(eventstore.KV{}, tx.s.dbErr(tx.ctx, "scan state", err))
				return
			}
			kvs, err := pgx.CollectRows(rows, scanKV)
			if err != nil {
				yield(eventstore.KV{}, tx.s.dbErr(tx.ctx, "scan state", err))
				return
			}
			for _, kv := range kvs {
				if !yield(kv, nil) {
					return
				}
			}
			if len(kvs) < readChunk {
				return
			}
			last := kvs[len(kvs)-1].Key
			if reverse {
				hi = last
			} else {
				lo = append(cloneBytes(last), 0)
			}
		}
	}
}

func scanKV(r pgx.CollectableRow) (eventstore.KV, error) {
	var kv eventstore.KV
	err := r.Scan(&kv.Key, &kv.Value)
	return kv, err
}

// CommitOffsets stages a commit of c's group offsets (the next offset to
// read, per partition) with the Txn's writes. At commit, in the same
// transaction, every partition must still be c's, with the owner epoch it
// read under, else the whole Update fails with ErrNotAssigned and nothing
// is written.
func (tx *txn) CommitOffsets(member eventstore.Consumer, offsets map[eventstore.TopicPartition]int64) error {
	if err := tx.check(); err != nil {
		return err
	}
	c, ok := member.(*consumer)
	if !ok || c == nil || c.s != tx.s {
		return eventstore.InvalidArgument("consumer", "belongs to another store")
	}
	tx.offsets = append(tx.offsets, txnOffsets{c: c, offsets: offsets})
	return nil
}

// Update runs fn in one PostgreSQL transaction and commits what it staged,
// state writes and group offsets together. If fn returns an error nothing
// is written and Update returns it. A durable Update (the default) returns
// after its commit is flushed; with UpdateNoSync, once it is visible.
//
// Updates are serialized across every Store on the schema (an advisory
// lock held by the transaction), so that the read-modify-write of an
// Update is never interleaved with another's. Keep fn short: no network
// calls. fn may read the store itself (Get, Scan), which sees the state
// without fn's writes. The Txn must not be used after fn returns.
func (s *Store) Update(ctx context.Context, fn func(tx eventstore.Txn) error, opts ...eventstore.UpdateOption) error {
	uo := eventstore.NewUpdateOptions(opts...)
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	dbctx := context.WithoutCancel(ctx)
	conn, err := s.pool.Acquire(dbctx)
	if err != nil {
		return s.dbErr(ctx, "update", err)
	}
	defer conn.Release()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	if uo.NoSync {
		b.Queue("SET LOCAL synchronous_commit TO off")
	}
	b.Queue(`SELECT pg_advisory_xact_lock($1)`, s.stateLock)
	if err := conn.SendBatch(dbctx, b).Close(); err != nil {
		rollback(conn)
		return s.dbErr(ctx, "update", err)
	}
	tx := &txn{s: s, ctx: dbctx, conn: conn, w: batchWriter{s: s, b: &pgx.Batch{}}}
	err = fn(tx)
	tx.done = true
	if err != nil {
		rollback(conn)
		return err
	}
	if len(tx.offsets) > 0 {
		if err := tx.flush(); err != nil {
			rollback(conn)
			return err
		}
		if err := s.stageOffsets(dbctx, conn, tx.w.b, tx.offsets); err != nil {
			rollback(conn)
			return err
		}
	}
	tx.w.b.Queue("COMMIT")
	if err := conn.SendBatch(dbctx, tx.w.b).Close(); err != nil {
		rollback(conn)
		return s.dbErr(ctx, "update", err)
	}
	if conn.Conn().PgConn().TxStatus() != 'I' {
		rollback(conn)
		return errors.New("postgres: update: transaction did not commit")
	}
	return nil
}

func getState(ctx context.Context, s *Store, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, key []byte) ([]byte, bool, error) {
	var v []byte
	err := q.QueryRow(ctx, s.q(`SELECT v FROM {s}.state WHERE kh = $1`), keyHash(key)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, s.dbErr(ctx, fmt.Sprintf("get state %q", key), err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// Get returns a copy of the value of key in the state space, and false if
// key has none.
func (s *Store) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if err := eventstore.ValidateStateKey(key); err != nil {
		return nil, false, err
	}
	if err := s.acquire(); err != nil {
		return nil, false, err
	}
	defer s.release()
	return getState(ctx, s, s.pool, key)
}

// Scan yields the state entries in [lower, upper), in key order, or in
// reverse order with reverse; a nil upper bound means to the end of the
// state space. It reads a consistent snapshot (one query, whose rows it
// streams on a connection of its own while the loop runs). The yielded
// slices are valid until the next iteration step; copy what you keep.
func (s *Store) Scan(ctx context.Context, lower, upper []byte, reverse bool) iter.Seq2[eventstore.KV, error] {
	return func(yield func(eventstore.KV, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(eventstore.KV{}, err)
			return
		}
		if err := eventstore.ValidateStateRange(lower, upper); err != nil {
			yield(eventstore.KV{}, err)
			return
		}
		if err := s.acquire(); err != nil {
			yield(eventstore.KV{}, err)
			return
		}
		defer s.release()
		order := "ORDER BY pfx, k"
		if reverse {
			order = "ORDER BY pfx DESC, k DESC"
		}
		lo, hi := rangeArgs(lower, upper)
		rows, err := s.pool.Query(ctx, s.q(`SELECT k, v FROM {s}.state WHERE `+rangeCond+` `+order), lo, hi)
		if err != nil {
			yield(eventstore.KV{}, s.dbErr(ctx, "scan state", err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			var kv eventstore.KV
			if err := rows.Scan(&kv.Key, &kv.Value); err != nil {
				yield(eventstore.KV{}, s.dbErr(ctx, "scan state", err))
				return
			}
			if kv.Value == nil {
				kv.Value = []byte{}
			}
			if !yield(kv, nil) {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(eventstore.KV{}, s.dbErr(ctx, "scan state", err))
		}
	}
}

// Sync makes every append and Update acknowledged so far durable, NoSync
// ones included: it commits a transaction synchronously, which flushes
// the write-ahead log up to it.
func (s *Store) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	if _, err := s.pool.Exec(ctx, "BEGIN; SELECT pg_current_xact_id(); COMMIT", pgx.QueryExecModeSimpleProtocol); err != nil {
		return s.dbErr(ctx, "sync", err)
	}
	return nil
}
