package stream

import (
	"fmt"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
)

// KeyValue is one record of a stream: a key and a value.
type KeyValue[K, V any] struct {
	Key   K
	Value V
}

// emitter passes records to the processors downstream of a stream.
type emitter[K, V any] struct {
	children []func(pc *procCtx, k K, v V, ts time.Time) error
}

func (e *emitter[K, V]) emit(pc *procCtx, k K, v V, ts time.Time) error {
	for _, c := range e.children {
		if err := c(pc, k, v, ts); err != nil {
			return err
		}
	}
	return nil
}

func (e *emitter[K, V]) to(fn func(pc *procCtx, k K, v V, ts time.Time) error) {
	e.children = append(e.children, fn)
}

// Stream is a typed handle on a record stream of a Topology: every record
// has a key K, a value V and an event time. Handles come from Source and from
// the functions that transform streams; the zero Stream belongs to no
// topology, and the functions ignore it.
type Stream[K, V any] struct {
	t     *Topology
	n     *node
	em    *emitter[K, V]
	key   codec.Codec[K]
	value codec.Codec[V]
	// rekeyed is set once a step may have changed the key: a stateful step
	// after it repartitions first, so that each key is counted in one place.
	rekeyed bool
}

func (s Stream[K, V]) ok() bool { return s.t != nil && s.em != nil }

// derive returns a new stream fed by a new processor node under s.
func derive[K, V, K2, V2 any](s Stream[K, V], label string, key codec.Codec[K2], value codec.Codec[V2], rekeyed bool) Stream[K2, V2] {
	return Stream[K2, V2]{t: s.t, n: s.t.newNode(kindProcessor, label, s.n), em: &emitter[K2, V2]{}, key: key, value: value, rekeyed: rekeyed}
}

// Source reads topic into t as a stream, decoding each record's key
// (Record.Key) with key and its payload with value. A record's event time is
// its Timestamp (see WithTimestamp to take it from the value). Tombstones
// (nil payloads) carry no value and are skipped, counted in
// Metrics.SkippedRecords. A record that does not decode stops the App with an
// error naming its position, unless the App was built with SkipBadRecords.
//
// The topic must exist when the App starts.
func Source[K, V any](t *Topology, topic string, key codec.Codec[K], value codec.Codec[V]) Stream[K, V] {
	if t == nil {
		return Stream[K, V]{}
	}
	if err := checkCodecs(key, value); err != nil {
		t.fail("source %q: %v", topic, err)
	}
	s := Stream[K, V]{t: t, n: t.newNode(kindSource, "KSTREAM-SOURCE"), em: &emitter[K, V]{}, key: key, value: value}
	s.n.topic = topic
	t.addSource(topic, false, func(pc *procCtx, rec *eventstore.Record) error {
		if rec.IsTombstone() {
			pc.b.skipped++
			return nil
		}
		k, err := codec.DecodeString(key, rec.Key)
		if err != nil {
			return pc.bad(fmt.Errorf("decode key: %w", err))
		}
		v, err := decodeValue(value, rec)
		if err != nil {
			return pc.bad(fmt.Errorf("decode value: %w", err))
		}
		return s.em.emit(pc, k, v, rec.Timestamp)
	})
	return s
}

// WithCodecs returns s with the codecs its keys and values are written
// with by the steps that serialize them (repartitioning, stores, sinks). A
// step that changes a type without naming a codec uses codec.JSON.
func WithCodecs[K, V any](s Stream[K, V], key codec.Codec[K], value codec.Codec[V]) Stream[K, V] {
	if !s.ok() {
		return s
	}
	if err := checkCodecs(key, value); err != nil {
		s.t.fail("WithCodecs: %v", err)
		return s
	}
	s.key, s.value = key, value
	return s
}

// WithTimestamp returns a stream whose records have the event time fn
// returns (given the key, the value and the current event time): windows and
// stream time use it. Use it when the event time is a field of the value.
func WithTimestamp[K, V any](s Stream[K, V], fn func(K, V, time.Time) time.Time) Stream[K, V] {
	if !s.ok() {
		return s
	}
	if fn == nil {
		s.t.fail("WithTimestamp: fn is nil")
		return s
	}
	out := derive(s, "KSTREAM-TIMESTAMP", s.key, s.value, s.rekeyed)
	s.em.to(func(pc *procCtx, k K, v V, ts time.Time) error { return out.em.emit(pc, k, v, fn(k, v, ts)) })
	return out
}

