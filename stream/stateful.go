package stream

import (
	"fmt"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
)

// Grouped is a stream grouped by key, ready for a stateful step (Count,
// Reduce, Aggregate, or WindowedBy and a windowed step).
type Grouped[K, V any] struct {
	s Stream[K, V]
}

// GroupByKey groups s by its key. If a step upstream may have changed the
// key (Map, FlatMap, SelectKey, GroupBy), the stateful step writes the
// records to a repartition topic first, "<appID>-<store>-repartition", and
// reads them back partitioned by the new key, as Kafka Streams does.
func GroupByKey[K, V any](s Stream[K, V]) Grouped[K, V] { return Grouped[K, V]{s: s} }

// GroupBy re-keys s by fn (keys written with key) and groups it by the new
// key: the stateful step that follows repartitions.
func GroupBy[K, V, K2 any](s Stream[K, V], fn func(K, V) K2, key codec.Codec[K2]) Grouped[K2, V] {
	if fn == nil {
		if s.ok() {
			s.t.fail("GroupBy: fn is nil")
		}
		return Grouped[K2, V]{}
	}
	r := SelectKey(s, fn)
	if r.ok() {
		if err := codec.Check(key); err != nil {
			s.t.fail("GroupBy: key: %v", err)
		} else {
			r.key = key
		}
	}
	return Grouped[K2, V]{s: r}
}

// Repartition writes s to the repartition topic "<appID>-<name>-repartition"
// and reads it back, so that its records are partitioned by their current
// key. Stateful steps do it on their own where needed; call it to share one
// repartition between several of them.
func Repartition[K, V any](s Stream[K, V], name string) Stream[K, V] {
	if !s.ok() {
		return s
	}
	if err := eventstore.ValidateName("stream repartition", name); err != nil {
		s.t.errs = append(s.t.errs, err)
	}
	topic := name + "-repartition"
	addSink(s, &sinkDef{topic: topic, internal: true, eventType: "stream.repartition"})
	out := Stream[K, V]{t: s.t, n: s.t.newNode(kindSource, "KSTREAM-SOURCE"), em: &emitter[K, V]{}, key: s.key, value: s.value}
	out.n.topic, out.n.internal = topic, true
	key, value := s.key, s.value
	s.t.addSource(topic, true, func(pc *procCtx, rec *eventstore.Record) error {
		dup, err := pc.b.seen(rec)
		if err != nil || dup {
			return err
		}
		k, err := codec.DecodeString(key, rec.Key)
		if err != nil {
			return pc.bad(fmt.Errorf("decode key: %w", err))
		}
		v, err := value.Decode(rec.Payload)
		if err != nil {
			return pc.bad(fmt.Errorf("decode value: %w", err))
		}
		return out.em.emit(pc, k, v, rec.Timestamp)
	})
	return out
}

// input returns the stream a stateful step with the given store reads:
// repartitioned if the key may have changed.
func (g Grouped[K, V]) input(store string) Stream[K, V] {
	if g.s.rekeyed {
		return Repartition(g.s, store)
	}
	return g.s
}

// Table is a typed handle on a table: the latest value of each key of a
// stream (stream/table duality), materialized in a key-value state store
// that the App keeps and Get and All query. Its updates can be read as a
// stream (ToStream) and it can enrich a stream (Join, LeftJoin).
type Table[K, V any] struct {
	t     *Topology
	n     *node
	st    *storeDef
	key   codec.Codec[K]
	value codec.Codec[V]
	em    *emitter[K, V]
}

func (tb Table[K, V]) ok() bool { return tb.t != nil && tb.st != nil }

// Count counts the records of each key in the store named store.
func Count[K, V any](g Grouped[K, V], store string) Table[K, int64] {
	return aggregateBy(g, store, "KSTREAM-COUNT", codec.Int64(), func(_ K, _ V, n int64, _ bool) int64 { return n + 1 })
}

// Reduce combines the values of each key with fn (the first value as it
// is), in the store named store; values are stored with the stream's value
// codec.
func Reduce[K, V any](g Grouped[K, V], store string, fn func(agg, v V) V) Table[K, V] {
	if fn == nil && g.s.ok() {
		g.s.t.fail("Reduce %q: fn is nil", store)
		return Table[K, V]{}
	}
	return aggregateBy(g, store, "KSTREAM-REDUCE", g.s.value, func(_ K, v V, agg V, ok bool) V {
		if !ok {
			return v
		}
		return fn(agg, v)
	})
}

