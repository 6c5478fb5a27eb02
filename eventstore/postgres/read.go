package postgres

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"

	"github.com/jackc/pgx/v5"
	"github.com/muninn-es/muninn/eventstore"
)

// Reads go in chunks of readChunk records, each one query; no connection is
// held while a chunk's records are yielded, so a reader's loop may call
// the store freely.
const readChunk = 256

type storedRow struct {
	off  int64
	data []byte
}

// decodeAt decodes a record of a partition read and checks that it is the
// record its row says it is.
func decodeAt(t *topicMeta, partition int, offset int64, data []byte) (eventstore.Record, error) {
	rec := eventstore.Record{Topic: t.name}
	if err := eventstore.DecodeRecord(data, &rec); err != nil {
		return eventstore.Record{}, &eventstore.CorruptRecordError{Topic: t.name, Partition: partition, Offset: offset, Reason: err.Error()}
	}
	if rec.Offset != offset || rec.Partition != partition {
		return eventstore.Record{}, &eventstore.CorruptRecordError{Topic: t.name, Partition: partition, Offset: offset,
			Reason: fmt.Sprintf("record claims position %d@%d", rec.Partition, rec.Offset)}
	}
	rec.Topic = t.name
	return rec, nil
}

// scanRows runs a query whose rows are (offset, data) and collects them.
func (s *Store) scanRows(ctx context.Context, query string, args ...any) ([]storedRow, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (storedRow, error) {
		var sr storedRow
		err := r.Scan(&sr.off, &sr.data)
		return sr, err
	})
}

// partitionEnd returns a partition's next offset: the end of what is
// committed now.
func (s *Store) partitionEnd(ctx context.Context, t *topicMeta, partition int) (int64, error) {
	var end int64
	err := s.pool.QueryRow(ctx, s.q(`SELECT next_offset FROM {s}.partitions WHERE topic_id = $1 AND part = $2`), t.id, partition).Scan(&end)
	if errors.Is(err, pgx.ErrNoRows) {
		s.forgetTopic(t.id)
		return 0, fmt.Errorf("%w: %q (deleted)", eventstore.ErrTopicNotFound, t.name)
	}
	return end, err
}

// ReadPartition reads one partition of a topic from offset from up to its
// end at the time of the call, in offset order. Gaps left by cleanup are
// skipped. The sequence yields at most one error, and then stops.
func (s *Store) ReadPartition(ctx context.Context, topic string, partition int, from int64) iter.Seq2[eventstore.Record, error] {
	return func(yield func(eventstore.Record, error) bool) {
		if err := s.acquire(); err != nil {
			yield(eventstore.Record{}, err)
			return
		}
		defer s.release()
		t, err := s.topic(ctx, topic)
		if err == nil {
			err = checkPartition(t, partition)
		}
		if err == nil && from < 0 {
			err = eventstore.InvalidArgument("from", "offset %d is negative", from)
		}
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			yield(eventstore.Record{}, err)
			return
		}
		end, err := s.partitionEnd(ctx, t, partition)
		if err != nil {
			yield(eventstore.Record{}, s.dbErr(ctx, fmt.Sprintf("read %s/%d", topic, partition), err))
			return
		}
		s.readRange(ctx, t, partition, from, end, yield)
	}
}

// readRange yields the records of [from, end) of a partition. It returns
// false if it stopped early (yield said so, or it yielded an error).
func (s *Store) readRange(ctx context.Context, t *topicMeta, partition int, from, end int64, yield func(eventstore.Record, error) bool) bool {
	for from < end {
		rows, err := s.scanRows(ctx, s.q(`SELECT off, data FROM {s}.records WHERE topic_id = $1 AND part = $2 AND off >= $3 AND off < $4 ORDER BY off LIMIT $5`),
			t.id, partition, from, end, readChunk)
		if err != nil {
			yield(eventstore.Record{}, s.dbErr(ctx, fmt.Sprintf("read %s/%d from offset %d", t.name, partition, from), err))
			return false
		}
		for _, r := range rows {
			if err := ctx.Err(); err != nil {
				yield(eventstore.Record{}, err)
				return false
			}
			if s.isClosing() {
				yield(eventstore.Record{}, eventstore.ErrClosed)
				return false
			}
			rec, err := decodeAt(t, partition, r.off, r.data)
			if !yield(rec, err) || err != nil {
				return false
			}
			from = r.off + 1
		}
		if len(rows) < readChunk {
			return true
		}
	}
	return true
}

