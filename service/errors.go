package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
)

// FieldViolation is a bad-input error that names the request field at
// fault. FieldError makes one; errors.Join several to report every bad
// field at once. It matches command.ErrInvalidArgument, so command.KindOf
// classifies it as KindInvalidArgument, and the server turns it into gRPC
// InvalidArgument with a google.rpc.BadRequest field violation (HTTP 400
// with "field_violations" in the JSON body).
type FieldViolation struct {
	// Field is the request field's path, such as "items[2].quantity".
	Field string
	// Description says what is wrong with it, for a person.
	Description string
}

// FieldError returns a *FieldViolation of field whose description is
// formatted from format and args.
func FieldError(field, format string, args ...any) error {
	return &FieldViolation{Field: field, Description: fmt.Sprintf(format, args...)}
}

// Error returns "field: description".
func (e *FieldViolation) Error() string { return e.Field + ": " + e.Description }

// Is matches command.ErrInvalidArgument (eventstore.ErrInvalidArgument).
func (e *FieldViolation) Is(target error) bool { return target == eventstore.ErrInvalidArgument }

// fieldViolations collects every *FieldViolation in err's tree, following
// both Unwrap() error and Unwrap() []error (errors.Join).
func fieldViolations(err error) []*FieldViolation {
	var out []*FieldViolation
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
			return
		case *FieldViolation:
			out = append(out, e)
			return
		case interface{ Unwrap() []error }:
			for _, x := range e.Unwrap() {
				walk(x)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return out
}

// Status returns the gRPC status of err, as the server's interceptors send
// it:
//
//   - nil is OK, and an error that carries a status (status.Error, or one
//     wrapping it) keeps it;
//   - a *FieldViolation anywhere in err (errors.Join several) is
//     InvalidArgument with a google.rpc.BadRequest naming each field;
//   - a *NotReachedError (Await) is FailedPrecondition with a
//     google.rpc.PreconditionFailure naming the position;
//   - otherwise command.KindOf decides: InvalidArgument, FailedPrecondition,
//     NotFound, Aborted (version conflict), PermissionDenied, Canceled,
//     DeadlineExceeded, Unavailable; eventstore.ErrTopicExists is
//     AlreadyExists and a failed consumer (consume.ErrFailed) Unavailable;
//   - anything else is Internal, with the message "internal error": the
//     detail stays in the server's log (see the interceptors), not in
//     the client's hands.
func Status(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	var se interface{ GRPCStatus() *status.Status }
	if errors.As(err, &se) {
		if s := se.GRPCStatus(); s != nil && s.Code() != codes.Unknown {
			return s
		}
	}
	if fv := fieldViolations(err); len(fv) > 0 {
		br := &errdetails.BadRequest{}
		for _, v := range fv {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field: v.Field, Description: v.Description,
			})
		}
		return withDetails(codes.InvalidArgument, err.Error(), br)
	}
	var nr *NotReachedError
	if errors.As(err, &nr) {
		pf := &errdetails.PreconditionFailure{}
		for _, p := range nr.Positions {
			pf.Violations = append(pf.Violations, &errdetails.PreconditionFailure_Violation{
				Type: "min_position", Subject: p.String(), Description: "not reached by " + nr.Projection,
			})
		}
		return withDetails(codes.FailedPrecondition, nr.Error(), pf)
	}
	switch k := command.KindOf(err); k {
	case command.KindInternal:
		switch {
		case errors.Is(err, eventstore.ErrTopicExists):
			return status.New(codes.AlreadyExists, err.Error())
		case errors.Is(err, consume.ErrFailed):
			return status.New(codes.Unavailable, err.Error())
		}
		return status.New(codes.Internal, internalMessage)
	case command.KindOK:
		return status.New(codes.OK, "")
	default:
		return status.New(kindCodes[k], err.Error())
	}
}

// internalMessage is all a client learns of an Internal error.
const internalMessage = "internal error"

var kindCodes = map[command.Kind]codes.Code{
	command.KindInvalidArgument:    codes.InvalidArgument,
	command.KindFailedPrecondition: codes.FailedPrecondition,
	command.KindNotFound:           codes.NotFound,
	command.KindAborted:            codes.Aborted,
	command.KindPermissionDenied:   codes.PermissionDenied,
	command.KindCanceled:           codes.Canceled,
	command.KindDeadlineExceeded:   codes.DeadlineExceeded,
	command.KindUnavailable:        codes.Unavailable,
}

func withDetails(c codes.Code, msg string, details ...protoadapt.MessageV1) *status.Status {
	s := status.New(c, msg)
	for _, d := range details {
		if ds, err := s.WithDetails(d); err == nil {
			s = ds
		}
	}
	return s
}

// toStatusError maps a handler's error for the client, logging the errors
// whose detail the client does not see (Internal) with the method's name.
func toStatusError(ctx context.Context, log *slog.Logger, method string, err error) error {
	if err == nil {
		return nil
	}
	s := Status(err)
	if s.Code() == codes.Internal && s.Message() == internalMessage {
		log.ErrorContext(ctx, "service: internal error", "method", method, "error", err)
	}
	return s.Err()
}

// describeCode returns the canonical upper-case name of c, such as
// "INVALID_ARGUMENT", as the JSON error body carries it.
func describeCode(c codes.Code) string {
	switch c {
	case codes.OK:
		return "OK"
	case codes.Canceled:
		return "CANCELLED"
	}
	var b strings.Builder
	for i, r := range c.String() {
		if i > 0 && 'A' <= r && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}
