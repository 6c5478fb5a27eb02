package shop

import (
	"errors"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muninn-es/muninn/examples/shop/order"
	"github.com/muninn-es/muninn/service"
)

// grpcError returns err as a gRPC status error, as the service package's
// interceptor would send it (service.Status), with a google.rpc.BadRequest
// field violation when err wraps an *order.FieldError. The service's
// interceptor does the same for every handler; the shop's handlers do it
// themselves so that they can be served by a plain grpc.Server too.
func grpcError(err error) error {
	if err == nil {
		return nil
	}
	var fe *order.FieldError
	if _, ok := status.FromError(err); !ok && errors.As(err, &fe) {
		return fieldViolation(fe.Field, err.Error())
	}
	return service.Status(err).Err()
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
