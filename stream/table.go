package stream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"iter"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
)

// SourceTable reads topic as a table, materialized in the store named store:
// the compacted view of the topic, the latest value of each key, where a
// tombstone (nil payload) deletes the key. Stream records joined with it see
// its current value.
//
// Tables live in the App's state space, one per process, so a lookup reaches
// every key whatever partition the stream record came from: a join needs no
// co-partitioning. Within one poll, records are processed partition by
// partition, not in timestamp order across topics: a stream record and a
// table update that arrive in the same batch may be joined in either order.
func SourceTable[K, V any](t *Topology, topic, store string, key codec.Codec[K], value codec.Codec[V]) Table[K, V] {
	if t == nil {
		return Table[K, V]{}
	}
	if err := checkCodecs(key, value); err != nil {
		t.fail("table %q: %v", topic, err)
	}
	src := t.newNode(kindSource, "KTABLE-SOURCE")
	src.topic = topic
	st := t.addStore(store, kvStore, Windows{})
	tb := Table[K, V]{t: t, n: t.newNode(kindProcessor, "KTABLE-MATERIALIZE", src), st: st, key: key, value: value, em: &emitter[K, V]{}}
	tb.n.stores = []*storeDef{st}
	t.addSource(topic, false, func(pc *procCtx, rec *eventstore.Record) error {
		kb := []byte(rec.Key)
		k, err := key.Decode(kb)
		if err != nil {
			return pc.bad(fmt.Errorf("decode key: %w", err))
		}
		sk := pc.b.a.stores[st]
		if rec.IsTombstone() {
			pc.b.del(sk.appendKVKey(nil, kb), st)
			return nil
		}
		v, err := decodeValue(value, rec)
		if err != nil {
			return pc.bad(fmt.Errorf("decode value: %w", err))
		}
		stored := rec.Payload
		if _, ok := value.(recordDecoder[V]); ok {
			// The payload alone may not decode (Events needs the record's
			// type): keep the value as the codec encodes it.
			if stored, err = value.Encode(v); err != nil {
				return fmt.Errorf("stream: table %s: encode value: %w", topic, err)
			}
		}
		pc.b.put(sk.appendKVKey(nil, kb), stored, st)
		return tb.em.emit(pc, k, v, rec.Timestamp)
	})
	return tb
}

// ToTable turns s into a table, materialized in the store named store: the
// latest value of each key. If the key may have changed upstream, the
// records are repartitioned by it first.
func ToTable[K, V any](s Stream[K, V], store string) Table[K, V] {
	if !s.ok() {
		return Table[K, V]{}
	}
	return aggregateBy(GroupByKey(s), store, "KSTREAM-TOTABLE", s.value, func(_ K, v V, _ V, _ bool) V { return v })
}

// ToStream returns the stream of tb's updates: a record with the new value
// each time a key's value is set. Deletions are not in it.
func ToStream[K, V any](tb Table[K, V]) Stream[K, V] {
	if !tb.ok() {
		return Stream[K, V]{}
	}
	out := Stream[K, V]{t: tb.t, n: tb.t.newNode(kindProcessor, "KTABLE-TOSTREAM", tb.n), em: &emitter[K, V]{}, key: tb.key, value: tb.value}
	tb.em.to(func(pc *procCtx, k K, v V, ts time.Time) error { return out.em.emit(pc, k, v, ts) })
	return out
}

// WindowedToStream returns the stream of wt's updates: a record with the
// window's new value each time a record changes it (Kafka Streams' default
// of emitting every update). Its keys are written with WindowedCodec.
func WindowedToStream[K, V any](wt WindowedTable[K, V]) Stream[Windowed[K], V] {
	if wt.t == nil || wt.st == nil {
		return Stream[Windowed[K], V]{}
	}
	out := Stream[Windowed[K], V]{t: wt.t, n: wt.t.newNode(kindProcessor, "KTABLE-TOSTREAM", wt.n), em: &emitter[Windowed[K], V]{},
		key: WindowedCodec(wt.key), value: wt.value}
	wt.em.to(func(pc *procCtx, k Windowed[K], v V, ts time.Time) error { return out.em.emit(pc, k, v, ts) })
	return out
}

