package engines_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/muninn-es/muninn/broker/brokertest"
	"github.com/muninn-es/muninn/broker/engines"
	"github.com/nats-io/nats-server/v2/server"
)

// startNATS starts an embedded nats-server with JetStream on loopback
// (port -1 picks a free one).
func startNATS(t *testing.T, port int, storeDir string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true,
		StoreDir: storeDir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	return ns
}

// open returns a harness Open function for cfg.
func open(cfg engines.Config) func(t *testing.T) (message.Publisher, message.Subscriber) {
	return func(t *testing.T) (message.Publisher, message.Subscriber) {
		t.Helper()
		eng, err := engines.Open(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { eng.Close() })
		return eng.Publisher, eng.Subscriber
	}
}

// TestNATS runs the broker contract on an embedded NATS JetStream server.
// The outage is a real one: the server shuts down and a new one starts on
// the same port and JetStream store directory.
func TestNATS(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, -1, dir)
	t.Cleanup(func() { ns.Shutdown() })
	brokertest.Run(t, brokertest.Harness{
		Open: open(engines.Config{Engine: engines.NATS, URL: ns.ClientURL(), ConsumerGroup: "shipping", AckWait: 2 * time.Second}),
		Outage: func(t *testing.T) func(t *testing.T) {
			port := ns.Addr().(*net.TCPAddr).Port
			ns.Shutdown()
			ns.WaitForShutdown()
			return func(t *testing.T) { ns = startNATS(t, port, dir) }
		},
	})
}
