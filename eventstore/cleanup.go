package eventstore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// CleanupStats reports what one cleanup pass removed.
type CleanupStats struct {
	// Partitions is how many partitions were examined.
	Partitions int
	// Records and Bytes count the records removed and their encoded size.
	Records, Bytes int64
	// Tombstones counts the tombstones removed after their grace period
	// (they are included in Records).
	Tombstones int64
}

// cleanupWork is a set of deletions the cleaner hands to the writer, which
// applies it in a commit group and adjusts the partition's counters.
type cleanupWork struct {
	partition          int
	rangeFrom, rangeTo int64 // log keys [rangeFrom, rangeTo) are removed
	offsets            []int64
	streams            []streamVersion
	heads              []streamVersion // removed only if still the head
	newStart           int64
	records, bytes     int64
}

type streamVersion struct {
	key     string
	version uint64
}

// maxCleanupWork bounds how many records one cleanup batch removes.
const maxCleanupWork = 8192

// Cleanup runs one cleanup pass over every topic now: Delete topics drop
// records past their retention, Compact topics drop every record that a
// newer one of the same key supersedes, and tombstones past their grace
// period. Offsets never change; readers running meanwhile stay correct (they
// read from a consistent snapshot and skip the gaps). It also runs in the
// background, see WithCleanupInterval.
func (s *Store) Cleanup(ctx context.Context) (CleanupStats, error) {
	if err := s.acquire(); err != nil {
		return CleanupStats{}, err
	}
	defer s.release()
	s.cleanupMu.Lock()
	defer s.cleanupMu.Unlock()
	s.topicsMu.RLock()
	topics := make([]*topicState, 0, len(s.topicsMu.byName))
	for _, t := range s.topicsMu.byName {
		topics = append(topics, t)
	}
	s.topicsMu.RUnlock()
	var st CleanupStats
	for _, t := range topics {
		cfg := *t.config.Load()
		if cfg.Cleanup != Delete && cfg.Cleanup != Compact {
			continue
		}
		for p := range t.parts {
			if err := ctx.Err(); err != nil {
				return st, err
			}
			st.Partitions++
			var err error
			if cfg.Cleanup == Delete {
				err = s.cleanDelete(ctx, t, p, cfg, &st)
			} else {
				err = s.cleanCompact(ctx, t, p, cfg, &st)
			}
			if err != nil {
				return st, fmt.Errorf("eventstore: cleanup of %s/%d: %w", t.meta.Name, p, err)
			}
		}
	}
	return st, nil
}

func (s *Store) runCleanup() {
	defer close(s.bgDone)
	if s.opts.cleanupInterval <= 0 {
		return
	}
	tick := time.NewTicker(s.opts.cleanupInterval)
	defer tick.Stop()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.closing
		cancel()
	}()
	for {
		select {
		case <-s.closing:
			return
		case <-tick.C:
			if st, err := s.Cleanup(ctx); err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil {
				s.log.Error("eventstore: background cleanup failed", "err", err)
			} else if st.Records > 0 {
				s.log.Debug("eventstore: cleanup", "records", st.Records, "bytes", st.Bytes, "tombstones", st.Tombstones)
			}
		}
	}
}

// cleanDelete removes the oldest records of a partition while they are past
// the retention age or the partition is over its byte limit. Like Kafka, it
// removes a prefix of the log: it stops at the first record it keeps.
func (s *Store) cleanDelete(ctx context.Context, t *topicState, partition int, cfg TopicConfig, st *CleanupStats) error {
	p := &t.parts[partition]
	end := p.end.Load()
	size := p.bytes.Load()
	var cutoff time.Time
	if cfg.RetentionAge > 0 {
		cutoff = s.opts.clock().Add(-cfg.RetentionAge)
	}
	w := &cleanupWork{partition: partition, rangeFrom: p.start.Load()}
	flush := func(to int64) error {
		w.rangeTo, w.newStart = to, to
		if err := s.submitCleanup(ctx, t, w); err != nil {
			return err
		}
		st.Records += w.records
		st.Bytes += w.bytes
		*w = cleanupWork{partition: partition, rangeFrom: to}
		return nil
	}
	stopped := false
	next, ok := s.scanPartition(ctx, t, partition, w.rangeFrom, end, func(rec Record, err error) bool {
		if err != nil {
			return false
		}
		n := int64(encodedLen(&rec))
		old := !cutoff.IsZero() && rec.Timestamp.Before(cutoff)
		big := cfg.RetentionBytes > 0 && size > cfg.RetentionBytes
		if !old && !big {
			stopped = true
			if w.records > 0 {
				return flush(rec.Offset) == nil
			}
			return false
		}
		size -= n
		w.records++
		w.bytes += n
		w.streams = append(w.streams, streamVersion{rec.Key, rec.Version})
		if w.records >= maxCleanupWork {
			return flush(rec.Offset+1) == nil
		}
		return true
	})
	if !ok && !stopped {
		return scanError(ctx, s, t, partition)
	}
	if !stopped && w.records > 0 {
		return flush(next)
	}
	return nil
}

