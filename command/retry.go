package command

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff waits before retry number attempt (from 1): a random duration in
// [0, min(MaxDelay, BaseDelay·2^(attempt-1))], or until ctx ends.
func backoff(ctx context.Context, p RetryPolicy, attempt int) error {
	d := p.BaseDelay
	for i := 1; i < attempt && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(rand.N(d + 1))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
