package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// appendReq is one Append waiting for the Store's writer.
type appendReq struct {
	t         *topicMeta
	partition int
	key       string
	kh        []byte
	expected  eventstore.ExpectedVersion
	events    []eventstore.Event
	ao        eventstore.AppendOptions
	now       time.Time
	res       eventstore.AppendResult
	err       error
	done      chan struct{}
}

// storeWriter gathers the appends of this Store, to every topic and
// partition: while one transaction runs, the appends that arrive queue up,
// and the next transaction takes them all (group commit, as the Pebble
// store's commit pipeline does), so that concurrent appenders share one
// commit and its flush instead of one transaction each, whatever
// partitions they write to.
//
// The writer runs one group at a time, so the cache it keeps needs no lock
// of its own: the next offset of each partition and the head of each
// stream as its last transaction left them. A group whose partitions and
// heads are all in the cache is written in one round trip that checks them
// under the partition locks (expect); when another process wrote meanwhile
// the check fails the transaction, and the group is written again the slow
// way, which reads them first.
type storeWriter struct {
	mu      sync.Mutex
	queue   []*appendReq
	running bool

	next  map[partKey]int64
	heads map[headKey]uint64
}

// maxGroupAppends bounds how many appends share one transaction.
const maxGroupAppends = 256

// maxCachedHeads bounds the writer's head cache; past it the cache starts
// over.
const maxCachedHeads = 1 << 16

func (s *Store) append(ctx context.Context, t *topicMeta, key string, expected eventstore.ExpectedVersion, events []eventstore.Event, ao eventstore.AppendOptions, now time.Time) (eventstore.AppendResult, error) {
	partition := eventstore.PartitionFor(key, t.partitions)
	r := &appendReq{t: t, partition: partition, key: key, kh: keyHash(key), expected: expected, events: events, ao: ao, now: now, done: make(chan struct{})}
	w := &s.writer
	w.mu.Lock()
	w.queue = append(w.queue, r)
	lead := !w.running
	w.running = true
	w.mu.Unlock()
	if lead {
		s.runWriter(ctx, w)
	}
	<-r.done
	return r.res, r.err
}

// runWriter commits queued appends, a group at a time, until the queue is
// empty. The caller's own append is in the first group; later groups run
// on.
func (s *Store) runWriter(ctx context.Context, w *storeWriter) {
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
				s.commitGroup(ctx, w, group)
				s.runWriter(ctx, w)
			}()
			return
		}
		s.commitGroup(ctx, w, group)
	}
}

// partKey names one partition of one topic.
type partKey struct {
	topic int64
	part  int
}

// headKey names one stream's head: its topic and key hash.
type headKey struct {
	topic int64
	kh    string
}

// groupKeys are the distinct partitions and streams of a group, in the
// group's order, as the arrays the statements take.
type groupKeys struct {
	lockTopics, headTopics []int64
	lockParts              []int32
	headKHs                [][]byte
	noSync, state          bool
}

func keysOf(group []*appendReq) groupKeys {
	k := groupKeys{noSync: true}
	parts := map[partKey]bool{}
	seen := map[headKey]bool{}
	for _, r := range group {
		k.noSync = k.noSync && r.ao.NoSync
		k.state = k.state || r.ao.State != nil
		pk := partKey{r.t.id, r.partition}
		if !parts[pk] {
			parts[pk] = true
			k.lockTopics, k.lockParts = append(k.lockTopics, pk.topic), append(k.lockParts, int32(pk.part))
		}
		hk := headKey{r.t.id, string(r.kh)}
		if !seen[hk] {
			seen[hk] = true
			k.headTopics, k.headKHs = append(k.headTopics, hk.topic), append(k.headKHs, r.kh)
		}
	}
	return k
}

