package eventstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"iter"
	"math"

	"github.com/cockroachdb/pebble/v2"
)

// Readers see only acknowledged records: a partition's published end offset
// moves forward once a commit group is durable, and every read stops there,
// so no reader ever sees a record that a crash could take back.

// ctxCheckEvery is how many records a read yields between context checks.
const ctxCheckEvery = 256

// ReadPartition reads one partition of a topic from offset from up to its
// end at the time of the call, in offset order. Gaps left by cleanup are
// skipped. The sequence yields at most one error, and then stops.
func (s *PebbleStore) ReadPartition(ctx context.Context, topic string, partition int, from int64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		t, err := s.topic(topic)
		if err == nil {
			err = checkPartition(t, partition)
		}
		if err == nil && from < 0 {
			err = invalid("from", "offset %d is negative", from)
		}
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			err = s.acquire()
		}
		if err != nil {
			yield(Record{}, err)
			return
		}
		defer s.release()
		end := t.parts[partition].end.Load()
		// Read in chunks, so that a long scan does not keep one Pebble
		// iterator (and the memtables and tables it pins) open throughout.
		for pos, ok := from, true; ok && pos < end; {
			pos, ok = s.scanPartition(ctx, t, partition, pos, min(end, pos+scanChunk), yield)
		}
	}
}

// scanChunk is how many offsets a long partition read covers with one
// Pebble iterator.
const scanChunk = 4096

func checkPartition(t *topicState, p int) error {
	if p < 0 || p >= len(t.parts) {
		return invalid("partition", "%d is out of range for topic %q with %d partitions", p, t.meta.Name, len(t.parts))
	}
	return nil
}

// scanPartition yields the records of [from, end). It returns the offset to
// continue from and false if yield asked to stop or an error was yielded.
func (s *PebbleStore) scanPartition(ctx context.Context, t *topicState, partition int, from, end int64, yield func(Record, error) bool) (int64, bool) {
	return s.scanPartitionSized(ctx, t, partition, from, end, func(rec Record, _ int, err error) bool { return yield(rec, err) })
}

// scanPartitionSized is scanPartition that also yields the size of each
// record's stored value (0 with an error): what the partition's byte count
// holds for it, which a record stored in an older format does not
// re-encode to.
func (s *PebbleStore) scanPartitionSized(ctx context.Context, t *topicState, partition int, from, end int64, yield func(Record, int, error) bool) (int64, bool) {
	if from >= end {
		return from, true
	}
	lo := appendLogKey(nil, t.meta.ID, partition, from)
	hi := appendLogKey(nil, t.meta.ID, partition, end)
	it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		yield(Record{}, 0, fmt.Errorf("eventstore: read %s/%d from offset %d: %w", t.meta.Name, partition, from, s.engineErr(err)))
		return from, false
	}
	defer it.Close()
	n := 0
	for it.First(); it.Valid(); it.Next() {
		if n++; n%ctxCheckEvery == 0 {
			if err := ctx.Err(); err != nil {
				yield(Record{}, 0, err)
				return from, false
			}
			if s.isClosing() {
				yield(Record{}, 0, ErrClosed)
				return from, false
			}
		}
		offset := int64(binary.BigEndian.Uint64(it.Key()[9:]))
		rec, err := decodeAt(t, partition, offset, it.Value())
		size := len(it.Value())
		if err != nil {
			size = 0
		}
		if !yield(rec, size, s.recordCorrupt(err)) || err != nil {
			return offset + 1, false
		}
		from = offset + 1
	}
	if err := it.Error(); err != nil {
		if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
			yield(Record{}, 0, cerr)
		} else {
			yield(Record{}, 0, fmt.Errorf("eventstore: read %s/%d at offset %d: %w", t.meta.Name, partition, from, s.engineErr(err)))
		}
		return from, false
	}
	return end, true
}

// decodeAt decodes a stored value (copying it, so the record owns its
// memory) and checks that it is the record the key says it is.
func decodeAt(t *topicState, partition int, offset int64, value []byte) (Record, error) {
	rec := Record{Topic: t.meta.Name}
	if reason := decodeRecord(cloneValue(value), &rec); reason != "" {
		return Record{}, &CorruptRecordError{Topic: t.meta.Name, Partition: partition, Offset: offset, Reason: reason}
	}
	if rec.Offset != offset || rec.Partition != partition {
		return Record{}, &CorruptRecordError{Topic: t.meta.Name, Partition: partition, Offset: offset,
			Reason: fmt.Sprintf("record claims position %d@%d", rec.Partition, rec.Offset)}
	}
	return rec, nil
}

func (s *PebbleStore) isClosing() bool {
	select {
	case <-s.closing:
		return true
	default:
		return false
	}
}