// cleanCompact removes every record of a partition that is not the newest
// of its key, and tombstones older than the grace period. Only durable heads
// count: a record is superseded only by an acknowledged newer one.
func (s *Store) cleanCompact(ctx context.Context, t *topicState, partition int, cfg TopicConfig, st *CleanupStats) error {
	p := &t.parts[partition]
	end := p.end.Load()
	graceCutoff := s.opts.clock().Add(-cfg.TombstoneGrace)
	w := &cleanupWork{partition: partition, newStart: -1}
	flush := func() error {
		if w.records == 0 {
			return nil
		}
		if err := s.submitCleanup(ctx, t, w); err != nil {
			return err
		}
		st.Records += w.records
		st.Bytes += w.bytes
		st.Tombstones += int64(len(w.heads))
		*w = cleanupWork{partition: partition, newStart: -1}
		return nil
	}
	var failure error
	_, ok := s.scanPartition(ctx, t, partition, p.start.Load(), end, func(rec Record, err error) bool {
		if err != nil {
			return false
		}
		head, headOffset, err := s.durableHead(t.meta.ID, rec.Key)
		if err != nil {
			failure = err
			return false
		}
		remove := false
		switch {
		case headOffset >= end:
			// The newest record of this key is not yet durable: decide later.
		case rec.Version < head:
			remove = true
		case rec.Version == head && rec.IsTombstone() && rec.Timestamp.Before(graceCutoff):
			remove = true
			w.heads = append(w.heads, streamVersion{rec.Key, rec.Version})
		}
		if remove {
			w.records++
			w.bytes += int64(encodedLen(&rec))
			w.offsets = append(w.offsets, rec.Offset)
			w.streams = append(w.streams, streamVersion{rec.Key, rec.Version})
			if w.records >= maxCleanupWork {
				if failure = flush(); failure != nil {
					return false
				}
			}
		}
		return true
	})
	if failure != nil {
		return failure
	}
	if !ok {
		return scanError(ctx, s, t, partition)
	}
	return flush()
}

// scanError re-reads the failing position to report the error a cleanup
// scan stopped on.
func scanError(ctx context.Context, s *Store, t *topicState, partition int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var first error
	s.scanPartition(ctx, t, partition, t.parts[partition].start.Load(), t.parts[partition].end.Load(), func(_ Record, err error) bool {
		first = err
		return err == nil
	})
	if first == nil {
		first = errors.New("scan stopped")
	}
	return first
}

// durableHead returns a stream's head version and the offset of its newest
// record, as stored (possibly not yet durable; compare the offset with the
// partition's end).
func (s *Store) durableHead(topicID uint32, key string) (uint64, int64, error) {
	v, closer, err := s.db.Get(appendHeadKey(nil, topicID, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, -1, nil
	}
	if err != nil {
		return 0, 0, err
	}
	defer closer.Close()
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("%w: head of stream %q has %d bytes", ErrCorrupt, key, len(v))
	}
	return binary.BigEndian.Uint64(v), int64(binary.BigEndian.Uint64(v[8:])), nil
}

// submitCleanup applies a cleanup's deletions in one batch, under the
// partition's write lock, and adjusts the partition's counters.
func (s *Store) submitCleanup(ctx context.Context, t *topicState, c *cleanupWork) error {
	if err := s.failure(); err != nil {
		return err
	}
	p := &t.parts[c.partition]
	b := s.db.NewBatch()
	defer b.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	var dropHeads []string
	// A tombstone's head goes only if no append superseded it meanwhile.
	for _, h := range c.heads {
		head, err := s.headLocked(t, p, h.key)
		if err != nil {
			return err
		}
		if head == h.version {
			_ = b.Delete(appendHeadKey(nil, t.meta.ID, h.key), nil)
			dropHeads = append(dropHeads, h.key)
		}
	}
	if c.rangeTo > c.rangeFrom {
		_ = b.DeleteRange(appendLogKey(nil, t.meta.ID, c.partition, c.rangeFrom), appendLogKey(nil, t.meta.ID, c.partition, c.rangeTo), nil)
	}
	var key []byte
	for _, off := range c.offsets {
		key = appendLogKey(key[:0], t.meta.ID, c.partition, off)
		_ = b.Delete(key, nil)
	}
	for _, sv := range c.streams {
		key = appendStreamKey(key[:0], t.meta.ID, sv.key, sv.version)
		_ = b.Delete(key, nil)
	}
	start := max(p.mu.start, c.newStart)
	records, bytes := p.mu.records-c.records, p.mu.bytes-c.bytes
	_ = b.Set(appendPartitionKey(nil, t.meta.ID, c.partition), encodePartMeta(nil, p.mu.next, start, records, bytes), nil)
	if err := s.db.Apply(b, pebble.NoSync); err != nil {
		return err
	}
	p.mu.start, p.mu.records, p.mu.bytes = start, records, bytes
	for _, k := range dropHeads {
		p.setHeadLocked(k, 0)
	}
	p.publishCountersLocked()
	return nil
}

// encodedLen is the size of a record's stored value.
func encodedLen(r *Record) int {
	return len(appendRecord(make([]byte, 0, 128+len(r.Payload)), r))
}
