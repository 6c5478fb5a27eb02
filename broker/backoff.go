package broker

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Clock is the source of time of the relay and the inbound consumer:
// timestamps of deduplication marks, and the waits between retries. The
// default is the system clock; tests inject their own, or run under
// testing/synctest.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time                         { return time.Now() }
func (systemClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// SystemClock returns the clock of the operating system.
func SystemClock() Clock { return systemClock{} }

// Backoff is a jittered, capped exponential backoff: the n-th wait (from 0)
// is Initial*Multiplier^n, at most Max, and then shortened at random by up to
// Jitter of itself, so that many clients do not retry in step.
type Backoff struct {
	// Initial is the first wait. Default 100 ms.
	Initial time.Duration
	// Max caps every wait. Default 10 s.
	Max time.Duration
	// Multiplier grows the wait after each failure. Default 2; at least 1.
	Multiplier float64
	// Jitter is the fraction of a wait, in [0, 1], that is taken off at
	// random. Default 0.2.
	Jitter float64
}

// DefaultBackoff is the backoff used when none is configured.
var DefaultBackoff = Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2, Jitter: 0.2}

func (b Backoff) withDefaults() Backoff {
	if b == (Backoff{}) {
		return DefaultBackoff
	}
	if b.Initial == 0 {
		b.Initial = DefaultBackoff.Initial
	}
	if b.Max == 0 {
		b.Max = max(DefaultBackoff.Max, b.Initial)
	}
	if b.Multiplier == 0 {
		b.Multiplier = DefaultBackoff.Multiplier
	}
	return b
}

// Validate reports every problem with b at once.
func (b Backoff) Validate() error {
	var errs []error
	if b.Initial < 0 {
		errs = append(errs, errors.New("Backoff.Initial is negative"))
	}
	if b.Max < 0 {
		errs = append(errs, errors.New("Backoff.Max is negative"))
	}
	if b.Max > 0 && b.Initial > b.Max {
		errs = append(errs, errors.New("Backoff.Initial is larger than Backoff.Max"))
	}
	if b.Multiplier != 0 && b.Multiplier < 1 {
		errs = append(errs, errors.New("Backoff.Multiplier is below 1"))
	}
	if b.Jitter < 0 || b.Jitter > 1 {
		errs = append(errs, errors.New("Backoff.Jitter is outside [0, 1]"))
	}
	return errors.Join(errs...)
}

// Delay returns the wait after the attempt-th consecutive failure (from 0).
func (b Backoff) Delay(attempt int) time.Duration {
	b = b.withDefaults()
	d := float64(b.Initial)
	for range attempt {
		d *= b.Multiplier
		if d >= float64(b.Max) {
			break
		}
	}
	d = min(d, float64(b.Max))
	if b.Jitter > 0 {
		d -= d * b.Jitter * rand.Float64()
	}
	return time.Duration(d)
}

// sleep waits for d on clock, or until ctx ends (then it returns ctx's error).
func sleep(ctx context.Context, clock Clock, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-clock.After(d):
		return nil
	}
}
