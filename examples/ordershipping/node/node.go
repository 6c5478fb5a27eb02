// Package node is the wiring both services of the ordershipping example
// share: a store of their own, NATS JetStream through broker/engines, a
// relay that publishes the service's own topic, and an inbound consumer of
// the other service's topic.
package node

import (
	"context"
	"errors"
	"log/slog"
	"os"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/broker/engines"
	"github.com/muninn-es/muninn/eventstore"
)

// Node is one service: its store, its connection to NATS, and its relay.
type Node struct {
	// Store is the service's own store.
	Store eventstore.Store
	// Logger logs warnings to stderr.
	Logger  *slog.Logger
	service string
	inTopic string
	engine  *engines.Engine
	relay   *broker.Relay
}

// Open opens the store in dir, creates the service's own topic, connects to
// NATS at natsURL as the consumer group "<service>-service", prepares the
// subscription to inTopic, and sets up the relay "<service>-relay" that
// publishes ownTopic to NATS.
func Open(ctx context.Context, service, dir, natsURL, ownTopic, inTopic string) (n *Node, err error) {
	n = &Node{service: service, inTopic: inTopic,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	if n.Store, err = eventstore.Open(dir); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			n.Close()
		}
	}()
	if err := n.Store.CreateTopic(ctx, ownTopic, eventstore.TopicConfig{Partitions: 4}); err != nil && !errors.Is(err, eventstore.ErrTopicExists) {
		return nil, err
	}
	n.engine, err = engines.Open(ctx, engines.Config{Engine: engines.NATS, URL: natsURL, ConsumerGroup: service + "-service", Logger: n.Logger})
	if err != nil {
		return nil, err
	}
	if si, ok := n.engine.Subscriber.(message.SubscribeInitializer); ok {
		if err := si.SubscribeInitialize(inTopic); err != nil {
			return nil, err
		}
	}
	n.relay, err = broker.NewRelay(n.Store, n.engine.Publisher, broker.RelayConfig{Group: service + "-relay", Topics: []string{ownTopic}, Logger: n.Logger})
	if err != nil {
		return nil, err
	}
	return n, nil
}

// Run consumes inTopic into handler (as the inbound "<service>-service",
// with afterCommit, which may be nil), relays the own topic, and runs the
// extra functions, until ctx ends or one of them fails.
func (n *Node) Run(ctx context.Context, handler broker.Handler, afterCommit func(context.Context, eventstore.Record), extra ...func(context.Context) error) error {
	in, err := broker.NewInbound(n.Store, n.engine.Subscriber, handler, broker.InboundConfig{
		Name: n.service + "-service", Topics: []string{n.inTopic}, Logger: n.Logger, AfterCommit: afterCommit})
	if err != nil {
		return err
	}
	return runAll(ctx, append([]func(context.Context) error{n.relay.Run, in.Run}, extra...)...)
}

// Close closes the connection to NATS and the store.
func (n *Node) Close() error {
	var errs []error
	if n.engine != nil {
		errs = append(errs, n.engine.Close())
	}
	return errors.Join(append(errs, n.Store.Close())...)
}

// runAll runs the functions until ctx ends or one fails.
func runAll(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(fns))
	for _, f := range fns {
		go func() { errs <- f(ctx) }()
	}
	var first error
	for range fns {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}
