package broker

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/muninn-es/muninn/eventstore"
)

// Metadata keys under which a record's fields travel in a watermill message.
// The event ID is the message UUID. Every other metadata entry is a free
// header of the record; a header whose own name starts with MetaPrefix is
// sent as MetaHeaderPrefix+name, so that no header can be mistaken for a
// field and none is lost.
const (
	// MetaPrefix starts every metadata key that Muninn reserves.
	MetaPrefix = "muninn_"
	// MetaHeaderPrefix escapes a record header whose name starts with
	// MetaPrefix.
	MetaHeaderPrefix = "muninn_h_"
	// MetaKey is the record's key (aggregate ID). Engines partition by it.
	MetaKey = "muninn_key"
	// MetaType is the event type name.
	MetaType = "muninn_type"
	// MetaSchemaVersion is the payload's schema version (decimal).
	MetaSchemaVersion = "muninn_schema_version"
	// MetaStreamVersion is the record's version in its stream (decimal).
	MetaStreamVersion = "muninn_stream_version"
	// MetaTimestamp is the event time, RFC 3339 with nanoseconds.
	MetaTimestamp = "muninn_timestamp"
	// MetaCorrelationID is the correlation ID.
	MetaCorrelationID = "muninn_correlation_id"
	// MetaCausationID is the causation ID.
	MetaCausationID = "muninn_causation_id"
	// MetaTopic, MetaPartition and MetaOffset are the record's position in
	// the log it came from.
	MetaTopic     = "muninn_topic"
	MetaPartition = "muninn_partition"
	MetaOffset    = "muninn_offset"
	// MetaTombstone is "true" on a record with a nil payload (a tombstone),
	// since engines do not all keep nil and empty payloads apart.
	MetaTombstone = "muninn_tombstone"
)

// ErrMalformedMessage is wrapped by the errors of DecodeMessage for a
// message whose metadata cannot be read back into a record.
var ErrMalformedMessage = errors.New("broker: malformed message")

// idNamespace derives stable event IDs for messages whose UUID is not a UUID.
var idNamespace = uuid.MustParse("6d756e69-6e6e-4272-8f6b-65722d696473")

// EncodeRecord turns a record into a watermill message: UUID = event ID,
// payload = record payload, and the record's other fields in the metadata
// under the Meta... keys.
func EncodeRecord(rec eventstore.Record) *message.Message {
	msg := message.NewMessage(rec.ID.String(), rec.Payload)
	md := make(message.Metadata, len(rec.Headers)+11)
	for k, v := range rec.Headers {
		if strings.HasPrefix(k, MetaPrefix) {
			k = MetaHeaderPrefix + k
		}
		md[k] = v
	}
	md[MetaKey] = rec.Key
	md[MetaType] = rec.Type
	md[MetaSchemaVersion] = strconv.Itoa(rec.SchemaVersion)
	md[MetaStreamVersion] = strconv.FormatUint(rec.Version, 10)
	if !rec.Timestamp.IsZero() {
		md[MetaTimestamp] = rec.Timestamp.UTC().Format(time.RFC3339Nano)
	}
	md[MetaCorrelationID] = rec.CorrelationID
	md[MetaCausationID] = rec.CausationID
	md[MetaTopic] = rec.Topic
	md[MetaPartition] = strconv.Itoa(rec.Partition)
	md[MetaOffset] = strconv.FormatInt(rec.Offset, 10)
	if rec.Payload == nil {
		md[MetaTombstone] = "true"
	}
	msg.Metadata = md
	return msg
}

// DecodeMessage reads a watermill message back into a record, the inverse
// of EncodeRecord. It also accepts messages that other watermill publishers
// wrote: missing fields stay zero (SchemaVersion 1), every metadata entry
// without the MetaPrefix becomes a header, and a UUID that does not parse as
// a UUID is mapped to a stable name-based UUID (version 5) so that
// deduplication by event ID still works. A message without a UUID, or with a
// reserved field that does not parse, is refused with an error wrapping
// ErrMalformedMessage. Topic, Partition and Offset are the position in the
// log the record came from, when the message says so.
func DecodeMessage(msg *message.Message) (eventstore.Record, error) {
	var rec eventstore.Record
	if msg.UUID == "" {
		return rec, fmt.Errorf("%w: empty message UUID (the event ID)", ErrMalformedMessage)
	}
	id, err := uuid.Parse(msg.UUID)
	if err != nil {
		id = uuid.NewSHA1(idNamespace, []byte(msg.UUID))
	}
	rec.ID = id
	rec.SchemaVersion = 1
	rec.Payload = msg.Payload
	var errs []error
	bad := func(key, v string, err error) {
		errs = append(errs, fmt.Errorf("%w: metadata %s = %q: %v", ErrMalformedMessage, key, v, err))
	}
	tombstone := false
	for k, v := range msg.Metadata {
		switch {
		case k == MetaKey:
			rec.Key = v
		case k == MetaType:
			rec.Type = v
		case k == MetaSchemaVersion:
			n, err := strconv.Atoi(v)
			if err == nil && n < 1 {
				err = errors.New("must be at least 1")
			}
			if err != nil {
				bad(k, v, err)
				continue
			}
			rec.SchemaVersion = n
		case k == MetaStreamVersion:
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				bad(k, v, err)
				continue
			}
			rec.Version = n
		case k == MetaTimestamp:
			ts, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				bad(k, v, err)
				continue
			}
			rec.Timestamp = ts
		case k == MetaCorrelationID:
			rec.CorrelationID = v
		case k == MetaCausationID:
			rec.CausationID = v
		case k == MetaTopic:
			rec.Topic = v
		case k == MetaPartition:
			n, err := strconv.Atoi(v)
			if err == nil && n < 0 {
				err = errors.New("negative")
			}
			if err != nil {
				bad(k, v, err)
				continue
			}
			rec.Partition = n
		case k == MetaOffset:
			n, err := strconv.ParseInt(v, 10, 64)
			if err == nil && n < 0 {
				err = errors.New("negative")
			}
			if err != nil {
				bad(k, v, err)
				continue
			}
			rec.Offset = n
		case k == MetaTombstone:
			tombstone = v == "true"
		case strings.HasPrefix(k, MetaHeaderPrefix):
			setHeader(&rec, strings.TrimPrefix(k, MetaHeaderPrefix), v)
		default:
			// Other keys, reserved ones this version does not know
			// included, are headers.
			setHeader(&rec, k, v)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return eventstore.Record{}, err
	}
	if tombstone {
		rec.Payload = nil
	} else if rec.Payload == nil {
		rec.Payload = []byte{}
	}
	return rec, nil
}

func setHeader(rec *eventstore.Record, k, v string) {
	if rec.Headers == nil {
		rec.Headers = make(map[string]string)
	}
	rec.Headers[k] = v
}

// SanitizeSubject maps a topic name to one that NATS accepts as both a
// subject and a JetStream stream name: every byte outside [A-Za-z0-9_-]
// (the dot of a Muninn topic name included) becomes '_'.
func SanitizeSubject(topic string) string {
	b := []byte(topic)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	return string(b)
}
