package clock_test

import (
	"context"
	"fmt"
	"time"

	"github.com/muninn-es/muninn/clock"
)

// A test drives code that waits on a clock without sleeping: it waits until
// the code is waiting (BlockUntil), then moves the clock past the wait.
func ExampleManual() {
	m := clock.NewManual(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC))
	done := make(chan time.Time)
	go func() {
		// Code under test: retry after the back-off's first delay.
		_ = clock.Sleep(context.Background(), m, clock.Constant(30*time.Second).Delay(1))
		done <- m.Now()
	}()
	_ = m.BlockUntil(context.Background(), 1)
	m.Advance(30 * time.Second)
	fmt.Println((<-done).Format(time.TimeOnly))
	// Output: 09:00:30
}
