package consume

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
	"github.com/muninn-es/muninn/telemetry"
)

// Headers of a record the Park policy writes to the dead-letter topic. The
// parked copy keeps the original's type, schema version, payload,
// correlation ID and headers; its causation ID is the original's event ID.
const (
	HeaderConsumer  = "muninn.dlq.consumer"
	HeaderTopic     = "muninn.dlq.topic"
	HeaderPartition = "muninn.dlq.partition"
	HeaderOffset    = "muninn.dlq.offset"
	HeaderKey       = "muninn.dlq.key"
	HeaderEventID   = "muninn.dlq.event_id"
	HeaderVersion   = "muninn.dlq.version"
	HeaderTimestamp = "muninn.dlq.timestamp"
	HeaderError     = "muninn.dlq.error"
	HeaderAttempts  = "muninn.dlq.attempts"
	HeaderTombstone = "muninn.dlq.tombstone"
)

// Parking and exactly once. A record is parked by one Append to the
// dead-letter topic, keyed "<consumer>/<topic>/<partition>/<offset>" with
// ExpectedVersion NoStream, which writes (WithState) the park mark in the
// same batch; then one Update commits past the record. A crash between the
// two leaves the record parked and not committed: when the loop next reads
// a partition, it looks for the mark of the partition's first record and
// skips that record instead of applying it, and a second park of one
// record is refused by NoStream. So a record is applied or parked, once.

type parkMark struct {
	DLQPartition int       `json:"dlq_partition"`
	DLQOffset    int64     `json:"dlq_offset"`
	Error        string    `json:"error"`
	Attempts     int       `json:"attempts"`
	ParkedAt     time.Time `json:"parked_at"`
	ReplayedAt   time.Time `json:"replayed_at,omitzero"`
}

func (l *Loop) marks() keyspace.Key { return l.opts.prefix.String("parked") }

func (l *Loop) markKey(topic string, partition int, offset int64) []byte {
	return l.marks().String(topic).Uint(uint64(partition)).Int(offset)
}

// isParked reports whether rec, the first record of its partition in this
// run, was parked and not committed past.
func (r *runner) isParked(tx eventstore.Txn, rec *eventstore.Record) (bool, error) {
	if r.l.opts.policy.kind != policyPark || rec.Topic == "" {
		return false, nil
	}
	tp := eventstore.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}
	if !r.firstSeen[tp] {
		r.firstSeen[tp] = true
		v, ok, err := tx.Get(r.l.markKey(rec.Topic, rec.Partition, rec.Offset))
		if err != nil {
			return false, err
		}
		if ok {
			var m parkMark
			if json.Unmarshal(v, &m) == nil && m.ReplayedAt.IsZero() {
				r.parked[tp] = rec.Offset
			}
		}
	}
	off, ok := r.parked[tp]
	return ok && off == rec.Offset, nil
}

func (l *Loop) ensureDLQ(ctx context.Context) error {
	err := l.store.CreateTopic(ctx, l.opts.policy.topic, eventstore.TopicConfig{Partitions: 1})
	if err != nil && !errors.Is(err, eventstore.ErrTopicExists) {
		return fmt.Errorf("%s: create dead-letter topic: %w", l.name, err)
	}
	return nil
}

func (l *Loop) parkKey(rec *eventstore.Record) string {
	return l.name + "/" + rec.Topic + "/" + strconv.Itoa(rec.Partition) + "/" + strconv.FormatInt(rec.Offset, 10)
}

