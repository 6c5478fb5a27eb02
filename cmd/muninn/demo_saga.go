package main

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/fulfillment"
	"github.com/muninn-es/muninn/saga"
)

// 7. A saga carries orders across four bounded contexts: the happy path, a
// declined payment, and a payment that never answers until a deadline
// gives up. The workflow is internal/fulfillment's Saga.
func (d *demo) fulfillmentSaga(ctx context.Context) error {
	d.section("7. A saga: order fulfillment across Order, Payment, Shipment and Stock")
	// The contexts have topics of their own ("orders" among them), so the
	// workflow runs on a second in-memory store.
	store, err := eventstore.OpenMem()
	if err != nil {
		return err
	}
	defer store.Close()

	// A middleware shows the commands in the order the bus receives them,
	// with their outcome.
	var mu sync.Mutex
	var sent []string
	bus, err := command.New(store, command.WithMiddleware(func(next command.HandlerFunc) command.HandlerFunc {
		return func(ctx context.Context, cmd *command.Command) (command.Result, error) {
			mu.Lock()
			i := len(sent)
			sent = append(sent, "")
			mu.Unlock()
			res, err := next(ctx, cmd)
			outcome := "ok"
			switch {
			case err != nil:
				outcome = command.KindOf(err).String()
			case res.Duplicate:
				outcome = "duplicate"
			}
			mu.Lock()
			sent[i] = fmt.Sprintf("%-30s -> %s", strings.TrimPrefix(cmd.Type, "fulfillment.")+" "+cmd.AggregateID, outcome)
			mu.Unlock()
			return res, err
		}
	}))
	if err != nil {
		return err
	}
	defer bus.Close()
	h, err := fulfillment.Register(ctx, bus)
	if err != nil {
		return err
	}
	// A manual clock, so that the payment deadline (15 minutes) passes
	// when the demo says.
	clk := clock.NewManual(d.clock.Now())
	s, err := saga.New(store, bus, fulfillment.Saga(), saga.WithClock(clk))
	if err != nil {
		return err
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			d.printf("  saga stopped: %v\n", err)
		}
	}()

	// settle waits until the order's instance has status and nothing left
	// to send, then prints the commands that flowed meanwhile.
	settle := func(id string, status saga.Status) (saga.Instance[fulfillment.Fulfillment], error) {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		in, err := s.WaitFor(wctx, id, func(in saga.Instance[fulfillment.Fulfillment]) bool {
			return in.Status == status && in.PendingCommands == 0
		})
		mu.Lock()
		for _, line := range sent {
			d.printf("    %s\n", line)
		}
		sent = nil
		mu.Unlock()
		return in, err
	}
	place := func(id, what string, o fulfillment.PlaceOrder, status saga.Status) error {
		d.printf("\n  PlaceOrder %s (%s):\n", id, what)
		if _, err := h.Orders.Dispatch(command.WithCorrelationID(ctx, "req-"+id), id, o, command.WithCommandID("place-"+id)); err != nil {
			return err
		}
		in, err := settle(id, status)
		if err != nil {
			return err
		}
		d.printf("  -> instance %s: %s after %d steps", id, in.Status, in.Steps)
		for _, dl := range in.Deadlines {
			d.printf(", deadline %q at %s", dl.Name, dl.At.Format("15:04"))
		}
		d.printf("\n")
		return nil
	}

	d.printf("  Saga %q reads orders, payments and shipments; its state, outbox and deadlines\n", s.Name())
	d.printf("  move in the same durable batch as its checkpoint. The bus sees:\n")
	if err := place("order-1", "happy path", fulfillment.PlaceOrder{Customer: "ada", Total: 4250, SKU: "sku-42", Qty: 2, Address: "1 Main St"}, saga.StatusCompleted); err != nil {
		return err
	}
	if err := place("order-2", "over the payment limit", fulfillment.PlaceOrder{Customer: "bob", Total: fulfillment.DeclineAbove + 1, SKU: "sku-42", Qty: 1, Address: "2 Main St"}, saga.StatusFailed); err != nil {
		return err
	}
	if err := place("order-3", "payment never answers", fulfillment.PlaceOrder{Customer: "cy", Total: fulfillment.NeverAnswer, SKU: "sku-7", Qty: 1, Address: "3 Main St"}, saga.StatusRunning); err != nil {
		return err
	}
	d.printf("\n  The clock moves %s; the deadline fires once and the workflow gives up:\n", fulfillment.PaymentTimeout)
	clk.Advance(fulfillment.PaymentTimeout)
	if _, err := settle("order-3", saga.StatusFailed); err != nil {
		return err
	}

	d.printf("\n  Inspection (Instances):\n")
	for in, err := range s.Instances(ctx) {
		if err != nil {
			return err
		}
		d.printf("    %-8s %-10s steps %d  %s\n", in.Key, in.Status, in.Steps, in.State.Outcome)
	}

	d.printf("\n  Lineage of order-1: every event carries the request's correlation ID, and the\n")
	d.printf("  saga's commands the event that caused them:\n")
	var trail []eventstore.Record
	for _, tk := range []struct{ topic, key string }{
		{fulfillment.OrdersTopic, "order-1"}, {fulfillment.StockTopic, "sku-42"},
		{fulfillment.PaymentsTopic, "order-1"}, {fulfillment.ShipmentsTopic, "order-1"},
	} {
		for rec, err := range store.ReadStream(ctx, tk.topic, tk.key, 1) {
			if err != nil {
				return err
			}
			if rec.CorrelationID == "req-order-1" {
				trail = append(trail, rec)
			}
		}
	}
	// UUIDv7 event IDs sort by time of writing.
	slices.SortFunc(trail, func(a, b eventstore.Record) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	types := map[string]string{}
	for _, rec := range trail {
		types[rec.ID.String()] = rec.Type
	}
	for _, rec := range trail {
		cause := "the request"
		if c := rec.Headers[command.CausationHeader]; c != "" {
			if cause = types[c]; cause == "" {
				return errors.New("demo: a saga command's causation is not an event of the workflow")
			}
		}
		d.printf("    %-19s correlation %s, caused by %s\n", rec.Type, rec.CorrelationID, cause)
	}
	st := s.Stats()
	d.printf("\n  Stats: %d started, %d completed, %d failed, %d steps, %d commands, %d compensations, %d deadline fired\n",
		st.Started, st.Completed, st.Failed, st.Steps, st.Commands, st.Compensations, st.DeadlinesFired)
	return nil
}
