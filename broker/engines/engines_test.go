package engines_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/muninn-es/muninn/broker/brokertest"
	"github.com/muninn-es/muninn/broker/engines"
	"github.com/muninn-es/muninn/eventstore"
)

// TestGoChannel runs the broker contract on watermill's GoChannel (no
// outage: it lives in the process).
func TestGoChannel(t *testing.T) {
	brokertest.Run(t, brokertest.Harness{Open: open(engines.Config{Engine: engines.GoChannel, URL: "gochannel://?persistent=true"})})
}

// TestMuninn runs the broker contract through a third store opened from a
// muninn:// URL: the log as the engine between two services. Each subtest
// gets its own store directory.
func TestMuninn(t *testing.T) {
	brokertest.Run(t, brokertest.Harness{Open: func(t *testing.T) (message.Publisher, message.Subscriber) {
		url := "muninn://" + filepath.ToSlash(filepath.Join(t.TempDir(), "engine"))
		return open(engines.Config{Engine: engines.Muninn, URL: url, ConsumerGroup: "shipping"})(t)
	}})
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg  engines.Config
		want []string
	}{
		{engines.Config{}, []string{"Engine is empty"}},
		{engines.Config{Engine: "rabbitmq"}, []string{`unknown engine "rabbitmq"`}},
		{engines.Config{Engine: engines.Kafka, URL: "http://x:1"}, []string{"kafka URL", "needs a ConsumerGroup"}},
		{engines.Config{Engine: engines.Kafka, URL: "kafka://a:1,b", ConsumerGroup: "g"}, []string{`broker "b"`}},
		{engines.Config{Engine: engines.Kafka, URL: "kafka://a:99999", ConsumerGroup: "g"}, []string{"port out of range"}},
		{engines.Config{Engine: engines.NATS, ConsumerGroup: "g"}, []string{"nats URL is empty"}},
		{engines.Config{Engine: engines.NATS, URL: "localhost:4222", ConsumerGroup: "g"}, []string{"want nats://host:port"}},
		{engines.Config{Engine: engines.GoChannel, URL: "gochannel://?persistent=maybe&x=1"}, []string{"persistent", `unknown parameter "x"`}},
		{engines.Config{Engine: engines.Muninn, ConsumerGroup: "g", Partitions: -1}, []string{"needs a URL", "Partitions -1"}},
		{engines.Config{Engine: engines.Muninn, URL: "muninn://host/dir", ConsumerGroup: "g"}, []string{"muninn:///path"}},
	} {
		err := tc.cfg.Validate()
		if err == nil {
			t.Errorf("%+v: no error", tc.cfg)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%+v: error %q does not mention %q", tc.cfg, err, w)
			}
		}
		if _, err := engines.Open(context.Background(), tc.cfg); err == nil {
			t.Errorf("%+v: Open accepted it", tc.cfg)
		}
	}
	for _, ok := range []engines.Config{
		{Engine: engines.GoChannel},
		{Engine: engines.Kafka, URL: "kafka://127.0.0.1:9092,[::1]:9093", ConsumerGroup: "g"},
		{Engine: engines.NATS, URL: "nats://127.0.0.1:4222,nats://127.0.0.1:4223", ConsumerGroup: "g"},
		{Engine: engines.Muninn, URL: "muninn:///var/lib/muninn", ConsumerGroup: "g"},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

func openStore(t *testing.T) eventstore.Store {
	t.Helper()
	s, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}
