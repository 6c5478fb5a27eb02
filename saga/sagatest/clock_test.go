package sagatest_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/muninn-es/muninn/saga"
	"github.com/muninn-es/muninn/saga/sagatest"
)

var start = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

var _ saga.Clock = (*sagatest.Clock)(nil)

// fired returns what ch has received, and false if it has received nothing.
func fired(ch <-chan time.Time) (time.Time, bool) {
	select {
	case t := <-ch:
		return t, true
	default:
		return time.Time{}, false
	}
}

func TestNowStaysPut(t *testing.T) {
	c := sagatest.NewClock(start)
	if got := c.Now(); !got.Equal(start) {
		t.Fatalf("Now() = %v, want %v", got, start)
	}
	c.Advance(90 * time.Second)
	if got, want := c.Now(), start.Add(90*time.Second); !got.Equal(want) {
		t.Fatalf("after Advance(90s): Now() = %v, want %v", got, want)
	}
}

func TestAfterFiresOnAdvanceNotBefore(t *testing.T) {
	c := sagatest.NewClock(start)
	ch := c.After(time.Minute)
	if at, ok := fired(ch); ok {
		t.Fatalf("After(1m) fired at once, with %v", at)
	}
	c.Advance(time.Minute - time.Nanosecond)
	if at, ok := fired(ch); ok {
		t.Fatalf("After(1m) fired 1ns early, with %v", at)
	}
	c.Advance(time.Nanosecond)
	at, ok := fired(ch)
	if !ok {
		t.Fatal("After(1m) did not fire when the clock reached it")
	}
	if want := start.Add(time.Minute); !at.Equal(want) {
		t.Errorf("After(1m) received %v, want %v", at, want)
	}
	c.Advance(time.Hour)
	if at, ok := fired(ch); ok {
		t.Errorf("After(1m) fired twice, again with %v", at)
	}
}

func TestAfterFiresOnSet(t *testing.T) {
	c := sagatest.NewClock(start)
	early, late := c.After(time.Minute), c.After(time.Hour)
	c.Set(start.Add(59 * time.Second))
	if _, ok := fired(early); ok {
		t.Fatal("After(1m) fired at start+59s")
	}
	c.Set(start.Add(2 * time.Minute))
	at, ok := fired(early)
	if !ok || !at.Equal(start.Add(2*time.Minute)) {
		t.Fatalf("After(1m) after Set(start+2m): %v, %v; want the clock's time", at, ok)
	}
	if _, ok := fired(late); ok {
		t.Fatal("After(1h) fired at start+2m")
	}
	if n := c.Waiters(); n != 1 {
		t.Errorf("Waiters() = %d, want 1 (After(1h))", n)
	}
}

func TestNonPositiveDurationFiresAtOnce(t *testing.T) {
	for _, d := range []time.Duration{0, -time.Nanosecond, -time.Hour} {
		c := sagatest.NewClock(start)
		at, ok := fired(c.After(d))
		if !ok || !at.Equal(start) {
			t.Errorf("After(%s) = %v, %v; want %v at once", d, at, ok, start)
		}
		if n := c.Waiters(); n != 0 {
			t.Errorf("After(%s) left %d waiters", d, n)
		}
	}
}

func TestAt(t *testing.T) {
	c := sagatest.NewClock(start)
	for _, at := range []time.Time{start, start.Add(-time.Hour)} {
		got, ok := fired(c.At(at))
		if !ok || !got.Equal(start) {
			t.Errorf("At(%v) at %v: %v, %v; want %v at once", at, start, got, ok, start)
		}
	}
	ch := c.At(start.Add(time.Minute))
	c.Advance(30 * time.Second)
	if _, ok := fired(ch); ok {
		t.Fatal("At(start+1m) fired at start+30s")
	}
	c.Advance(time.Minute)
	if got, ok := fired(ch); !ok || !got.Equal(start.Add(90*time.Second)) {
		t.Errorf("At(start+1m) at start+90s: %v, %v", got, ok)
	}
}

