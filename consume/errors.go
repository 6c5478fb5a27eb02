package consume

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// ErrRunning is returned by Run while another Run (or CatchUp) of the same
// Loop is running. Every runner of the framework (projections, sagas,
// stream apps, the broker's relay and inbound) returns an error wrapping it
// for the same mistake.
var ErrRunning = errors.New("muninn: already running")

// PermanentError marks a handler error that retrying cannot fix (a payload
// that does not decode): the record goes to the ErrorPolicy at once.
type PermanentError struct{ Err error }

// Error returns the wrapped error's message.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent wraps err so that it is not retried. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// IsPermanent reports whether err is, or wraps, a *PermanentError.
func IsPermanent(err error) bool {
	var p *PermanentError
	return errors.As(err, &p)
}

// HandlerError reports a record whose handler failed after every attempt.
// Run returns it under the Stop policy; a parked or dead-lettered record
// carries its text.
type HandlerError struct {
	// Consumer is the loop's name.
	Consumer string
	// Topic, Partition and Offset are the record's position; Topic is empty
	// for work that a source made itself (a saga's deadline).
	Topic     string
	Partition int
	Offset    int64
	// Key and EventType are the record's key and type, EventID its event
	// ID: what names a record that has no position in the store, such as a
	// message the broker's inbound consumer received.
	Key       string
	EventType string
	EventID   uuid.UUID
	// Attempts is how many times the handler ran on the record.
	Attempts int
	// Err is the handler's last error.
	Err error
}

// Error names the consumer, the record and the handler's error.
func (e *HandlerError) Error() string {
	where := fmt.Sprintf("%s/%d@%d", e.Topic, e.Partition, e.Offset)
	if e.Topic == "" {
		where = fmt.Sprintf("%q of %q", e.EventType, e.Key)
	} else if e.EventType != "" {
		where += " (" + e.EventType + ")"
	}
	return fmt.Sprintf("%s: handler failed on %s after %d attempt(s): %v", e.Consumer, where, e.Attempts, e.Err)
}

// Unwrap returns the handler's error.
func (e *HandlerError) Unwrap() error { return e.Err }
