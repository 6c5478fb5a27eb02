package engines_test

import (
	"net"
	"testing"
	"time"

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

// TestNATSRelayInboundOutage: relay -> embedded NATS JetStream -> inbound;
// the outage is a real one: the server shuts down and a new one starts on
// the same port and JetStream store directory.
func TestNATSRelayInboundOutage(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, -1, dir)
	t.Cleanup(func() { ns.Shutdown() })
	testRelayInboundOutage(t, engines.Config{Engine: engines.NATS, URL: ns.ClientURL(), ConsumerGroup: "shipping", AckWait: 2 * time.Second},
		func(t *testing.T) func(t *testing.T) {
			port := ns.Addr().(*net.TCPAddr).Port
			ns.Shutdown()
			ns.WaitForShutdown()
			return func(t *testing.T) { ns = startNATS(t, port, dir) }
		})
}
