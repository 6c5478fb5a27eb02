package clock

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Backoff is a capped exponential back-off with jitter, the one every
// retry in Muninn uses: the wait before retry n (from 1) is
// Initial·Multiplier^(n-1), at most Max, then shortened at random by up to
// Jitter of itself so that many clients do not retry in step. Fields left
// zero take DefaultBackoff's value.
type Backoff struct {
	// Initial is the wait before the first retry. Default 100 ms.
	Initial time.Duration
	// Max caps every wait. Default 10 s (or Initial, if that is larger).
	Max time.Duration
	// Multiplier grows the wait after each failure. Default 2; at least 1.
	Multiplier float64
	// Jitter is the fraction of a wait, in [0, 1], taken off at random.
	// Default 0 (no jitter) unless the whole Backoff is zero, which means
	// DefaultBackoff.
	Jitter float64
}

// DefaultBackoff is the back-off of every retry that names none.
var DefaultBackoff = Backoff{Initial: 100 * time.Millisecond, Max: 10 * time.Second, Multiplier: 2, Jitter: 0.2}

// Constant returns a back-off that waits d before every retry, without
// jitter.
func Constant(d time.Duration) Backoff {
	return Backoff{Initial: d, Max: d, Multiplier: 1}
}

// WithDefaults returns b with its zero fields set from DefaultBackoff (all
// of DefaultBackoff, jitter included, if b is the zero Backoff).
func (b Backoff) WithDefaults() Backoff {
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

// Validate reports every problem with b at once, each naming its field.
func (b Backoff) Validate() error {
	var errs []error
	if b.Initial < 0 {
		errs = append(errs, fmt.Errorf("Backoff.Initial is negative (%s)", b.Initial))
	}
	if b.Max < 0 {
		errs = append(errs, fmt.Errorf("Backoff.Max is negative (%s)", b.Max))
	}
	if b.Max > 0 && b.Initial > b.Max {
		errs = append(errs, fmt.Errorf("Backoff.Initial (%s) is larger than Backoff.Max (%s)", b.Initial, b.Max))
	}
	if b.Multiplier != 0 && b.Multiplier < 1 {
		errs = append(errs, fmt.Errorf("Backoff.Multiplier is below 1 (%g)", b.Multiplier))
	}
	if b.Jitter < 0 || b.Jitter > 1 {
		errs = append(errs, fmt.Errorf("Backoff.Jitter is outside [0, 1] (%g)", b.Jitter))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return nil
}

// Delay returns the wait before retry number retry (from 1; 0 or less is
// taken as 1).
func (b Backoff) Delay(retry int) time.Duration {
	b = b.WithDefaults()
	d := float64(b.Initial)
	for i := 1; i < retry && d < float64(b.Max); i++ {
		d *= b.Multiplier
	}
	d = min(d, float64(b.Max))
	if b.Jitter > 0 {
		d -= d * b.Jitter * rand.Float64()
	}
	return time.Duration(d)
}
