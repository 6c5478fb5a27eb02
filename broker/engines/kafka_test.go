package engines_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/broker/engines"
	"github.com/twmb/franz-go/pkg/kfake"
)

func startKafka(t *testing.T, dataDir string, ports ...int) *kfake.Cluster {
	t.Helper()
	opts := []kfake.Opt{kfake.NumBrokers(3), kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(4), kfake.DataDir(dataDir)}
	if len(ports) > 0 {
		opts = append(opts, kfake.Ports(ports...))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestKafkaRelayInboundOutage: relay -> kfake (the Kafka protocol, spoken by
// sarama through watermill-kafka) -> inbound; the outage is a real one: the
// cluster closes (persisting to its data directory) and a new one starts on
// the same ports from that directory.
func TestKafkaRelayInboundOutage(t *testing.T) {
	dir := t.TempDir()
	c := startKafka(t, dir)
	t.Cleanup(func() { c.Close() })
	addrs := c.ListenAddrs()
	var ports []int
	for _, a := range addrs {
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(p)
		ports = append(ports, n)
	}
	testRelayInboundOutage(t, engines.Config{Engine: engines.Kafka, URL: "kafka://" + strings.Join(addrs, ","), ConsumerGroup: "shipping"},
		func(t *testing.T) func(t *testing.T) {
			c.Close()
			return func(t *testing.T) { c = startKafka(t, dir, ports...) }
		})
}
