package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strconv"
	"sync"
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
// same transaction. The appends of this Store to one partition that arrive
// while a transaction runs share the next one (group commit); each still
// succeeds or fails on its own.
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
	events, end := s.traceAppend(ctx, topic, key, events)
	res, err := s.append(context.WithoutCancel(ctx), t, key, expected, events, ao, now)
	defer func() { end(res, err) }()
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

// appendReq is one Append waiting for its partition's writer.
type appendReq struct {
	key      string
	kh       []byte
	expected eventstore.ExpectedVersion
	events   []eventstore.Event
	ao       eventstore.AppendOptions
	now      time.Time
	res      eventstore.AppendResult
	err      error
	done     chan struct{}
}

// partWriter gathers the appends of this Store to one partition: while one
// transaction runs, the appends that arrive queue up, and the next
// transaction takes them all (group commit, as the Pebble store does), so
// concurrent appenders to one partition share a commit and its flush
// instead of waiting for each other's.
type partWriter struct {
	mu      sync.Mutex
	queue   []*appendReq
	running bool
}

// maxGroupAppends bounds how many appends share one transaction.
const maxGroupAppends = 256

func (s *Store) writer(topicID int64, partition int) *partWriter {
	s.writersMu.Lock()
	defer s.writersMu.Unlock()
	k := [2]int64{topicID, int64(partition)}
	w := s.writersMu.byPart[k]
	if w == nil {
		w = &partWriter{}
		s.writersMu.byPart[k] = w
	}
	return w
}

func (s *Store) append(ctx context.Context, t *topicMeta, key string, expected eventstore.ExpectedVersion, events []eventstore.Event, ao eventstore.AppendOptions, now time.Time) (eventstore.AppendResult, error) {
	partition := eventstore.PartitionFor(key, t.partitions)
	r := &appendReq{key: key, kh: keyHash(key), expected: expected, events: events, ao: ao, now: now, done: make(chan struct{})}
	w := s.writer(t.id, partition)
	w.mu.Lock()
	w.queue = append(w.queue, r)
	lead := !w.running
	w.running = true
	w.mu.Unlock()
	if lead {
		s.runWriter(ctx, w, t, partition)
	}
	<-r.done
	return r.res, r.err
}

// runWriter commits queued appends, a group at a time, until the queue is
// empty. The caller's own append is in the first group; later groups run
// on.
func (s *Store) runWriter(ctx context.Context, w *partWriter, t *topicMeta, partition int) {
	for first := true; ; first = false {
		w.mu.Lock()
		n := min(len(w.queue), maxGroupAppends)
		if n == 0 {
			w.running = false
			w.mu.Unlock()
			return
		}
		group := w.queue[:n:n]
		w.queue = append([]*appendReq(nil), w.queue[n:]...)
		w.mu.Unlock()
		if !first {
			// The leader's own append is done: let it return, and go on in
			// the background (the callers waiting hold the store open).
			go func() {
				s.commitGroup(ctx, t, partition, group)
				s.runWriter(ctx, w, t, partition)
			}()
			return
		}
		s.commitGroup(ctx, t, partition, group)
	}
}

