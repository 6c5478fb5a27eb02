package eventstore

import (
	"testing"
	"time"

	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// BenchmarkAppendObservations is what the store's metrics add to one
// durable append on the SDK's meter provider: the batch size and the fsync
// wait, with the cached attribute set of the topic.
func BenchmarkAppendObservations(b *testing.B) {
	s, err := OpenMem(WithMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(sdkmetric.NewManualReader()))))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	for b.Loop() {
		start := time.Now()
		s.metrics.synced(start)
		s.metrics.appended("orders", 1)
	}
}
