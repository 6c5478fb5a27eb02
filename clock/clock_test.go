package clock_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/muninn-es/muninn/clock"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func fired(ch <-chan time.Time) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func TestManualFiresWhenDue(t *testing.T) {
	m := clock.NewManual(t0)
	a, _ := m.At(t0.Add(time.Minute))
	b, _ := clock.After(m, time.Hour)
	past, _ := m.At(t0.Add(-time.Second))
	if !fired(past) {
		t.Fatal("a wait for a past time did not fire at once")
	}
	if m.Waiters() != 2 {
		t.Fatalf("Waiters = %d, want 2", m.Waiters())
	}
	if next, ok := m.Next(); !ok || !next.Equal(t0.Add(time.Minute)) {
		t.Fatalf("Next = %v, %v", next, ok)
	}
	m.Advance(59 * time.Second)
	if fired(a) || fired(b) {
		t.Fatal("fired early")
	}
	m.Advance(time.Second)
	if !fired(a) || fired(b) {
		t.Fatal("the minute wait should fire, the hour wait not")
	}
	m.Set(t0) // never backwards
	if !m.Now().Equal(t0.Add(time.Minute)) {
		t.Fatalf("Set moved the clock back to %v", m.Now())
	}
	m.Set(t0.Add(2 * time.Hour))
	if !fired(b) || m.Waiters() != 0 {
		t.Fatalf("hour wait did not fire, %d waiters left", m.Waiters())
	}
}

func TestManualStopForgetsTheWait(t *testing.T) {
	m := clock.NewManual(t0)
	ch, stop := m.At(t0.Add(time.Second))
	stop()
	stop() // twice is harmless
	if m.Waiters() != 0 {
		t.Fatalf("Waiters after stop = %d", m.Waiters())
	}
	m.Advance(time.Hour)
	if fired(ch) {
		t.Fatal("a stopped wait fired")
	}
}

func TestSleepAndBlockUntil(t *testing.T) {
	m := clock.NewManual(t0)
	done := make(chan error, 1)
	go func() { done <- clock.Sleep(context.Background(), m, time.Minute) }()
	if err := m.BlockUntil(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	m.Advance(time.Minute)
	if err := <-done; err != nil {
		t.Fatalf("Sleep = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { done <- clock.Sleep(ctx, m, time.Minute) }()
	if err := m.BlockUntil(t.Context(), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep with a cancelled context = %v", err)
	}
	if m.Waiters() != 0 {
		t.Fatalf("a cancelled Sleep left %d waiters", m.Waiters())
	}
	if err := clock.Sleep(ctx, m, 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Sleep(0) with a done context = %v", err)
	}
	short, stop := context.WithTimeout(context.Background(), time.Millisecond)
	defer stop()
	if err := m.BlockUntil(short, 5); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("BlockUntil with nobody waiting = %v", err)
	}
}

func TestManualConcurrent(t *testing.T) {
	m := clock.NewManual(t0)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			ch, stop := clock.After(m, time.Duration(i+1)*time.Second)
			defer stop()
			<-ch
		})
	}
	if err := m.BlockUntil(t.Context(), 8); err != nil {
		t.Fatal(err)
	}
	m.Advance(10 * time.Second)
	wg.Wait()
}

func TestSystemAndScaled(t *testing.T) {
	s := clock.System()
	ch, stop := s.At(time.Now().Add(-time.Second))
	defer stop()
	<-ch                       // a past time fires at once
	fast := clock.Scaled(3600) // an hour a second
	start := fast.Now()
	ch, stop = fast.At(start.Add(time.Hour / 100)) // 10 ms of real time
	defer stop()
	got := <-ch
	if got.Before(start.Add(time.Hour / 100)) {
		t.Fatalf("scaled clock fired at %v, before its time", got)
	}
}

func TestBackoff(t *testing.T) {
	b := clock.Backoff{Initial: time.Second, Max: 5 * time.Second, Multiplier: 2}
	var got []time.Duration
	for retry := 0; retry <= 5; retry++ {
		got = append(got, b.Delay(retry))
	}
	want := []time.Duration{time.Second, time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("delays %v, want %v", got, want)
		}
	}
	if d := clock.Constant(time.Minute).Delay(9); d != time.Minute {
		t.Fatalf("Constant delay %v", d)
	}
	j := clock.Backoff{Initial: time.Second, Max: time.Second, Jitter: 1}
	for range 100 {
		if d := j.Delay(1); d < 0 || d > time.Second {
			t.Fatalf("jittered delay %v out of [0, 1s]", d)
		}
	}
	if d := (clock.Backoff{}).Delay(1); d > clock.DefaultBackoff.Initial || d < clock.DefaultBackoff.Initial*8/10 {
		t.Fatalf("zero Backoff delay %v, want DefaultBackoff's", d)
	}
	if err := (clock.Backoff{Initial: -1, Max: -1, Multiplier: 0.5, Jitter: 2}).Validate(); err == nil {
		t.Fatal("Validate accepted a bad Backoff")
	}
	if err := (clock.Backoff{Initial: 2 * time.Second, Max: time.Second}).Validate(); err == nil {
		t.Fatal("Validate accepted Initial > Max")
	}
}

// Two clocks scaled from one epoch read the same time line: the later
// one reads no earlier than the first, and both run factor times faster
// than the system clock since the epoch.
func TestScaledFrom(t *testing.T) {
	epoch := time.Now().Add(-time.Second)
	a := clock.ScaledFrom(epoch, 60)
	first := a.Now()
	if first.Sub(epoch) < time.Minute {
		t.Errorf("a second after the epoch, a 60-fold clock reads epoch+%s, want at least a minute", first.Sub(epoch))
	}
	b := clock.ScaledFrom(epoch, 60)
	if second := b.Now(); second.Before(first) {
		t.Errorf("a clock made later from the same epoch reads %s, before the first's %s", second, first)
	}
	// A wait for a time already passed fires at once.
	ch, stop := b.At(epoch)
	defer stop()
	select {
	case <-ch:
	default:
		t.Error("At of a past time did not fire at once")
	}
	if c := clock.ScaledFrom(epoch, 0); c.Now().Sub(epoch) > time.Hour {
		t.Errorf("a factor of 0 is taken as 1, but the clock reads epoch+%s", c.Now().Sub(epoch))
	}
}

func TestScaledAt(t *testing.T) {
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC) // not the system's time
	before := time.Now()
	c := clock.ScaledAt(base, 60)
	first := c.Now()
	// At most 60 times the real time since before has passed on c.
	if first.Before(base) || first.Sub(base) > 60*time.Since(before) {
		t.Errorf("a clock made at %v reads %v right away", base, first)
	}
	ch, stop := c.At(first.Add(time.Second)) // a sixtieth of a real second
	defer stop()
	if got := <-ch; got.Before(first.Add(time.Second)) {
		t.Errorf("fired at %v, before its time %v", got, first.Add(time.Second))
	}
	if c := clock.ScaledAt(base, -1); c.Now().Sub(base) > time.Hour {
		t.Errorf("a factor below 0 is taken as 1, but the clock reads base+%s", c.Now().Sub(base))
	}
}