// Aggregate folds the values of each key into an aggregate, starting from
// init(), in the store named store; aggregates are stored with the codec
// vc.
func Aggregate[K, V, A any](g Grouped[K, V], store string, init func() A, fn func(K, V, A) A, vc codec.Codec[A]) Table[K, A] {
	if (init == nil || fn == nil) && g.s.ok() {
		g.s.t.fail("Aggregate %q: init and fn must not be nil", store)
		return Table[K, A]{}
	}
	return aggregateBy(g, store, "KSTREAM-AGGREGATE", vc, func(k K, v V, agg A, ok bool) A {
		if !ok {
			agg = init()
		}
		return fn(k, v, agg)
	})
}

func aggregateBy[K, V, A any](g Grouped[K, V], store, label string, vc codec.Codec[A], fn func(K, V, A, bool) A) Table[K, A] {
	if !g.s.ok() {
		return Table[K, A]{}
	}
	t := g.s.t
	if err := codec.Check(vc); err != nil {
		t.fail("%s %q: the aggregate codec: %v", label, store, err)
		return Table[K, A]{}
	}
	in := g.input(store)
	st := t.addStore(store, kvStore, Windows{})
	tb := Table[K, A]{t: t, n: t.newNode(kindProcessor, label, in.n), st: st, key: in.key, value: vc, em: &emitter[K, A]{}}
	tb.n.stores = []*storeDef{st}
	key := in.key
	id := tb.n.id
	in.em.to(func(pc *procCtx, k K, v V, ts time.Time) error {
		b := pc.b
		sc := &b.a.scratch[id]
		var err error
		sc.key, err = codec.Append(key, sc.key[:0], k)
		if err != nil {
			return fmt.Errorf("stream: store %s: encode key: %w", store, err)
		}
		kb := sc.key
		sc.state = b.a.stores[st].appendKVKey(sc.state[:0], kb)
		sk := sc.state
		old, ok, err := b.get(sk)
		if err != nil {
			return err
		}
		var agg A
		if ok {
			if agg, err = vc.Decode(old); err != nil {
				return fmt.Errorf("stream: store %s: decode %q: %w", store, kb, err)
			}
		}
		agg = fn(k, v, agg, ok)
		nb, err := vc.Encode(agg)
		if err != nil {
			return fmt.Errorf("stream: store %s: encode aggregate: %w", store, err)
		}
		b.put(sk, nb, st)
		return tb.em.emit(pc, k, agg, ts)
	})
	return tb
}

// WindowedGrouped is a grouped stream cut into time windows, ready for a
// windowed step (WindowedCount, WindowedReduce, WindowedAggregate).
type WindowedGrouped[K, V any] struct {
	g Grouped[K, V]
	w Windows
}

// WindowedBy cuts a grouped stream into the windows w (Tumbling or Hopping,
// with a grace period) by event time.
func WindowedBy[K, V any](g Grouped[K, V], w Windows) WindowedGrouped[K, V] {
	if g.s.ok() {
		if err := w.Validate(); err != nil {
			g.s.t.errs = append(g.s.t.errs, err)
		}
	}
	return WindowedGrouped[K, V]{g: g, w: w}
}

// WindowedTable is a typed handle on the result of a windowed step: one
// value per key and window, kept in a window store that Fetch and All query
// until its retention ends. Its updates can be read as a stream (ToStream).
type WindowedTable[K, V any] struct {
	t     *Topology
	n     *node
	st    *storeDef
	key   codec.Codec[K]
	value codec.Codec[V]
	em    *emitter[Windowed[K], V]
}

// WindowedCount counts the records of each key per window.
func WindowedCount[K, V any](wg WindowedGrouped[K, V], store string) WindowedTable[K, int64] {
	return windowed(wg, store, "KSTREAM-WINDOWED-COUNT", codec.Int64(), func(_ K, _ V, n int64, _ bool) int64 { return n + 1 })
}

// WindowedReduce combines the values of each key per window with fn.
func WindowedReduce[K, V any](wg WindowedGrouped[K, V], store string, fn func(agg, v V) V) WindowedTable[K, V] {
	if fn == nil && wg.g.s.ok() {
		wg.g.s.t.fail("WindowedReduce %q: fn is nil", store)
		return WindowedTable[K, V]{}
	}
	return windowed(wg, store, "KSTREAM-WINDOWED-REDUCE", wg.g.s.value, func(_ K, v V, agg V, ok bool) V {
		if !ok {
			return v
		}
		return fn(agg, v)
	})
}

