package sagatest_test

import (
	"testing"
	"time"

	"github.com/muninn-es/muninn/saga/sagatest"
)

// At counts from the time it is given, not from the clock's time when
// it is called: a wait worked out before the clock moved still ends when
// due. After, relative, would end 15 minutes late here.
func TestAtIsAbsolute(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	c := sagatest.NewClock(t0)
	due := t0.Add(15 * time.Minute)
	c.Advance(14 * time.Minute) // between the saga's Now and its wait
	ch := c.At(due)
	late := c.After(due.Sub(t0))
	c.Advance(time.Minute - time.Nanosecond)
	select {
	case <-ch:
		t.Fatal("At fired before its time")
	default:
	}
	c.Advance(time.Nanosecond)
	select {
	case got := <-ch:
		if !got.Equal(due) {
			t.Errorf("At received %v, want %v", got, due)
		}
	default:
		t.Fatal("At did not fire at its time")
	}
	select {
	case <-late:
		t.Fatal("After fired: it should count from when it was called")
	default:
	}
	if n := c.Waiters(); n != 1 {
		t.Errorf("%d waiters, want After's one", n)
	}
	select {
	case <-c.At(t0):
	default:
		t.Error("At of a past time did not fire at once")
	}
}
