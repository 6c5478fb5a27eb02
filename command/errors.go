package command

import (
	"context"
	"errors"
	"fmt"

	"github.com/muninn-es/muninn/eventstore"
)

// Kind classifies an error of the command path, so that transports map it
// without matching strings: each Kind names the gRPC status code it maps to.
type Kind int

// The kinds of error. The zero Kind is KindInternal.
const (
	// KindInternal is a failure of the system (storage, a bug, a panic in
	// user code, an undecodable stored event): gRPC Internal.
	KindInternal Kind = iota
	// KindInvalidArgument is a malformed command, refused before it reached
	// the aggregate's rules: gRPC InvalidArgument.
	KindInvalidArgument
	// KindFailedPrecondition is a command the aggregate's rules reject in
	// its current state: gRPC FailedPrecondition.
	KindFailedPrecondition
	// KindNotFound is a command for an aggregate that does not exist (when
	// it must): gRPC NotFound.
	KindNotFound
	// KindAborted is a version conflict that outlived the retries: gRPC
	// Aborted. The client may retry.
	KindAborted
	// KindPermissionDenied is a command an authorisation hook refused: gRPC
	// PermissionDenied.
	KindPermissionDenied
	// KindCanceled is a dispatch whose context was cancelled: gRPC Canceled.
	KindCanceled
	// KindDeadlineExceeded is a dispatch whose context's deadline passed:
	// gRPC DeadlineExceeded.
	KindDeadlineExceeded
	// KindUnavailable is a store that is closed or failed: gRPC Unavailable.
	KindUnavailable
	// KindOK is no error at all: what KindOf(nil) returns, gRPC OK.
	KindOK
)

var kindNames = [...]string{
	KindInternal:           "internal",
	KindInvalidArgument:    "invalid argument",
	KindFailedPrecondition: "failed precondition",
	KindNotFound:           "not found",
	KindAborted:            "aborted",
	KindPermissionDenied:   "permission denied",
	KindCanceled:           "canceled",
	KindDeadlineExceeded:   "deadline exceeded",
	KindUnavailable:        "unavailable",
	KindOK:                 "ok",
}