// ReadStream reads the events of one stream (key) of a topic in version
// order, starting at version from (1 is the first event; 0 reads from the
// start), up to the newest committed when the read starts. With Backward
// it reads from version from down to 1, and from = 0 starts at the newest
// event. The sequence yields at most one error.
func (s *Store) ReadStream(ctx context.Context, topic, key string, from uint64, opts ...eventstore.ReadOption) iter.Seq2[eventstore.Record, error] {
	ro := eventstore.NewReadOptions(opts...)
	return func(yield func(eventstore.Record, error) bool) {
		if err := s.acquire(); err != nil {
			yield(eventstore.Record{}, err)
			return
		}
		defer s.release()
		t, err := s.topic(ctx, topic)
		if err == nil && key == "" {
			err = eventstore.InvalidArgument("key", "is empty")
		}
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			yield(eventstore.Record{}, err)
			return
		}
		partition := eventstore.PartitionFor(key, t.partitions)
		kh := keyHash(key)
		end, err := s.partitionEnd(ctx, t, partition)
		if err != nil {
			yield(eventstore.Record{}, s.dbErr(ctx, fmt.Sprintf("read stream %s/%q", topic, key), err))
			return
		}
		var query string
		var pos int64
		if ro.Backward {
			query = `SELECT version, data FROM {s}.records WHERE topic_id = $1 AND kh = $2 AND version <= $3 AND off < $4 ORDER BY version DESC LIMIT $5`
			pos = math.MaxInt64
			if from != 0 && from < math.MaxInt64 {
				pos = int64(from)
			}
		} else {
			query = `SELECT version, data FROM {s}.records WHERE topic_id = $1 AND kh = $2 AND version >= $3 AND off < $4 ORDER BY version LIMIT $5`
			pos = int64(max(from, 1))
			if from > math.MaxInt64 {
				return
			}
		}
		for {
			rows, err := s.scanRows(ctx, s.q(query), t.id, kh, pos, end, readChunk)
			if err != nil {
				yield(eventstore.Record{}, s.dbErr(ctx, fmt.Sprintf("read stream %s/%q", topic, key), err))
				return
			}
			for _, r := range rows {
				if err := ctx.Err(); err != nil {
					yield(eventstore.Record{}, err)
					return
				}
				if s.isClosing() {
					yield(eventstore.Record{}, eventstore.ErrClosed)
					return
				}
				version := r.off
				rec := eventstore.Record{Topic: t.name}
				if err := eventstore.DecodeRecord(r.data, &rec); err != nil {
					yield(eventstore.Record{}, &eventstore.CorruptRecordError{Topic: t.name, Partition: partition, Offset: -1,
						Reason: fmt.Sprintf("stream %q version %d: %s", key, version, err)})
					return
				}
				rec.Topic = t.name
				if rec.Key != key || int64(rec.Version) != version || rec.Partition != partition {
					yield(eventstore.Record{}, &eventstore.CorruptRecordError{Topic: t.name, Partition: partition, Offset: rec.Offset,
						Reason: fmt.Sprintf("stream index entry %q v%d holds record of %q v%d", key, version, rec.Key, rec.Version)})
					return
				}
				if !yield(rec, nil) {
					return
				}
				if ro.Backward {
					pos = version - 1
				} else {
					pos = version + 1
				}
			}
			if len(rows) < readChunk || (ro.Backward && pos < 1) {
				return
			}
		}
	}
}

// HeadVersion returns the version of the newest committed event of a
// stream, or 0 if the stream has none. An append with Exact(HeadVersion)
// succeeds unless another append lands first.
func (s *Store) HeadVersion(ctx context.Context, topic, key string) (uint64, error) {
	t, err := s.topic(ctx, topic)
	if err != nil {
		return 0, err
	}
	if key == "" {
		return 0, eventstore.InvalidArgument("key", "is empty")
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if err := s.acquire(); err != nil {
		return 0, err
	}
	defer s.release()
	var v int64
	err = s.pool.QueryRow(ctx, s.q(`SELECT version FROM {s}.heads WHERE topic_id = $1 AND kh = $2`), t.id, keyHash(key)).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.dbErr(ctx, fmt.Sprintf("head of %s/%q", topic, key), err)
	}
	return uint64(v), nil
}

// Subscribe reads one partition from offset from, then stays live: it
// yields each new record once it is committed, woken by a notification
// (LISTEN/NOTIFY, or at once for appends through this Store) rather than by
// polling. It runs until ctx ends (then it stops without an error; a ctx
// already done when it starts yields ctx.Err()), the loop breaks, the topic
// is deleted (ErrTopicNotFound) or the store closes (ErrClosed). A slow
// subscriber never holds up appends: it reads at its own pace.
func (s *Store) Subscribe(ctx context.Context, topic string, partition int, from int64) iter.Seq2[eventstore.Record, error] {
	return func(yield func(eventstore.Record, error) bool) {
		if err := s.acquire(); err != nil {
			yield(eventstore.Record{}, err)
			return
		}
		defer s.release()
		t, err := s.topic(ctx, topic)
		if err == nil {
			err = checkPartition(t, partition)
		}
		if err == nil && from < 0 {
			err = eventstore.InvalidArgument("from", "offset %d is negative", from)
		}
		if err == nil {
			err = ctx.Err()
		}
		if err != nil {
			yield(eventstore.Record{}, err)
			return
		}
		// Ending the context ends the subscription without an error.
		live := func(rec eventstore.Record, err error) bool {
			if err != nil && ctx.Err() != nil {
				return false
			}
			return yield(rec, err)
		}
		pos := from
		for {
			if s.isClosing() {
				yield(eventstore.Record{}, eventstore.ErrClosed)
				return
			}
			wake := s.wakeChan(t.id)
			if t.deleted.Load() {
				yield(eventstore.Record{}, fmt.Errorf("%w: %q (deleted)", eventstore.ErrTopicNotFound, topic))
				return
			}
			rows, err := s.scanRows(ctx, s.q(`SELECT off, data FROM {s}.records WHERE topic_id = $1 AND part = $2 AND off >= $3 ORDER BY off LIMIT $4`),
				t.id, partition, pos, readChunk)
			if err != nil {
				if ctx.Err() == nil {
					live(eventstore.Record{}, s.dbErr(ctx, fmt.Sprintf("subscribe to %s/%d", topic, partition), err))
				}
				return
			}
			for _, r := range rows {
				if ctx.Err() != nil {
					return
				}
				if s.isClosing() {
					yield(eventstore.Record{}, eventstore.ErrClosed)
					return
				}
				rec, err := decodeAt(t, partition, r.off, r.data)
				if !live(rec, err) || err != nil {
					return
				}
				pos = r.off + 1
			}
			if len(rows) == readChunk {
				continue
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return
			case <-s.closing:
				yield(eventstore.Record{}, eventstore.ErrClosed)
				return
			}
		}
	}
}
