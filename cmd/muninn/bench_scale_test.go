package main

import (
	"strings"
	"testing"
)

func TestBenchScaleBadFlags(t *testing.T) {
	_, _, err := execute(t, "bench", "--scale=10", "--duration", "0s", "--dir", t.TempDir())
	if err == nil {
		t.Fatal("bench --scale=10 --duration 0s succeeded")
	}
	for _, want := range []string{"Events", "Duration"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}
