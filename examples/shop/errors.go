package shop

import (
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

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