// Filter keeps the records for which pred is true.
func Filter[K, V any](s Stream[K, V], pred func(K, V) bool) Stream[K, V] {
	if !s.ok() {
		return s
	}
	if pred == nil {
		s.t.fail("Filter: pred is nil")
		return s
	}
	out := derive(s, "KSTREAM-FILTER", s.key, s.value, s.rekeyed)
	s.em.to(func(pc *procCtx, k K, v V, ts time.Time) error {
		if !pred(k, v) {
			return nil
		}
		return out.em.emit(pc, k, v, ts)
	})
	return out
}

// Map turns each record into a new key and value. The new key means a
// stateful step downstream repartitions by it first. Keys and values are
// written with JSON unless WithCodecs says otherwise.
func Map[K, V, K2, V2 any](s Stream[K, V], fn func(K, V) (K2, V2)) Stream[K2, V2] {
	if !s.ok() {
		return Stream[K2, V2]{}
	}
	if fn == nil {
		s.t.fail("Map: fn is nil")
		return Stream[K2, V2]{}
	}
	out := derive(s, "KSTREAM-MAP", codec.JSON[K2](), codec.JSON[V2](), true)
	s.em.to(func(pc *procCtx, k K, v V, ts time.Time) error {
		k2, v2 := fn(k, v)
		return out.em.emit(pc, k2, v2, ts)
	})
	return out
}

// MapValues turns each record's value into a new one, keeping its key (so no
// repartition is needed). The values are written with JSON unless
// WithCodecs says otherwise.
func MapValues[K, V, V2 any](s Stream[K, V], fn func(K, V) V2) Stream[K, V2] {
	if !s.ok() {
		return Stream[K, V2]{}
	}
	if fn == nil {
		s.t.fail("MapValues: fn is nil")
		return Stream[K, V2]{}
	}
	out := derive(s, "KSTREAM-MAPVALUES", s.key, codec.JSON[V2](), s.rekeyed)
	s.em.to(func(pc *procCtx, k K, v V, ts time.Time) error { return out.em.emit(pc, k, fn(k, v), ts) })
	return out
}

// FlatMap turns each record into zero or more records, each with the input's
// event time.
func FlatMap[K, V, K2, V2 any](s Stream[K, V], fn func(K, V) []KeyValue[K2, V2]) Stream[K2, V2] {
	if !s.ok() {
		return Stream[K2, V2]{}
	}
	if fn == nil {
		s.t.fail("FlatMap: fn is nil")
		return Stream[K2, V2]{}
	}
	out := derive(s, "KSTREAM-FLATMAP", codec.JSON[K2](), codec.JSON[V2](), true)
	s.em.to(func(pc *procCtx, k K, v V, ts time.Time) error {
		for _, kv := range fn(k, v) {
			if err := out.em.emit(pc, kv.Key, kv.Value, ts); err != nil {
				return err
			}
		}
		return nil
	})
	return out
}

// SelectKey gives each record the key fn returns, keeping its value: the
// re-keying step. A stateful step downstream repartitions by the new key.
func SelectKey[K, V, K2 any](s Stream[K, V], fn func(K, V) K2) Stream[K2, V] {
	if !s.ok() {
		return Stream[K2, V]{}
	}
	if fn == nil {
		s.t.fail("SelectKey: fn is nil")
		return Stream[K2, V]{}
	}
	out := derive(s, "KSTREAM-KEY-SELECT", codec.JSON[K2](), s.value, true)
	s.em.to(func(pc *procCtx, k K, v V, ts time.Time) error { return out.em.emit(pc, fn(k, v), v, ts) })
	return out
}

// Branch splits s by predicates: each record goes to the stream of the first
// predicate it satisfies, and is dropped if it satisfies none (end with a
// predicate that is always true to keep the rest). The result has one stream
// per predicate, in order.
func Branch[K, V any](s Stream[K, V], preds ...func(K, V) bool) []Stream[K, V] {
	if !s.ok() {
		return make([]Stream[K, V], len(preds))
	}
	if len(preds) == 0 {
		s.t.fail("Branch needs at least one predicate")
		return nil
	}
	for i, p := range preds {
		if p == nil {
			s.t.fail("Branch: predicate %d is nil", i)
			return make([]Stream[K, V], len(preds))
		}
	}
	branch := s.t.newNode(kindProcessor, "KSTREAM-BRANCH", s.n)
	outs := make([]Stream[K, V], len(preds))
	for i := range preds {
		outs[i] = Stream[K, V]{t: s.t, n: s.t.newNode(kindProcessor, "KSTREAM-BRANCHCHILD", branch), em: &emitter[K, V]{}, key: s.key, value: s.value, rekeyed: s.rekeyed}
	}
	s.em.to(func(pc *procCtx, k K, v V, ts time.Time) error {
		for i, p := range preds {
			if p(k, v) {
				return outs[i].em.emit(pc, k, v, ts)
			}
		}
		return nil
	})
	return outs
}

