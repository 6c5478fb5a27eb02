package shop

import (
	"context"
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/examples/shop/order"
)

// grpcError returns err as a gRPC status error: a status error as it is,
// else by command.KindOf, with a google.rpc.BadRequest field violation
// when err wraps an *order.FieldError. The service package's interceptor
// does the same for every handler; the shop's handlers do it themselves so
// that they can be served by a plain grpc.Server too.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var fe *order.FieldError
	if errors.As(err, &fe) {
		return fieldViolation(fe.Field, err.Error())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	code := codes.Internal
	switch command.KindOf(err) {
	case command.KindInvalidArgument:
		code = codes.InvalidArgument
	case command.KindFailedPrecondition:
		code = codes.FailedPrecondition
	case command.KindNotFound:
		code = codes.NotFound
	case command.KindAborted:
		code = codes.Aborted
	case command.KindPermissionDenied:
		code = codes.PermissionDenied
	case command.KindCanceled:
		code = codes.Canceled
	case command.KindDeadlineExceeded:
		code = codes.DeadlineExceeded
	case command.KindUnavailable:
		code = codes.Unavailable
	}
	if code == codes.Internal && errors.Is(err, eventstore.ErrInvalidArgument) {
		code = codes.InvalidArgument
	}
	return status.Error(code, err.Error())
}

// fieldViolation returns an InvalidArgument status error with a
// google.rpc.BadRequest naming field.
func fieldViolation(field, msg string) error {
	st := status.New(codes.InvalidArgument, msg)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{
		{Field: field, Description: msg},
	}}); err == nil {
		st = d
	}
	return st.Err()
}
