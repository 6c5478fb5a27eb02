package bench

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/fulfillment"
	"github.com/muninn-es/muninn/saga"
)

const (
	// sagaClients is how many goroutines place the saga measurement's
	// orders.
	sagaClients = 16
	// sagaStepsPerOrder is how many steps the fulfillment saga takes for an
	// order without stock: order.placed, payment.captured,
	// shipment.scheduled, order.completed.
	sagaStepsPerOrder = 4
	// sagaCommandsPerOrder is how many commands it sends for one:
	// CapturePayment, ScheduleShipment, CompleteOrder.
	sagaCommandsPerOrder = 3
)

// sagaThroughput measures the fulfillment saga (internal/fulfillment) on a
// durable store of its own: sagaClients goroutines place cfg.SagaOrders
// orders through the command bus while the saga runs, and it is timed from
// the first order placed until every instance has completed and no
// command is left in its outbox. Each order is a three-step workflow:
// order.placed -> CapturePayment -> payment.captured -> ScheduleShipment ->
// shipment.scheduled -> CompleteOrder -> order.completed, four saga steps
// and three commands, each step batch a durable write and each command a
// durable append. Orders have no stock line (Qty 0): the Stock aggregate
// keeps every reservation of a SKU, so a shared SKU would grow without
// bound. It returns saga steps per second and completed workflows per
// second, after checking that every instance completed in four steps.
func (e *env) sagaThroughput(ctx context.Context) (steps, workflows float64, err error) {
	n := e.cfg.SagaOrders
	dir, err := os.MkdirTemp(e.cfg.Dir, "muninn-bench-saga-")
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if rmErr := os.RemoveAll(dir); rmErr != nil && err == nil {
			err = rmErr
		}
	}()
	store, err := eventstore.Open(dir)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cErr := store.Close(); cErr != nil && err == nil {
			err = cErr
		}
	}()
	bus, err := command.New(store)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cErr := bus.Close(); cErr != nil && err == nil {
			err = cErr
		}
	}()
	h, err := fulfillment.Register(ctx, bus, aggregate.WithPartitions(e.cfg.Partitions), aggregate.WithCache(4096))
	if err != nil {
		return 0, 0, err
	}
	s, err := saga.New(store, bus, fulfillment.Saga())
	if err != nil {
		return 0, 0, err
	}

	// The saga runs until the measurement is over; if Run fails first,
	// the wait below ends with its error.
	runCtx, stopRun := context.WithCancel(ctx)
	waitCtx, stopWait := context.WithCancelCause(ctx)
	defer stopWait(nil)
	done := make(chan error, 1)
	go func() {
		err := s.Run(runCtx)
		stopWait(fmt.Errorf("saga Run returned early: %v", err))
		done <- err
	}()
	defer func() {
		stopRun()
		if rErr := <-done; rErr != nil && err == nil {
			err = rErr
		}
	}()

	e.progress("      %s orders placed by %d goroutines, each taken through %d saga steps and %d commands\n",
		thousands(float64(n)), sagaClients, sagaStepsPerOrder, sagaCommandsPerOrder)
	orderID := func(i int) string { return fmt.Sprintf("order-%07d", i) }
	start := time.Now()
	placeCtx, stopPlacing := context.WithCancelCause(waitCtx)
	defer stopPlacing(nil)
	var wg sync.WaitGroup
	for w := range sagaClients {
		wg.Go(func() {
			for i := w; i < n && placeCtx.Err() == nil; i += sagaClients {
				o := fulfillment.PlaceOrder{Customer: "bench", Total: 1000 + int64(i%1000), Address: "1 Bench Street"}
				if _, err := h.Orders.Dispatch(placeCtx, orderID(i), o); err != nil {
					stopPlacing(fmt.Errorf("place %s: %w", orderID(i), err))
					return
				}
			}
		})
	}
	wg.Wait()
	if err := context.Cause(placeCtx); err != nil {
		return 0, 0, err
	}
	placed := time.Since(start)
	placedStats := s.Stats()
	// WaitFor is woken by every batch and dispatch of the saga; the
	// condition is on its counters, the instance only names one to watch.
	_, err = s.WaitFor(waitCtx, orderID(n-1), func(saga.Instance[fulfillment.Fulfillment]) bool {
		st := s.Stats()
		return st.Completed+st.Failed >= n && st.PendingCommands == 0
	})
	elapsed := time.Since(start)
	if err != nil {
		return 0, 0, fmt.Errorf("%w (cause: %v); stats %+v", err, context.Cause(waitCtx), s.Stats())
	}

	st := s.Stats()
	if st.Started != n || st.Completed != n || st.Failed != 0 || st.Steps != sagaStepsPerOrder*n ||
		st.Commands != sagaCommandsPerOrder*n || st.Duplicates != 0 || st.Ignored != 0 {
		return 0, 0, fmt.Errorf("saga stats %+v, want %d instances started and completed in %d steps and %d commands, none failed",
			st, n, sagaStepsPerOrder*n, sagaCommandsPerOrder*n)
	}
	completed := 0
	for in, err := range s.Instances(ctx) {
		if err != nil {
			return 0, 0, err
		}
		if in.Status != saga.StatusCompleted || in.Steps != sagaStepsPerOrder || in.PendingCommands != 0 ||
			!in.State.Paid || !in.State.Shipped || in.State.Outcome != "completed" {
			return 0, 0, fmt.Errorf("instance %s: status %s, %d steps, %d pending commands, state %+v, last error %q",
				in.Key, in.Status, in.Steps, in.PendingCommands, in.State, in.LastError)
		}
		completed++
	}
	if completed != n {
		return 0, 0, fmt.Errorf("saga holds %d completed instances, want %d", completed, n)
	}
	e.progress("      %s workflows completed in %s; the orders were placed in the first %s (the saga had taken %s steps by then)\n",
		thousands(float64(n)), elapsed.Round(time.Millisecond), placed.Round(time.Millisecond), thousands(float64(placedStats.Steps)))
	return float64(st.Steps) / elapsed.Seconds(), float64(n) / elapsed.Seconds(), nil
}
