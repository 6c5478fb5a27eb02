package service_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/service"
)

// Status classifies errors however they are wrapped.
func TestStatus(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code codes.Code
	}{
		{nil, codes.OK},
		{status.Error(codes.ResourceExhausted, "slow down"), codes.ResourceExhausted},
		{fmt.Errorf("wrapped: %w", status.Error(codes.NotFound, "gone")), codes.NotFound},
		{fmt.Errorf("in decide: %w", service.FieldError("sku", "is empty")), codes.InvalidArgument},
		{&command.Error{Kind: command.KindInvalidArgument, Err: service.FieldError("sku", "is empty")}, codes.InvalidArgument},
		{fmt.Errorf("x: %w", eventstore.ErrTopicExists), codes.AlreadyExists},
		{fmt.Errorf("x: %w", consume.ErrFailed), codes.Unavailable},
		{fmt.Errorf("x: %w", eventstore.ErrGroupNotFound), codes.NotFound},
		{command.ErrClosed, codes.Unavailable},
		{context.Canceled, codes.Canceled},
		{errors.New("disk on fire"), codes.Internal},
	} {
		if got := service.Status(tc.err).Code(); got != tc.code {
			t.Errorf("Status(%v) = %v, want %v", tc.err, got, tc.code)
		}
	}
	if m := service.Status(errors.New("disk on fire")).Message(); m != "internal error" {
		t.Errorf("Internal message %q", m)
	}
	if !errors.Is(service.FieldError("a", "b"), command.ErrInvalidArgument) ||
		command.KindOf(service.FieldError("a", "b")) != command.KindInvalidArgument {
		t.Error("a field error is not an invalid argument")
	}
}

// A handler names the bad fields; the client gets InvalidArgument with a
// google.rpc.BadRequest (over REST: "field_violations" in the JSON body).
func ExampleFieldError() {
	err := errors.Join(
		service.FieldError("items[0].quantity", "must be positive, got %d", 0),
		service.FieldError("payment_method", "unknown method %q", "cash"),
	)
	st := service.Status(err)
	fmt.Println(st.Code())
	for _, d := range st.Details() {
		for _, v := range d.(*errdetails.BadRequest).GetFieldViolations() {
			fmt.Printf("%s: %s\n", v.GetField(), v.GetDescription())
		}
	}
	// Output:
	// InvalidArgument
	// items[0].quantity: must be positive, got 0
	// payment_method: unknown method "cash"
}
