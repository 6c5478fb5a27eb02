package stream_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/stream"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// lagGauges returns the consumer lag gauges r collects, keyed by
// "name{labels}".
func lagGauges(t *testing.T, r *sdkmetric.ManualReader) map[string]float64 {
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

// An App reports its group's lag on its source and repartition topics on
// the meter provider it is given: none once caught up, and the records
// appended since, with their age by the App's clock.
func TestLagMetrics(t *testing.T) {
	s := openStore(t)
	loadViews(t, s, 300)
	topo, _, _ := restartTopology()
	clk := clock.NewManual(t0.Add(time.Hour))
	reader := sdkmetric.NewManualReader()
	app, err := stream.NewApp(s, topo, "lag", stream.WithClock(clk),
		stream.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	if err != nil {
		t.Fatal(err)
	}
	runOnce(t, app)
	got := lagGauges(t, reader)
	topics := map[string]int{}
	for k, v := range got {
		if !strings.HasPrefix(k, "muninn_consumer_lag_records{group=lag,") {
			continue
		}
		if v != 0 {
			t.Errorf("%s = %v after catching up, want 0", k, v)
		}
		topics[k[strings.Index(k, "topic=")+len("topic="):len(k)-1]]++
	}
	if topics["views"] != 4 || topics["lag-total-repartition"] != 4 || topics["lag-per-minute-repartition"] != 4 {
		t.Errorf("lag gauges by topic %v; want views and both repartition topics, 4 partitions each (all: %v)", topics, got)
	}

	// Eleven more views (one per page key, so on every partition that
	// holds a page) wait for the App, appended an hour before the clock.
	for i := range 11 {
		put(t, s, "views", "page-"+string(rune('a'+i)), []byte(`{"user":"user-1"}`), t0)
	}
	got = lagGauges(t, reader)
	var records, oldest float64
	for k, v := range got {
		switch {
		case strings.HasPrefix(k, "muninn_consumer_lag_records{group=lag,") && strings.HasSuffix(k, ",topic=views}"):
			records += v
		case strings.HasPrefix(k, "muninn_consumer_lag_seconds{group=lag,") && strings.HasSuffix(k, ",topic=views}"):
			oldest = max(oldest, v)
		}
	}
	if records != 11 || oldest != 3600 {
		t.Errorf("views lag %v records, oldest %v s; want 11 records, the oldest an hour old (all: %v)", records, oldest, got)
	}
}

func TestWithMeterProviderNil(t *testing.T) {
	topo, _, _ := restartTopology()
	_, err := stream.NewApp(openStore(t), topo, "nil-meters", stream.WithMeterProvider(nil))
	if err == nil || !strings.Contains(err.Error(), "WithMeterProvider") {
		t.Errorf("NewApp(WithMeterProvider(nil)) = %v, want an error naming it", err)
	}
}
