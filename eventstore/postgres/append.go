package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/muninn-es/muninn/eventstore"
)

// keyHash is what the stream index and the state space index keys by.
func keyHash[T string | []byte](key T) []byte {
	h := sha256.Sum256([]byte(key))
	return h[:]
}

// Append appends events to the stream key of topic, atomically: all of them
// or none, in one transaction. expected is checked against the stream's head
// version first; a mismatch returns a *VersionConflictError (errors.Is
// ErrVersionConflict) with the actual version and writes nothing. A durable
// append (the default) returns after its commit is flushed; concurrent
// appends share flushes (PostgreSQL's group commit). With NoSync it returns
// once the events are visible (synchronous_commit off for the
// transaction).
//
// The transaction locks the partition's row, takes the next offsets from
// it, checks the head, inserts the records and updates the head and the
// partition's counters, so that offsets are gapless and appends to one
// partition become visible in offset order. WithState writes go into the
// same transaction.
//
// ctx is checked before the append starts; once it has started the append
// runs to its end, so that the result is never in doubt.
func (s *Store) Append(ctx context.Context, topic, key string, expected eventstore.ExpectedVersion, events []eventstore.Event, opts ...eventstore.AppendOption) (eventstore.AppendResult, error) {
	ao := eventstore.NewAppendOptions(opts...)
	if s.closedFlag.Load() {
		return eventstore.AppendResult{}, eventstore.ErrClosed
	}
	t, err := s.topic(ctx, topic)
	if err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := eventstore.ValidateAppend(topic, key, expected, events, s.opts.limits); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return eventstore.AppendResult{}, err
	}
	if err := s.acquire(); err != nil {
		return eventstore.AppendResult{}, err
	}
	defer s.release()
	now := s.clk.Now()
	if err := eventstore.CheckClock(now); err != nil {
		return eventstore.AppendResult{}, err
	}
	res, err := s.append(context.WithoutCancel(ctx), t, key, expected, events, ao, now)
	if errors.Is(err, errTopicGone) {
		// Deleted, perhaps by another process; a topic of the same name
		// may have been made since.
		s.forgetTopic(t.id)
		if t, err = s.topic(ctx, topic); err != nil {
			return eventstore.AppendResult{}, err
		}
		res, err = s.append(context.WithoutCancel(ctx), t, key, expected, events, ao, now)
		if errors.Is(err, errTopicGone) {
			s.forgetTopic(t.id)
			err = fmt.Errorf("%w: %q (deleted)", eventstore.ErrTopicNotFound, topic)
		}
	}
	return res, err
}

var errTopicGone = errors.New("topic gone")

