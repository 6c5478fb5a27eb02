package stream

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
)

// handler is an App's consume.Handler. Prepare pushes a poll's records
// through the topology outside any transaction, against a write-back cache
// of the state they touch, and appends the records of the sinks and
// changelogs (NoSync: the Update that follows is durable, and makes them
// durable too). The loop's Update then stages the cache's state, the
// changelog ends and the counters (Flush) with the group's offsets, and
// Committed reports the late records once that is durable.
//
// A record that fails (one that does not decode, without SkipBadRecords)
// ends the processing of its poll: the records before it commit, and the
// loop stops at it with a *consume.HandlerError naming its position (the
// failure is permanent: processing it again gives the same result).
type handler struct {
	a *App
	// b is the poll being applied, between Prepare and its release.
	b *batch
}

func (h *handler) Prepare(ctx context.Context, recs []eventstore.Record) (func(), error) {
	b := newBatch(h.a, ctx)
	if err := b.process(recs); err != nil {
		return nil, err
	}
	if err := b.writeOutputs(); err != nil {
		return nil, err
	}
	if h.a.beforeUpdate != nil {
		if err := h.a.beforeUpdate(); err != nil {
			return nil, err
		}
	}
	h.b = b
	return func() { h.b = nil }, nil
}

func (h *handler) Begin(_ context.Context, tx eventstore.Txn) (consume.Batch, error) {
	if h.b == nil {
		return nil, errors.New("stream: a batch began without a prepared poll")
	}
	return &txBatch{b: h.b, tx: tx}, nil
}

// txBatch is one Update of a prepared poll.
type txBatch struct {
	b  *batch
	tx eventstore.Txn
}

// Handle fails the record the poll's processing stopped at, and those
// after it (which were not processed); the others were applied to the
// batch's cache by Prepare.
func (t *txBatch) Handle(rec *eventstore.Record) error {
	f := t.b.failed
	if f == nil || rec.Topic != f.Topic || rec.Partition != f.Partition || rec.Offset < f.Offset {
		return nil
	}
	if rec.Offset == f.Offset {
		return t.b.failure
	}
	return consume.Permanent(fmt.Errorf("stream: not processed: %s/%d offset %d failed before it", f.Topic, f.Partition, f.Offset))
}

// Flush stages the batch's state, changelog ends and counters.
func (t *txBatch) Flush() error { return t.b.flush(t.tx) }

// Committed reports the batch's late records.
func (t *txBatch) Committed() {
	if fn := t.b.a.cfg.onLate; fn != nil {
		for _, l := range t.b.lateRecs {
			fn(l)
		}
	}
}

// procCtx is the context of one input record on its way through the
// processors.
type procCtx struct {
	b   *batch
	rec *eventstore.Record
	// outs counts the records written per sink for this input record.
	outs map[*sinkDef]int
}

var errSkip = errors.New("stream: record skipped")

// bad handles a record that does not decode: skip it or stop.
func (pc *procCtx) bad(err error) error {
	if pc.b.a.cfg.skipBad {
		pc.b.skipped++
		return errSkip
	}
	return fmt.Errorf("%w at %s/%d offset %d: %v", ErrBadRecord, pc.rec.Topic, pc.rec.Partition, pc.rec.Offset, err)
}

// entry is a state key as the batch sees it.
type entry struct {
	val     []byte
	present bool
	dirty   bool
	// st is the store whose changelog records the key, nil for keys that
	// are not logged.
	st *storeDef
}

type output struct {
	topic string
	key   string
	event eventstore.Event
	// st is set for changelog records.
	st *storeDef
}

type partKey struct {
	st   *storeDef
	part int
}

// batch is the work of one poll: a write-back cache of the state it touches
// and the records it writes, committed together.
type batch struct {
	a       *App
	ctx     context.Context
	entries map[string]*entry
	dirty   []string

	outs []output
	// ends is, per changelog partition written, the offset after the last
	// record written.
	ends map[partKey]int64

	processed, skipped, duplicates int64
	late                           map[*storeDef]int64
	lateRecs                       []LateRecord
	// advanced holds the window store partitions whose stream time moved.
	advanced map[partKey]int64
	// newIndex lists window index keys created in this batch.
	newIndex map[partKey][][]byte

	// failed is the record processing stopped at, failure its error (a
	// *consume.PermanentError).
	failed  *eventstore.Record
	failure error
	flushed bool
}

func newBatch(a *App, ctx context.Context) *batch {
	return &batch{a: a, ctx: ctx, entries: map[string]*entry{},
		late: map[*storeDef]int64{}, advanced: map[partKey]int64{}, newIndex: map[partKey][][]byte{}}
}

// get returns a state value as the batch sees it. The slice must not be
// modified.
func (b *batch) get(key []byte) ([]byte, bool, error) {
	if e, ok := b.entries[string(key)]; ok {
		return e.val, e.present, nil
	}
	v, ok, err := b.a.store.Get(b.ctx, key)
	if err != nil {
		return nil, false, err
	}
	b.entries[string(key)] = &entry{val: v, present: ok}
	return v, ok, nil
}

