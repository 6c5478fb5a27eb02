package eventstore

import (
	"errors"
	"time"

	"github.com/google/uuid"
)

// What other backends share with PebbleStore, so that every backend checks
// input, fills in defaults and encodes records the same way: the record
// format with its checksum, the defaults of an append's metadata, and the
// validation of appends, state writes and topic configurations. Users of
// the store do not need these; backends (package eventstore/postgres) do.

// EncodeRecord appends r, in the record format every backend stores
// (format byte, CRC-32C, fixed fields, then the variable ones), to dst and
// returns the extended slice. DecodeRecord reads it back.
func EncodeRecord(dst []byte, r *Record) []byte { return appendRecord(dst, r) }

// DecodeRecord decodes a value written by EncodeRecord into r, verifying its
// checksum and framing. It copies value, so r owns its memory; r.Topic is
// left as it was (the format does not hold the topic). The error says what
// failed to verify; callers wrap it in a *CorruptRecordError with the
// record's position. It never panics.
func DecodeRecord(value []byte, r *Record) error {
	if reason := decodeRecord(cloneValue(value), r); reason != "" {
		return errors.New(reason)
	}
	return nil
}

// EncodedLen is the size of r's stored value: what PartitionInfo.Bytes and
// TopicConfig.RetentionBytes count.
func EncodedLen(r *Record) int { return encodedLen(r) }

// NewEventID returns a new event ID, a UUIDv7 (a random UUID if the system
// has no entropy for one).
func NewEventID() uuid.UUID { return newEventID() }

// NewRecords turns the events of one append into the records they become,
// with the defaults every backend applies: a new UUIDv7 for a zero ID,
// schema version 1 for 0, now for a zero timestamp, the first event's
// correlation ID (or its ID) for an empty one and the correlation ID for an
// empty causation ID. Offsets run from first and versions from head+1.
func NewRecords(topic string, partition int, key string, first int64, head uint64, events []Event, now time.Time) []Record {
	recs := make([]Record, len(events))
	var correlation string
	for i := range events {
		ev := &events[i]
		rec := &recs[i]
		*rec = Record{
			ID: ev.ID, Topic: topic, Partition: partition, Offset: first + int64(i), Key: key, Version: head + uint64(i) + 1,
			Type: ev.Type, SchemaVersion: ev.SchemaVersion, Payload: ev.Payload, Timestamp: ev.Timestamp,
			CorrelationID: ev.CorrelationID, CausationID: ev.CausationID, Headers: ev.Headers,
		}
		applyDefaults(rec, i, &correlation, now)
	}
	return recs
}

// applyDefaults fills in what an event left empty (see NewRecords);
// correlation carries the first event's correlation ID to the later ones.
func applyDefaults(rec *Record, i int, correlation *string, now time.Time) {
	if rec.ID == uuid.Nil {
		rec.ID = newEventID()
	}
	if rec.SchemaVersion == 0 {
		rec.SchemaVersion = 1
	}
	if rec.Timestamp.IsZero() {
		rec.Timestamp = now
	}
	if rec.CorrelationID == "" {
		// Default: the first event's correlation ID, or its own ID.
		if i == 0 {
			*correlation = rec.ID.String()
		}
		rec.CorrelationID = *correlation
	} else if i == 0 {
		*correlation = rec.CorrelationID
	}
	if rec.CausationID == "" {
		rec.CausationID = rec.CorrelationID
	}
}

// Limits of an append that a backend enforces, as PebbleStore's options
// WithMaxEventBytes and WithMaxAppendBytes set them.
type AppendLimits struct {
	// MaxEventBytes is the largest encoded event accepted.
	MaxEventBytes int
	// MaxAppendBytes is the largest total of one append's events.
	MaxAppendBytes int
}

// DefaultAppendLimits are PebbleStore's defaults: 1 MiB per event, 16 MiB
// per append.
var DefaultAppendLimits = AppendLimits{MaxEventBytes: 1 << 20, MaxAppendBytes: 16 << 20}

// ValidateAppend checks an append's key, expected version and events as
// PebbleStore.Append does, reporting every problem at once, each naming
// its field (errors wrap ErrInvalidArgument).
func ValidateAppend(topic, key string, expected ExpectedVersion, events []Event, limits AppendLimits) error {
	return validateAppend(topic, key, expected, events, limits.MaxEventBytes, limits.MaxAppendBytes)
}

// CheckClock reports an error wrapping ErrInvalidArgument when now, the time
// a store stamps records with, is outside what a record can hold (the
// years 1678 to 2262).
func CheckClock(now time.Time) error {
	if now.Before(minTime) || now.After(maxTime) {
		return invalid("WithClock", "the store's clock says %s, outside the years 1678 to 2262", now)
	}
	return nil
}

// Matches reports whether a stream whose head version is head satisfies
// the condition e.
func (e ExpectedVersion) Matches(head uint64) bool { return e.matches(head) }

// Normalized returns c with its defaults filled in, as the store persists
// it: Retain for an empty policy, DefaultTombstoneGrace for a compacted
// topic without a grace period.
func (c TopicConfig) Normalized() TopicConfig { return c.normalized() }

// InvalidArgument returns an error wrapping ErrInvalidArgument that names
// field and says what is wrong with it.
func InvalidArgument(field, format string, args ...any) error {
	return invalid(field, format, args...)
}

// ValidateStateKey checks a state-space key: not empty, at most
// MaxStateKeyBytes.
func ValidateStateKey(key []byte) error { return checkStateKey(key) }

// ValidateStateValue checks a state-space write: its key, and a value of at
// most MaxStateValueBytes.
func ValidateStateValue(key, value []byte) error {
	if err := checkStateKey(key); err != nil {
		return err
	}
	if len(value) > MaxStateValueBytes {
		return invalid("state value", "of key %q has %d bytes, more than %d", key, len(value), MaxStateValueBytes)
	}
	return nil
}

// ValidateStateRange checks the bounds of a state-space range: each at most
// MaxStateKeyBytes, lower not after upper (a nil upper bound is the end of
// the space).
func ValidateStateRange(lower, upper []byte) error { return checkStateRange(lower, upper) }
