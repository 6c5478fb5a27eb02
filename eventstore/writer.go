package eventstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/google/uuid"
)

// AppendResult says where an append's events landed.
type AppendResult struct {
	Topic     string
	Key       string
	Partition int
	// FirstOffset and LastOffset are the offsets of the first and last event;
	// an append's events have consecutive offsets.
	FirstOffset, LastOffset int64
	// FirstVersion and LastVersion are the stream versions of the first and
	// last event; LastVersion is the stream's new head.
	FirstVersion, LastVersion uint64
	// EventIDs are the IDs of the events, in order.
	EventIDs []uuid.UUID
}

// Append appends events to the stream key of topic, atomically: all of them
// or none. expected is checked against the stream's head version first; a
// mismatch returns a *VersionConflictError (errors.Is ErrVersionConflict)
// and writes nothing. A durable append (the default) returns only after the
// events are fsynced; concurrent appends share fsyncs (group commit). With
// NoSync it returns once the events are visible.
//
// Appends to one partition are serialized (version check, offsets, entry
// into the write-ahead log) but the wait for fsync is not: Pebble's commit
// pipeline puts every batch that arrives while one fsync runs behind the
// next one, so N concurrent appenders cost about one fsync per round, and
// the memtable work of different partitions runs in parallel.
//
// ctx is checked before the append starts; once it has started the append
// runs to its end, so that the result is never in doubt.
func (s *PebbleStore) Append(ctx context.Context, topic, key string, expected ExpectedVersion, events []Event, opts ...AppendOption) (_ AppendResult, err error) {
	ao := NewAppendOptions(opts...)
	t, err := s.topic(topic)
	if err != nil {
		return AppendResult{}, err
	}
	if err := validateAppend(topic, key, expected, events, s.opts.maxEventBytes, s.opts.maxAppendBytes); err != nil {
		return AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return AppendResult{}, err
	}
	if err := s.acquire(); err != nil {
		return AppendResult{}, err
	}
	defer s.release()
	if err := s.failure(); err != nil {
		return AppendResult{}, err
	}
	partition := PartitionFor(key, len(t.parts))
	p := &t.parts[partition]
	tr := s.opts.tracer.start(ctx, topic, key, partition, len(events))
	if tr != nil {
		defer tr.end(&err)
	}
	b := s.db.NewBatch()
	defer b.Close()

	p.mu.Lock()
	if t.deleted.Load() {
		p.mu.Unlock()
		return AppendResult{}, fmt.Errorf("%w: %q (deleted)", ErrTopicNotFound, topic)
	}
	head, err := s.headLocked(t, p, key)
	if err != nil {
		p.mu.Unlock()
		return AppendResult{}, err
	}
	if !expected.matches(head) {
		p.mu.Unlock()
		return AppendResult{}, &VersionConflictError{Topic: topic, Key: key, Expected: expected, Actual: head}
	}
	res := AppendResult{
		Topic: topic, Key: key, Partition: partition,
		FirstOffset: p.mu.next, FirstVersion: head + 1,
		EventIDs: make([]uuid.UUID, len(events)),
	}
	now := s.opts.clock.Now()
	if now.Before(minTime) || now.After(maxTime) {
		p.mu.Unlock()
		return AppendResult{}, invalid("WithClock", "the store's clock says %s, outside the years 1678 to 2262", now)
	}
	enc := encPool.Get().(*encBuf)
	added := stageEvents(b, enc, t.meta.ID, partition, key, res.FirstOffset, head, events, now, res.EventIDs, tr.headers())
	res.LastOffset = res.FirstOffset + int64(len(events)) - 1
	res.LastVersion = head + uint64(len(events))
	if res.FirstOffset/metaEvery != (res.LastOffset+1)/metaEvery {
		// Checkpoint the partition's counters now and then; Open counts the
		// records after the checkpoint.
		enc.key = appendPartitionKey(enc.key[:0], t.meta.ID, partition)
		enc.val = encodePartMeta(enc.val[:0], res.LastOffset+1, p.mu.start, p.mu.records+int64(len(events)), p.mu.bytes+added)
		_ = b.Set(enc.key, enc.val, nil)
	}
	encPool.Put(enc)
	if ao.State != nil {
		if err := ao.State(res, &batchWriter{b: b}); err != nil {
			p.mu.Unlock()
			return AppendResult{}, err
		}
	}

	durable := !ao.NoSync || p.durableInFlight.Load() > 0
	if durable {
		p.durableInFlight.Add(1)
		defer p.durableInFlight.Add(-1) // after the end is published
		err = pebbleCall(func() error { return s.db.ApplyNoSyncWait(b, pebble.Sync) })
	} else {
		err = pebbleCall(func() error { return s.db.Apply(b, pebble.NoSync) })
	}
	if err != nil {
		p.mu.Unlock()
		return AppendResult{}, fmt.Errorf("eventstore: append to %s/%q: %w", topic, key, err)
	}
	p.mu.next = res.LastOffset + 1
	p.mu.records += int64(len(events))
	p.mu.bytes += added
	p.setHeadLocked(key, res.LastVersion)
	p.publishCountersLocked()
	p.mu.Unlock()

	if durable {
		start := time.Now()
		err := b.SyncWait()
		s.metrics.synced(start)
		tr.fsyncWaited(start)
		if err != nil {
			s.failed.CompareAndSwap(nil, &err)
			s.log.Error("eventstore: WAL sync failed; the store accepts no more writes", "err", err)
			return AppendResult{}, fmt.Errorf("%w: sync of append to %s/%q: %v", ErrStoreFailed, topic, key, err)
		}
	}
	if p.publishEnd(res.LastOffset + 1) {
		t.wake()
	}
	s.metrics.appended(topic, len(events))
	return res, nil
}