// Join enriches each record of s with the current value of its key in tb
// (inner join): records whose key tb does not hold are dropped. The result
// values are written with JSON unless WithCodecs says otherwise.
func Join[K, V, VT, VR any](s Stream[K, V], tb Table[K, VT], joiner func(K, V, VT) VR) Stream[K, VR] {
	if joiner == nil {
		return join[K, V, VT, VR](s, tb, "KSTREAM-JOIN", nil)
	}
	return join(s, tb, "KSTREAM-JOIN", func(k K, v V, vt VT, ok bool) (VR, bool) {
		if !ok {
			var zero VR
			return zero, false
		}
		return joiner(k, v, vt), true
	})
}

// LeftJoin enriches each record of s with the current value of its key in
// tb, if any: joiner's bool says whether tb held the key (if not, the table
// value is VT's zero value). No record is dropped.
func LeftJoin[K, V, VT, VR any](s Stream[K, V], tb Table[K, VT], joiner func(K, V, VT, bool) VR) Stream[K, VR] {
	if joiner == nil {
		return join[K, V, VT, VR](s, tb, "KSTREAM-LEFTJOIN", nil)
	}
	return join(s, tb, "KSTREAM-LEFTJOIN", func(k K, v V, vt VT, ok bool) (VR, bool) { return joiner(k, v, vt, ok), true })
}

func join[K, V, VT, VR any](s Stream[K, V], tb Table[K, VT], label string, fn func(K, V, VT, bool) (VR, bool)) Stream[K, VR] {
	if !s.ok() || !tb.ok() {
		return Stream[K, VR]{}
	}
	if s.t != tb.t {
		s.t.fail("%s: the stream and the table belong to different topologies", label)
		return Stream[K, VR]{}
	}
	if fn == nil {
		s.t.fail("%s: joiner is nil", label)
		return Stream[K, VR]{}
	}
	out := derive(s, label, s.key, codec.JSON[VR](), s.rekeyed)
	out.n.stores = []*storeDef{tb.st}
	st, tkey, tval := tb.st, tb.key, tb.value
	s.em.to(func(pc *procCtx, k K, v V, ts time.Time) error {
		kb, err := tkey.Encode(k)
		if err != nil {
			return fmt.Errorf("stream: join with store %s: encode key: %w", st.name, err)
		}
		raw, ok, err := pc.b.get(pc.b.a.stores[st].appendKVKey(nil, kb))
		if err != nil {
			return err
		}
		var vt VT
		if ok {
			if vt, err = tval.Decode(raw); err != nil {
				return fmt.Errorf("stream: join with store %s: decode %q: %w", st.name, kb, err)
			}
		}
		r, keep := fn(k, v, vt, ok)
		if !keep {
			return nil
		}
		return out.em.emit(pc, k, r, ts)
	})
	return out
}

// ErrWrongApp is returned by queries given an App that does not run the
// table's topology.
var ErrWrongApp = errors.New("stream: the app does not run this table's topology")

// Get returns the committed value of key in tb, as app keeps it, and false
// if tb does not hold key.
func (tb Table[K, V]) Get(ctx context.Context, app *App, key K) (V, bool, error) {
	var zero V
	if !tb.ok() || app == nil || app.topo != tb.t {
		return zero, false, ErrWrongApp
	}
	kb, err := tb.key.Encode(key)
	if err != nil {
		return zero, false, fmt.Errorf("stream: store %s: encode key: %w", tb.st.name, err)
	}
	raw, ok, err := app.store.Get(ctx, app.stores[tb.st].appendKVKey(nil, kb))
	if err != nil || !ok {
		return zero, false, err
	}
	v, err := tb.value.Decode(raw)
	if err != nil {
		return zero, false, fmt.Errorf("stream: store %s: decode %q: %w", tb.st.name, kb, err)
	}
	return v, true, nil
}