// String returns the kind's name, such as "failed precondition".
func (k Kind) String() string {
	if k >= 0 && int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// MarshalText returns the kind's name, so that a Kind reads as
// "failed precondition" in JSON.
func (k Kind) MarshalText() ([]byte, error) {
	if k < 0 || int(k) >= len(kindNames) {
		return nil, fmt.Errorf("command: cannot marshal unknown kind %d", int(k))
	}
	return []byte(kindNames[k]), nil
}

// UnmarshalText parses a kind's name, as MarshalText writes it.
func (k *Kind) UnmarshalText(b []byte) error {
	for i, n := range kindNames {
		if n == string(b) {
			*k = Kind(i)
			return nil
		}
	}
	return fmt.Errorf("%w: command kind: unknown name %q", eventstore.ErrInvalidArgument, b)
}

// Sentinels, one per kind a caller commonly branches on. An *Error matches
// the sentinel of its kind with errors.Is.
var (
	// ErrInvalidArgument is the framework's one bad-input error,
	// eventstore.ErrInvalidArgument: a command refused as malformed matches
	// it, as does every other invalid argument.
	ErrInvalidArgument  = eventstore.ErrInvalidArgument
	ErrRejected         = errors.New("command: rejected by the aggregate's rules")
	ErrNotFound         = errors.New("command: aggregate not found")
	ErrConflict         = errors.New("command: version conflict")
	ErrPermissionDenied = errors.New("command: permission denied")
	ErrInternal         = errors.New("command: internal error")
	ErrUnavailable      = errors.New("command: unavailable")
	// ErrClosed is returned by Dispatch after the bus was closed.
	ErrClosed = errors.New("command: bus closed")
)

func (k Kind) sentinel() error {
	switch k {
	case KindInvalidArgument:
		return ErrInvalidArgument
	case KindFailedPrecondition:
		return ErrRejected
	case KindNotFound:
		return ErrNotFound
	case KindAborted:
		return ErrConflict
	case KindPermissionDenied:
		return ErrPermissionDenied
	case KindCanceled:
		return context.Canceled
	case KindDeadlineExceeded:
		return context.DeadlineExceeded
	case KindUnavailable:
		return ErrUnavailable
	default:
		return ErrInternal
	}
}

// Error is a classified error of the command path. Decide functions return
// one (through Invalid, Rejected or NotFound) to say how a command fails;
// the bus wraps everything it returns in one.
type Error struct {
	// Kind classifies the error.
	Kind Kind
	// Command is the command's type name and ID, and Aggregate the
	// aggregate type and ID, when known.
	Command, Aggregate string
	// Msg says what was wrong, for a person.
	Msg string
	// Err is the underlying error, if any.
	Err error
}

// Error returns the message with the kind, command and aggregate.
func (e *Error) Error() string {
	s := "command"
	if e.Command != "" {
		s += " " + e.Command
	}
	if e.Aggregate != "" {
		s += " on " + e.Aggregate
	}
	s += ": " + e.Kind.String()
	if e.Msg != "" {
		s += ": " + e.Msg
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is matches the sentinel of the error's kind.
func (e *Error) Is(target error) bool { return target == e.Kind.sentinel() }

// Invalid returns an error of KindInvalidArgument: the command is malformed.
func Invalid(format string, args ...any) error {
	return &Error{Kind: KindInvalidArgument, Msg: fmt.Sprintf(format, args...)}
}

// Rejected returns an error of KindFailedPrecondition: the aggregate's
// rules refuse the command in its current state. A Decide error that is not
// classified counts as Rejected too.
func Rejected(format string, args ...any) error {
	return &Error{Kind: KindFailedPrecondition, Msg: fmt.Sprintf(format, args...)}
}

// NotFound returns an error of KindNotFound: the command needs an aggregate
// that does not exist.
func NotFound(format string, args ...any) error {
	return &Error{Kind: KindNotFound, Msg: fmt.Sprintf(format, args...)}
}

// Denied returns an error of KindPermissionDenied, for authorisation hooks.
func Denied(format string, args ...any) error {
	return &Error{Kind: KindPermissionDenied, Msg: fmt.Sprintf(format, args...)}
}

// KindOf classifies any error: the Kind of the outermost *Error in its
// chain, else by the store's and the context's sentinels (a version
// conflict is KindAborted, a store's invalid argument KindInvalidArgument,
// a closed store KindUnavailable, a missing topic or consumer group
// KindNotFound, ...). Nil is KindOK; unknown errors are
// KindInternal.
func KindOf(err error) Kind {
	var ce *Error
	switch {
	case err == nil:
		return KindOK
	case errors.As(err, &ce):
		return ce.Kind
	case errors.Is(err, context.Canceled):
		return KindCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return KindDeadlineExceeded
	case errors.Is(err, eventstore.ErrVersionConflict):
		return KindAborted
	case errors.Is(err, eventstore.ErrInvalidArgument):
		return KindInvalidArgument
	case errors.Is(err, eventstore.ErrTopicNotFound), errors.Is(err, eventstore.ErrGroupNotFound):
		return KindNotFound
	case errors.Is(err, eventstore.ErrClosed), errors.Is(err, eventstore.ErrStoreFailed), errors.Is(err, ErrClosed):
		return KindUnavailable
	default:
		return KindInternal
	}
}

// classify wraps err in an *Error of its kind (def if it has none of its
// own) naming the command and aggregate, unless it already is one.
func classify(err error, def Kind, cmd *Command) error {
	if err == nil {
		return nil
	}
	if ce, ok := err.(*Error); ok {
		if ce.Command != "" || ce.Aggregate != "" || cmd == nil {
			return err
		}
		cp := *ce
		cp.Command, cp.Aggregate = cmd.describe(), cmd.describeAggregate()
		return &cp
	}
	k := KindOf(err)
	var ce *Error
	if k == KindInternal && !errors.As(err, &ce) {
		k = def
	}
	e := &Error{Kind: k, Err: err}
	if cmd != nil {
		e.Command, e.Aggregate = cmd.describe(), cmd.describeAggregate()
	}
	return e
}
