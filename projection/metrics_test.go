package projection_test

import (
	"context"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/projection"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// gauges returns the integer gauges r collects, keyed by "name{labels}".
func gauges(t *testing.T, r *sdkmetric.ManualReader) map[string]int64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if d, ok := m.Data.(metricdata.Gauge[int64]); ok {
				for _, p := range d.DataPoints {
					out[m.Name+"{"+p.Attributes.Encoded(attribute.DefaultEncoder())+"}"] = p.Value
				}
			}
		}
	}
	return out
}

// TestMetrics checks a projection's lag and state gauges before it runs
// and after it has caught up and stopped.
func TestMetrics(t *testing.T) {
	s := openOrders(t, 1)
	appendN(t, s, 10, 3, "n")
	reader := sdkmetric.NewManualReader()
	p, _ := newCounter(t, s, "counter", projection.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	const lag = "muninn_consumer_lag_records{group=projection.counter.1,partition=0,topic=orders}"
	state := func(s string) string { return "muninn_projection_state{projection=counter,state=" + s + "}" }
	got := gauges(t, reader)
	if got[lag] != 10 || got[state("idle")] != 1 || got[state("live")] != 0 {
		t.Errorf("before Run: %v; want a lag of 10, idle", got)
	}
	catchUp(t, s, p, "orders")
	got = gauges(t, reader)
	if v, ok := got[lag]; !ok || v != 0 || got[state("stopped")] != 1 || got[state("idle")] != 0 {
		t.Errorf("after catching up and stopping: %v; want no lag, stopped", got)
	}
	n := 0
	for k := range got {
		if strings.HasPrefix(k, "muninn_projection_state{") {
			n++
		}
	}
	if n != 5 {
		t.Errorf("%d projection state series, want 5 (one per state)", n)
	}
}

func TestWithMeterProviderNil(t *testing.T) {
	_, err := projection.New(openOrders(t, 1), "p", []string{"orders"},
		projection.HandlerFunc(func(*projection.Tx, eventstore.Record) error { return nil }), projection.WithMeterProvider(nil))
	if err == nil || !strings.Contains(err.Error(), "WithMeterProvider") {
		t.Errorf("New(WithMeterProvider(nil)) = %v, want an error naming it", err)
	}
}