// At is anchored to a time, not to when it is called: a clock moved
// between a reading of Now and the call to At does not delay it, where
// After(wait) computed from that reading would fire late.
func TestAtIsNotDelayedByAMoveBeforeIt(t *testing.T) {
	c := sagatest.NewClock(start)
	due := c.Now().Add(time.Minute)
	wait := due.Sub(c.Now())
	c.Advance(30 * time.Second) // moved between Now and the wait
	at, after := c.At(due), c.After(wait)
	c.Advance(30 * time.Second)
	if _, ok := fired(at); !ok {
		t.Error("At(due) did not fire at due")
	}
	if _, ok := fired(after); ok {
		t.Error("After(wait) fired at due, though the clock moved before it was called (the test assumes it is late)")
	}
}

func TestSetNeverGoesBackwards(t *testing.T) {
	c := sagatest.NewClock(start)
	c.Advance(time.Hour)
	ch := c.After(time.Minute)
	c.Set(start)
	if got, want := c.Now(), start.Add(time.Hour); !got.Equal(want) {
		t.Fatalf("Set to an earlier time moved the clock to %v; want it at %v", got, want)
	}
	c.Advance(-time.Hour)
	if got, want := c.Now(), start.Add(time.Hour); !got.Equal(want) {
		t.Fatalf("Advance(-1h) moved the clock to %v; want it at %v", got, want)
	}
	if _, ok := fired(ch); ok {
		t.Fatal("a waiter fired though the clock did not move forward")
	}
	// Set to the time it reads changes nothing and fires nothing new.
	c.Set(start.Add(time.Hour))
	if _, ok := fired(ch); ok {
		t.Fatal("a waiter fired on Set to the clock's own time")
	}
}

func TestWaitersCountsUnfired(t *testing.T) {
	c := sagatest.NewClock(start)
	if n := c.Waiters(); n != 0 {
		t.Fatalf("new clock: Waiters() = %d", n)
	}
	c.After(time.Second)
	c.After(2 * time.Second)
	c.At(start.Add(3 * time.Second))
	c.After(0) // fires at once: not waiting
	if n := c.Waiters(); n != 3 {
		t.Fatalf("Waiters() = %d, want 3", n)
	}
	c.Advance(2 * time.Second)
	if n := c.Waiters(); n != 1 {
		t.Fatalf("after Advance(2s): Waiters() = %d, want 1", n)
	}
	c.Advance(time.Second)
	if n := c.Waiters(); n != 0 {
		t.Fatalf("after Advance(3s): Waiters() = %d, want 0", n)
	}
}

// Run under -race: the clock is used from many goroutines at once, no
// Advance is lost, and every waiter fires once the clock is past it.
func TestConcurrentUse(t *testing.T) {
	const workers, rounds = 8, 200
	c := sagatest.NewClock(start)
	var wg sync.WaitGroup
	chans := make([][]<-chan time.Time, workers)
	for w := range workers {
		wg.Go(func() {
			for range rounds {
				// Each is due at most 1s after now, and this worker
				// still advances the clock by 1s: all fall due.
				chans[w] = append(chans[w], c.After(time.Second), c.At(c.Now().Add(time.Second)))
				c.Advance(time.Second)
				_ = c.Waiters()
			}
		})
	}
	wg.Wait()
	if got, want := c.Now(), start.Add(workers*rounds*time.Second); !got.Equal(want) {
		t.Fatalf("after %d concurrent Advance(1s): Now() = %v, want %v", workers*rounds, got, want)
	}
	if n := c.Waiters(); n != 0 {
		t.Fatalf("Waiters() = %d after the clock passed every waiter", n)
	}
	for w := range workers {
		for i, ch := range chans[w] {
			if _, ok := fired(ch); !ok {
				t.Fatalf("worker %d: waiter %d never fired", w, i)
			}
		}
	}
}

// A manual clock in a test: a waiter fires only when the test moves the
// clock far enough. With saga.WithClock(c), a saga's deadlines fire the
// same way, without sleeping.
func ExampleClock() {
	c := sagatest.NewClock(time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC))
	timeout := c.After(15 * time.Minute)

	c.Advance(10 * time.Minute)
	select {
	case <-timeout:
		fmt.Println("fired early")
	default:
		fmt.Println("10 minutes: waiting;", c.Waiters(), "waiter")
	}

	c.Advance(5 * time.Minute)
	select {
	case at := <-timeout:
		fmt.Println("15 minutes: fired at", at.Format(time.TimeOnly))
	default:
		fmt.Println("15 minutes: still waiting")
	}
	// Output:
	// 10 minutes: waiting; 1 waiter
	// 15 minutes: fired at 12:15:00
}