// park appends rec to the dead-letter topic with its mark, then commits
// past it.
func (r *runner) park(ctx context.Context, rec *eventstore.Record, he *HandlerError) error {
	l := r.l
	if rec.Topic == "" {
		return fmt.Errorf("%s: cannot park %s, which no topic holds: %w", l.name, describe(rec), he)
	}
	if err := l.ensureDLQ(ctx); err != nil {
		return err
	}
	headers := make(map[string]string, len(rec.Headers)+len(l.opts.headers)+11)
	for k, v := range rec.Headers {
		headers[k] = v
	}
	for k, v := range l.opts.headers {
		headers[k] = v
	}
	headers[HeaderConsumer] = l.name
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
	mark := parkMark{Error: he.Err.Error(), Attempts: he.Attempts, ParkedAt: l.opts.clock.Now().UTC()}
	mk := l.markKey(rec.Topic, rec.Partition, rec.Offset)
	key := l.parkKey(rec)
	_, err := l.store.Append(ctx, l.opts.policy.topic, key, eventstore.NoStream, []eventstore.Event{{
		Type: typ, SchemaVersion: rec.SchemaVersion, Payload: payload,
		CorrelationID: rec.CorrelationID, CausationID: rec.ID.String(), Headers: headers,
	}}, eventstore.WithState(func(res eventstore.AppendResult, w eventstore.StateWriter) error {
		mark.DLQPartition, mark.DLQOffset = res.Partition, res.FirstOffset
		v, err := json.Marshal(mark)
		if err != nil {
			return err
		}
		return w.Set(mk, v)
	}))
	var again []byte // the mark, when the record was parked before
	if errors.Is(err, eventstore.ErrVersionConflict) {
		// Parked before: by this loop before a crash (the mark is there),
		// or before its marks were wiped (a projection's rebuild). Point
		// the mark at the parked copy.
		if again, err = l.existingMark(ctx, key, mark); err != nil {
			return err
		}
	} else if err != nil {
		return fmt.Errorf("%s: park %s: %w", l.name, describe(rec), err)
	}
	l.logRecord(ctx, slog.LevelWarn, "consume: record parked", rec,
		slog.String("dead_letter_topic", l.opts.policy.topic), slog.Int("attempts", he.Attempts), slog.Any(telemetry.AttrError, he.Err))
	return r.commitPast(ctx, rec, func(tx eventstore.Txn) error {
		if again == nil {
			return nil
		}
		if _, ok, err := tx.Get(mk); err != nil || ok {
			return err
		}
		return tx.Set(mk, again)
	}, 1)
}

// existingMark returns the mark of a record already parked under key.
func (l *Loop) existingMark(ctx context.Context, key string, m parkMark) ([]byte, error) {
	for rec, err := range l.store.ReadStream(ctx, l.opts.policy.topic, key, 0) {
		if err != nil {
			return nil, fmt.Errorf("%s: find parked copy %q: %w", l.name, key, err)
		}
		m.DLQPartition, m.DLQOffset = rec.Partition, rec.Offset
		return json.Marshal(m)
	}
	return nil, fmt.Errorf("%s: parked copy %q conflicts but cannot be read", l.name, key)
}

// ErrNotParked is returned by Replay and Discard for a position that has no
// parked record (or whose record was replayed or discarded already).
var ErrNotParked = errors.New("muninn: record not parked")

// ParkedRecord is a record the Park policy put in the dead-letter topic.
type ParkedRecord struct {
	// Record is the original record, as the handler saw it.
	Record eventstore.Record `json:"record"`
	// Error is the handler's last error, Attempts how often it ran.
	Error    string    `json:"error"`
	Attempts int       `json:"attempts"`
	ParkedAt time.Time `json:"parked_at"`
	// DeadLetter is the position of the parked copy.
	DeadLetter eventstore.Position `json:"dead_letter"`
	// ReplayedAt is when Replay applied it, zero if it has not.
	ReplayedAt time.Time `json:"replayed_at,omitzero"`
}

// Parked returns the records the loop has parked and not discarded, in
// the order of their original positions (topic, partition, offset).
// Replayed records are listed with their ReplayedAt.
func (l *Loop) Parked(ctx context.Context) ([]ParkedRecord, error) {
	if l.opts.policy.kind != policyPark {
		return nil, nil
	}
	lo, hi := l.marks().Range()
	var out []ParkedRecord
	for kv, err := range l.store.Scan(ctx, lo, hi, false) {
		if err != nil {
			return nil, fmt.Errorf("%s: list parked: %w", l.name, err)
		}
		var m parkMark
		if err := json.Unmarshal(kv.Value, &m); err != nil {
			return nil, fmt.Errorf("%s: park mark %s: %w: %v", l.name, keyspace.Format(kv.Key), eventstore.ErrCorrupt, err)
		}
		pr, err := l.parkedCopy(ctx, m)
		if err != nil {
			return nil, err
		}
		out = append(out, pr)
	}
	return out, nil
}

// parkedCopy reads the parked copy a mark points to.
func (l *Loop) parkedCopy(ctx context.Context, m parkMark) (ParkedRecord, error) {
	dlq := l.opts.policy.topic
	for rec, err := range l.store.ReadPartition(ctx, dlq, m.DLQPartition, m.DLQOffset) {
		if err != nil {
			return ParkedRecord{}, fmt.Errorf("%s: read parked copy %s/%d@%d: %w", l.name, dlq, m.DLQPartition, m.DLQOffset, err)
		}
		if rec.Offset != m.DLQOffset {
			break
		}
		return ParkedRecord{Record: original(rec), Error: m.Error, Attempts: m.Attempts, ParkedAt: m.ParkedAt,
			DeadLetter: rec.Position(), ReplayedAt: m.ReplayedAt}, nil
	}
	return ParkedRecord{}, fmt.Errorf("%s: parked copy %s/%d@%d is gone (cleaned up?)", l.name, dlq, m.DLQPartition, m.DLQOffset)
}

