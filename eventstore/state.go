package eventstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The state space is a key-value space next to the log, in the same Pebble
// database, for what the layers above the log keep: read models, projection
// checkpoints, idempotency records, saga state, deduplication windows. Its
// writes can be committed atomically with consumer-group offsets (Update)
// or with an append (WithState), which is what makes a projection's
// read model and checkpoint move together, and a command's idempotency
// record appear with its events.
//
// Keys are opaque bytes. The store gives them no structure: users divide
// the space by prefix (for example "projection/orders/"), and every key
// lives until it is deleted. Cleanup of topics never touches it.

// MaxStateKeyBytes and MaxStateValueBytes bound the keys and values of the
// state space.
const (
	MaxStateKeyBytes   = 64 << 10
	MaxStateValueBytes = 16 << 20
)

// KV is one entry of the state space.
type KV struct {
	Key, Value []byte
}

// StateWriter stages writes to the state space. Both *Txn and the writer
// handed to a WithState function implement it. Its methods only stage: the
// writes take effect, all together, when the surrounding Update or Append
// commits.
type StateWriter interface {
	// Set stages key = value. The slices may be reused once Set returns.
	Set(key, value []byte) error
	// Delete stages the removal of key.
	Delete(key []byte) error
	// DeleteRange stages the removal of every key in [lower, upper).
	DeleteRange(lower, upper []byte) error
}

func appendStateKey(dst, key []byte) []byte {
	dst = append(dst, kindState)
	return append(dst, key...)
}

// stateBounds turns a user range into a range of the state space; a nil
// upper bound means the end of the space.
func stateBounds(lower, upper []byte) (lo, hi []byte) {
	lo = appendStateKey(nil, lower)
	if upper == nil {
		hi = []byte{kindState + 1}
	} else {
		hi = appendStateKey(nil, upper)
	}
	return lo, hi
}

func checkStateKey(key []byte) error {
	if len(key) == 0 {
		return invalid("state key", "must not be empty")
	}
	if len(key) > MaxStateKeyBytes {
		return invalid("state key", "has %d bytes, more than %d", len(key), MaxStateKeyBytes)
	}
	return nil
}

func checkStateRange(lower, upper []byte) error {
	if len(lower) > MaxStateKeyBytes || len(upper) > MaxStateKeyBytes {
		return invalid("state range", "a bound is longer than %d bytes", MaxStateKeyBytes)
	}
	if upper != nil && bytes.Compare(lower, upper) > 0 {
		return invalid("state range", "lower bound %q is after upper bound %q", lower, upper)
	}
	return nil
}

// PrefixEnd returns the smallest key greater than every key that starts
// with prefix, for use as the upper bound of a prefix scan; nil (the end
// of the space) if there is none.
func PrefixEnd(prefix []byte) []byte {
	end := slices.Clone(prefix)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return nil
}

// batchWriter stages state writes into a Pebble batch.
type batchWriter struct {
	b   *pebble.Batch
	buf []byte
}

func (w *batchWriter) Set(key, value []byte) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	if len(value) > MaxStateValueBytes {
		return invalid("state value", "of key %q has %d bytes, more than %d", key, len(value), MaxStateValueBytes)
	}
	w.buf = appendStateKey(w.buf[:0], key)
	return w.b.Set(w.buf, value, nil)
}

func (w *batchWriter) Delete(key []byte) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	w.buf = appendStateKey(w.buf[:0], key)
	return w.b.Delete(w.buf, nil)
}

func (w *batchWriter) DeleteRange(lower, upper []byte) error {
	if err := checkStateRange(lower, upper); err != nil {
		return err
	}
	lo, hi := stateBounds(lower, upper)
	return w.b.DeleteRange(lo, hi, nil)
}

// WithState stages state writes in the same batch as an append's events,
// so that they become visible and durable together, or not at all. fn is
// called once the append's offsets and versions are known, with the
// result the append will return, while the partition's appends are
// serialized: it must be quick and must not call the store. If fn returns
// an error, nothing is appended and Append returns that error.
//
// The command bus uses it to record a command's result with its events.
func WithState(fn func(res AppendResult, w StateWriter) error) AppendOption {
	return func(o *AppendOptions) { o.State = fn }
}

// UpdateOptions is what the UpdateOptions of one Update ask for. A backend
// reads them with NewUpdateOptions.
type UpdateOptions struct {
	// NoSync: return once the writes are visible (see UpdateNoSync).
	NoSync bool
}

// UpdateOption configures one Update.
type UpdateOption func(*UpdateOptions)

