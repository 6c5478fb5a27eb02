package payment

import (
	"context"
	"fmt"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/stream"
)

// RevenueAppID is the application ID (consumer group) of the revenue
// stream processor.
const RevenueAppID = "shop-revenue"

// revenueKey is the one key revenue is grouped by: the whole shop.
const revenueKey = "shop"

// HourRevenue is the revenue of one hour.
type HourRevenue struct {
	// Start is the hour's start.
	Start time.Time `json:"start"`
	// Orders counts the payments captured in the hour, one per order.
	Orders int64 `json:"orders"`
	// Cents is what they captured.
	Cents int64 `json:"cents"`
}

// revenue is the aggregate of a window.
type revenue struct {
	Orders int64 `json:"orders"`
	Cents  int64 `json:"cents"`
}

// Revenue is the revenue per hour read model: a stream processor (package
// stream) that sums the captured payments in tumbling one-hour windows of
// event time (the capture's record timestamp), exactly once with respect
// to the log, so each paid order counts once however often anything is
// redelivered. Refunds are not deducted: it is the revenue taken.
type Revenue struct {
	// App runs it: call Run.
	App    *stream.App
	store  eventstore.Store
	hourly stream.WindowedTable[string, revenue]
}

// repartitionTopic is the topic the App re-keys the captures through
// ("<appID>-<store>-repartition").
const repartitionTopic = RevenueAppID + "-hourly-repartition"

// NewRevenue returns the revenue stream processor over store. opts are the
// App's.
func NewRevenue(store eventstore.Store, opts ...stream.Option) (*Revenue, error) {
	events, err := Events()
	if err != nil {
		return nil, err
	}
	topo := stream.NewTopology()
	payments := stream.Source(topo, Topic, codec.String(), stream.Events(events))
	captured := stream.Filter(payments, func(_ string, e Event) bool { _, ok := e.(Captured); return ok })
	amounts := stream.MapValues(captured, func(_ string, e Event) int64 { return e.(Captured).AmountCents })
	all := stream.GroupBy(amounts, func(string, int64) string { return revenueKey }, codec.String())
	hourly := stream.WindowedAggregate(stream.WindowedBy(all, stream.Tumbling(time.Hour)), "hourly",
		func() revenue { return revenue{} },
		func(_ string, cents int64, r revenue) revenue {
			return revenue{Orders: r.Orders + 1, Cents: r.Cents + cents}
		},
		codec.JSON[revenue]())
	app, err := stream.NewApp(store, topo, RevenueAppID, opts...)
	if err != nil {
		return nil, err
	}
	return &Revenue{App: app, store: store, hourly: hourly}, nil
}

// WaitFor returns once the revenue includes every record up to pos, a
// position in Topic: the App has applied pos, and then everything its
// re-keying step had written by then (the captures are summed after a
// repartition, so applying pos alone only forwards it). A position of
// another topic is an error wrapping eventstore.ErrInvalidArgument;
// otherwise it fails like stream.App.WaitFor. Give ctx a timeout.
func (r *Revenue) WaitFor(ctx context.Context, pos eventstore.Position) error {
	if pos.Topic != Topic {
		return fmt.Errorf("%w: position %s is not in topic %s, which revenue is computed from", eventstore.ErrInvalidArgument, pos, Topic)
	}
	if err := r.App.WaitFor(ctx, pos); err != nil {
		return err
	}
	info, err := r.store.DescribeTopic(ctx, repartitionTopic)
	if err != nil {
		return err
	}
	var ends []eventstore.Position
	for _, p := range info.Partitions {
		if p.EndOffset > 0 {
			ends = append(ends, eventstore.Position{Topic: repartitionTopic, Partition: p.Partition, Offset: p.EndOffset - 1})
		}
	}
	return r.App.WaitFor(ctx, ends...)
}

// Hours returns the revenue of every hour with some, oldest first, within
// the store's retention of windows (a day).
func (r *Revenue) Hours(ctx context.Context) ([]HourRevenue, error) {
	var hours []HourRevenue
	for kv, err := range r.hourly.Fetch(ctx, r.App, revenueKey, time.Unix(0, 0), time.Unix(1<<40, 0)) {
		if err != nil {
			return nil, err
		}
		hours = append(hours, HourRevenue{Start: kv.Key.Start.UTC(), Orders: kv.Value.Orders, Cents: kv.Value.Cents})
	}
	return hours, nil
}
