package projection

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

// Headers of a parked record in the dead-letter topic. The parked record
// keeps the original's type, payload, correlation ID and headers; its
// causation ID is the original's event ID.
const (
	HeaderProjection = "muninn.dlq.projection"
	HeaderGeneration = "muninn.dlq.generation"
	HeaderTopic      = "muninn.dlq.topic"
	HeaderPartition  = "muninn.dlq.partition"
	HeaderOffset     = "muninn.dlq.offset"
	HeaderKey        = "muninn.dlq.key"
	HeaderEventID    = "muninn.dlq.event_id"
	HeaderVersion    = "muninn.dlq.version"
	HeaderTimestamp  = "muninn.dlq.timestamp"
	HeaderError      = "muninn.dlq.error"
	HeaderAttempts   = "muninn.dlq.attempts"
	HeaderTombstone  = "muninn.dlq.tombstone"
)

// Parking and exactly-once. A record is parked by one Append to the
// dead-letter topic, keyed "g<generation>/<topic>/<partition>/<offset>" with
// ExpectedVersion NoStream, which writes (WithState) the parked marker in
// the same batch; then one Update commits the offset past the record. A
// crash between the two leaves the record parked but not committed: on
// restart the runner finds the marker of the first record of each
// partition it reads and skips that record instead of applying it, and a
// second park of one record is refused by NoStream. So a record is either
// applied or parked, once.

type parkMarker struct {
	DLQPartition int       `json:"dlq_partition"`
	DLQOffset    int64     `json:"dlq_offset"`
	Error        string    `json:"error"`
	Attempts     int       `json:"attempts"`
	ParkedAt     time.Time `json:"parked_at"`
	ReplayedAt   time.Time `json:"replayed_at,omitzero"`
}

func markerPrefix(genPrefix []byte) []byte { return append(genPrefix, "dlq/"...) }

func markerKey(genPrefix []byte, tp eventstore.TopicPartition, offset int64) []byte {
	k := markerPrefix(genPrefix)
	k = append(k, tp.Topic...)
	k = append(k, '/')
	k = binary.BigEndian.AppendUint32(k, uint32(tp.Partition))
	return binary.BigEndian.AppendUint64(k, uint64(offset))
}

// isParked reports whether rec at offset of tp was parked and not yet
// committed past; it looks only at a partition's first record of the
// session, the only one that can be.
func (r *runner) isParked(tx *Tx, tp eventstore.TopicPartition, offset int64) (bool, error) {
	if !r.checked[tp] {
		r.checked[tp] = true
		_, ok, err := tx.get(markerKey(tx.prefix, tp, offset))
		if err != nil {
			return false, err
		}
		if ok {
			r.parked[tp] = offset
		}
	}
	off, ok := r.parked[tp]
	return ok && off == offset, nil
}

func (p *Projection) ensureDLQ(ctx context.Context) error {
	err := p.s.CreateTopic(ctx, p.opts.dlq, eventstore.TopicConfig{Partitions: 1})
	if err != nil && !errors.Is(err, eventstore.ErrTopicExists) {
		return fmt.Errorf("projection %q: create dead-letter topic: %w", p.name, err)
	}
	return nil
}