// commitGroup appends a group of appends to one partition in one
// transaction and tells each its result. Each append is checked against
// its stream's head (as left by the appends before it in the group); one
// that fails its check, or whose WithState function fails, is left out,
// the others go on.
func (s *Store) commitGroup(ctx context.Context, t *topicMeta, partition int, group []*appendReq) {
	fail := func(err error) {
		for _, r := range group {
			if r.err == nil {
				r.err = err
			}
			close(r.done)
		}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		fail(s.dbErr(ctx, "append", err))
		return
	}
	defer conn.Release()
	noSync := true
	var khs [][]byte
	seen := map[string]bool{}
	for _, r := range group {
		noSync = noSync && r.ao.NoSync
		if !seen[r.key] {
			seen[r.key] = true
			khs = append(khs, r.kh)
		}
	}

	// Round trip 1: begin, lock the partition, then read the heads (a
	// statement of its own, so that its snapshot is taken after the lock:
	// it sees the append that held the lock before).
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	if noSync {
		b.Queue("SET LOCAL synchronous_commit TO off")
	}
	var next int64
	found := false
	b.Queue(s.q(`SELECT next_offset FROM {s}.partitions WHERE topic_id = $1 AND part = $2 FOR UPDATE`), t.id, partition).QueryRow(func(r pgx.Row) error {
		err := r.Scan(&next)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		found = err == nil
		return err
	})
	heads := map[string]uint64{}
	b.Queue(s.q(`SELECT kh, version FROM {s}.heads WHERE topic_id = $1 AND kh = ANY($2)`), t.id, khs).Query(func(rows pgx.Rows) error {
		var kh []byte
		var v int64
		_, err := pgx.ForEachRow(rows, []any{&kh, &v}, func() error {
			heads[string(kh)] = uint64(v)
			return nil
		})
		return err
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		rollback(conn)
		fail(s.dbErr(ctx, fmt.Sprintf("append to %s/%d", t.name, partition), err))
		return
	}
	if !found {
		rollback(conn)
		fail(errTopicGone)
		return
	}

	var (
		offs, vers, tss []int64
		sizes           []int32
		tombs           []bool
		datas, rkhs     [][]byte
		total, records  int64
		included        []*appendReq
	)
	b = &pgx.Batch{}
	for _, r := range group {
		head := heads[string(r.kh)]
		if !r.expected.Matches(head) {
			r.err = &eventstore.VersionConflictError{Topic: t.name, Key: r.key, Expected: r.expected, Actual: head}
			continue
		}
		n := int64(len(r.events))
		recs := eventstore.NewRecords(t.name, partition, r.key, next, head, r.events, r.now)
		res := eventstore.AppendResult{
			Topic: t.name, Key: r.key, Partition: partition,
			FirstOffset: next, LastOffset: next + n - 1,
			FirstVersion: head + 1, LastVersion: head + uint64(n),
			EventIDs: make([]uuid.UUID, len(recs)),
		}
		for i := range recs {
			res.EventIDs[i] = recs[i].ID
		}
		if r.ao.State != nil {
			sw := &batchWriter{s: s, b: &pgx.Batch{}}
			if err := r.ao.State(res, sw); err != nil {
				r.err = err
				continue
			}
			b.QueuedQueries = append(b.QueuedQueries, sw.b.QueuedQueries...)
		}
		for i := range recs {
			rec := &recs[i]
			data := eventstore.EncodeRecord(nil, rec)
			offs, vers, tss = append(offs, rec.Offset), append(vers, int64(rec.Version)), append(tss, rec.Timestamp.UnixNano())
			sizes, tombs, datas, rkhs = append(sizes, int32(len(data))), append(tombs, rec.Payload == nil), append(datas, data), append(rkhs, r.kh)
			total += int64(len(data))
		}
		records += n
		next += n
		heads[string(r.kh)] = res.LastVersion
		r.res = res
		included = append(included, r)
	}
	if len(included) == 0 {
		rollback(conn)
		fail(nil)
		return
	}
	var headKH [][]byte
	var headV []int64
	for _, kh := range khs {
		if v, ok := heads[string(kh)]; ok {
			headKH, headV = append(headKH, kh), append(headV, int64(v))
		}
	}

	// Round trip 2: the records, the heads, the counters, the state
	// writes, and the commit.
	pre := &pgx.Batch{}
	pre.Queue(s.q(`INSERT INTO {s}.records (topic_id, part, off, kh, version, ts, size, tombstone, data)
		SELECT $1, $2, o, k, v, ts, sz, tb, d FROM unnest($3::bigint[], $4::bytea[], $5::bigint[], $6::bigint[], $7::int[], $8::boolean[], $9::bytea[]) AS x(o, k, v, ts, sz, tb, d)`),
		t.id, partition, offs, rkhs, vers, tss, sizes, tombs, datas)
	pre.Queue(s.q(`INSERT INTO {s}.heads (topic_id, kh, version) SELECT $1, k, v FROM unnest($2::bytea[], $3::bigint[]) AS x(k, v)
		ON CONFLICT (topic_id, kh) DO UPDATE SET version = excluded.version`), t.id, headKH, headV)
	pre.Queue(s.q(`UPDATE {s}.partitions SET next_offset = $3, records = records + $4, bytes = bytes + $5 WHERE topic_id = $1 AND part = $2`),
		t.id, partition, next, records, total)
	pre.QueuedQueries = append(pre.QueuedQueries, b.QueuedQueries...)
	pre.Queue("COMMIT")
	err = conn.SendBatch(ctx, pre).Close()
	if err == nil && conn.Conn().PgConn().TxStatus() != 'I' {
		err = errors.New("transaction did not commit")
	}
	if err != nil {
		rollback(conn)
		err = s.dbErr(ctx, fmt.Sprintf("append to %s/%d", t.name, partition), err)
		for _, r := range included {
			r.err, r.res = err, eventstore.AppendResult{}
		}
		fail(err)
		return
	}
	s.published(t.id)
	fail(nil)
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
