package eventstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// A stream's head version is the version of its newest record in the stream
// index. Cleanup can remove a stream's newest records (retention on a delete
// topic); it then leaves a head marker (kindHead) holding the version it
// removed, so that versions never go back. Appends keep heads in a
// per-partition cache, so an append reads Pebble for a head only the first
// time it meets a stream.

// streamHead returns the head version of a stream, counting only records at
// offsets below end; end < 0 counts every record applied, durable or not
// (the writers' view).
func (s *PebbleStore) streamHead(t *topicState, key string, end int64) (uint64, error) {
	marker, err := s.headMarker(t.meta.ID, key)
	if err != nil {
		return 0, err
	}
	prefix := appendStreamPrefix(nil, t.meta.ID, key)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: PrefixEnd(prefix)})
	if err != nil {
		return 0, fmt.Errorf("eventstore: head of %s/%q: %w", t.meta.Name, key, s.engineErr(err))
	}
	defer it.Close()
	var head uint64
	// SeekPrefixGE consults the bloom filters: a stream that is in no table
	// costs no table read.
	if it.SeekPrefixGE(binary.BigEndian.AppendUint64(prefix, 0)) {
		for ok := it.Last(); ok; ok = it.Prev() {
			k, v := it.Key(), it.Value()
			if end >= 0 {
				if len(v) < recordFixedLen {
					return 0, s.recordCorrupt(fmt.Errorf("%w: stream index entry of %s/%q is %d bytes", ErrCorrupt, t.meta.Name, key, len(v)))
				}
				if int64(binary.BigEndian.Uint64(v[21:29])) >= end {
					continue // not yet acknowledged
				}
			}
			head = binary.BigEndian.Uint64(k[len(k)-8:])
			break
		}
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("eventstore: head of %s/%q: %w", t.meta.Name, key, s.engineErr(err))
	}
	return max(head, marker), nil
}

// headMarker returns the version cleanup recorded for a stream whose newest
// records it removed, or 0.
func (s *PebbleStore) headMarker(topicID uint32, key string) (uint64, error) {
	v, closer, err := s.db.Get(appendHeadKey(nil, topicID, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("eventstore: read head marker of %q: %w", key, s.engineErr(err))
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, s.recordCorrupt(fmt.Errorf("%w: head marker of stream %q has %d bytes", ErrCorrupt, key, len(v)))
	}
	return binary.BigEndian.Uint64(v), nil
}

// headLocked returns the head version of a stream as writers see it
// (including appends applied but not yet synced). p.mu must be held.
func (s *PebbleStore) headLocked(t *topicState, p *partState, key string) (uint64, error) {
	if v, ok := p.mu.heads[key]; ok {
		return v, nil
	}
	v, err := s.streamHead(t, key, -1)
	if err != nil {
		return 0, err
	}
	p.setHeadLocked(key, v)
	return v, nil
}

func (p *partState) setHeadLocked(key string, v uint64) {
	if p.mu.heads == nil || len(p.mu.heads) >= p.headCap {
		p.mu.heads = make(map[string]uint64)
	}
	p.mu.heads[key] = v
}
