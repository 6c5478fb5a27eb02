package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/spf13/cobra"
)

func newDemoCmd() *cobra.Command {
	var library bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Serve the example shop and drive it over HTTP, in a few seconds",
		Long: `demo starts the example shop (what muninn serve runs) in-process on a
temporary directory, with gRPC and the REST gateway on free loopback ports,
and then talks to it only over HTTP, as any client would: it places a dozen
orders (payments captured, declined and never answered, the last hitting the
checkout's deadline on a clock that runs 600 times fast), retries one with
the same Idempotency-Key, sends bad input, waits for every checkout to end,
and prints the read models (orders, a customer's orders, revenue per hour)
and the lineage of one order: every command and event its correlation ID
caused, as a tree. Read its source (cmd/muninn/demo_shop.go and
examples/shop) next to its output.

With --library it walks through the library instead, in memory: appends to
a partitioned topic, a version conflict, a compacted topic cleaned up, a
consumer group with its lag, a live subscription, commands through the
command bus to an aggregate projected into a read model, and a saga with
compensation and a deadline (cmd/muninn/demo.go, demo_cqrs.go and
demo_saga.go).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			if library {
				return runDemo(cmd.Context(), cmd.OutOrStdout())
			}
			return runShopDemo(cmd.Context(), cmd.OutOrStdout())
		},
	}
	cmd.Flags().BoolVar(&library, "library", false, "walk through the library in memory instead of serving the shop")
	return cmd
}

// demo holds what the steps of the walk-through share.
type demo struct {
	store eventstore.Store
	clock *clock.Manual
	out   *errWriter
	// versions is each order stream's head version, as this writer knows it.
	versions map[string]uint64
}

// runDemo runs the walk-through on a fresh in-memory store, narrating to w.
func runDemo(ctx context.Context, w io.Writer) error {
	// A fake clock lets the demo age a tombstone past its grace period
	// without waiting an hour.
	clk := clock.NewManual(time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC))
	store, err := eventstore.OpenMem(
		eventstore.WithClock(clk),
		eventstore.WithCleanupInterval(0), // cleanup runs only when the demo asks
	)
	if err != nil {
		return err
	}
	defer store.Close()

	d := &demo{store: store, clock: clk, out: &errWriter{w: w}, versions: map[string]uint64{}}
	d.printf("Muninn demo: an event store in memory (the real Pebble engine on vfs.NewMem)\n")
	steps := []func(context.Context) error{
		d.appendOrders,
		d.versionConflict,
		d.compactSnapshots,
		d.consumerGroup,
		d.liveSubscription,
		d.commandsAndReadModel,
		d.fulfillmentSaga,
	}
	for _, step := range steps {
		if err := step(ctx); err != nil {
			return err
		}
	}
	if err := store.Close(); err != nil {
		return err
	}
	d.printf("\nDone.\n")
	return d.out.err
}

// 1. Appends: every order is a stream; its key picks the partition.
func (d *demo) appendOrders(ctx context.Context) error {
	d.section(`1. Append events to topic "orders" (4 partitions, key = order ID)`)
	if err := d.store.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 4}); err != nil {
		return err
	}
	d.printf("  %-11s %-15s %-11s    %-9s %-6s %s\n", "key", "event", "expected", "partition", "offset", "version")
	for _, e := range []struct{ order, typ, payload string }{
		{"order-1001", "order.placed", `{"total": 42.50}`},
		{"order-1002", "order.placed", `{"total": 18.00}`},
		{"order-1001", "order.paid", `{"amount": 42.50}`},
		{"order-1003", "order.placed", `{"total": 99.90}`},
		{"order-1001", "order.shipped", `{"carrier": "DHL"}`},
		{"order-1002", "order.paid", `{"amount": 18.00}`},
	} {
		if _, err := d.appendOrder(ctx, e.order, event(e.typ, e.payload)); err != nil {
			return err
		}
	}

	d.printf("\n  One append may carry several events of one stream: all are written, or none.\n")
	res, err := d.appendOrder(ctx, "order-1004",
		event("order.placed", `{"total": 7.25}`),
		event("order.paid", `{"amount": 7.25}`))
	if err != nil {
		return err
	}
	d.printf("  -> consecutive offsets %d..%d, versions %d..%d\n",
		res.FirstOffset, res.LastOffset, res.FirstVersion, res.LastVersion)

	d.printf("\n  ReadStream(orders, order-1001) reads one aggregate's events in order:\n")
	for rec, err := range d.store.ReadStream(ctx, "orders", "order-1001", 0) {
		if err != nil {
			return err
		}
		d.printf("    v%d %-14s %s  (partition %d, offset %d)\n", rec.Version, rec.Type, rec.Payload, rec.Partition, rec.Offset)
	}
	return nil
}

// appendOrder appends events to an order's stream, expecting the version
// the demo last saw, and prints where they landed.
func (d *demo) appendOrder(ctx context.Context, order string, events ...eventstore.Event) (eventstore.AppendResult, error) {
	expected := eventstore.Exact(d.versions[order]) // Exact(0) is NoStream
	res, err := d.store.Append(ctx, "orders", order, expected, events)
	if err != nil {
		return res, err
	}
	d.versions[order] = res.LastVersion
	for i, e := range events {
		cond := expected.String()
		if i > 0 {
			cond = "" // one condition for the whole append
		}
		d.printf("  %-11s %-15s %-11s -> %-9d %-6d %d\n",
			order, e.Type, cond, res.Partition, res.FirstOffset+int64(i), res.FirstVersion+uint64(i))
	}
	return res, nil
}

// 2. Optimistic concurrency: an append that expects a stale version fails
// with a typed error, and writes nothing.
func (d *demo) versionConflict(ctx context.Context) error {
	d.section("2. A version conflict (optimistic concurrency)")
	stale := eventstore.Exact(2) // this writer loaded order-1001 before it shipped
	d.printf("  A second writer, which read order-1001 at version 2, appends order.cancelled:\n")
	_, err := d.store.Append(ctx, "orders", "order-1001", stale, []eventstore.Event{event("order.cancelled", `{}`)})
	var conflict *eventstore.VersionConflictError
	if !errors.As(err, &conflict) {
		return fmt.Errorf("demo: expected a version conflict, got %v", err)
	}
	d.printf("  error: %v\n", err)
	d.printf("  as *eventstore.VersionConflictError: Key=%s Expected=%s Actual=%d\n", conflict.Key, conflict.Expected, conflict.Actual)
	d.printf("  errors.Is(err, eventstore.ErrVersionConflict) = %t; nothing was written\n",
		errors.Is(err, eventstore.ErrVersionConflict))
	d.printf("  The writer reloads the stream (now at version %d) and decides again: a shipped\n", conflict.Actual)
	d.printf("  order cannot be cancelled, so it appends nothing. No lock was ever held.\n")
	return nil
}

// 3. A compacted topic keeps only the newest record per key; a tombstone
// (nil payload) deletes a key and is itself removed after a grace period.
func (d *demo) compactSnapshots(ctx context.Context) error {
	const topic = "order-snapshots"
	d.section(`3. Compaction: topic "order-snapshots" (2 partitions, cleanup=compact, tombstone grace 1h)`)
	cfg := eventstore.TopicConfig{Partitions: 2, Cleanup: eventstore.Compact, TombstoneGrace: time.Hour}
	if err := d.store.CreateTopic(ctx, topic, cfg); err != nil {
		return err
	}
	for _, s := range []struct{ order, state string }{
		{"order-1001", `{"status": "placed"}`},
		{"order-1001", `{"status": "paid"}`},
		{"order-1001", `{"status": "shipped"}`},
		{"order-1002", `{"status": "placed"}`},
		{"order-1002", `{"status": "paid"}`},
		{"order-1004", `{"status": "placed"}`},
		{"order-1004", ""}, // a tombstone: order-1004 was erased
	} {
		ev := event("order.snapshot", s.state)
		if s.state == "" {
			ev = eventstore.Event{} // nil payload: tombstone
		}
		if _, err := d.store.Append(ctx, topic, s.order, eventstore.Any, []eventstore.Event{ev}); err != nil {
			return err
		}
	}
	d.printf("  Wrote 3 snapshots of order-1001, 2 of order-1002, 1 of order-1004 and a tombstone for it.\n")
	if err := d.describeTopic(ctx, topic, "before cleanup"); err != nil {
		return err
	}

	stats, err := d.store.Cleanup(ctx)
	if err != nil {
		return err
	}
	d.printf("\n  Cleanup now: %s.\n  The tombstone is younger than its grace period: consumers can still see the deletion.\n", removed(stats))
	if err := d.describeTopic(ctx, topic, "after cleanup"); err != nil {
		return err
	}

	d.clock.Advance(2 * time.Hour)
	stats, err = d.store.Cleanup(ctx)
	if err != nil {
		return err
	}
	d.printf("\n  Two hours later (fake clock), Cleanup again: %s.\n", removed(stats))
	if err := d.describeTopic(ctx, topic, "after the grace period"); err != nil {
		return err
	}
	d.printf("  What is left, read by partition (offsets never change; gaps are normal):\n")
	for p := range cfg.Partitions {
		for rec, err := range d.store.ReadPartition(ctx, topic, p, 0) {
			if err != nil {
				return err
			}
			d.printf("    partition %d offset %d: %s v%d %s\n", p, rec.Offset, rec.Key, rec.Version, rec.Payload)
		}
	}
	return nil
}

// removed says what a cleanup pass removed.
func removed(st eventstore.CleanupStats) string {
	return fmt.Sprintf("removed %d record(s), %d bytes, of which %d tombstone(s)", st.Records, st.Bytes, st.Tombstones)
}

// describeTopic prints a topic's partitions: offsets, records and bytes.
func (d *demo) describeTopic(ctx context.Context, topic, when string) error {
	info, err := d.store.DescribeTopic(ctx, topic)
	if err != nil {
		return err
	}
	d.printf("  DescribeTopic(%s), %s:\n", topic, when)
	for _, p := range info.Partitions {
		d.printf("    partition %d: offsets [%d, %d)  %d records  %d bytes\n",
			p.Partition, p.StartOffset, p.EndOffset, p.Records, p.Bytes)
	}
	return nil
}

// 4. A consumer group reads part of "orders", commits, and shows its lag.
func (d *demo) consumerGroup(ctx context.Context) error {
	d.section(`4. Consumer group "billing" on "orders"`)
	consumer, err := d.store.JoinGroup(ctx, "billing", []string{"orders"}, eventstore.WithMemberID("billing-1"))
	if err != nil {
		return err
	}
	defer consumer.Close()
	d.printf("  billing-1 joined; it is assigned %v\n", consumer.Assignment())
	const want = 4
	read := 0
	for rec, err := range consumer.Records(ctx) {
		if err != nil {
			return err
		}
		d.printf("  billing-1 handles orders/%d@%d  %s v%d %s, then commits\n",
			rec.Partition, rec.Offset, rec.Key, rec.Version, rec.Type)
		if err := consumer.Commit(ctx, rec); err != nil {
			return err
		}
		if read++; read == want {
			break
		}
	}
	info, err := d.store.DescribeGroup(ctx, "billing")
	if err != nil {
		return err
	}
	d.printf("\n  DescribeGroup(billing) after %d records:\n", want)
	d.printf("    %-10s %-10s %-10s %-5s %s\n", "partition", "member", "committed", "end", "lag")
	for _, p := range info.Partitions {
		committed := "-"
		if p.Committed >= 0 {
			committed = fmt.Sprint(p.Committed)
		}
		d.printf("    %-10s %-10s %-10s %-5d %d\n", p.TopicPartition, p.Member, committed, p.End, p.Lag)
	}
	d.printf("  A restarted member resumes from the committed offsets.\n")
	return consumer.Close()
}

// 5. A subscription catches up from an offset, then follows the partition
// live: it is woken by the commit of a new record, not by polling.
func (d *demo) liveSubscription(ctx context.Context) error {
	const order = "order-1005"
	partition, err := d.store.PartitionFor("orders", order)
	if err != nil {
		return err
	}
	info, err := d.store.DescribeTopic(ctx, "orders")
	if err != nil {
		return err
	}
	end := info.Partitions[partition].EndOffset
	d.section(fmt.Sprintf("5. A live subscription to orders/%d (the partition of %s)", partition, order))

	subCtx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // runs after cancel: the subscriber is gone before we return
	defer cancel()
	caughtUp := make(chan struct{})
	live := make(chan eventstore.Record, 1)
	failed := make(chan error, 1)
	wg.Go(func() {
		if end == 0 {
			close(caughtUp)
		}
		for rec, err := range d.store.Subscribe(subCtx, "orders", partition, 0) {
			if err != nil {
				failed <- err
				return
			}
			if rec.Offset < end {
				d.printf("  catch-up: offset %d  %s v%d %s\n", rec.Offset, rec.Key, rec.Version, rec.Type)
				if rec.Offset == end-1 {
					close(caughtUp)
				}
				continue
			}
			live <- rec
			return
		}
	})

	select {
	case <-caughtUp:
	case err := <-failed:
		return err
	}
	d.printf("  The subscriber has caught up and waits. Now append to %s:\n", order)
	if _, err := d.appendOrder(ctx, order, event("order.placed", `{"total": 12.00}`)); err != nil {
		return err
	}
	select {
	case rec := <-live:
		d.printf("  live:     offset %d  %s v%d %s %s  <- received by the subscription\n",
			rec.Offset, rec.Key, rec.Version, rec.Type, rec.Payload)
	case err := <-failed:
		return err
	case <-time.After(5 * time.Second):
		return errors.New("demo: the subscription did not receive the new event within 5s")
	}
	return nil
}

// event builds an event with a JSON payload.
func event(typ, payload string) eventstore.Event {
	return eventstore.Event{Type: typ, Payload: []byte(payload)}
}

func (d *demo) section(title string) { d.printf("\n%s\n", title) }

func (d *demo) printf(format string, args ...any) { fmt.Fprintf(d.out, format, args...) }

// errWriter remembers the first write error and writes nothing after it,
// so that the demo reads as a script and still reports a broken output.
type errWriter struct {
	w   io.Writer
	err error
}

// Write writes p unless an earlier write failed, and remembers a failure.
func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
