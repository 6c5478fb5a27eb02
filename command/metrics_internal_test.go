package command

import (
	"context"
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// BenchmarkObserveCommand is what the bus's metrics add to one dispatch on
// the SDK's meter provider: a counter and a histogram, with the cached
// attribute set of the command's labels.
func BenchmarkObserveCommand(b *testing.B) {
	bm, err := newBusMetrics(sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader())))
	if err != nil {
		b.Fatal(err)
	}
	o := Observation{AggregateType: "order", CommandType: "order.Place", Duration: time.Millisecond, Events: 1, Attempts: 1}
	ctx := context.Background()
	for b.Loop() {
		bm.ObserveCommand(ctx, o)
	}
}