// put sets key to val; st (if not nil) logs it to its changelog.
func (b *batch) put(key, val []byte, st *storeDef) { b.write(key, val, true, st) }

func (b *batch) del(key []byte, st *storeDef) { b.write(key, nil, false, st) }

func (b *batch) write(key, val []byte, present bool, st *storeDef) {
	e, ok := b.entries[string(key)]
	if !ok {
		e = &entry{}
		b.entries[string(key)] = e
	}
	if !e.dirty {
		e.dirty = true
		b.dirty = append(b.dirty, string(key))
	}
	e.val, e.present, e.st = val, present, st
}

// send queues a record for a sink.
func (b *batch) send(pc *procCtx, sk *sinkDef, key, value []byte, ts time.Time) error {
	if len(key) == 0 {
		return fmt.Errorf("stream: sink %s: the record's key encodes to no bytes; a record in the log needs a key", sk.topic)
	}
	if pc.outs == nil {
		pc.outs = map[*sinkDef]int{}
	}
	idx := pc.outs[sk]
	pc.outs[sk] = idx + 1
	topic := topicName(b.a.id, sk.topic, sk.internal)
	src := pc.rec.Topic + "/" + strconv.Itoa(pc.rec.Partition) + "/" + strconv.FormatInt(pc.rec.Offset, 10)
	ev := eventstore.Event{
		ID:            uuid.NewSHA1(idNamespace, []byte(b.a.id+"\x00"+topic+"\x00"+src+"\x00"+strconv.Itoa(idx))),
		Type:          sk.eventType,
		SchemaVersion: 1,
		Payload:       value,
		Timestamp:     ts,
		CorrelationID: pc.rec.CorrelationID,
		CausationID:   pc.rec.ID.String(),
		Headers:       map[string]string{HeaderSource: src, HeaderIndex: strconv.Itoa(idx)},
	}
	b.outs = append(b.outs, output{topic: topic, key: string(key), event: ev})
	return nil
}

// seen reports whether a repartition record was processed before: its
// input position is not after the last one seen in its partition from the
// same upstream partition. Otherwise it records the position.
func (b *batch) seen(rec *eventstore.Record) (bool, error) {
	src, idxS := rec.Headers[HeaderSource], rec.Headers[HeaderIndex]
	i := strings.LastIndexByte(src, '/')
	if i < 0 {
		return false, nil
	}
	j := strings.LastIndexByte(src[:i], '/')
	if j < 0 {
		return false, nil
	}
	upPart, err0 := strconv.ParseUint(src[j+1:i], 10, 32)
	off, err1 := strconv.ParseInt(src[i+1:], 10, 64)
	idx, err2 := strconv.ParseUint(idxS, 10, 32)
	if err0 != nil || err1 != nil || err2 != nil {
		return false, nil
	}
	key := b.a.keys.dedup.String(rec.Topic).Uint(uint64(rec.Partition)).String(src[:j]).Uint(upPart)
	v, ok, err := b.get(key)
	if err != nil {
		return false, err
	}
	if ok && len(v) == 12 {
		lastOff, lastIdx := int64(binary.BigEndian.Uint64(v)), binary.BigEndian.Uint32(v[8:])
		if off < lastOff || off == lastOff && uint32(idx) <= lastIdx {
			b.duplicates++
			return true, nil
		}
	}
	nv := binary.BigEndian.AppendUint64(make([]byte, 0, 12), uint64(off))
	b.put(key, binary.BigEndian.AppendUint32(nv, uint32(idx)), nil)
	return false, nil
}

// process pushes the polled records through the topology, up to the first
// that fails (see handler), and then expires the windows that stream time
// has left behind. Its error is not a record's: it stops the App.
func (b *batch) process(recs []eventstore.Record) error {
	for i := range recs {
		rec := &recs[i]
		s := b.a.sources[rec.Topic]
		if s == nil {
			return fmt.Errorf("stream: polled a record of topic %q, which no source reads", rec.Topic)
		}
		pc := &procCtx{b: b, rec: rec}
		if err := s.process(pc, rec); err != nil && !errors.Is(err, errSkip) {
			if cerr := b.ctx.Err(); cerr != nil {
				return cerr
			}
			failed := *rec
			b.failed, b.failure = &failed, consume.Permanent(err)
			break
		}
		b.processed++
	}
	return b.expire()
}

// expire removes the windows that stream time has moved past their
// retention, in the window store partitions whose stream time advanced.
func (b *batch) expire() error {
	keys := make([]partKey, 0, len(b.advanced))
	for k := range b.advanced {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].st.name != keys[j].st.name {
			return keys[i].st.name < keys[j].st.name
		}
		return keys[i].part < keys[j].part
	})
	for _, pk := range keys {
		streamTime := b.advanced[pk]
		cutoff := streamTime - int64(pk.st.windows.retention())
		sk := b.a.stores[pk.st]
		lo := sk.indexPartPrefix(pk.part)
		hi := keyspace.AppendTime(slices.Clone(lo), timeOf(cutoff+1))
		var expired [][]byte
		for kv, err := range b.a.store.Scan(b.ctx, lo, hi, false) {
			if err != nil {
				return err
			}
			expired = append(expired, slices.Clone(kv.Key))
		}
		for _, k := range b.newIndex[pk] {
			if string(k) < string(hi) {
				expired = append(expired, k)
			}
		}
		for _, ik := range expired {
			if e, ok := b.entries[string(ik)]; ok && !e.present {
				continue // already removed
			}
			start, key, err := parseIndexKey(ik, lo)
			if err != nil {
				return err
			}
			b.del(ik, nil)
			b.del(sk.appendWindowKey(nil, key, start), pk.st)
		}
	}
	return nil
}