// NewUpdateOptions applies opts to a zero UpdateOptions.
func NewUpdateOptions(opts ...UpdateOption) UpdateOptions { return applyOptions(opts) }

// UpdateNoSync makes an Update non-durable: it returns once its writes are
// visible, without waiting for fsync. A crash may lose it and every later
// non-durable write, never a part of it. Store.Sync makes it durable.
func UpdateNoSync() UpdateOption { return func(o *UpdateOptions) { o.NoSync = true } }

// pebbleTxn is PebbleStore's Txn, the transaction of one Update: its reads
// see the committed state plus the Txn's own writes, and its writes and
// offset commits are applied together when the Update's function returns
// nil.
type pebbleTxn struct {
	s       *PebbleStore
	ctx     context.Context
	w       batchWriter
	offsets []txnOffsets
	done    bool
}

type txnOffsets struct {
	c       *pebbleConsumer
	offsets map[TopicPartition]int64
}

func (tx *pebbleTxn) check() error {
	if tx.done {
		return errors.New("eventstore: Txn used after its Update returned")
	}
	return nil
}

// Set stages key = value.
func (tx *pebbleTxn) Set(key, value []byte) error {
	if err := tx.check(); err != nil {
		return err
	}
	return tx.w.Set(key, value)
}

// Delete stages the removal of key.
func (tx *pebbleTxn) Delete(key []byte) error {
	if err := tx.check(); err != nil {
		return err
	}
	return tx.w.Delete(key)
}

// DeleteRange stages the removal of every key in [lower, upper); a nil
// upper bound means to the end of the state space.
func (tx *pebbleTxn) DeleteRange(lower, upper []byte) error {
	if err := tx.check(); err != nil {
		return err
	}
	return tx.w.DeleteRange(lower, upper)
}

// Get returns a copy of key's value as the Txn sees it, and false if key
// has none.
func (tx *pebbleTxn) Get(key []byte) ([]byte, bool, error) {
	if err := tx.check(); err != nil {
		return nil, false, err
	}
	return getState(tx.w.b, key)
}

// Scan yields the entries in [lower, upper) as the Txn sees them, in key
// order (or reverse order with reverse). A nil upper bound means to the
// end of the state space. The yielded slices are valid until the next
// iteration step; copy what you keep.
func (tx *pebbleTxn) Scan(lower, upper []byte, reverse bool) iter.Seq2[KV, error] {
	return func(yield func(KV, error) bool) {
		if err := tx.check(); err != nil {
			yield(KV{}, err)
			return
		}
		scanState(tx.ctx, tx.w.b, lower, upper, reverse, yield)
	}
}

// CommitOffsets stages a commit of c's group offsets (the next offset to
// read, per partition) with the Txn's writes. At commit, every partition
// must still be assigned to c, else the whole Update fails with
// ErrNotAssigned and nothing is written: a member that lost a partition in
// a rebalance can never move its read model past the new owner's.
func (tx *pebbleTxn) CommitOffsets(consumer Consumer, offsets map[TopicPartition]int64) error {
	if err := tx.check(); err != nil {
		return err
	}
	c, ok := consumer.(*pebbleConsumer)
	if !ok || c == nil || c.s != tx.s {
		return invalid("consumer", "belongs to another store")
	}
	tx.offsets = append(tx.offsets, txnOffsets{c: c, offsets: offsets})
	return nil
}

// Update runs fn in a transaction on the state space and commits what it
// staged, state writes and group offsets together, in one atomic batch. If
// fn returns an error nothing is written and Update returns it. A durable
// Update (the default) returns after fsync; concurrent Updates and Appends
// share fsyncs.
//
// Updates are serialized with each other while fn runs and the batch is
// applied (not while it syncs), so the read-modify-write of an Update is
// never interleaved with another's. Keep fn short: no network calls. The
// Txn must not be used after fn returns.
//
// A state write is visible to other readers once it is applied, which may
// be just before it is durable; a crash in between loses it, never part of
// it, and the caller has not been told it succeeded.
func (s *PebbleStore) Update(ctx context.Context, fn func(tx Txn) error, opts ...UpdateOption) error {
	uo := NewUpdateOptions(opts...)
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.acquire(); err != nil {
		return err
	}
	defer s.release()
	if err := s.failure(); err != nil {
		return err
	}
	b := s.db.NewIndexedBatch()
	defer b.Close()
	tx := &pebbleTxn{s: s, ctx: ctx, w: batchWriter{b: b}}

	s.stateMu.Lock()
	err := fn(tx)
	tx.done = true
	if err != nil {
		s.stateMu.Unlock()
		return err
	}
	unlock, err := s.stageOffsets(b, tx.offsets)
	if err != nil {
		s.stateMu.Unlock()
		return err
	}
	if b.Empty() {
		unlock()
		s.stateMu.Unlock()
		return nil
	}
	if uo.NoSync {
		err = pebbleCall(func() error { return s.db.Apply(b, pebble.NoSync) })
	} else {
		err = pebbleCall(func() error { return s.db.ApplyNoSyncWait(b, pebble.Sync) })
	}
	unlock()
	s.stateMu.Unlock()
	if err != nil {
		return fmt.Errorf("eventstore: update: %w", err)
	}
	if !uo.NoSync {
		start := time.Now()
		err := b.SyncWait()
		s.metrics.synced(start)
		if err != nil {
			s.failed.CompareAndSwap(nil, &err)
			s.log.Error("eventstore: WAL sync failed; the store accepts no more writes", "err", err)
			return fmt.Errorf("%w: sync of update: %v", ErrStoreFailed, err)
		}
	}
	return nil
}

