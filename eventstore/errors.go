package eventstore

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers branch on them with errors.Is; the errors the store
// returns wrap them with the topic, key or field that was wrong.
var (
	// ErrClosed is returned by every call made after Close, and ends reads and
	// subscriptions that are running when the store closes.
	ErrClosed = errors.New("eventstore: store closed")
	// ErrLocked is returned by Open when another process (or another Store in
	// this process) has the directory open.
	ErrLocked = errors.New("eventstore: directory in use by another store")
	// ErrTopicNotFound is returned for operations on a topic that was never
	// created.
	ErrTopicNotFound = errors.New("eventstore: topic not found")
	// ErrTopicExists is returned by CreateTopic when the name is taken.
	ErrTopicExists = errors.New("eventstore: topic already exists")
	// ErrInvalidArgument is wrapped by every error that reports bad input: a
	// bad name or configuration, an empty key, an oversized event, an
	// out-of-range partition. It is the one such error of the whole
	// framework: the packages above the log wrap it too, so that
	// errors.Is(err, eventstore.ErrInvalidArgument) recognizes bad input
	// wherever it was found.
	ErrInvalidArgument = errors.New("muninn: invalid argument")
	// ErrCorrupt is matched by every error about damaged data: a
	// *CorruptFileError (a table, log or manifest that does not verify), a
	// *CorruptRecordError, damaged metadata, and the refusal of writes by a
	// store that has found damage. See the package documentation on damaged
	// data.
	ErrCorrupt = errors.New("eventstore: corrupt data")
	// ErrNotAssigned is returned when a consumer commits an offset for a
	// partition that the group no longer assigns to it (after a rebalance).
	ErrNotAssigned = errors.New("eventstore: partition not assigned to this consumer")
	// ErrConsumerClosed is returned by Poll on a consumer that has left its
	// group.
	ErrConsumerClosed = errors.New("eventstore: consumer closed")
	// ErrGroupNotFound is returned by DescribeGroup for a group that has no
	// members and no committed offsets.
	ErrGroupNotFound = errors.New("eventstore: consumer group not found")
	// ErrTopicInUse is returned by DeleteTopic for a topic that consumer
	// group members subscribe to.
	ErrTopicInUse = errors.New("eventstore: topic in use")
	// ErrStoreFailed is wrapped by every write after the store hit an I/O error
	// it cannot recover from (a failed WAL sync; reopen the store), and by
	// every call after the storage engine failed (restart the process).
	ErrStoreFailed = errors.New("eventstore: store failed")
)

// ErrVersionConflict is matched (with errors.Is) by every *VersionConflictError.
var ErrVersionConflict = errors.New("eventstore: version conflict")

// VersionConflictError reports that an append's expected version did not
// match the stream's head. Nothing of the append was written.
type VersionConflictError struct {
	Topic    string
	Key      string
	Expected ExpectedVersion
	// Actual is the stream's head version at the time of the check; 0 means
	// the stream does not exist.
	Actual uint64
}

// Error describes the conflict with the topic, key and both versions.
func (e *VersionConflictError) Error() string {
	return fmt.Sprintf("eventstore: version conflict on %s/%q: expected %s, stream is at version %d",
		e.Topic, e.Key, e.Expected, e.Actual)
}

// Is makes errors.Is(err, ErrVersionConflict) true.
func (e *VersionConflictError) Is(target error) bool { return target == ErrVersionConflict }

// CorruptRecordError reports a stored record whose checksum or framing does
// not verify. The record is never returned as data.
type CorruptRecordError struct {
	Topic     string
	Partition int
	Offset    int64
	// Reason says what failed to verify.
	Reason string
}

// Error names the record's position and what failed to verify.
func (e *CorruptRecordError) Error() string {
	return fmt.Sprintf("eventstore: corrupt record at %s/%d@%d: %s", e.Topic, e.Partition, e.Offset, e.Reason)
}

// Is makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptRecordError) Is(target error) bool { return target == ErrCorrupt }

// invalid returns an error wrapping ErrInvalidArgument that names the field.
func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidArgument, field, fmt.Sprintf(format, args...))
}