// commitGroup appends a group of appends, to any topics and partitions, in
// one transaction, and tells each its result. The transaction locks the
// group's partition rows (in (topic, partition) order, so that Stores in
// other processes that lock several too cannot deadlock with it), which
// give the next offsets, reads the streams' heads, writes the records, the
// heads, the partitions' counters and the WithState writes, and commits:
// in one round trip when the writer's cache holds every offset and head
// (and no append has a WithState function, which must see its append's
// real offsets), else in two. Each append is checked against its stream's
// head (as left by the appends before it in the group); one that fails its
// check, or whose WithState function fails, is left out before anything is
// written, the others go on. The appends to a topic deleted meanwhile fail
// with errTopicGone, the others go on.
func (s *Store) commitGroup(ctx context.Context, w *storeWriter, group []*appendReq) {
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
	k := keysOf(group)
	where := func() string {
		if len(k.lockTopics) == 1 {
			return fmt.Sprintf("append to %s/%d", group[0].t.name, group[0].partition)
		}
		return fmt.Sprintf("append to %d partitions", len(k.lockTopics))
	}
	if next, heads, ok := w.cached(k); ok {
		pre := &pgx.Batch{}
		beginGroup(pre, k)
		exp := make([]int64, len(k.lockTopics))
		for i, tid := range k.lockTopics {
			exp[i] = next[partKey{tid, int(k.lockParts[i])}]
		}
		pre.Queue(s.q(`SELECT {s}.expect(count(*) = cardinality($1::bigint[]) AND coalesce(bool_and(ok), true), 'a partition') FROM (
			SELECT p.next_offset = x.n AS ok FROM {s}.partitions p
			JOIN unnest($1::bigint[], $2::int[], $3::bigint[]) AS x(t, pt, n) ON p.topic_id = x.t AND p.part = x.pt
			ORDER BY p.topic_id, p.part FOR UPDATE OF p) AS l`), k.lockTopics, k.lockParts, exp)
		hv := make([]int64, len(k.headTopics))
		for i, tid := range k.headTopics {
			hv[i] = int64(heads[headKey{tid, string(k.headKHs[i])}])
		}
		pre.Queue(s.q(`SELECT {s}.expect(coalesce(bool_and(coalesce(h.version, 0) = x.v), true), 'a stream head')
			FROM unnest($1::bigint[], $2::bytea[], $3::bigint[]) AS x(t, k, v)
			LEFT JOIN {s}.heads h ON h.topic_id = x.t AND h.kh = x.k`), k.headTopics, k.headKHs, hv)
		included, notified, err := s.writeGroup(ctx, conn, pre, group, k, next, heads)
		var pgErr *pgconn.PgError
		switch {
		case err == nil:
			w.remember(next, heads)
			s.publishedAll(included, notified)
			fail(nil)
			return
		case errors.As(err, &pgErr) && pgErr.Code == "MU001":
			// Another process wrote: read, and write again.
			for _, r := range group {
				r.err, r.res = nil, eventstore.AppendResult{}
			}
		default:
			w.forget()
			err = s.dbErr(ctx, where(), err)
			for _, r := range group {
				r.err, r.res = err, eventstore.AppendResult{}
			}
			fail(err)
			return
		}
	}

	// Round trip 1: begin, lock the partitions, then read the heads (a
	// statement of its own, so that its snapshot is taken after the locks:
	// it sees the appends that held them before).
	b := &pgx.Batch{}
	beginGroup(b, k)
	next := map[partKey]int64{}
	b.Queue(s.q(`SELECT p.topic_id, p.part, p.next_offset FROM {s}.partitions p
		JOIN unnest($1::bigint[], $2::int[]) AS x(t, pt) ON p.topic_id = x.t AND p.part = x.pt
		ORDER BY p.topic_id, p.part FOR UPDATE OF p`), k.lockTopics, k.lockParts).Query(func(rows pgx.Rows) error {
		var tid, off int64
		var pt int32
		_, err := pgx.ForEachRow(rows, []any{&tid, &pt, &off}, func() error {
			next[partKey{tid, int(pt)}] = off
			return nil
		})
		return err
	})
	heads := map[headKey]uint64{}
	b.Queue(s.q(`SELECT h.topic_id, h.kh, h.version FROM {s}.heads h
		JOIN unnest($1::bigint[], $2::bytea[]) AS x(t, k) ON h.topic_id = x.t AND h.kh = x.k`), k.headTopics, k.headKHs).Query(func(rows pgx.Rows) error {
		var tid, v int64
		var kh []byte
		_, err := pgx.ForEachRow(rows, []any{&tid, &kh, &v}, func() error {
			heads[headKey{tid, string(kh)}] = uint64(v)
			return nil
		})
		return err
	})
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		rollback(conn)
		w.forget()
		fail(s.dbErr(ctx, where(), err))
		return
	}
	for i, tid := range k.headTopics {
		hk := headKey{tid, string(k.headKHs[i])}
		if _, ok := heads[hk]; !ok {
			heads[hk] = 0
		}
	}
	// Round trip 2.
	included, notified, err := s.writeGroup(ctx, conn, &pgx.Batch{}, group, k, next, heads)
	if err != nil {
		w.forget()
		err = s.dbErr(ctx, where(), err)
		for _, r := range group {
			r.err, r.res = err, eventstore.AppendResult{}
		}
		fail(err)
		return
	}
	w.remember(next, heads)
	s.publishedAll(included, notified)
	fail(nil)
}

