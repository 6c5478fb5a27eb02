package stream

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
)

// Keys and values of streams, tables and stores are encoded with
// codec.Codec: codec.String, codec.Bytes, codec.Int64 (counts are stored
// with it), codec.JSON (the default where a step changes a key or value
// type without naming a codec), codec.Proto, codec.Funcs, and Events for
// an aggregate's events. The App uses a codec's Appender and StringDecoder
// abilities where present to save allocations.

// recordDecoder is the optional ability of a value codec to decode a
// source record's payload knowing the whole record (its event type and
// schema version), as Events does.
type recordDecoder[T any] interface {
	DecodeRecord(rec eventstore.Record) (T, error)
}

// decodeValue decodes the value of a record read from a user's topic: with
// the codec's DecodeRecord if it has one, else from the payload alone.
func decodeValue[T any](c codec.Codec[T], rec *eventstore.Record) (T, error) {
	if d, ok := c.(recordDecoder[T]); ok {
		return d.DecodeRecord(*rec)
	}
	return c.Decode(rec.Payload)
}

// Events returns the value codec of an aggregate's events: it decodes
// them through the aggregate's registry (aggregate.Events), as the
// aggregate does, so that a stream sees every event at its current schema
// version, whatever version it was stored at.
//
// Read by Source or SourceTable from a topic an aggregate writes, a
// record is decoded by its event type and schema version: upcast,
// following renames, and decoded with the registry's format. A record the
// registry cannot read (an unregistered type, a newer schema version)
// does not decode, and stops the App or is skipped (SkipBadRecords).
//
// Where the App keeps an event itself (a repartition topic, a state store,
// a sink's topic), it encodes it self-describing: its type name, schema
// version and payload together, so that it decodes back (and is upcast,
// if the registry has moved on since) from the bytes alone. Source with
// Events reads such records back too. A nil registry is an error when the
// topology is built.
func Events[E any](events *aggregate.Events[E]) codec.Codec[E] {
	c := eventsCodec[E]{reg: events, reads: map[string]bool{}}
	if events != nil {
		for _, n := range append(events.Names(), events.Renamed()...) {
			c.reads[n] = true
		}
	}
	return c
}

type eventsCodec[E any] struct {
	reg *aggregate.Events[E]
	// reads are the record types the registry reads.
	reads map[string]bool
}

// envelopeMagic starts a self-describing event: no JSON text and no
// Protobuf message starts with a zero byte (field number 0 is invalid).
const envelopeMagic = 0x00

// Check reports a nil registry.
func (c eventsCodec[E]) Check() error {
	if c.reg == nil {
		return errors.New("stream.Events: the event registry is nil")
	}
	return nil
}

// Encode encodes e self-describing: a zero byte, the schema version and
// the type name's length as uvarints, the type name, then the payload in
// the registry's format.
func (c eventsCodec[E]) Encode(e E) ([]byte, error) { return c.AppendEncode(nil, e) }

// AppendEncode appends what Encode returns to dst.
func (c eventsCodec[E]) AppendEncode(dst []byte, e E) ([]byte, error) {
	if err := c.Check(); err != nil {
		return dst, err
	}
	ev, err := c.reg.Encode(e)
	if err != nil {
		return dst, err
	}
	dst = append(dst, envelopeMagic)
	dst = binary.AppendUvarint(dst, uint64(ev.SchemaVersion))
	dst = binary.AppendUvarint(dst, uint64(len(ev.Type)))
	dst = append(dst, ev.Type...)
	return append(dst, ev.Payload...), nil
}

// Decode decodes what Encode wrote, upcasting it to the current schema
// version of its type.
func (c eventsCodec[E]) Decode(b []byte) (E, error) {
	var zero E
	if err := c.Check(); err != nil {
		return zero, err
	}
	rec, err := openEnvelope(b)
	if err != nil {
		return zero, err
	}
	return c.reg.Decode(rec)
}

// DecodeRecord decodes a source record: by its type and schema version if
// the registry reads its type, else as an event the App encoded.
func (c eventsCodec[E]) DecodeRecord(rec eventstore.Record) (E, error) {
	var zero E
	if err := c.Check(); err != nil {
		return zero, err
	}
	if !c.reads[rec.Type] && len(rec.Payload) > 0 && rec.Payload[0] == envelopeMagic {
		return c.Decode(rec.Payload)
	}
	return c.reg.Decode(rec)
}

// openEnvelope parses a self-describing event into the record it stands
// for.
func openEnvelope(b []byte) (eventstore.Record, error) {
	bad := func(what string) (eventstore.Record, error) {
		return eventstore.Record{}, fmt.Errorf("stream: encoded event: %s", what)
	}
	if len(b) == 0 || b[0] != envelopeMagic {
		return bad("no envelope marker")
	}
	b = b[1:]
	version, n := binary.Uvarint(b)
	if n <= 0 || version < 1 || version > 1<<31 {
		return bad("bad schema version")
	}
	b = b[n:]
	size, n := binary.Uvarint(b)
	if n <= 0 || size == 0 || size > uint64(len(b)-n) {
		return bad("bad type name length")
	}
	b = b[n:]
	typ, payload := string(b[:size]), b[size:]
	if payload == nil {
		payload = []byte{}
	}
	return eventstore.Record{Type: typ, SchemaVersion: int(version), Payload: payload}, nil
}

// checkCodecs reports what is wrong with a key and a value codec, each
// named.
func checkCodecs[K, V any](key codec.Codec[K], value codec.Codec[V]) error {
	var errs []error
	if err := codec.Check(key); err != nil {
		errs = append(errs, fmt.Errorf("key: %w", err))
	}
	if err := codec.Check(value); err != nil {
		errs = append(errs, fmt.Errorf("value: %w", err))
	}
	return errors.Join(errs...)
}
