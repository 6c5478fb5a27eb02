package otelsdk_test

import (
	"context"
	"testing"

	"github.com/muninn-es/muninn/internal/otelsdk"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// exemplars records one histogram measurement inside a sampled span on a
// provider built by build and returns how many exemplars the reader saw.
func exemplars(t *testing.T, build func(sdkmetric.Reader) *sdkmetric.MeterProvider) int {
	t.Helper()
	ctx := context.Background()
	reader := sdkmetric.NewManualReader()
	mp := build(reader)
	defer mp.Shutdown(ctx)
	tp := sdktrace.NewTracerProvider(sdktrace.WithSampler(sdktrace.AlwaysSample()))
	defer tp.Shutdown(ctx)

	h, err := mp.Meter("test").Float64Histogram("muninn_test_seconds")
	if err != nil {
		t.Fatal(err)
	}
	sctx, span := tp.Tracer("test").Start(ctx, "op")
	h.Record(sctx, 0.5)
	span.End()

	var rm metricdata.ResourceMetrics
	if err := reader.Collect(ctx, &rm); err != nil {
		t.Fatal(err)
	}
	n, points := 0, 0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			hist, ok := m.Data.(metricdata.Histogram[float64])
			if !ok {
				t.Fatalf("%s: data is %T, want a float64 histogram", m.Name, m.Data)
			}
			for _, dp := range hist.DataPoints {
				points++
				n += len(dp.Exemplars)
			}
		}
	}
	if points != 1 {
		t.Fatalf("collected %d data points, want 1", points)
	}
	return n
}

func TestNewMeterProviderHasNoExemplars(t *testing.T) {
	t.Setenv("OTEL_METRICS_EXEMPLAR_FILTER", "") // the SDK's default below, whatever the shell says
	if n := exemplars(t, func(r sdkmetric.Reader) *sdkmetric.MeterProvider { return otelsdk.NewMeterProvider(r) }); n != 0 {
		t.Fatalf("NewMeterProvider kept %d exemplars, want none", n)
	}
	// The SDK's default keeps one here; if it stopped, the check above
	// would pass whatever NewMeterProvider does.
	if n := exemplars(t, func(r sdkmetric.Reader) *sdkmetric.MeterProvider {
		return sdkmetric.NewMeterProvider(sdkmetric.WithReader(r))
	}); n == 0 {
		t.Fatal("the SDK's default provider kept no exemplar inside a sampled span; this test no longer tells the two apart")
	}
}
