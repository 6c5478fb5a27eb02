package shop

import (
	"context"
	"errors"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muninn-es/muninn/eventstore"
)

// waitPosition waits for the revenue stream processor, which is not a
// projection (service.Await waits for those): it parses minPosition ("" waits for nothing) and waits with
// wait, at most timeout. A malformed position is InvalidArgument naming
// min_position; a position not reached in time is FailedPrecondition.
func waitPosition(ctx context.Context, timeout time.Duration, minPosition string, wait func(context.Context, eventstore.Position) error) error {
	if minPosition == "" {
		return nil
	}
	pos, err := eventstore.ParsePosition(minPosition)
	if err != nil {
		return fieldViolation("min_position", err.Error())
	}
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = wait(wctx, pos)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, eventstore.ErrInvalidArgument):
		return fieldViolation("min_position", err.Error())
	case ctx.Err() != nil:
		return status.FromContextError(ctx.Err()).Err()
	case wctx.Err() != nil:
		return status.Error(codes.FailedPrecondition, fmt.Sprintf("min_position %s not reached within %s: %v", minPosition, timeout, err))
	}
	return status.Error(codes.Unavailable, err.Error())
}