// Merge returns one stream with the records of a and b. Its records come
// from two sources, so a windowed step downstream of it keeps stream time
// per partition number of either.
func Merge[K, V any](a, b Stream[K, V]) Stream[K, V] {
	if !a.ok() || !b.ok() {
		return Stream[K, V]{}
	}
	if a.t != b.t {
		a.t.fail("Merge: the streams belong to different topologies")
		return Stream[K, V]{}
	}
	out := Stream[K, V]{t: a.t, n: a.t.newNode(kindProcessor, "KSTREAM-MERGE", a.n, b.n), em: &emitter[K, V]{}, key: a.key, value: a.value, rekeyed: a.rekeyed || b.rekeyed}
	fwd := func(pc *procCtx, k K, v V, ts time.Time) error { return out.em.emit(pc, k, v, ts) }
	a.em.to(fwd)
	b.em.to(fwd)
	return out
}

// Peek calls fn for each record and passes the record on unchanged. fn runs
// while a batch is processed, which may be again after a crash: use it for
// logging and tests, not for effects that must happen once.
func Peek[K, V any](s Stream[K, V], fn func(K, V, time.Time)) Stream[K, V] {
	if !s.ok() {
		return s
	}
	if fn == nil {
		s.t.fail("Peek: fn is nil")
		return s
	}
	out := derive(s, "KSTREAM-PEEK", s.key, s.value, s.rekeyed)
	s.em.to(func(pc *procCtx, k K, v V, ts time.Time) error {
		fn(k, v, ts)
		return out.em.emit(pc, k, v, ts)
	})
	return out
}

// SinkOption configures ToTopic.
type SinkOption func(*sinkDef)

// EventType sets the event type of the records a sink writes (default
// "stream.record").
func EventType(name string) SinkOption { return func(s *sinkDef) { s.eventType = name } }

// ToTopic writes every record of s to topic, encoded with the stream's
// codecs: the key becomes the record's key, the value its payload, the event
// time its timestamp. The topic is created (with the partition count of the
// largest source topic) if it does not exist.
//
// Delivery is at least once: a crash after the write and before the input's
// offsets commit writes the record again when the input is processed again.
// Each record's event ID is derived from the application ID, the sink's
// topic and the input record's position (topic, partition, offset, and the
// output's index for that input), and the same position is in the headers
// "stream-source" and "stream-index", so a rewrite has the same ID and
// consumers deduplicate by it.
func ToTopic[K, V any](s Stream[K, V], topic string, opts ...SinkOption) {
	if !s.ok() {
		return
	}
	if err := eventstore.ValidateTopicName(topic); err != nil {
		s.t.errs = append(s.t.errs, fmt.Errorf("stream: ToTopic: %w", err))
	}
	sk := &sinkDef{topic: topic, eventType: "stream.record"}
	for _, o := range opts {
		o(sk)
	}
	if sk.eventType == "" {
		s.t.fail("ToTopic %q: EventType is empty", topic)
	}
	addSink(s, sk)
}

func addSink[K, V any](s Stream[K, V], sk *sinkDef) {
	n := s.t.newNode(kindSink, "KSTREAM-SINK", s.n)
	n.topic, n.internal = sk.topic, sk.internal
	s.t.sinks = append(s.t.sinks, sk)
	key, value := s.key, s.value
	s.em.to(func(pc *procCtx, k K, v V, ts time.Time) error {
		kb, err := key.Encode(k)
		if err != nil {
			return fmt.Errorf("stream: sink %s: encode key: %w", sk.topic, err)
		}
		vb, err := value.Encode(v)
		if err != nil {
			return fmt.Errorf("stream: sink %s: encode value: %w", sk.topic, err)
		}
		return pc.b.send(pc, sk, kb, vb, ts)
	})
}
