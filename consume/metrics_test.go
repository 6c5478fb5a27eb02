package consume_test

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// gauges returns the gauges r collects, keyed by "name{labels}".
func gauges(t *testing.T, r *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[m.Name+"{"+p.Attributes.Encoded(attribute.DefaultEncoder())+"}"] = float64(p.Value)
				}
			case metricdata.Gauge[float64]:
				for _, p := range d.DataPoints {
					out[m.Name+"{"+p.Attributes.Encoded(attribute.DefaultEncoder())+"}"] = p.Value
				}
			}
		}
	}
	return out
}

// TestLagMetrics checks the lag gauges of a loop: the records and the age
// of the oldest one before it runs, by the clock, and zero once it has
// caught up.
func TestLagMetrics(t *testing.T) {
	clk := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	s := openStore(t, eventstore.WithClock(clk))
	if err := s.CreateTopic(t.Context(), "orders", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	last := appendN(t, s, "orders", 2, 3)
	clk.Advance(90 * time.Second)
	reader := sdkmetric.NewManualReader()
	l, err := consume.New(s, "counter", []string{"orders"}, counter(nil), consume.WithClock(clk),
		consume.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	if err != nil {
		t.Fatal(err)
	}
	const labels = "{group=counter,partition=0,topic=orders}"
	got := gauges(t, reader)
	if got["muninn_consumer_lag_records"+labels] != 6 || got["muninn_consumer_lag_seconds"+labels] != 90 {
		t.Errorf("before Run: %v; want 6 records and 90 s of lag", got)
	}
	if err := l.CatchUp(t.Context()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, l, last...)
	got = gauges(t, reader)
	if v, ok := got["muninn_consumer_lag_records"+labels]; !ok || v != 0 || got["muninn_consumer_lag_seconds"+labels] != 0 {
		t.Errorf("after catching up: %v; want no lag", got)
	}
}

func TestWithMeterProviderNil(t *testing.T) {
	_, err := consume.New(openStore(t), "g", []string{"orders"}, counter(nil), consume.WithMeterProvider(nil))
	if err == nil || !strings.Contains(err.Error(), "WithMeterProvider") {
		t.Errorf("New(WithMeterProvider(nil)) = %v, want an error naming it", err)
	}
}

// TestLagMetricsOfADroppedLoop: a loop the program no longer holds is not
// kept alive by its meter provider, and reports nothing once collected.
func TestLagMetricsOfADroppedLoop(t *testing.T) {
	s := openStore(t)
	if err := s.CreateTopic(t.Context(), "orders", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	reader := sdkmetric.NewManualReader()
	func() {
		if _, err := consume.New(s, "dropped", []string{"orders"}, counter(nil),
			consume.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))); err != nil {
			t.Fatal(err)
		}
	}()
	for range 3 { // the weak pointer is cleared by the first full collection
		runtime.GC()
	}
	for k := range gauges(t, reader) {
		if strings.Contains(k, "group=dropped") {
			t.Errorf("%s reported for a loop nobody holds", k)
		}
	}
}