// original rebuilds the original record from its parked copy.
func original(c eventstore.Record) eventstore.Record {
	h := map[string]string{}
	for k, v := range c.Headers {
		h[k] = v
	}
	rec := eventstore.Record{Topic: h[HeaderTopic], Key: h[HeaderKey], Type: c.Type, SchemaVersion: c.SchemaVersion,
		Payload: c.Payload, CorrelationID: c.CorrelationID}
	rec.Partition, _ = strconv.Atoi(h[HeaderPartition])
	rec.Offset, _ = strconv.ParseInt(h[HeaderOffset], 10, 64)
	rec.Version, _ = strconv.ParseUint(h[HeaderVersion], 10, 64)
	rec.Timestamp, _ = time.Parse(time.RFC3339Nano, h[HeaderTimestamp])
	_ = rec.ID.UnmarshalText([]byte(h[HeaderEventID]))
	if h[HeaderTombstone] == "true" {
		rec.Payload = nil
		if rec.Type == "muninn.tombstone" {
			rec.Type = ""
		}
	}
	for _, k := range []string{HeaderConsumer, HeaderTopic, HeaderPartition, HeaderOffset, HeaderKey, HeaderEventID,
		HeaderVersion, HeaderTimestamp, HeaderError, HeaderAttempts, HeaderTombstone} {
		delete(h, k)
	}
	if len(h) > 0 {
		rec.Headers = h
	}
	return rec
}

// Replay applies a parked record again, at its original position pos, with
// the loop's handler in an Update of its own, and marks it replayed. It
// fails with ErrNotParked if nothing is parked at pos, or it was replayed
// already, and returns the handler's error (leaving the record parked) if
// it fails again. It may run while Run runs: the handler's batches are
// serialized by the store's Updates.
func (l *Loop) Replay(ctx context.Context, pos eventstore.Position) error {
	mk := l.markKey(pos.Topic, pos.Partition, pos.Offset)
	v, ok, err := l.store.Get(ctx, mk)
	if err != nil {
		return fmt.Errorf("%s: replay %s: %w", l.name, pos, err)
	}
	var m parkMark
	if ok {
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("%s: replay %s: park mark: %w: %v", l.name, pos, eventstore.ErrCorrupt, err)
		}
	}
	if !ok || !m.ReplayedAt.IsZero() {
		return fmt.Errorf("%s: replay %s: %w", l.name, pos, ErrNotParked)
	}
	pr, err := l.parkedCopy(ctx, m)
	if err != nil {
		return err
	}
	rec := pr.Record
	var b Batch
	err = l.store.Update(ctx, func(tx eventstore.Txn) error {
		// Checked again inside: a concurrent Replay or Discard may have won.
		cur, ok, err := tx.Get(mk)
		if err != nil {
			return err
		}
		var now parkMark
		if !ok || json.Unmarshal(cur, &now) != nil || !now.ReplayedAt.IsZero() {
			return ErrNotParked
		}
		if b, err = l.handler.Begin(ctx, tx); err != nil {
			return err
		}
		if err := handle(b, &rec); err != nil {
			return fmt.Errorf("handler: %w", err)
		}
		if err := b.Flush(); err != nil {
			return err
		}
		now.ReplayedAt = l.opts.clock.Now().UTC()
		nv, err := json.Marshal(now)
		if err != nil {
			return err
		}
		return tx.Set(mk, nv)
	})
	if err != nil {
		return fmt.Errorf("%s: replay %s: %w", l.name, pos, err)
	}
	b.Committed()
	l.count(func(c *Counters) { c.Applied++ })
	return nil
}

// Discard forgets a parked record without applying it: it no longer
// appears in Parked (its copy stays in the dead-letter topic). It fails with
// ErrNotParked if nothing is parked at pos.
func (l *Loop) Discard(ctx context.Context, pos eventstore.Position) error {
	mk := l.markKey(pos.Topic, pos.Partition, pos.Offset)
	err := l.store.Update(ctx, func(tx eventstore.Txn) error {
		if _, ok, err := tx.Get(mk); err != nil {
			return err
		} else if !ok {
			return ErrNotParked
		}
		return tx.Delete(mk)
	})
	if err != nil {
		return fmt.Errorf("%s: discard %s: %w", l.name, pos, err)
	}
	return nil
}
