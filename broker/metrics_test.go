package broker_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/eventstore"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// collectInts returns the integer counters and gauges r collects, keyed by
// "name{labels}".
func collectInts(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			var points []metricdata.DataPoint[int64]
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				points = d.DataPoints
			case metricdata.Sum[int64]:
				points = d.DataPoints
			}
			for _, p := range points {
				out[m.Name+"{"+p.Attributes.Encoded(attribute.DefaultEncoder())+"}"] = p.Value
			}
		}
	}
	return out
}

// TestRelayMetrics relays 6 records into another store and checks
// muninn_relay_published_total and the relay group's lag, before and after.
func TestRelayMetrics(t *testing.T) {
	ctx := t.Context()
	src, dst := openStore(t), openStore(t)
	if err := src.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		if _, err := src.Append(ctx, "t", fmt.Sprintf("k%d", i%2), eventstore.Any, []eventstore.Event{{Type: "x", Payload: []byte{}}}); err != nil {
			t.Fatal(err)
		}
	}
	pub, err := broker.NewPublisher(dst, broker.PublisherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	r, err := broker.NewRelay(src, pub, broker.RelayConfig{Group: "out", Topics: []string{"t"},
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))})
	if err != nil {
		t.Fatal(err)
	}
	const lag = "muninn_consumer_lag_records{group=out,partition=0,topic=t}"
	if got := collectInts(t, reader); got["muninn_relay_published_total{relay=out}"] != 0 || got[lag] != 6 {
		t.Errorf("before Run: %v; want nothing published, a lag of 6", got)
	}
	runBG(t, r.Run)
	waitFor(t, "lag 0", func() bool { st, _ := r.Status(ctx); return st.Lag == 0 })
	if got := collectInts(t, reader); got["muninn_relay_published_total{relay=out}"] != 6 || got[lag] != 0 {
		t.Errorf("after Run: %v; want 6 published, no lag", got)
	}
}