// park appends rec to the dead-letter topic with its marker, then commits
// past it.
func (r *runner) park(ctx context.Context, rec eventstore.Record, he *HandlerError) error {
	p := r.p
	if err := p.ensureDLQ(ctx); err != nil {
		return err
	}
	if r.live {
		// A swap must not delete the generation between the check and the
		// marker's write.
		p.mu.RLock()
		defer p.mu.RUnlock()
		if p.gen != r.gen {
			return errGenChanged
		}
	}
	tp := eventstore.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}
	prefix := p.genPrefix(r.gen)
	headers := make(map[string]string, len(rec.Headers)+12)
	for k, v := range rec.Headers {
		headers[k] = v
	}
	headers[HeaderProjection] = p.name
	headers[HeaderGeneration] = strconv.FormatUint(r.gen, 10)
	headers[HeaderTopic] = rec.Topic
	headers[HeaderPartition] = strconv.Itoa(rec.Partition)
	headers[HeaderOffset] = strconv.FormatInt(rec.Offset, 10)
	headers[HeaderKey] = rec.Key
	headers[HeaderEventID] = rec.ID.String()
	headers[HeaderVersion] = strconv.FormatUint(rec.Version, 10)
	headers[HeaderTimestamp] = rec.Timestamp.UTC().Format(time.RFC3339Nano)
	headers[HeaderError] = he.Err.Error()
	headers[HeaderAttempts] = strconv.Itoa(he.Attempts)
	payload := rec.Payload
	if payload == nil {
		payload = []byte{}
		headers[HeaderTombstone] = "true"
	}
	typ := rec.Type
	if typ == "" {
		typ = "muninn.tombstone"
	}
	marker := parkMarker{Error: he.Err.Error(), Attempts: he.Attempts, ParkedAt: p.opts.now().UTC()}
	key := fmt.Sprintf("g%d/%s/%d/%d", r.gen, rec.Topic, rec.Partition, rec.Offset)
	_, err := p.s.Append(ctx, p.opts.dlq, key, eventstore.NoStream, []eventstore.Event{{
		Type: typ, SchemaVersion: rec.SchemaVersion, Payload: payload,
		CorrelationID: rec.CorrelationID, CausationID: rec.ID.String(), Headers: headers,
	}}, eventstore.WithState(func(res eventstore.AppendResult, w eventstore.StateWriter) error {
		marker.DLQPartition, marker.DLQOffset = res.Partition, res.FirstOffset
		v, err := json.Marshal(marker)
		if err != nil {
			return err
		}
		return w.Set(markerKey(prefix, tp, rec.Offset), v)
	}))
	var again []byte // the marker, when the record was parked before
	if errors.Is(err, eventstore.ErrVersionConflict) {
		// Parked before: by this runner before a crash (the marker is
		// there), or by an interrupted rebuild of this generation number,
		// whose markers the next rebuild wiped. Point the marker at the
		// parked copy.
		if again, err = p.existingMarker(ctx, key, marker); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("projection %q: park %s/%d@%d: %w", p.name, rec.Topic, rec.Partition, rec.Offset, err)
	}
	offsets := map[eventstore.TopicPartition]int64{tp: rec.Offset + 1}
	err = p.s.Update(ctx, func(txn eventstore.Txn) error {
		if err := r.checkGen(txn); err != nil {
			return err
		}
		if again != nil {
			mk := markerKey(prefix, tp, rec.Offset)
			if _, ok, err := txn.Get(mk); err != nil {
				return err
			} else if !ok {
				if err := txn.Set(mk, again); err != nil {
					return err
				}
			}
		}
		return txn.CommitOffsets(r.c, offsets)
	})
	if err != nil {
		return r.wrap(err)
	}
	r.committed(offsets, 1)
	return nil
}

// existingMarker returns the marker of a record already parked under key
// in the dead-letter topic.
func (p *Projection) existingMarker(ctx context.Context, key string, m parkMarker) ([]byte, error) {
	for rec, err := range p.s.ReadStream(ctx, p.opts.dlq, key, 0) {
		if err != nil {
			return nil, fmt.Errorf("projection %q: find parked copy %q: %w", p.name, key, err)
		}
		m.DLQPartition, m.DLQOffset = rec.Partition, rec.Offset
		return json.Marshal(m)
	}
	return nil, fmt.Errorf("projection %q: parked copy %q conflicts but cannot be read", p.name, key)
}

// ParkedRecord is a record parked in the dead-letter topic.
type ParkedRecord struct {
	// Record is the original record, as the handler saw it.
	Record eventstore.Record
	// Error is the handler's last error, and Attempts how often it ran.
	Error    string
	Attempts int
	ParkedAt time.Time
	// DeadLetter is the position of the parked copy in the dead-letter
	// topic.
	DeadLetter Position
	// Replayed is set once Replay has applied the record; ReplayedAt says
	// when.
	Replayed   bool
	ReplayedAt time.Time
}

// Position returns the original record's position, for Replay.
func (r ParkedRecord) Position() Position {
	return Position{Topic: r.Record.Topic, Partition: r.Record.Partition, Offset: r.Record.Offset}
}

// Parked lists the records parked in the current generation, in order of
// topic, partition and offset, replayed ones included (see Replayed). It
// pages like a table scan: Limit and After.
func (p *Projection) Parked(ctx context.Context, opts ...QueryOption) ([]ParkedRecord, string, error) {
	q, err := queryOptions(opts)
	if err != nil {
		return nil, "", err
	}
	if err := p.waitQuery(ctx, q); err != nil {
		return nil, "", err
	}
	gen, unlock, err := p.readGen(ctx)
	if err != nil {
		return nil, "", err
	}
	defer unlock()
	prefix := markerPrefix(p.genPrefix(gen))
	kvs, next, err := p.scanPage(ctx, prefix, prefix, eventstore.PrefixEnd(prefix), "parked", q)
	if err != nil {
		return nil, "", err
	}
	out := make([]ParkedRecord, 0, len(kvs))
	for _, kv := range kvs {
		pr, err := p.parkedFromKV(ctx, kv.Key[len(prefix):], kv.Value)
		if err != nil {
			return nil, "", err
		}
		out = append(out, pr)
	}
	return out, next, nil
}

func parseMarkerKey(k []byte) (eventstore.TopicPartition, int64, error) {
	if len(k) < 13 || k[len(k)-13] != '/' {
		return eventstore.TopicPartition{}, 0, fmt.Errorf("projection: malformed parked-record key %q", k)
	}
	n := len(k) - 12
	tp := eventstore.TopicPartition{Topic: string(k[:n-1]), Partition: int(binary.BigEndian.Uint32(k[n:]))}
	return tp, int64(binary.BigEndian.Uint64(k[n+4:])), nil
}

