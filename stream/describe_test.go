package stream_test

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/stream"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

type shopOrder struct {
	Customer string `json:"customer"`
	Total    int    `json:"total"`
}

// describeTopology has every kind of step: a table source, a filter, a
// join, a branch, a re-key, a windowed count and sinks.
func describeTopology() *stream.Topology {
	topo := stream.NewTopology()
	customers := stream.SourceTable(topo, "customers", "customers-by-id", codec.String(), codec.String())
	orders := stream.Source(topo, "orders", codec.String(), codec.JSON[shopOrder]())
	valid := stream.Filter(orders, func(_ string, o shopOrder) bool { return o.Total > 0 })
	named := stream.Join(valid, customers, func(_ string, o shopOrder, name string) string { return name })
	parts := stream.Branch(named,
		func(_, name string) bool { return len(name) > 10 },
		func(string, string) bool { return true })
	stream.ToTopic(parts[0], "long-names")
	stream.ToTopic(stream.MapValues(parts[1], func(_, name string) int { return len(name) }), "name-lengths")
	byCustomer := stream.GroupBy(valid, func(_ string, o shopOrder) string { return o.Customer }, codec.String())
	hourly := stream.WindowedCount(stream.WindowedBy(byCustomer, stream.Tumbling(time.Hour).WithGrace(5*time.Minute)), "orders-per-hour")
	stream.ToTopic(stream.WindowedToStream(hourly), "hourly-orders")
	return topo
}

func TestDescribeGolden(t *testing.T) {
	got := describeTopology().Describe()
	path := filepath.Join("testdata", "describe.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("Describe() differs from %s:\n got:\n%s\nwant:\n%s", path, got, want)
	}
	if again := describeTopology().Describe(); again != got {
		t.Error("Describe is not stable across identical builds")
	}
}