func (s *Store) append(ctx context.Context, t *topicMeta, key string, expected eventstore.ExpectedVersion, events []eventstore.Event, ao eventstore.AppendOptions, now time.Time) (eventstore.AppendResult, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return eventstore.AppendResult{}, s.dbErr(ctx, "append", err)
	}
	defer conn.Release()
	partition := eventstore.PartitionFor(key, t.partitions)
	kh := keyHash(key)
	n := int64(len(events))

	// Round trip 1: begin, lock the partition and take the offsets, then
	// read the head (a statement of its own, so that its snapshot is taken
	// after the lock: it sees the append that held the lock before).
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	if ao.NoSync {
		b.Queue("SET LOCAL synchronous_commit TO off")
	}
	var first int64
	found := false
	b.Queue(s.q(`UPDATE {s}.partitions SET next_offset = next_offset + $3 WHERE topic_id = $1 AND part = $2 RETURNING next_offset - $3`),
		t.id, partition, n).QueryRow(func(r pgx.Row) error {
		err := r.Scan(&first)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	var head uint64
	b.Queue(s.q(`SELECT version FROM {s}.heads WHERE topic_id = $1 AND kh = $2`), t.id, kh).QueryRow(func(r pgx.Row) error {
		var v int64
		err := r.Scan(&v)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		head = uint64(v)
		return err
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		rollback(conn)
		return eventstore.AppendResult{}, s.dbErr(ctx, fmt.Sprintf("append to %s/%q", t.name, key), err)
	}
	if !found {
		rollback(conn)
		return eventstore.AppendResult{}, errTopicGone
	}
	if !expected.Matches(head) {
		rollback(conn)
		return eventstore.AppendResult{}, &eventstore.VersionConflictError{Topic: t.name, Key: key, Expected: expected, Actual: head}
	}

	recs := eventstore.NewRecords(t.name, partition, key, first, head, events, now)
	res := eventstore.AppendResult{
		Topic: t.name, Key: key, Partition: partition,
		FirstOffset: first, LastOffset: first + n - 1,
		FirstVersion: head + 1, LastVersion: head + uint64(n),
		EventIDs: make([]uuid.UUID, len(recs)),
	}
	offs := make([]int64, len(recs))
	vers := make([]int64, len(recs))
	tss := make([]int64, len(recs))
	sizes := make([]int32, len(recs))
	tombs := make([]bool, len(recs))
	datas := make([][]byte, len(recs))
	var total int64
	for i := range recs {
		r := &recs[i]
		res.EventIDs[i] = r.ID
		data := eventstore.EncodeRecord(nil, r)
		offs[i], vers[i], tss[i] = r.Offset, int64(r.Version), r.Timestamp.UnixNano()
		sizes[i], tombs[i], datas[i] = int32(len(data)), r.Payload == nil, data
		total += int64(len(data))
	}

	// Round trip 2: the records, the head, the counters, the state
	// writes, and the commit.
	b = &pgx.Batch{}
	b.Queue(s.q(`INSERT INTO {s}.records (topic_id, part, off, kh, version, ts, size, tombstone, data)
		SELECT $1, $2, o, $3, v, ts, sz, tb, d FROM unnest($4::bigint[], $5::bigint[], $6::bigint[], $7::int[], $8::boolean[], $9::bytea[]) AS x(o, v, ts, sz, tb, d)`),
		t.id, partition, kh, offs, vers, tss, sizes, tombs, datas)
	b.Queue(s.q(`INSERT INTO {s}.heads (topic_id, kh, version) VALUES ($1, $2, $3)
		ON CONFLICT (topic_id, kh) DO UPDATE SET version = excluded.version`), t.id, kh, int64(res.LastVersion))
	b.Queue(s.q(`UPDATE {s}.partitions SET records = records + $3, bytes = bytes + $4 WHERE topic_id = $1 AND part = $2`),
		t.id, partition, n, total)
	if ao.State != nil {
		w := &batchWriter{s: s, b: b}
		if err := ao.State(res, w); err != nil {
			rollback(conn)
			return eventstore.AppendResult{}, err
		}
	}
	b.Queue("COMMIT")
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		rollback(conn)
		return eventstore.AppendResult{}, s.dbErr(ctx, fmt.Sprintf("append to %s/%q", t.name, key), err)
	}
	if conn.Conn().PgConn().TxStatus() != 'I' {
		// The COMMIT did not happen (an error the batch did not report).
		rollback(conn)
		return eventstore.AppendResult{}, fmt.Errorf("postgres: append to %s/%q: transaction did not commit", t.name, key)
	}
	s.published(t.id)
	return res, nil
}

// published wakes this Store's waiters on a topic at once and tells the
// other Stores soon.
func (s *Store) published(topicID int64) {
	s.wake(topicID)
	s.queueNotify("p " + strconv.FormatInt(topicID, 10))
}

// rollback ends a failed transaction on conn, so that it goes back to the
// pool idle; a connection that cannot is closed.
func rollback(conn *pgxpool.Conn) {
	if conn.Conn().PgConn().TxStatus() == 'I' {
		return
	}
	if _, err := conn.Exec(context.Background(), "ROLLBACK"); err != nil {
		_ = conn.Conn().Close(context.Background())
	}
}

// batchWriter stages state writes into a batch: the StateWriter of
// WithState, and of a Txn between its reads.
type batchWriter struct {
	s *Store
	b *pgx.Batch
}

// Set stages key = value.
func (w *batchWriter) Set(key, value []byte) error {
	if err := eventstore.ValidateStateValue(key, value); err != nil {
		return err
	}
	if value == nil {
		value = []byte{}
	}
	w.b.Queue(w.s.q(`INSERT INTO {s}.state (kh, k, v) VALUES ($1, $2, $3) ON CONFLICT (kh) DO UPDATE SET v = excluded.v`),
		keyHash(key), cloneBytes(key), cloneBytes(value))
	return nil
}

// Delete stages the removal of key.
func (w *batchWriter) Delete(key []byte) error {
	if err := eventstore.ValidateStateKey(key); err != nil {
		return err
	}
	w.b.Queue(w.s.q(`DELETE FROM {s}.state WHERE kh = $1`), keyHash(key))
	return nil
}

// DeleteRange stages the removal of every key in [lower, upper); a nil
// upper bound means the end of the space.
func (w *batchWriter) DeleteRange(lower, upper []byte) error {
	if err := eventstore.ValidateStateRange(lower, upper); err != nil {
		return err
	}
	lo, hi := rangeArgs(lower, upper)
	w.b.Queue(w.s.q(`DELETE FROM {s}.state WHERE `+rangeCond), lo, hi)
	return nil
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return append(make([]byte, 0, len(b)), b...)
}

// rangeCond selects the state keys in [$1, $2) ($2 NULL: no upper bound),
// through the order index on pfx.
const rangeCond = `k >= $1 AND pfx >= substring($1 FROM 1 FOR 1024)
	AND ($2::bytea IS NULL OR (k < $2 AND pfx <= substring($2 FROM 1 FOR 1024)))`

func rangeArgs(lower, upper []byte) (lo, hi []byte) {
	lo = cloneBytes(lower)
	if upper != nil {
		hi = cloneBytes(upper)
	}
	return lo, hi
}