// changelogKey returns the changelog record key of the state key k of
// store st (see changelogWindowKey).
func (b *batch) changelogKey(st *storeDef, k string) (string, error) {
	sk := b.a.stores[st]
	if st.kind == kvStore {
		return k[len(sk.kv):], nil
	}
	kb, start, err := sk.parseWindowKey([]byte(k))
	if err != nil {
		return "", err
	}
	return changelogWindowKey(kb, start, st.windows.Size), nil
}

// writeOutputs queues the changelog records of the batch's changed store
// keys and appends every queued record, in order within each partition and
// in parallel across partitions, without waiting for fsync: the Update that
// follows is durable, and a durable write makes every write before it in
// the log durable too. It records, per changelog partition, the offset
// after the last record written.
func (b *batch) writeOutputs() error {
	a := b.a
	for _, k := range b.dirty {
		e := b.entries[k]
		if e.st == nil {
			continue
		}
		ev := eventstore.Event{Type: "stream.changelog", SchemaVersion: 1, Payload: e.val}
		if !e.present {
			ev.Payload = nil
		} else if ev.Payload == nil {
			ev.Payload = []byte{}
		}
		key, err := b.changelogKey(e.st, k)
		if err != nil {
			return err
		}
		b.outs = append(b.outs, output{topic: a.changelogTopic(e.st), key: key, event: ev, st: e.st})
	}
	type group struct {
		topic string
		part  int
		outs  []*output
		end   int64
	}
	var groups []*group
	index := map[eventstore.TopicPartition]*group{}
	for i := range b.outs {
		o := &b.outs[i]
		p, err := a.store.PartitionFor(o.topic, o.key)
		if err != nil {
			return err
		}
		tp := eventstore.TopicPartition{Topic: o.topic, Partition: p}
		g := index[tp]
		if g == nil {
			g = &group{topic: o.topic, part: p}
			index[tp] = g
			groups = append(groups, g)
		}
		g.outs = append(g.outs, o)
	}
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
		next  atomic.Int64
	)
	for range min(appendWorkers, len(groups)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(groups) {
					return
				}
				g := groups[i]
				for _, o := range g.outs {
					res, err := a.store.Append(b.ctx, o.topic, o.key, eventstore.Any, []eventstore.Event{o.event}, eventstore.NoSync())
					if err != nil {
						errMu.Lock()
						if first == nil {
							first = fmt.Errorf("stream: write to %s: %w", o.topic, err)
						}
						errMu.Unlock()
						return
					}
					g.end = res.LastOffset + 1
				}
			}
		})
	}
	wg.Wait()
	if first != nil {
		return first
	}
	b.ends = map[partKey]int64{}
	for _, g := range groups {
		if st := g.outs[0].st; st != nil {
			b.ends[partKey{st, g.part}] = g.end
		}
	}
	return nil
}

// flush stages the batch's state, changelog ends and counters in tx.
func (b *batch) flush(tx eventstore.Txn) error {
	if b.flushed {
		return errors.New("stream: a prepared poll was flushed twice")
	}
	b.flushed = true
	a := b.a
	for _, k := range b.dirty {
		e := b.entries[k]
		var err error
		if e.present {
			err = tx.Set([]byte(k), e.val)
		} else {
			err = tx.Delete([]byte(k))
		}
		if err != nil {
			return err
		}
	}
	for pk, end := range b.ends {
		// Several members may write to one changelog partition: keep the
		// highest end.
		key := a.stores[pk.st].ends.Uint(uint64(pk.part))
		if v, ok, err := tx.Get(key); err != nil {
			return err
		} else if ok && len(v) == 8 && int64(binary.BigEndian.Uint64(v)) > end {
			continue
		}
		if err := tx.Set(key, binary.BigEndian.AppendUint64(nil, uint64(end))); err != nil {
			return err
		}
	}
	add := func(key []byte, n int64) error {
		if n == 0 {
			return nil
		}
		v, _, err := tx.Get(key)
		if err != nil {
			return err
		}
		var cur int64
		if len(v) == 8 {
			cur = int64(binary.BigEndian.Uint64(v))
		}
		return tx.Set(key, binary.BigEndian.AppendUint64(nil, uint64(cur+n)))
	}
	m := a.keys.metric
	errs := []error{add(m.String("processed"), b.processed), add(m.String("skipped"), b.skipped), add(m.String("duplicates"), b.duplicates)}
	for st, n := range b.late {
		errs = append(errs, add(a.stores[st].late, n))
	}
	return errors.Join(errs...)
}