// All yields every committed entry of tb in the order of the encoded keys.
func (tb Table[K, V]) All(ctx context.Context, app *App) iter.Seq2[KeyValue[K, V], error] {
	return func(yield func(KeyValue[K, V], error) bool) {
		if !tb.ok() || app == nil || app.topo != tb.t {
			yield(KeyValue[K, V]{}, ErrWrongApp)
			return
		}
		lo := app.stores[tb.st].kv
		for kv, err := range app.store.Scan(ctx, lo, eventstore.PrefixEnd(lo), false) {
			if err != nil {
				yield(KeyValue[K, V]{}, err)
				return
			}
			k, err1 := tb.key.Decode(kv.Key[len(lo):])
			v, err2 := tb.value.Decode(kv.Value)
			if err := errors.Join(err1, err2); err != nil {
				yield(KeyValue[K, V]{}, fmt.Errorf("stream: store %s: decode %q: %w", tb.st.name, kv.Key[len(lo):], err))
				return
			}
			if !yield(KeyValue[K, V]{Key: k, Value: v}, nil) {
				return
			}
		}
	}
}

// Fetch yields the committed windows of key whose start is in [from, to],
// in start order, with their values. Windows past the store's retention are
// gone.
func (wt WindowedTable[K, V]) Fetch(ctx context.Context, app *App, key K, from, to time.Time) iter.Seq2[KeyValue[Windowed[K], V], error] {
	return func(yield func(KeyValue[Windowed[K], V], error) bool) {
		if wt.t == nil || app == nil || app.topo != wt.t {
			yield(KeyValue[Windowed[K], V]{}, ErrWrongApp)
			return
		}
		kb, err := wt.key.Encode(key)
		if err != nil {
			yield(KeyValue[Windowed[K], V]{}, fmt.Errorf("stream: store %s: encode key: %w", wt.st.name, err))
			return
		}
		if from.Before(minTime) {
			from = minTime
		}
		if to.After(maxTime) {
			to = maxTime
		}
		sk := app.stores[wt.st]
		lo := sk.appendWindowKey(nil, kb, from.UnixNano())
		hi := sk.appendWindowKey(nil, kb, to.UnixNano())
		hi = append(hi, 0) // include to
		if bytes.Compare(lo, hi) > 0 {
			return
		}
		wt.scan(ctx, app, lo, hi, yield)
	}
}

// All yields every committed window of wt, ordered by encoded key and then
// by start.
func (wt WindowedTable[K, V]) All(ctx context.Context, app *App) iter.Seq2[KeyValue[Windowed[K], V], error] {
	return func(yield func(KeyValue[Windowed[K], V], error) bool) {
		if wt.t == nil || app == nil || app.topo != wt.t {
			yield(KeyValue[Windowed[K], V]{}, ErrWrongApp)
			return
		}
		lo, hi := app.stores[wt.st].win.Range()
		wt.scan(ctx, app, lo, hi, yield)
	}
}

func (wt WindowedTable[K, V]) scan(ctx context.Context, app *App, lo, hi []byte, yield func(KeyValue[Windowed[K], V], error) bool) {
	sk := app.stores[wt.st]
	size := wt.st.windows.Size
	for kv, err := range app.store.Scan(ctx, lo, hi, false) {
		if err != nil {
			yield(KeyValue[Windowed[K], V]{}, err)
			return
		}
		kb, start, err := sk.parseWindowKey(kv.Key)
		if err != nil {
			yield(KeyValue[Windowed[K], V]{}, err)
			return
		}
		_, ab, err := parseWindowValue(kv.Value)
		if err != nil {
			yield(KeyValue[Windowed[K], V]{}, err)
			return
		}
		k, err1 := wt.key.Decode(kb)
		v, err2 := wt.value.Decode(ab)
		if err := errors.Join(err1, err2); err != nil {
			yield(KeyValue[Windowed[K], V]{}, fmt.Errorf("stream: store %s: decode window of %q: %w", wt.st.name, kb, err))
			return
		}
		st := timeOf(start)
		if !yield(KeyValue[Windowed[K], V]{Key: Windowed[K]{Key: k, Start: st, End: st.Add(size)}, Value: v}, nil) {
			return
		}
	}
}
