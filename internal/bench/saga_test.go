package bench

import (
	"context"
	"io"
	"testing"
)

// BenchmarkSagaThroughput runs the saga measurement alone, for profiling:
// go test ./internal/bench -run '^$' -bench Saga -benchtime 1x -cpuprofile cpu.out
func BenchmarkSagaThroughput(b *testing.B) {
	cfg := QuickConfig()
	cfg.Dir = b.TempDir()
	e := &env{cfg: cfg}
	e.cfg.Progress = io.Discard
	for b.Loop() {
		steps, workflows, err := e.sagaThroughput(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(steps, "steps/s")
		b.ReportMetric(workflows, "workflows/s")
	}
}