// beginGroup queues the start of a group's transaction on b. The
// transaction's statements, their arrays of any length, use generic plans:
// PostgreSQL would otherwise plan them anew at each execution, which costs
// more than they take to run (the WithState writes, a group's own, keep
// the default).
func beginGroup(b *pgx.Batch, k groupKeys) {
	b.Queue("BEGIN")
	switch {
	case k.noSync && k.state:
		b.Queue("SET LOCAL synchronous_commit TO off")
	case k.noSync:
		b.Queue("SELECT set_config('synchronous_commit', 'off', true), set_config('plan_cache_mode', 'force_generic_plan', true)")
	case !k.state:
		b.Queue("SET LOCAL plan_cache_mode TO force_generic_plan")
	}
}

// writeGroup checks each append of group against heads, takes its offsets
// from next, and queues on pre the writes of those that pass, then the
// commit and the notification of the other Stores, and sends pre. It
// updates next and heads to what the commit leaves, and sets the result or
// error of each append; the appends it included are returned, and whether
// the other Stores were notified of them. With none to write it rolls back and returns
// none. An error is the transaction's: it is rolled back, and no append
// was written.
func (s *Store) writeGroup(ctx context.Context, conn *pgxpool.Conn, pre *pgx.Batch, group []*appendReq, k groupKeys, next map[partKey]int64, heads map[headKey]uint64) ([]*appendReq, bool, error) {
	var (
		rtids, offs, vers, tss []int64
		rparts, sizes          []int32
		tombs                  []bool
		datas, rkhs            [][]byte
		counts                 = map[partKey][2]int64{} // records, bytes
		changed                = map[headKey]bool{}
		included               []*appendReq
	)
	b := &pgx.Batch{}
	for _, r := range group {
		pk := partKey{r.t.id, r.partition}
		off, ok := next[pk]
		if !ok {
			r.err = errTopicGone
			continue
		}
		hk := headKey{r.t.id, string(r.kh)}
		head := heads[hk]
		if !r.expected.Matches(head) {
			r.err = &eventstore.VersionConflictError{Topic: r.t.name, Key: r.key, Expected: r.expected, Actual: head}
			continue
		}
		n := int64(len(r.events))
		recs := eventstore.NewRecords(r.t.name, r.partition, r.key, off, head, r.events, r.now)
		res := eventstore.AppendResult{
			Topic: r.t.name, Key: r.key, Partition: r.partition,
			FirstOffset: off, LastOffset: off + n - 1,
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
		c := counts[pk]
		for i := range recs {
			rec := &recs[i]
			data := eventstore.EncodeRecord(nil, rec)
			rtids, rparts = append(rtids, r.t.id), append(rparts, int32(r.partition))
			offs, vers, tss = append(offs, rec.Offset), append(vers, int64(rec.Version)), append(tss, rec.Timestamp.UnixNano())
			sizes, tombs, datas, rkhs = append(sizes, int32(len(data))), append(tombs, rec.Payload == nil), append(datas, data), append(rkhs, r.kh)
			c[1] += int64(len(data))
		}
		c[0] += n
		counts[pk] = c
		next[pk] = off + n
		heads[hk] = res.LastVersion
		changed[hk] = true
		r.res = res
		included = append(included, r)
	}
	if len(included) == 0 {
		if len(pre.QueuedQueries) > 0 {
			// The fast path's checks are still to be made: what the group
			// was refused on may be stale.
			pre.Queue("ROLLBACK")
			err := conn.SendBatch(ctx, pre).Close()
			rollback(conn)
			return nil, false, err
		}
		rollback(conn)
		return nil, false, nil
	}
	var (
		hTopics, hVers []int64
		hKHs           [][]byte
	)
	for i, tid := range k.headTopics {
		hk := headKey{tid, string(k.headKHs[i])}
		if changed[hk] {
			hTopics, hKHs, hVers = append(hTopics, tid), append(hKHs, k.headKHs[i]), append(hVers, int64(heads[hk]))
		}
	}
	var pTopics, pNext, pRecs, pBytes []int64
	var pParts []int32
	for i, tid := range k.lockTopics {
		pk := partKey{tid, int(k.lockParts[i])}
		if c, ok := counts[pk]; ok {
			pTopics, pParts = append(pTopics, tid), append(pParts, k.lockParts[i])
			pNext, pRecs, pBytes = append(pNext, next[pk]), append(pRecs, c[0]), append(pBytes, c[1])
		}
	}

	// The records, the heads, the counters, the state writes, and the
	// commit.
	pre.Queue(s.q(`INSERT INTO {s}.records (topic_id, part, off, kh, version, ts, size, tombstone, data)
		SELECT * FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bytea[], $5::bigint[], $6::bigint[], $7::int[], $8::boolean[], $9::bytea[])`),
		rtids, rparts, offs, rkhs, vers, tss, sizes, tombs, datas)
	pre.Queue(s.q(`INSERT INTO {s}.heads (topic_id, kh, version) SELECT * FROM unnest($1::bigint[], $2::bytea[], $3::bigint[])
		ON CONFLICT (topic_id, kh) DO UPDATE SET version = excluded.version`), hTopics, hKHs, hVers)
	pre.Queue(s.q(`UPDATE {s}.partitions p SET next_offset = x.n, records = p.records + x.r, bytes = p.bytes + x.b
		FROM unnest($1::bigint[], $2::int[], $3::bigint[], $4::bigint[], $5::bigint[]) AS x(t, pt, n, r, b)
		WHERE p.topic_id = x.t AND p.part = x.pt`), pTopics, pParts, pNext, pRecs, pBytes)
	pre.QueuedQueries = append(pre.QueuedQueries, b.QueuedQueries...)
	pre.Queue("COMMIT")
	// The notification for the other Stores, in the same round trip but
	// after the COMMIT: a transaction of its own (implicit, ended by the
	// batch's Sync) that writes no WAL, so that it takes the database-wide
	// notify lock only briefly, after the append's flush, never through it.
	// It runs only if the append committed.
	commit := len(pre.QueuedQueries) // the queries up to the COMMIT
	if !s.opts.notifyApart {
		var payloads []string
		seen := map[int64]bool{}
		for _, r := range included {
			if !seen[r.t.id] {
				seen[r.t.id] = true
				payloads = append(payloads, "p "+strconv.FormatInt(r.t.id, 10))
			}
		}
		pre.Queue(`SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p`, s.channel, payloads)
	}
	br := conn.SendBatch(ctx, pre)
	var err error
	for range commit {
		if _, err = br.Exec(); err != nil {
			break
		}
	}
	notified := false
	if err == nil && !s.opts.notifyApart {
		// Committed; if the notification failed, the notifier sends it.
		_, nerr := br.Exec()
		notified = nerr == nil
	}
	// What Close reports is already in err, or is the notification's.
	_ = br.Close()
	if err == nil && conn.Conn().PgConn().TxStatus() != 'I' {
		err = errors.New("transaction did not commit")
	}
	if err != nil {
		rollback(conn)
		return nil, false, err
	}
	return included, notified, nil
}

// cached returns copies of the cached next offsets and heads of the
// group's partitions and streams, if the cache holds all of them and the
// group has no WithState function.
func (w *storeWriter) cached(k groupKeys) (map[partKey]int64, map[headKey]uint64, bool) {
	if k.state || w.next == nil {
		return nil, nil, false
	}
	next := make(map[partKey]int64, len(k.lockTopics))
	for i, tid := range k.lockTopics {
		pk := partKey{tid, int(k.lockParts[i])}
		n, ok := w.next[pk]
		if !ok {
			return nil, nil, false
		}
		next[pk] = n
	}
	heads := make(map[headKey]uint64, len(k.headTopics))
	for i, tid := range k.headTopics {
		hk := headKey{tid, string(k.headKHs[i])}
		v, ok := w.heads[hk]
		if !ok {
			return nil, nil, false
		}
		heads[hk] = v
	}
	return next, heads, true
}

// remember records what a committed (or checked) group left.
func (w *storeWriter) remember(next map[partKey]int64, heads map[headKey]uint64) {
	if w.next == nil || len(w.heads)+len(heads) > maxCachedHeads {
		w.next, w.heads = map[partKey]int64{}, map[headKey]uint64{}
	}
	maps.Copy(w.next, next)
	maps.Copy(w.heads, heads)
}

// forget empties the cache, after a transaction whose outcome says nothing
// about what the partitions hold.
func (w *storeWriter) forget() {
	w.next, w.heads = nil, nil
}

// publishedAll wakes the waiters on every topic that included wrote to:
// this Store's at once, and the other Stores soon, unless the group's own
// round trip has notified them (notified).
func (s *Store) publishedAll(included []*appendReq, notified bool) {
	woken := map[int64]bool{}
	for _, r := range included {
		if !woken[r.t.id] {
			woken[r.t.id] = true
			if notified {
				s.wake(r.t.id)
			} else {
				s.published(r.t.id)
			}
		}
	}
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