// metaEvery is how many offsets may pass between checkpoints of a
// partition's counters: an append writes two keys per event (log and stream
// index), and the counters only every metaEvery offsets.
const metaEvery = 256

// encBuf is scratch space for encoding keys and records.
type encBuf struct{ key, val []byte }

var encPool = sync.Pool{New: func() any { return &encBuf{key: make([]byte, 0, 64), val: make([]byte, 0, 512)} }}

// stageEvents encodes events as records at offsets from first and versions
// from head+1 into b, under both their log key and their stream key. It
// fills ids and returns the bytes added to the partition.
func stageEvents(b *pebble.Batch, enc *encBuf, topicID uint32, partition int, key string, first int64, head uint64, events []Event, now time.Time, ids []uuid.UUID, traceHeaders map[string]string) int64 {
	var added int64
	var correlation string
	for i := range events {
		ev := &events[i]
		rec := Record{
			ID: ev.ID, Partition: partition, Offset: first + int64(i), Key: key, Version: head + uint64(i) + 1,
			Type: ev.Type, SchemaVersion: ev.SchemaVersion, Payload: ev.Payload, Timestamp: ev.Timestamp,
			CorrelationID: ev.CorrelationID, CausationID: ev.CausationID, Headers: ev.Headers,
		}
		applyDefaults(&rec, i, &correlation, now)
		ids[i] = rec.ID
		enc.val = appendRecordTraced(enc.val[:0], &rec, traceHeaders)
		enc.key = appendLogKey(enc.key[:0], topicID, partition, rec.Offset)
		_ = b.Set(enc.key, enc.val, nil)
		enc.key = appendStreamKey(enc.key[:0], topicID, key, rec.Version)
		_ = b.Set(enc.key, enc.val, nil)
		added += int64(len(enc.val))
	}
	return added
}

// newEventID returns a UUIDv7 (time-ordered); if the system has no entropy
// it falls back to a random UUID.
func newEventID() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.New()
	}
	return id
}

func validateAppend(topic, key string, expected ExpectedVersion, events []Event, maxEventBytes, maxAppendBytes int) error {
	var errs []error
	if key == "" {
		errs = append(errs, invalid("key", "is empty"))
	} else if len(key) > MaxKeyBytes {
		errs = append(errs, invalid("key", "is %d bytes, longer than %d", len(key), MaxKeyBytes))
	}
	if expected < StreamExists {
		errs = append(errs, invalid("expected", "%d is not a version, Any, NoStream or StreamExists", int64(expected)))
	}
	if len(events) == 0 {
		errs = append(errs, invalid("events", "none to append"))
	}
	total := 0
	for i := range events {
		ev := &events[i]
		if ev.Type == "" && ev.Payload != nil {
			errs = append(errs, invalid(fmt.Sprintf("events[%d].Type", i), "is empty"))
		}
		if len(ev.Type) > MaxTypeBytes {
			errs = append(errs, invalid(fmt.Sprintf("events[%d].Type", i), "is %d bytes, longer than %d", len(ev.Type), MaxTypeBytes))
		}
		if ev.SchemaVersion < 0 || ev.SchemaVersion > 1<<30 {
			errs = append(errs, invalid(fmt.Sprintf("events[%d].SchemaVersion", i), "%d is out of range", ev.SchemaVersion))
		}
		if !ev.Timestamp.IsZero() && (ev.Timestamp.Before(minTime) || ev.Timestamp.After(maxTime)) {
			errs = append(errs, invalid(fmt.Sprintf("events[%d].Timestamp", i), "%s is outside the years 1678 to 2262", ev.Timestamp))
		}
		if len(ev.CorrelationID) > MaxIDBytes || len(ev.CausationID) > MaxIDBytes {
			errs = append(errs, invalid(fmt.Sprintf("events[%d].CorrelationID/CausationID", i), "longer than %d bytes", MaxIDBytes))
		}
		size := len(ev.Payload) + len(ev.Type) + len(key) + len(ev.CorrelationID) + len(ev.CausationID) + 64
		for k, v := range ev.Headers {
			if k == "" {
				errs = append(errs, invalid(fmt.Sprintf("events[%d].Headers", i), "has an empty name"))
			}
			size += len(k) + len(v) + 4
		}
		if size > maxEventBytes {
			errs = append(errs, invalid(fmt.Sprintf("events[%d]", i), "is %d bytes encoded, more than the limit of %d", size, maxEventBytes))
		}
		total += size
	}
	if total > maxAppendBytes {
		errs = append(errs, invalid("events", "total %d bytes, more than the limit of %d per append", total, maxAppendBytes))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("eventstore: append to %s/%q: %w", topic, key, err)
	}
	return nil
}
