package aggregate

import (
	"errors"
	"fmt"

	"github.com/muninn-es/muninn/eventstore"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrUnknownEventType is wrapped when an event's type name (on read) or
	// Go type (on write) is not registered.
	ErrUnknownEventType = errors.New("aggregate: unknown event type")
	// ErrUndecodable is wrapped when a stored payload cannot be decoded.
	ErrUndecodable = errors.New("aggregate: undecodable event")
	// ErrUpcast is wrapped when an old schema version cannot be upcast to
	// the current one.
	ErrUpcast = errors.New("aggregate: upcast failed")
	// ErrInvalidArgument is wrapped by errors about bad input: an empty or
	// overlong aggregate ID, a bad option. It is the framework's one
	// bad-input error, eventstore.ErrInvalidArgument.
	ErrInvalidArgument = eventstore.ErrInvalidArgument
)

// DecodeError reports a stored event that could not be turned back into a
// Go value. It names where the event is and what it claims to be.
type DecodeError struct {
	// Topic is the topic of the record.
	Topic string
	// Stream is the aggregate ID (the record's key).
	Stream string
	// Version is the event's version in its stream; Offset its position in
	// the partition.
	Version uint64
	Offset  int64
	// Type and SchemaVersion are as stored.
	Type          string
	SchemaVersion int
	// Err says what went wrong.
	Err   error
	cause error
}

// Error names the stream, version and type, and the cause.
func (e *DecodeError) Error() string {
	return fmt.Sprintf("%v: topic %q stream %q version %d (offset %d) type %q schema v%d: %v",
		e.cause, e.Topic, e.Stream, e.Version, e.Offset, e.Type, e.SchemaVersion, e.Err)
}

// Unwrap returns the sentinel (ErrUnknownEventType, ErrUndecodable or
// ErrUpcast) and the underlying error.
func (e *DecodeError) Unwrap() []error { return []error{e.cause, e.Err} }

// ErrPanic is wrapped by the error a Decide, Evolve or upcaster panic is
// turned into.
var ErrPanic = errors.New("aggregate: panic in user code")
