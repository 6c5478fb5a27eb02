package stream_test

import (
	"context"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/muninn-es/muninn/stream"
)

// An App with WithMeterProvider reports its group's lag as
// muninn_consumer_lag_records and muninn_consumer_lag_seconds, as
// projections and sagas do (none once it has caught up).
func TestAppLagMetrics(t *testing.T) {
	s := openStore(t)
	loadViews(t, s, 300)
	topo, _, _ := restartTopology()
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	t.Cleanup(func() { _ = mp.Shutdown(context.Background()) })
	app, err := stream.NewApp(s, topo, "lagged", stream.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	lag := func() (records float64, seconds, points int) {
		var rm metricdata.ResourceMetrics
		if err := reader.Collect(context.Background(), &rm); err != nil {
			t.Fatal(err)
		}
		for _, sm := range rm.ScopeMetrics {
			for _, m := range sm.Metrics {
				switch d := m.Data.(type) {
				case metricdata.Gauge[int64]:
					if m.Name != "muninn_consumer_lag_records" {
						continue
					}
					for _, p := range d.DataPoints {
						if strings.Contains(p.Attributes.Encoded(attribute.DefaultEncoder()), "group=lagged") {
							records += float64(p.Value)
							points++
						}
					}
				case metricdata.Gauge[float64]:
					if m.Name == "muninn_consumer_lag_seconds" {
						seconds += len(d.DataPoints)
					}
				}
			}
		}
		return records, seconds, points
	}
	runOnce(t, app)
	if records, seconds, points := lag(); points == 0 || records != 0 || seconds < points {
		t.Errorf("after Run: lag %v records in %d partitions, %d lag_seconds points; want 0 records, every partition", records, points, seconds)
	}
	if _, err := stream.NewApp(s, topo, "nil-meters", stream.WithMeterProvider(nil)); err == nil {
		t.Error("WithMeterProvider(nil) accepted")
	}
}