func (p *Projection) parkedFromKV(ctx context.Context, k, v []byte) (ParkedRecord, error) {
	tp, off, err := parseMarkerKey(k)
	if err != nil {
		return ParkedRecord{}, err
	}
	var m parkMarker
	if err := json.Unmarshal(v, &m); err != nil {
		return ParkedRecord{}, fmt.Errorf("projection %q: parked record %s@%d: %w", p.name, tp, off, err)
	}
	pr := ParkedRecord{Error: m.Error, Attempts: m.Attempts, ParkedAt: m.ParkedAt,
		DeadLetter: Position{Topic: p.opts.dlq, Partition: m.DLQPartition, Offset: m.DLQOffset},
		Replayed:   !m.ReplayedAt.IsZero(), ReplayedAt: m.ReplayedAt}
	var dl eventstore.Record
	found := false
	for rec, err := range p.s.ReadPartition(ctx, p.opts.dlq, m.DLQPartition, m.DLQOffset) {
		if err != nil {
			return ParkedRecord{}, fmt.Errorf("projection %q: read parked record %s@%d: %w", p.name, tp, off, err)
		}
		dl, found = rec, rec.Offset == m.DLQOffset
		break
	}
	if !found {
		return ParkedRecord{}, fmt.Errorf("projection %q: parked record %s@%d is gone from %s/%d@%d",
			p.name, tp, off, p.opts.dlq, m.DLQPartition, m.DLQOffset)
	}
	pr.Record = originalRecord(dl, tp, off)
	return pr, nil
}

// originalRecord rebuilds the record a parked copy was made of.
func originalRecord(dl eventstore.Record, tp eventstore.TopicPartition, off int64) eventstore.Record {
	h := dl.Headers
	rec := eventstore.Record{
		Topic: tp.Topic, Partition: tp.Partition, Offset: off, Key: h[HeaderKey],
		Type: dl.Type, SchemaVersion: dl.SchemaVersion, Payload: dl.Payload,
		CorrelationID: dl.CorrelationID, CausationID: dl.CausationID,
	}
	if h[HeaderTombstone] == "true" {
		rec.Payload = nil
		if rec.Type == "muninn.tombstone" {
			rec.Type = ""
		}
	}
	_ = rec.ID.UnmarshalText([]byte(h[HeaderEventID]))
	rec.Version, _ = strconv.ParseUint(h[HeaderVersion], 10, 64)
	rec.Timestamp, _ = time.Parse(time.RFC3339Nano, h[HeaderTimestamp])
	var headers map[string]string
	for k, v := range h {
		if len(k) > len("muninn.dlq.") && k[:len("muninn.dlq.")] == "muninn.dlq." {
			continue
		}
		if headers == nil {
			headers = map[string]string{}
		}
		headers[k] = v
	}
	rec.Headers = headers
	return rec
}

// Replay applies the record parked at pos (its original position) to the
// current generation again, and marks it replayed in the same Update, so a
// record is replayed at most once. If the handler fails, Replay returns its
// error and the record stays parked. It returns ErrNotParked if no record
// is parked at pos or it was replayed.
func (p *Projection) Replay(ctx context.Context, pos Position) error {
	gen, unlock, err := p.readGen(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	tp := eventstore.TopicPartition{Topic: pos.Topic, Partition: pos.Partition}
	prefix := p.genPrefix(gen)
	key := markerKey(prefix, tp, pos.Offset)
	v, ok, err := p.s.Get(ctx, key)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("projection %q: replay %s: %w", p.name, pos, ErrNotParked)
	}
	pr, err := p.parkedFromKV(ctx, key[len(markerPrefix(prefix)):], v)
	if err != nil {
		return err
	}
	if pr.Replayed {
		return fmt.Errorf("projection %q: replay %s: %w: replayed at %s", p.name, pos, ErrNotParked, pr.ReplayedAt.Format(time.RFC3339))
	}
	err = p.s.Update(ctx, func(txn eventstore.Txn) error {
		cur, ok, err := txn.Get(key)
		if err != nil {
			return err
		}
		var m parkMarker
		if !ok || json.Unmarshal(cur, &m) != nil || !m.ReplayedAt.IsZero() {
			return fmt.Errorf("projection %q: replay %s: %w", p.name, pos, ErrNotParked)
		}
		tx := newTx(txn, p, gen)
		defer tx.close()
		if err := p.call(tx, pr.Record); err != nil {
			return &HandlerError{Projection: p.name, Topic: pos.Topic, Partition: pos.Partition, Offset: pos.Offset,
				EventType: pr.Record.Type, Attempts: 1, Err: err}
		}
		if err := tx.flush(); err != nil {
			return err
		}
		m.ReplayedAt = p.opts.now().UTC()
		nv, err := json.Marshal(m)
		if err != nil {
			return err
		}
		return txn.Set(key, nv)
	})
	return err
}
