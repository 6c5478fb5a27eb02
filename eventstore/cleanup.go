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

// cleanupWork is a set of deletions that one batch applies, under the
// partition's write lock, together with the partition's new counters.
type cleanupWork struct {
	partition          int
	rangeFrom, rangeTo int64 // log keys [rangeFrom, rangeTo) are removed
	offsets            []int64
	streams            []streamVersion
	// tombstones are removed tombstones: the key's head marker goes too,
	// unless an append superseded the tombstone meanwhile.
	tombstones []streamVersion
	// markHeads: the removed records may include a stream's newest; leave a
	// head marker so that its versions never go back (delete policy).
	markHeads      bool
	newStart       int64
	records, bytes int64
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
func (s *PebbleStore) Cleanup(ctx context.Context) (CleanupStats, error) {
	if err := ctx.Err(); err != nil {
		return CleanupStats{}, err
	}
	if err := s.acquire(); err != nil {
		return CleanupStats{}, err
	}
	defer s.release()
	if err := s.failure(); err != nil {
		return CleanupStats{}, err
	}
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

func (s *PebbleStore) runCleanup(next time.Time) {
	defer close(s.bgDone)
	if s.opts.cleanupInterval <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-s.closing
		cancel()
	}()
	for {
		due, stop := s.opts.clock.At(next)
		select {
		case <-s.closing:
			stop()
			return
		case <-due:
			next = s.opts.clock.Now().Add(s.opts.cleanupInterval)
			st, err := s.Cleanup(ctx)
			switch {
			case err != nil && (errors.Is(err, ErrCorrupt) || s.failure() != nil):
				// Damage (recorded by the read that found it) or a failed
				// store: cleanup would only fail again. Health and Close
				// report why.
				s.log.Error("eventstore: background cleanup stops", "err", err)
				return
			case err != nil && !errors.Is(err, ErrClosed) && ctx.Err() == nil:
				s.log.Error("eventstore: background cleanup failed", "err", err)
			case st.Records > 0:
				s.log.Debug("eventstore: cleanup", "records", st.Records, "bytes", st.Bytes, "tombstones", st.Tombstones)
			}
		}
	}
}

// scanErr reports why a cleanup scan stopped.
func scanErr(ctx context.Context, err error) error {
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return errors.New("scan stopped")
}

// cleanDelete removes the oldest records of a partition while they are past
// the retention age or the partition is over its byte limit. Like Kafka, it
// removes a prefix of the log: it stops at the first record it keeps.
func (s *PebbleStore) cleanDelete(ctx context.Context, t *topicState, partition int, cfg TopicConfig, st *CleanupStats) error {
	p := &t.parts[partition]
	end := p.end.Load()
	size := p.bytes.Load()
	var cutoff time.Time
	if cfg.RetentionAge > 0 {
		cutoff = s.opts.clock.Now().Add(-cfg.RetentionAge)
	}
	newWork := func(from int64) *cleanupWork {
		return &cleanupWork{partition: partition, rangeFrom: from, markHeads: true}
	}
	w := newWork(p.start.Load())
	flush := func(to int64) error {
		w.rangeTo, w.newStart = to, to
		if err := s.submitCleanup(t, w); err != nil {
			return err
		}
		st.Records += w.records
		st.Bytes += w.bytes
		w = newWork(to)
		return nil
	}
	var failure error
	kept, firstKept := false, int64(0)
	next, ok := s.scanPartitionSized(ctx, t, partition, w.rangeFrom, end, func(rec Record, stored int, err error) bool {
		if err != nil {
			failure = err
			return false
		}
		old := !cutoff.IsZero() && rec.Timestamp.Before(cutoff)
		big := cfg.RetentionBytes > 0 && size > cfg.RetentionBytes
		if !old && !big {
			kept, firstKept = true, rec.Offset
			return false
		}
		n := int64(stored)
		size -= n
		w.records++
		w.bytes += n
		w.streams = append(w.streams, streamVersion{rec.Key, rec.Version})
		if w.records >= maxCleanupWork {
			failure = flush(rec.Offset + 1)
			return failure == nil
		}
		return true
	})
	if failure != nil || (!ok && !kept) {
		return scanErr(ctx, failure)
	}
	if w.records == 0 {
		return nil
	}
	if kept {
		next = firstKept // everything below the first kept record goes
	}
	return flush(next)
}

// cleanCompact removes every record of a partition that is not the newest
// of its key, and tombstones older than the grace period. Like Kafka's log
// cleaner it makes two passes over the acknowledged part of the partition:
// the first finds each key's newest record, the second removes the rest. A
// record is only ever superseded by a newer acknowledged one.
func (s *PebbleStore) cleanCompact(ctx context.Context, t *topicState, partition int, cfg TopicConfig, st *CleanupStats) error {
	p := &t.parts[partition]
	start, end := p.start.Load(), p.end.Load()
	graceCutoff := s.opts.clock.Now().Add(-cfg.TombstoneGrace)
	newest := map[string]uint64{}
	var failure error
	_, ok := s.scanPartition(ctx, t, partition, start, end, func(rec Record, err error) bool {
		if err != nil {
			failure = err
			return false
		}
		newest[rec.Key] = max(newest[rec.Key], rec.Version)
		return true
	})
	if failure != nil || !ok {
		return scanErr(ctx, failure)
	}
	w := &cleanupWork{partition: partition, newStart: -1}
	flush := func() error {
		if w.records == 0 {
			return nil
		}
		if err := s.submitCleanup(t, w); err != nil {
			return err
		}
		st.Records += w.records
		st.Bytes += w.bytes
		st.Tombstones += int64(len(w.tombstones))
		w = &cleanupWork{partition: partition, newStart: -1}
		return nil
	}
	_, ok = s.scanPartitionSized(ctx, t, partition, start, end, func(rec Record, stored int, err error) bool {
		if err != nil {
			failure = err
			return false
		}
		remove := false
		switch {
		case rec.Version < newest[rec.Key]:
			remove = true
		case rec.IsTombstone() && rec.Timestamp.Before(graceCutoff):
			remove = true
			w.tombstones = append(w.tombstones, streamVersion{rec.Key, rec.Version})
		}
		if remove {
			w.records++
			w.bytes += int64(stored)
			w.offsets = append(w.offsets, rec.Offset)
			w.streams = append(w.streams, streamVersion{rec.Key, rec.Version})
			if w.records >= maxCleanupWork {
				failure = flush()
				return failure == nil
			}
		}
		return true
	})
	if failure != nil || !ok {
		return scanErr(ctx, failure)
	}
	return flush()
}

// submitCleanup applies a cleanup's deletions in one batch, under the
// partition's write lock, and adjusts the partition's counters.
func (s *PebbleStore) submitCleanup(t *topicState, c *cleanupWork) error {
	if err := s.failure(); err != nil {
		return err
	}
	p := &t.parts[c.partition]
	b := s.db.NewBatch()
	defer b.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	if t.deleted.Load() {
		return nil
	}
	var dropHeads []string
	// A removed tombstone takes its key's head marker with it, unless an
	// append superseded the tombstone meanwhile: the key is then gone, and
	// the next append to it starts at version 1.
	for _, h := range c.tombstones {
		head, err := s.headLocked(t, p, h.key)
		if err != nil {
			return err
		}
		if head == h.version {
			_ = b.Delete(appendHeadKey(nil, t.meta.ID, h.key), nil)
			dropHeads = append(dropHeads, h.key)
		}
	}
	if c.markHeads {
		// Where retention removes a stream's newest record, a head marker
		// keeps its version, so that the stream continues from there.
		removed := map[string]uint64{}
		for _, sv := range c.streams {
			removed[sv.key] = max(removed[sv.key], sv.version)
		}
		for key, v := range removed {
			head, err := s.headLocked(t, p, key)
			if err != nil {
				return err
			}
			if head == v {
				_ = b.Set(appendHeadKey(nil, t.meta.ID, key), binary.BigEndian.AppendUint64(nil, v), nil)
			}
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
	if err := pebbleCall(func() error { return s.db.Apply(b, pebble.NoSync) }); err != nil {
		return err
	}
	p.mu.start, p.mu.records, p.mu.bytes = start, records, bytes
	for _, k := range dropHeads {
		delete(p.mu.heads, k) // recomputed from the index at the next append
	}
	p.publishCountersLocked()
	return nil
}

// encodedLen is the size of a record's stored value.
func encodedLen(r *Record) int {
	return len(appendRecord(make([]byte, 0, 128+len(r.Payload)), r))
}