// WindowedAggregate folds the values of each key per window into an
// aggregate, starting from init(); aggregates are stored with the codec vc.
func WindowedAggregate[K, V, A any](wg WindowedGrouped[K, V], store string, init func() A, fn func(K, V, A) A, vc codec.Codec[A]) WindowedTable[K, A] {
	if (init == nil || fn == nil) && wg.g.s.ok() {
		wg.g.s.t.fail("WindowedAggregate %q: init and fn must not be nil", store)
		return WindowedTable[K, A]{}
	}
	return windowed(wg, store, "KSTREAM-WINDOWED-AGGREGATE", vc, func(k K, v V, agg A, ok bool) A {
		if !ok {
			agg = init()
		}
		return fn(k, v, agg)
	})
}

// Event times must fit in int64 nanoseconds.
var (
	minTime = time.Unix(0, -1<<63+1)
	maxTime = time.Unix(0, 1<<63-1)
)

func windowed[K, V, A any](wg WindowedGrouped[K, V], store, label string, vc codec.Codec[A], fn func(K, V, A, bool) A) WindowedTable[K, A] {
	g := wg.g
	if !g.s.ok() {
		return WindowedTable[K, A]{}
	}
	t := g.s.t
	if err := codec.Check(vc); err != nil {
		t.fail("%s %q: the aggregate codec: %v", label, store, err)
		return WindowedTable[K, A]{}
	}
	in := g.input(store)
	w := wg.w
	st := t.addStore(store, windowStore, w)
	wt := WindowedTable[K, A]{t: t, n: t.newNode(kindProcessor, label, in.n), st: st, key: in.key, value: vc, em: &emitter[Windowed[K], A]{}}
	wt.n.stores = []*storeDef{st}
	key := in.key
	id := wt.n.id
	size, grace := int64(w.Size), int64(w.Grace)
	in.em.to(func(pc *procCtx, k K, v V, ts time.Time) error {
		b := pc.b
		if ts.Before(minTime) || ts.After(maxTime) {
			return pc.bad(fmt.Errorf("store %s: event time %s is outside the years 1678 to 2262", store, ts))
		}
		tsn := ts.UnixNano()
		part := pc.rec.Partition
		pk := partKey{st, part}
		keys := b.a.stores[st]
		streamTime, ok := b.advanced[pk]
		if !ok {
			v, found, err := b.get(keys.time.Uint(uint64(part)))
			if err != nil {
				return err
			}
			streamTime = -1 << 63
			if found {
				if streamTime, err = readTime(v); err != nil {
					return fmt.Errorf("stream: store %s: %w", store, err)
				}
			}
		}
		if tsn > streamTime {
			streamTime = tsn
			b.advanced[pk] = tsn
			b.put(keys.time.Uint(uint64(part)), keyspace.AppendTime(nil, ts), nil)
		}
		sc := &b.a.scratch[id]
		var err error
		sc.key, err = codec.Append(key, sc.key[:0], k)
		if err != nil {
			return fmt.Errorf("stream: store %s: encode key: %w", store, err)
		}
		kb := sc.key
		late := 0
		err = w.starts(tsn, func(start int64) error {
			end := start + size
			if end+grace <= streamTime {
				late++
				return nil
			}
			sc.state = keys.appendWindowKey(sc.state[:0], kb, start)
			wk := sc.state
			old, ok, err := b.get(wk)
			if err != nil {
				return err
			}
			var agg A
			if ok {
				_, ab, err := parseWindowValue(old)
				if err == nil {
					agg, err = vc.Decode(ab)
				}
				if err != nil {
					return fmt.Errorf("stream: store %s: decode window of %q at %s: %w", store, kb, timeOf(start), err)
				}
			} else {
				ik := keys.indexKey(part, start, kb)
				b.put(ik, []byte{}, nil)
				b.newIndex[pk] = append(b.newIndex[pk], ik)
			}
			agg = fn(k, v, agg, ok)
			nb, err := codec.Append(vc, windowValue(part, nil), agg)
			if err != nil {
				return fmt.Errorf("stream: store %s: encode aggregate: %w", store, err)
			}
			b.put(wk, nb, st)
			return wt.em.emit(pc, Windowed[K]{Key: k, Start: timeOf(start), End: timeOf(end)}, agg, ts)
		})
		if err != nil {
			return err
		}
		if late > 0 {
			b.late[st]++
			b.lateRecs = append(b.lateRecs, LateRecord{Store: store, Topic: pc.rec.Topic, Partition: part, Offset: pc.rec.Offset,
				Timestamp: ts, StreamTime: timeOf(streamTime), Windows: late})
		}
		return nil
	})
	return wt
}