// ReadStream reads the events of one stream (key) of a topic in version
// order, starting at version from (1 is the first event; 0 reads from the
// start). With Backward it reads from version from down to 1, and from = 0
// starts at the newest event. The sequence yields at most one error.
func (s *PebbleStore) ReadStream(ctx context.Context, topic, key string, from uint64, opts ...ReadOption) iter.Seq2[Record, error] {
	ro := NewReadOptions(opts...)
	return func(yield func(Record, error) bool) {
		t, err := s.topic(topic)
		if err == nil && key == "" {
			err = invalid("key", "is empty")
		}
		if err == nil {
			err = ctx.Err()
		}
		if err == nil {
			err = s.acquire()
		}
		if err != nil {
			yield(Record{}, err)
			return
		}
		defer s.release()
		partition := PartitionFor(key, len(t.parts))
		end := t.parts[partition].end.Load()
		prefix := appendStreamPrefix(nil, t.meta.ID, key)
		upper := PrefixEnd(prefix)
		it, err := s.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: prefix, UpperBound: upper})
		if err != nil {
			yield(Record{}, fmt.Errorf("eventstore: read stream %s/%q: %w", topic, key, s.engineErr(err)))
			return
		}
		defer it.Close()
		var ok bool
		if ro.Backward {
			if from == 0 || from == math.MaxUint64 {
				ok = it.Last()
			} else {
				ok = it.SeekLT(appendStreamKey(nil, t.meta.ID, key, from+1))
			}
		} else {
			// A prefix seek lets Pebble skip, by bloom filter, every table
			// that does not hold this stream.
			ok = it.SeekPrefixGE(appendStreamKey(nil, t.meta.ID, key, max(from, 1)))
		}
		n := 0
		for ; ok; ok = step(it, ro.Backward) {
			if n++; n%ctxCheckEvery == 0 {
				if err := ctx.Err(); err != nil {
					yield(Record{}, err)
					return
				}
				if s.isClosing() {
					yield(Record{}, ErrClosed)
					return
				}
			}
			k := it.Key()
			version := binary.BigEndian.Uint64(k[len(k)-8:])
			rec := Record{Topic: t.meta.Name}
			if reason := decodeRecord(cloneValue(it.Value()), &rec); reason != "" {
				yield(Record{}, s.recordCorrupt(&CorruptRecordError{Topic: t.meta.Name, Partition: partition, Offset: -1,
					Reason: fmt.Sprintf("stream %q version %d: %s", key, version, reason)}))
				return
			}
			if rec.Key != key || rec.Version != version || rec.Partition != partition {
				yield(Record{}, s.recordCorrupt(&CorruptRecordError{Topic: t.meta.Name, Partition: partition, Offset: rec.Offset,
					Reason: fmt.Sprintf("stream index entry %q v%d holds record of %q v%d", key, version, rec.Key, rec.Version)}))
				return
			}
			if rec.Offset >= end {
				// Not yet acknowledged: later than everything this read may see.
				if ro.Backward {
					continue
				}
				return
			}
			if !yield(rec, nil) {
				return
			}
		}
		if err := it.Error(); err != nil {
			if cerr := ctx.Err(); cerr != nil && errors.Is(err, cerr) {
				yield(Record{}, cerr)
				return
			}
			yield(Record{}, fmt.Errorf("eventstore: read stream %s/%q: %w", topic, key, s.engineErr(err)))
		}
	}
}

func step(it *pebble.Iterator, backward bool) bool {
	if backward {
		return it.Prev()
	}
	return it.Next()
}

// HeadVersion returns the version of the newest acknowledged event of a
// stream, or 0 if the stream has none. An append with Exact(HeadVersion)
// succeeds unless another append lands first.
func (s *PebbleStore) HeadVersion(ctx context.Context, topic, key string) (uint64, error) {
	t, err := s.topic(topic)
	if err != nil {
		return 0, err
	}
	if key == "" {
		return 0, invalid("key", "is empty")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.release()
	end := t.parts[PartitionFor(key, len(t.parts))].end.Load()
	return s.streamHead(t, key, end)
}

// Subscribe reads one partition from offset from, then stays live: it
// yields each new record as soon as it is acknowledged, woken by the commit
// rather than by polling. It runs until ctx ends (then it stops without an
// error; a ctx already done when it starts yields ctx.Err()), the loop
// breaks, or the store closes (then it yields ErrClosed). A
// slow subscriber never holds up appends: it reads from the store at its own
// pace.
func (s *PebbleStore) Subscribe(ctx context.Context, topic string, partition int, from int64) iter.Seq2[Record, error] {
	return func(yield func(Record, error) bool) {
		t, err := s.topic(topic)
		if err == nil {
			err = checkPartition(t, partition)
		}
		if err == nil && from < 0 {
			err = invalid("from", "offset %d is negative", from)
		}
		if err == nil {
			// A subscription that ends with its context says nothing; one
			// started with a context already done says why it never ran.
			err = ctx.Err()
		}
		if err == nil {
			err = s.acquire()
		}
		if err != nil {
			yield(Record{}, err)
			return
		}
		defer s.release()
		p := &t.parts[partition]
		pos := from
		// Ending the context ends the subscription without an error.
		yieldLive := func(rec Record, err error) bool {
			if err != nil && ctx.Err() != nil {
				return false
			}
			return yield(rec, err)
		}
		for {
			wake := *t.notify.Load()
			end := p.end.Load()
			if pos < end {
				var ok bool
				// Read in chunks so that no iterator stays open long.
				if pos, ok = s.scanPartition(ctx, t, partition, pos, min(end, pos+scanChunk), yieldLive); !ok {
					return
				}
				continue
			}
			if t.deleted.Load() {
				yield(Record{}, fmt.Errorf("%w: %q (deleted)", ErrTopicNotFound, topic))
				return
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return
			case <-s.closing:
				yield(Record{}, ErrClosed)
				return
			}
		}
	}
}
