package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestServiceSurface runs the service surface measurement alone: the shop
// behind real gRPC and HTTP servers on loopback, every rate and latency
// positive, and every order placed taken through its checkout.
func TestServiceSurface(t *testing.T) {
	cfg := tinyConfig(t)
	var progress bytes.Buffer
	cfg.Progress = &progress
	e, err := openEnv(context.Background(), cfg, cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.close(); err != nil {
			t.Error(err)
		}
	})
	for round := range 2 { // the second on the same store, as in Run
		vs, err := e.serviceSurface(t.Context())
		if err != nil {
			t.Fatalf("round %d: %v\nprogress:\n%s", round, err, progress.String())
		}
		if strings.Count(progress.String(), "checkouts completed") != round+1 {
			t.Errorf("round %d: the checkouts were not settled:\n%s", round, progress.String())
		}
		for i, v := range vs {
			if v <= 0 {
				t.Errorf("round %d: value %d = %v, want > 0", round, i, v)
			}
		}
		t.Logf("round %d: gRPC %.0f/s, REST %.0f/s, in process %.0f/s, query p50 %.2f ms, p99 %.2f ms", round, vs[0], vs[1], vs[2], vs[3], vs[4])
		if vs[3] > vs[4] {
			t.Errorf("round %d: p50 %v ms above p99 %v ms", round, vs[3], vs[4])
		}
	}
}