// stageOffsets checks and stages group offset commits. It returns holding
// the locks of the groups involved (in name order), so that no rebalance
// can revoke a partition between the check and the batch's application;
// the caller releases them with the returned function.
func (s *PebbleStore) stageOffsets(b *pebble.Batch, commits []txnOffsets) (func(), error) {
	if len(commits) == 0 {
		return func() {}, nil
	}
	var groups []*groupState
	for _, c := range commits {
		if !slices.Contains(groups, c.c.g) {
			groups = append(groups, c.c.g)
		}
	}
	slices.SortFunc(groups, func(a, b *groupState) int { return strings.Compare(a.name, b.name) })
	for _, g := range groups {
		g.mu.Lock()
	}
	unlock := func() {
		for _, g := range slices.Backward(groups) {
			g.mu.Unlock()
		}
	}
	for _, c := range commits {
		if err := c.c.stageOffsetsLocked(b, c.offsets); err != nil {
			unlock()
			return nil, err
		}
	}
	return unlock, nil
}

// Get returns a copy of the value of key in the state space, and false if
// key has none.
func (s *PebbleStore) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	if err := s.acquire(); err != nil {
		return nil, false, err
	}
	defer s.release()
	v, ok, err := getState(s.db, key)
	return v, ok, s.engineErr(err)
}

// Scan yields the state entries in [lower, upper), in key order, or in
// reverse order with reverse; a nil upper bound means to the end of the
// state space. It reads a consistent snapshot taken when iteration starts.
// The yielded slices are valid until the next iteration step; copy what you
// keep.
func (s *PebbleStore) Scan(ctx context.Context, lower, upper []byte, reverse bool) iter.Seq2[KV, error] {
	return func(yield func(KV, error) bool) {
		if err := ctx.Err(); err != nil {
			yield(KV{}, err)
			return
		}
		if err := s.acquire(); err != nil {
			yield(KV{}, err)
			return
		}
		defer s.release()
		scanState(ctx, s.db, lower, upper, reverse, func(kv KV, err error) bool {
			return yield(kv, s.engineErr(err))
		})
	}
}

func getState(r pebble.Reader, key []byte) ([]byte, bool, error) {
	if err := checkStateKey(key); err != nil {
		return nil, false, err
	}
	v, closer, err := r.Get(appendStateKey(nil, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("eventstore: get state %q: %w", key, err)
	}
	defer closer.Close()
	return slices.Clone(v), true, nil
}

func scanState(ctx context.Context, r pebble.Reader, lower, upper []byte, reverse bool, yield func(KV, error) bool) {
	if err := checkStateRange(lower, upper); err != nil {
		yield(KV{}, err)
		return
	}
	lo, hi := stateBounds(lower, upper)
	it, err := r.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		yield(KV{}, fmt.Errorf("eventstore: scan state: %w", err))
		return
	}
	defer it.Close()
	valid, step := it.First, it.Next
	if reverse {
		valid, step = it.Last, it.Prev
	}
	for ok := valid(); ok; ok = step() {
		if err := ctx.Err(); err != nil {
			yield(KV{}, err)
			return
		}
		v, err := it.ValueAndErr()
		if err != nil {
			yield(KV{}, fmt.Errorf("eventstore: scan state: %w", err))
			return
		}
		if !yield(KV{Key: it.Key()[1:], Value: v}, nil) {
			return
		}
	}
	if err := it.Error(); err != nil {
		yield(KV{}, fmt.Errorf("eventstore: scan state: %w", err))
	}
}
