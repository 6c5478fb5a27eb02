package engines_test

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/broker/brokertest"
	"github.com/muninn-es/muninn/broker/engines"
	"github.com/muninn-es/muninn/eventstore"
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

// TestKafka runs the broker contract on kfake, the Kafka protocol spoken by
// sarama through watermill-kafka. The outage is a real one: the cluster
// closes (persisting to its data directory) and a new one starts on the
// same ports from that directory.
func TestKafka(t *testing.T) {
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
	brokertest.Run(t, brokertest.Harness{
		Open: open(engines.Config{Engine: engines.Kafka, URL: "kafka://" + strings.Join(addrs, ","), ConsumerGroup: "shipping"}),
		Outage: func(t *testing.T) func(t *testing.T) {
			c.Close()
			return func(t *testing.T) { c = startKafka(t, dir, ports...) }
		},
	})
}

// TestKafkaPartitionsByKey: the relay's records land in the Kafka partition
// that Muninn gives their key (murmur2, as Kafka's default partitioner).
func TestKafkaPartitionsByKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := startKafka(t, t.TempDir())
	t.Cleanup(func() { c.Close() })
	eng, err := engines.Open(ctx, engines.Config{Engine: engines.Kafka, URL: "kafka://" + strings.Join(c.ListenAddrs(), ","), ConsumerGroup: "check", Partitions: 5})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	if err := eng.Subscriber.(message.SubscribeInitializer).SubscribeInitialize("keyed"); err != nil {
		t.Fatal(err)
	}
	src := openStore(t)
	if err := src.CreateTopic(ctx, "keyed", eventstore.TopicConfig{Partitions: 5}); err != nil {
		t.Fatal(err)
	}
	const n = 40
	for i := range n {
		if _, err := src.Append(ctx, "keyed", fmt.Sprintf("customer-%d", i), eventstore.NoStream, []eventstore.Event{{Type: "x", Payload: []byte{}}}); err != nil {
			t.Fatal(err)
		}
	}
	relay, err := broker.NewRelay(src, eng.Publisher, broker.RelayConfig{Group: "relay", Topics: []string{"keyed"}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- relay.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	msgs, err := eng.Subscriber.Subscribe(runCtx, "keyed")
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		var msg *message.Message
		select {
		case msg = <-msgs:
		case <-ctx.Done():
			t.Fatal("timed out")
		}
		key := msg.Metadata.Get(broker.MetaKey)
		got, ok := kafka.MessagePartitionFromCtx(msg.Context())
		if !ok || int(got) != eventstore.PartitionFor(key, 5) {
			t.Errorf("key %s: Kafka partition %d (%v), Muninn partition %d", key, got, ok, eventstore.PartitionFor(key, 5))
		}
		if p := msg.Metadata.Get(broker.MetaPartition); p != strconv.Itoa(eventstore.PartitionFor(key, 5)) {
			t.Errorf("key %s: metadata partition %s", key, p)
		}
		msg.Ack()
	}
}
