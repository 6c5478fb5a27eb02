package telemetry_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
)

// The store repeats the names and buckets of this package (it cannot import
// it); this checks that what it reports agrees with them.
func TestStoreMetricNames(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))
	defer func() { _ = mp.Shutdown(context.Background()) }()
	s, err := eventstore.OpenMem(eventstore.WithMeterProvider(mp))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "t", "k", eventstore.Any, []eventstore.Event{{Type: "e", Payload: []byte("x")}}); err != nil {
		t.Fatal(err)
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	pebble := 0
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != telemetry.MeterName {
			t.Errorf("scope %q, want %q", sm.Scope.Name, telemetry.MeterName)
		}
		for _, m := range sm.Metrics {
			seen[m.Name] = true
			if strings.HasPrefix(m.Name, telemetry.MetricPebblePrefix) {
				pebble++
			}
			h, ok := m.Data.(metricdata.Histogram[int64])
			if !ok || m.Name != telemetry.MetricAppendBatchSize {
				continue
			}
			for _, dp := range h.DataPoints {
				if !slices.Equal(dp.Bounds, telemetry.SizeBounds) {
					t.Errorf("%s buckets %v, want %v", m.Name, dp.Bounds, telemetry.SizeBounds)
				}
				if v, _ := dp.Attributes.Value(telemetry.LabelTopic); v.AsString() != "t" {
					t.Errorf("%s has no %s=t label: %v", m.Name, telemetry.LabelTopic, dp.Attributes)
				}
			}
		}
	}
	if !seen[telemetry.MetricAppendBatchSize] {
		t.Errorf("no %s among %v", telemetry.MetricAppendBatchSize, seen)
	}
	if pebble == 0 {
		t.Errorf("no %s* metric among %v", telemetry.MetricPebblePrefix, seen)
	}
}
