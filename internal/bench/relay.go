package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/broker/engines"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/nats-io/nats-server/v2/server"
)

// The relay measurements (broker): throughput of the outbox relay to
// watermill's GoChannel and to an embedded NATS JetStream server, and the
// latency from append to an Inbound handler through NATS.
const (
	// relayMaxRecords caps the records a relay throughput run publishes;
	// below it the run publishes Streams x EventsPerStream records.
	relayMaxRecords = 50_000
	// relayLatencyRate is the steady rate (appends per second) of the
	// latency measurement: moderate, well below saturation.
	relayLatencyRate = 200
)

// relayRun numbers the relay runs, so that each has its own topic and group.
var relayRun atomic.Int64

// countingPublisher counts what its publisher accepted and closes done once
// the count reaches want.
type countingPublisher struct {
	message.Publisher
	n    atomic.Int64
	want int64
	once sync.Once
	done chan struct{}
}

func (c *countingPublisher) Publish(topic string, msgs ...*message.Message) error {
	if err := c.Publisher.Publish(topic, msgs...); err != nil {
		return err
	}
	if c.n.Add(int64(len(msgs))) >= c.want {
		c.once.Do(func() { close(c.done) })
	}
	return nil
}

// embeddedNATS starts a nats-server with JetStream on loopback, storing in a
// temporary directory under cfg.Dir; stop shuts it down and removes it.
func (e *env) embeddedNATS() (url string, stop func(), err error) {
	dir, err := os.MkdirTemp(e.cfg.Dir, "muninn-bench-nats-")
	if err != nil {
		return "", nil, fmt.Errorf("bench: %w", err)
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true,
		StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("bench: nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		os.RemoveAll(dir)
		return "", nil, errors.New("bench: nats-server did not start")
	}
	if _, ok := ns.Addr().(*net.TCPAddr); !ok {
		ns.Shutdown()
		os.RemoveAll(dir)
		return "", nil, errors.New("bench: nats-server has no TCP address")
	}
	return ns.ClientURL(), func() {
		ns.Shutdown()
		ns.WaitForShutdown()
		os.RemoveAll(dir)
	}, nil
}

// openRelayEngine opens engine (gochannel or nats) for a relay run; stop
// closes it and its server.
func (e *env) openRelayEngine(ctx context.Context, engine, group string) (*engines.Engine, func(), error) {
	cfg := engines.Config{Engine: engine, ConsumerGroup: group}
	stopServer := func() {}
	if engine == engines.NATS {
		url, stop, err := e.embeddedNATS()
		if err != nil {
			return nil, nil, err
		}
		cfg.URL, stopServer = url, stop
	}
	eng, err := engines.Open(ctx, cfg)
	if err != nil {
		stopServer()
		return nil, nil, fmt.Errorf("bench: %w", err)
	}
	return eng, func() { eng.Close(); stopServer() }, nil
}

// relayThroughput loads Streams x EventsPerStream records (at most
// relayMaxRecords) into a fresh topic, then times a relay publishing all of
// them to engine, in records per second. With GoChannel a subscriber Acks
// every message (Publish waits for that); with NATS the time ends when
// JetStream has acknowledged every record.
func (e *env) relayThroughput(ctx context.Context, engine string) (float64, error) {
	run := relayRun.Add(1)
	topic := fmt.Sprintf("bench-relay-%s-%d", engine, run)
	n := min(e.cfg.Streams*e.cfg.EventsPerStream, relayMaxRecords)
	if err := e.store.CreateTopic(ctx, topic, eventstore.TopicConfig{Partitions: e.cfg.Partitions}); err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	events := make([]eventstore.Event, 0, e.cfg.EventsPerStream)
	for loaded, i := 0, 0; loaded < n; i++ {
		events = events[:0]
		for j := 0; j < e.cfg.EventsPerStream && loaded < n; j++ {
			events = append(events, eventstore.Event{Type: "bench.relayed", Payload: e.payload(uint64(loaded))})
			loaded++
		}
		if _, err := e.store.Append(ctx, topic, e.keys[i%len(e.keys)], eventstore.Any, events, eventstore.NoSync()); err != nil {
			return 0, fmt.Errorf("bench: load %s: %w", topic, err)
		}
	}
	if err := e.store.Sync(ctx); err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}

	group := fmt.Sprintf("bench-relay-%d", run)
	eng, stop, err := e.openRelayEngine(ctx, engine, group)
	if err != nil {
		return 0, err
	}
	defer stop()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if engine == engines.GoChannel {
		msgs, err := eng.Subscriber.Subscribe(runCtx, topic)
		if err != nil {
			return 0, fmt.Errorf("bench: %w", err)
		}
		go func() {
			for m := range msgs {
				m.Ack()
			}
		}()
	}
	counter := &countingPublisher{Publisher: eng.Publisher, want: int64(n), done: make(chan struct{})}
	relay, err := broker.NewRelay(e.store, counter, broker.RelayConfig{Group: group, Topics: []string{topic}})
	if err != nil {
		return 0, fmt.Errorf("bench: %w", err)
	}
	relayErr := make(chan error, 1)
	start := time.Now()
	go func() { relayErr <- relay.Run(runCtx) }()
	select {
	case <-counter.done:
	case err := <-relayErr:
		return 0, fmt.Errorf("bench: relay stopped early: %v", err)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	elapsed := time.Since(start)
	cancel()
	if err := <-relayErr; err != nil {
		return 0, fmt.Errorf("bench: relay: %w", err)
	}
	return float64(n) / elapsed.Seconds(), nil
}

// relayLatency appends one event every 1/relayLatencyRate s for
// cfg.Warmup (not counted) and then cfg.Duration, relays them through an
// embedded NATS JetStream server to an Inbound consumer, and returns the
// 50th and 99th percentiles, in milliseconds, of the time from the start
// of each append (the event's timestamp) to its handler.
func (e *env) relayLatency(ctx context.Context) (p50, p99 float64, err error) {
	run := relayRun.Add(1)
	topic := fmt.Sprintf("bench-latency-%d", run)
	group := fmt.Sprintf("bench-latency-%d", run)
	if err := e.store.CreateTopic(ctx, topic, eventstore.TopicConfig{Partitions: e.cfg.Partitions}); err != nil {
		return 0, 0, fmt.Errorf("bench: %w", err)
	}
	eng, stop, err := e.openRelayEngine(ctx, engines.NATS, group)
	if err != nil {
		return 0, 0, err
	}
	defer stop()
	if si, ok := eng.Subscriber.(message.SubscribeInitializer); ok {
		if err := si.SubscribeInitialize(topic); err != nil {
			return 0, 0, fmt.Errorf("bench: %w", err)
		}
	}

	var (
		mu        sync.Mutex
		latencies []time.Duration
		handled   int
	)
	notify := make(chan struct{}, 1)
	handler := func(_ context.Context, _ eventstore.Txn, rec eventstore.Record) error {
		d := time.Since(rec.Timestamp)
		mu.Lock()
		handled++
		if rec.Headers["warmup"] == "" {
			latencies = append(latencies, d)
		}
		mu.Unlock()
		select {
		case notify <- struct{}{}:
		default:
		}
		return nil
	}
	relay, err := broker.NewRelay(e.store, eng.Publisher, broker.RelayConfig{Group: group, Topics: []string{topic}})
	if err != nil {
		return 0, 0, fmt.Errorf("bench: %w", err)
	}
	in, err := broker.NewInbound(e.store, eng.Subscriber, handler, broker.InboundConfig{Name: group, Topics: []string{topic}})
	if err != nil {
		return 0, 0, fmt.Errorf("bench: %w", err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- relay.Run(runCtx) }()
	go func() { errs <- in.Run(runCtx) }()

	tick := time.NewTicker(time.Second / relayLatencyRate)
	defer tick.Stop()
	sent, measured := 0, 0
	warmupEnd := time.Now().Add(e.cfg.Warmup)
	end := warmupEnd.Add(e.cfg.Duration)
	// At least one measured event is sent, however slow the appends are: on
	// a loaded machine a short warmup and run can pass within one append.
	for now := time.Now(); now.Before(end) || measured == 0; now = time.Now() {
		var headers map[string]string
		if now.Before(warmupEnd) {
			headers = map[string]string{"warmup": "1"}
		} else {
			measured++
		}
		ev := eventstore.Event{Type: "bench.latency", Payload: e.payload(uint64(sent)), Timestamp: now, Headers: headers}
		if _, err := e.store.Append(ctx, topic, e.keys[sent%len(e.keys)], eventstore.Any, []eventstore.Event{ev}); err != nil {
			return 0, 0, fmt.Errorf("bench: %w", err)
		}
		sent++
		select {
		case <-tick.C:
		case err := <-errs:
			return 0, 0, fmt.Errorf("bench: relay or inbound stopped early: %v", err)
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	deadline := time.After(30 * time.Second)
	for {
		mu.Lock()
		done := handled >= sent
		mu.Unlock()
		if done {
			break
		}
		select {
		case <-notify:
		case err := <-errs:
			return 0, 0, fmt.Errorf("bench: relay or inbound stopped early: %v", err)
		case <-deadline:
			return 0, 0, fmt.Errorf("bench: only %d of %d relayed events reached the handler in 30 s", handled, sent)
		case <-ctx.Done():
			return 0, 0, ctx.Err()
		}
	}
	cancel()
	for range 2 {
		if err := <-errs; err != nil {
			return 0, 0, fmt.Errorf("bench: %w", err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(latencies) == 0 {
		return 0, 0, errors.New("bench: no latency sample")
	}
	slices.Sort(latencies)
	pct := func(p float64) float64 {
		i := min(int(p*float64(len(latencies))), len(latencies)-1)
		return float64(latencies[i]) / float64(time.Millisecond)
	}
	return pct(0.50), pct(0.99), nil
}
