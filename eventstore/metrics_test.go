package eventstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/eventstore"
	"go.opentelemetry.io/otel/attribute"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// collect returns r's metrics by name: each data point's value (a
// histogram's count and sum as name_count and name_sum), keyed by
// "name{labels}".
func collect(t *testing.T, r *sdkmetric.ManualReader) map[string]float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := r.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	key := func(name string, set attribute.Set) string {
		return name + "{" + set.Encoded(attribute.DefaultEncoder()) + "}"
	}
	out := map[string]float64{}
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			switch d := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = float64(p.Value)
				}
			case metricdata.Gauge[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name, p.Attributes)] = float64(p.Value)
				}
			case metricdata.Histogram[int64]:
				for _, p := range d.DataPoints {
					out[key(m.Name+"_count", p.Attributes)] = float64(p.Count)
					out[key(m.Name+"_sum", p.Attributes)] = float64(p.Sum)
				}
			case metricdata.Histogram[float64]:
				for _, p := range d.DataPoints {
					out[key(m.Name+"_count", p.Attributes)] = float64(p.Count)
					out[key(m.Name+"_sum", p.Attributes)] = p.Sum
				}
			}
		}
	}
	return out
}

// TestMetrics appends batches of 1 and 3 events, durably and not, and
// checks the batch size and fsync histograms and that Pebble's metrics are
// read (and no longer once the store is closed).
func TestMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	s, err := eventstore.OpenMem(eventstore.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := t.Context()
	if err := s.CreateTopic(ctx, "orders", eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	ev := eventstore.Event{Type: "placed", Payload: []byte("{}")}
	if _, err := s.Append(ctx, "orders", "o-1", eventstore.Any, []eventstore.Event{ev}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "orders", "o-2", eventstore.Any, []eventstore.Event{ev, ev, ev}, eventstore.NoSync()); err != nil {
		t.Fatal(err)
	}
	// A conflict appends nothing and is not counted.
	if _, err := s.Append(ctx, "orders", "o-1", eventstore.NoStream, []eventstore.Event{ev}); err == nil {
		t.Fatal("append with NoStream to an existing stream succeeded")
	}
	got := collect(t, reader)
	for k, want := range map[string]float64{
		"muninn_append_batch_size_count{topic=orders}": 2,
		"muninn_append_batch_size_sum{topic=orders}":   4,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	// Only the durable append waited for an fsync (CreateTopic's commit
	// is not an append or a state update).
	if got["muninn_fsync_duration_seconds_count{}"] != 1 {
		t.Errorf("muninn_fsync_duration_seconds_count = %v, want 1 (one durable append)", got["muninn_fsync_duration_seconds_count{}"])
	}
	for _, name := range []string{"wal_bytes_in_total", "memtable_size_bytes", "memtables"} {
		if got["muninn_pebble_"+name+"{}"] <= 0 {
			t.Errorf("muninn_pebble_%s = %v, want > 0", name, got["muninn_pebble_"+name+"{}"])
		}
	}
	pebbleSeries := 0
	for k := range got {
		if strings.HasPrefix(k, "muninn_pebble_") {
			pebbleSeries++
		}
	}
	if pebbleSeries < 15 {
		t.Errorf("%d muninn_pebble_* series, want at least 15: %v", pebbleSeries, got)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for k := range collect(t, reader) {
		if strings.HasPrefix(k, "muninn_pebble_") {
			t.Errorf("%s reported after Close", k)
		}
	}
}

func TestWithMeterProviderNil(t *testing.T) {
	if _, err := eventstore.OpenMem(eventstore.WithMeterProvider(nil)); err == nil || !strings.Contains(err.Error(), "WithMeterProvider") {
		t.Errorf("OpenMem(WithMeterProvider(nil)) = %v, want an error naming it", err)
	}
}

// BenchmarkAppendMetrics is the CPU cost of the store's metrics on an
// append (in memory, NoSync: no disk to hide it): off is the no-op meter
// provider, on the SDK's, collected every 10,000 appends.
func BenchmarkAppendMetrics(b *testing.B) {
	for _, on := range []bool{false, true} {
		name := "off"
		var opts []eventstore.Option
		var reader *sdkmetric.ManualReader
		if on {
			name, reader = "on", sdkmetric.NewManualReader()
			opts = append(opts, eventstore.WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader))))
		}
		b.Run(name, func(b *testing.B) {
			s, err := eventstore.OpenMem(opts...)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if err := s.CreateTopic(b.Context(), "t", eventstore.TopicConfig{Partitions: 1}); err != nil {
				b.Fatal(err)
			}
			ev := []eventstore.Event{{Type: "x", Payload: make([]byte, 200)}}
			var rm metricdata.ResourceMetrics
			n := 0
			for b.Loop() {
				if _, err := s.Append(b.Context(), "t", "k", eventstore.Any, ev, eventstore.NoSync()); err != nil {
					b.Fatal(err)
				}
				if n++; reader != nil && n%10_000 == 0 {
					if err := reader.Collect(b.Context(), &rm); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
