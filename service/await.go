package service

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/projection"
)

// DefaultAwaitTimeout is how long Await waits when the call's context
// carries no timeout of the server's (WithAwaitTimeout).
const DefaultAwaitTimeout = 5 * time.Second

// MinPositionField is the request field Await's errors name.
const MinPositionField = "min_position"

type awaitKey struct{}

// withAwaitTimeout returns ctx carrying d as Await's bound.
func withAwaitTimeout(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, awaitKey{}, d)
}

func awaitTimeout(ctx context.Context) time.Duration {
	if d, ok := ctx.Value(awaitKey{}).(time.Duration); ok && d > 0 {
		return d
	}
	return DefaultAwaitTimeout
}

// NotReachedError is Await's error when the read model did not reach the
// positions asked within the bound: the client sees FailedPrecondition
// (HTTP 412) with this message, not a stale answer.
type NotReachedError struct {
	// Projection is the read model's name.
	Projection string
	// Positions are the positions asked that were not reached.
	Positions []eventstore.Position
	// Reached are the last positions applied on the same partitions
	// (Offset -1: none yet), in the order of Positions.
	Reached []eventstore.Position
	// Timeout is the bound that passed.
	Timeout time.Duration
}

// Error names the positions asked and those reached.
func (e *NotReachedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "read model %s did not reach %s %s within %v", e.Projection, MinPositionField,
		joinPositions(e.Positions), e.Timeout)
	for i, r := range e.Reached {
		if i == 0 {
			b.WriteString(": it is at ")
		} else {
			b.WriteString(", ")
		}
		if r.Offset < 0 {
			fmt.Fprintf(&b, "%s/%d (nothing applied)", r.Topic, r.Partition)
		} else {
			b.WriteString(r.String())
		}
	}
	return b.String()
}

// Is matches consume.ErrNotReached.
func (e *NotReachedError) Is(target error) bool { return target == consume.ErrNotReached }

func joinPositions(ps []eventstore.Position) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// ParsePositions parses min_position values: each is a position
// ("topic/partition@offset", as the Muninn-Position header carries it) or
// several separated by commas; empty values and parts are skipped. The
// error is a *FieldViolation of MinPositionField.
func ParsePositions(values ...string) ([]eventstore.Position, error) {
	var out []eventstore.Position
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			p, err := eventstore.ParsePosition(part)
			if err != nil {
				return nil, FieldError(MinPositionField, "%q is not a position (topic/partition@offset): %v", part, err)
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// Await returns once projection p has applied every position of
// minPosition (see ParsePositions: "" asks for nothing, and returns at
// once), for a query that reads its writes. It waits at most the server's
// await timeout (WithAwaitTimeout, carried in ctx by the interceptors;
// DefaultAwaitTimeout without one), and then fails with a
// *NotReachedError naming the positions asked and those reached, which the
// client sees as FailedPrecondition (HTTP 412). A malformed position, or
// one outside p's topics, is InvalidArgument naming min_position; a failed
// projection is Unavailable; when ctx ends first, its error.
func Await(ctx context.Context, p *projection.Projection, minPosition ...string) error {
	ps, err := ParsePositions(minPosition...)
	if err != nil || len(ps) == 0 {
		return err
	}
	d := awaitTimeout(ctx)
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err = p.WaitFor(wctx, ps...)
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, eventstore.ErrInvalidArgument):
		return FieldError(MinPositionField, "%v", err)
	case !errors.Is(err, consume.ErrNotReached):
		return err
	}
	nr := &NotReachedError{Projection: p.Name(), Timeout: d}
	st, serr := p.Status(ctx)
	for _, want := range ps {
		reached := eventstore.Position{Topic: want.Topic, Partition: want.Partition, Offset: -1}
		if serr == nil {
			for _, ps := range st.Partitions {
				if ps.Topic == want.Topic && ps.Partition == want.Partition {
					reached.Offset = ps.Position - 1
				}
			}
		}
		if reached.Offset >= want.Offset {
			continue
		}
		nr.Positions = append(nr.Positions, want)
		nr.Reached = append(nr.Reached, reached)
	}
	if len(nr.Positions) == 0 && serr == nil {
		return nil // reached just as the bound passed
	}
	if len(nr.Positions) == 0 {
		nr.Positions = ps
	}
	return nr
}
