package saga_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/muninn-es/muninn/saga"
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

// TestMetrics checks a saga's steps, instances by status, pending
// deadlines and lag as a reminder is scheduled and fires.
func TestMetrics(t *testing.T) {
	e := newEnv(t)
	reader := sdkmetric.NewManualReader()
	s := start(e, e.bus, reminderSaga(), saga.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	e.open("j", "acct", 5, "")
	waitInstance(t, s.Saga, "j", pokes(0))
	got := collectInts(t, reader)
	for k, want := range map[string]int64{
		"muninn_saga_steps_total{saga=reminder}":                1,
		"muninn_saga_instances{saga=reminder,status=running}":   1,
		"muninn_saga_instances{saga=reminder,status=completed}": 0,
		"muninn_deadlines_pending{saga=reminder}":               1,
	} {
		if got[k] != want {
			t.Errorf("%s = %d, want %d", k, got[k], want)
		}
	}
	lags := 0
	for k := range got {
		if strings.HasPrefix(k, "muninn_consumer_lag_records{group=saga.reminder,") {
			lags++
		}
	}
	if lags != 4 {
		t.Errorf("%d partitions with a lag, want 4: %v", lags, got)
	}
	e.clock.Advance(time.Hour)
	waitStats(t, s.Saga, "the reminder", fired(1))
	got = collectInts(t, reader)
	// The reminder sends a command itself: it is no step of the saga.
	if got["muninn_deadlines_pending{saga=reminder}"] != 0 || got["muninn_saga_steps_total{saga=reminder}"] != 1 {
		t.Errorf("after the reminder fired: %v; want no pending deadline, still 1 step", got)
	}
}

func TestWithMeterProviderNil(t *testing.T) {
	e := newEnv(t)
	if _, err := saga.New(e.store, e.bus, reminderSaga(), saga.WithMeterProvider(nil)); err == nil {
		t.Error("New(WithMeterProvider(nil)) succeeded")
	}
}
