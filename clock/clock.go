// Package clock is Muninn's one notion of time: a Clock tells the time and
// waits for it, and every part of the framework that stamps, expires or
// waits (the store's retention, the command bus's idempotency window, the
// consume loop's backoff, saga deadlines, the broker's relay) takes one.
//
// System is the operating system's clock. Manual moves only when a test
// says so, which lets tests fire deadlines and back-offs without sleeping;
// Scaled runs faster than real time, for demos. Backoff is the one
// retry back-off of the framework.
package clock

import (
	"context"
	"sync"
	"time"
)

// Clock tells the time and waits for it.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// At returns a channel that receives once the clock reads t or later
	// (at once if it already does), and stop, which releases the wait
	// when it is no longer wanted. Waiting for a time, not a duration,
	// keeps a wait from missing a clock that moves between Now and At.
	// Calling stop after the channel fired, or twice, is harmless.
	At(t time.Time) (c <-chan time.Time, stop func())
}

// System returns the operating system's clock.
func System() Clock { return systemClock{} }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) At(t time.Time) (<-chan time.Time, func()) {
	tm := time.NewTimer(time.Until(t))
	return tm.C, func() { tm.Stop() }
}

// OrSystem returns c, or the system clock if c is nil.
func OrSystem(c Clock) Clock {
	if c == nil {
		return System()
	}
	return c
}

// After waits for d to pass on c: it is c.At(c.Now().Add(d)).
func After(c Clock, d time.Duration) (<-chan time.Time, func()) {
	return c.At(c.Now().Add(d))
}

// Sleep waits until d has passed on c, or until ctx ends, and then returns
// ctx's error. A d of zero or less returns at once (with ctx's error, if it
// has ended).
func Sleep(ctx context.Context, c Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	return SleepUntil(ctx, c, c.Now().Add(d))
}

// SleepUntil waits until c reads t or later, or until ctx ends, and then
// returns ctx's error.
func SleepUntil(ctx context.Context, c Clock, t time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	ch, stop := c.At(t)
	defer stop()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Manual is a Clock that moves only when told to: Now stays put until
// Advance or Set moves it, and the channels of At receive once it has
// moved far enough. Tests use it to fire deadlines and back-offs without
// sleeping, and Waiters or BlockUntil to know that the code under test
// has started to wait. It is safe for concurrent use.
type Manual struct {
	mu      sync.Mutex
	now     time.Time
	waiters map[*waiter]struct{}
	changed chan struct{}
}

type waiter struct {
	at time.Time
	c  chan time.Time
}

// NewManual returns a Manual clock that reads start.
func NewManual(start time.Time) *Manual {
	return &Manual{now: start, waiters: map[*waiter]struct{}{}, changed: make(chan struct{})}
}

// Now returns the clock's time.
func (m *Manual) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.now
}

// At returns a channel that receives the clock's time once it reads t or
// later (at once if it already does), and stop, which forgets the wait.
func (m *Manual) At(t time.Time) (<-chan time.Time, func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ch := make(chan time.Time, 1)
	if !t.After(m.now) {
		ch <- m.now
		return ch, func() {}
	}
	w := &waiter{at: t, c: ch}
	m.waiters[w] = struct{}{}
	m.signalLocked()
	return ch, func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if _, ok := m.waiters[w]; ok {
			delete(m.waiters, w)
			m.signalLocked()
		}
	}
}

// Advance moves the clock forward by d (not at all if d <= 0) and wakes the
// waits now due.
func (m *Manual) Advance(d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setLocked(m.now.Add(d))
}

// Set moves the clock to t (never backwards) and wakes the waits now due.
func (m *Manual) Set(t time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setLocked(t)
}

func (m *Manual) setLocked(t time.Time) {
	if !t.After(m.now) {
		return
	}
	m.now = t
	for w := range m.waiters {
		if !w.at.After(t) {
			w.c <- t
			delete(m.waiters, w)
		}
	}
	m.signalLocked()
}

func (m *Manual) signalLocked() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Waiters returns how many waits (At, After, Sleep) are pending: started,
// not yet due, and not stopped.
func (m *Manual) Waiters() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.waiters)
}

// Next returns the time of the earliest pending wait, and false if there
// is none.
func (m *Manual) Next() (time.Time, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var next time.Time
	found := false
	for w := range m.waiters {
		if !found || w.at.Before(next) {
			next, found = w.at, true
		}
	}
	return next, found
}

// BlockUntil returns once at least n waits are pending, or when ctx ends
// (with its error). A test calls it before Advance to know that the code it
// drives has reached its wait, instead of sleeping.
func (m *Manual) BlockUntil(ctx context.Context, n int) error {
	for {
		m.mu.Lock()
		count, ch := len(m.waiters), m.changed
		m.mu.Unlock()
		if count >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Scaled returns a clock that starts at the system clock's time and runs
// factor times as fast: with a factor of 60, a minute passes every second.
// Demos and crash tests use it to reach deadlines quickly on real timers.
// A factor of zero or less is taken as 1.
func Scaled(factor float64) Clock { return ScaledAt(time.Now(), factor) }

// ScaledFrom returns a clock that reads epoch plus factor times the system
// time elapsed since epoch. Processes given the same epoch and factor read
// the same time, so a crash test's successive processes see time move on
// across their restarts. A factor of zero or less is taken as 1.
func ScaledFrom(epoch time.Time, factor float64) Clock {
	if factor <= 0 {
		factor = 1
	}
	return &scaled{start: epoch, base: epoch, factor: factor}
}

// ScaledAt returns a clock that reads base now and runs factor times as
// fast as the system clock from here on. A crash test gives each process
// the time its predecessor's clock read when it was killed, so that time
// stands still while no process runs (a slow restart on a loaded machine
// does not make deadlines fall due) and moves on, never back, across
// restarts. A factor of zero or less is taken as 1.
func ScaledAt(base time.Time, factor float64) Clock {
	if factor <= 0 {
		factor = 1
	}
	return &scaled{start: time.Now(), base: base, factor: factor}
}

// scaled reads base at the system time start, and runs factor times as
// fast from there.
type scaled struct {
	start  time.Time
	base   time.Time
	factor float64
}

func (s *scaled) Now() time.Time {
	return s.base.Add(time.Duration(float64(time.Since(s.start)) * s.factor))
}

func (s *scaled) At(t time.Time) (<-chan time.Time, func()) {
	ch := make(chan time.Time, 1)
	d := time.Duration(float64(t.Sub(s.Now())) / s.factor)
	if d <= 0 {
		ch <- s.Now()
		return ch, func() {}
	}
	tm := time.AfterFunc(d, func() { ch <- s.Now() })
	return ch, func() { tm.Stop() }
}
