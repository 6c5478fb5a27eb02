package engines

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/ThreeDotsLabs/watermill"
	"github.com/ThreeDotsLabs/watermill-kafka/v3/pkg/kafka"
	wmnats "github.com/ThreeDotsLabs/watermill-nats/v2/pkg/nats"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/gochannel"
	"github.com/muninn-es/muninn/broker"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/nats-io/nats.go"
)

// Engine names accepted by Config.Engine.
const (
	GoChannel = "gochannel"
	Kafka     = "kafka"
	NATS      = "nats"
	Muninn    = "muninn"
)

// Config picks and configures an engine.
//
// URLs:
//   - gochannel: empty, or "gochannel://" with optional query parameters
//     persistent=true (keep every message in memory and replay it to new
//     subscribers) and buffer=N (the output channel's size). Messages
//     published while nobody subscribes are dropped unless persistent;
//     Publish waits until the subscribers Acked.
//     the replay to a new subscriber runs concurrently with live
//     messages, so order holds only for messages published after Subscribe.
//   - kafka: "kafka://host:port[,host:port...]", the bootstrap brokers.
//   - nats: "nats://host:port[,nats://host:port...]", as nats.Connect takes
//     it.
//   - muninn: "muninn:///path/to/store" opens (and Close closes) the store in
//     that directory; empty uses Config.Store.
type Config struct {
	// Engine is GoChannel, Kafka, NATS or Muninn. Required.
	Engine string
	// URL says where the engine is; see Config.
	URL string
	// ConsumerGroup is the group the subscriber consumes as (a Kafka group,
	// a JetStream durable queue group, a group of the log). Required for
	// every engine but gochannel, whose subscribers all get every message.
	ConsumerGroup string
	// Store is the store of the muninn engine when URL is empty.
	Store eventstore.Store
	// Partitions is the partition count of topics that the muninn engine
	// creates, and that the kafka subscriber's SubscribeInitialize creates.
	// Default broker.DefaultPartitions.
	Partitions int
	// AckWait is how long NATS JetStream waits for an Ack before it
	// redelivers. Default 30 s.
	AckWait time.Duration
	// Logger receives the engine clients' logs. Default: discard.
	Logger *slog.Logger
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	switch c.Engine {
	case GoChannel:
		if c.URL != "" {
			if _, err := parseGoChannelURL(c.URL); err != nil {
				errs = append(errs, err)
			}
		}
	case Kafka:
		if _, err := parseKafkaURL(c.URL); err != nil {
			errs = append(errs, err)
		}
	case NATS:
		if err := validateNATSURL(c.URL); err != nil {
			errs = append(errs, err)
		}
	case Muninn:
		if c.URL == "" && c.Store == nil {
			errs = append(errs, errors.New("engines: muninn needs a URL (muninn:///path) or a Store"))
		}
		if c.URL != "" {
			if _, err := parseMuninnURL(c.URL); err != nil {
				errs = append(errs, err)
			}
		}
	case "":
		errs = append(errs, errors.New("engines: Engine is empty (want gochannel, kafka, nats or muninn)"))
	default:
		errs = append(errs, fmt.Errorf("engines: unknown engine %q (want gochannel, kafka, nats or muninn)", c.Engine))
	}
	if c.Engine != GoChannel && c.Engine != "" && c.ConsumerGroup == "" {
		errs = append(errs, fmt.Errorf("engines: %s needs a ConsumerGroup", c.Engine))
	}
	if c.Partitions < 0 || c.Partitions > eventstore.MaxPartitions {
		errs = append(errs, fmt.Errorf("engines: Partitions %d is outside [0, %d]", c.Partitions, eventstore.MaxPartitions))
	}
	if c.AckWait < 0 {
		errs = append(errs, errors.New("engines: AckWait is negative"))
	}
	return errors.Join(errs...)
}

func parseGoChannelURL(s string) (gochannel.Config, error) {
	cfg := gochannel.Config{BlockPublishUntilSubscriberAck: true}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != GoChannel || u.Host != "" || (u.Path != "" && u.Path != "/") {
		return cfg, fmt.Errorf("engines: gochannel URL %q: want empty or gochannel://[?persistent=true&buffer=N]", s)
	}
	var errs []error
	for k, vs := range u.Query() {
		v := vs[len(vs)-1]
		switch k {
		case "persistent":
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Errorf("engines: gochannel URL: persistent=%q is not a boolean", v))
			}
			cfg.Persistent = b
		case "buffer":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < 0 {
				errs = append(errs, fmt.Errorf("engines: gochannel URL: buffer=%q is not a count", v))
			}
			cfg.OutputChannelBuffer = n
		default:
			errs = append(errs, fmt.Errorf("engines: gochannel URL: unknown parameter %q", k))
		}
	}
	return cfg, errors.Join(errs...)
}

func parseKafkaURL(s string) ([]string, error) {
	rest, ok := strings.CutPrefix(s, "kafka://")
	if !ok || rest == "" {
		return nil, fmt.Errorf("engines: kafka URL %q: want kafka://host:port[,host:port...]", s)
	}
	var brokers []string
	var errs []error
	for _, hp := range strings.Split(strings.TrimSuffix(rest, "/"), ",") {
		host, port, err := net.SplitHostPort(hp)
		if err == nil {
			var n int
			n, err = strconv.Atoi(port)
			if err == nil && (n < 1 || n > 65535) {
				err = errors.New("port out of range")
			}
		}
		if err == nil && host == "" {
			err = errors.New("empty host")
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("engines: kafka URL %q: broker %q: %v", s, hp, err))
			continue
		}
		brokers = append(brokers, hp)
	}
	return brokers, errors.Join(errs...)
}

func validateNATSURL(s string) error {
	if s == "" {
		return errors.New("engines: nats URL is empty (want nats://host:port)")
	}
	for _, one := range strings.Split(s, ",") {
		u, err := url.Parse(strings.TrimSpace(one))
		if err != nil || (u.Scheme != "nats" && u.Scheme != "tls") || u.Host == "" {
			return fmt.Errorf("engines: nats URL %q: want nats://host:port", s)
		}
	}
	return nil
}

func parseMuninnURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Scheme != Muninn || u.Host != "" || u.Path == "" {
		return "", fmt.Errorf("engines: muninn URL %q: want muninn:///path/to/store", s)
	}
	return u.Path, nil
}

// Engine is an open engine: a publisher and a subscriber, and what Close
// releases.
type Engine struct {
	// Name is Config.Engine.
	Name string
	// Publisher publishes to the engine.
	Publisher message.Publisher
	// Subscriber subscribes to the engine in Config.ConsumerGroup.
	Subscriber message.Subscriber

	closers   []func() error
	closeOnce sync.Once
	closeErr  error
}

// Close closes the subscriber, the publisher and what the engine opened
// (the store of a muninn URL). It is idempotent.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		var errs []error
		for _, c := range e.closers {
			errs = append(errs, c())
		}
		e.closeErr = errors.Join(errs...)
	})
	return e.closeErr
}

// Open validates cfg and opens the engine. For kafka and nats it connects
// (NATS retries the first connection in the background, so a server that is
// not up yet makes Publish fail rather than Open).
func Open(ctx context.Context, cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	logger := watermill.LoggerAdapter(watermill.NopLogger{})
	if cfg.Logger != nil {
		logger = watermill.NewSlogLogger(cfg.Logger)
	}
	e := &Engine{Name: cfg.Engine}
	switch cfg.Engine {
	case GoChannel:
		gc := gochannel.Config{BlockPublishUntilSubscriberAck: true}
		if cfg.URL != "" {
			gc, _ = parseGoChannelURL(cfg.URL)
		}
		ch := gochannel.NewGoChannel(gc, logger)
		e.Publisher, e.Subscriber = ch, ch
		e.closers = []func() error{ch.Close}
	case Kafka:
		brokers, _ := parseKafkaURL(cfg.URL)
		if err := openKafka(e, brokers, cfg, logger); err != nil {
			return nil, err
		}
	case NATS:
		if err := openNATS(e, cfg, logger); err != nil {
			return nil, err
		}
	case Muninn:
		store := cfg.Store
		if cfg.URL != "" {
			dir, _ := parseMuninnURL(cfg.URL)
			var err error
			store, err = eventstore.Open(dir)
			if err != nil {
				return nil, fmt.Errorf("engines: muninn: %w", err)
			}
			defer func() {
				if e.Publisher == nil {
					store.Close()
				}
			}()
		}
		pub, err := broker.NewPublisher(store, broker.PublisherConfig{Partitions: cfg.Partitions})
		if err != nil {
			return nil, err
		}
		sub, err := broker.NewSubscriber(store, broker.SubscriberConfig{ConsumerGroup: cfg.ConsumerGroup, Partitions: cfg.Partitions, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		e.Publisher, e.Subscriber = pub, sub
		e.closers = []func() error{sub.Close, pub.Close}
		if cfg.URL != "" {
			e.closers = append(e.closers, store.Close)
		}
	}
	return e, nil
}

// partitionKey keys a Kafka message by the record's key (aggregate ID), so
// that Kafka's default partitioner puts a key where Muninn does.
func partitionKey(_ string, msg *message.Message) (string, error) {
	if k := msg.Metadata.Get(broker.MetaKey); k != "" {
		return k, nil
	}
	return msg.UUID, nil
}

func openKafka(e *Engine, brokers []string, cfg Config, logger watermill.LoggerAdapter) error {
	marshaler := kafka.NewWithPartitioningMarshaler(partitionKey)
	pcfg := kafka.DefaultSaramaSyncPublisherConfig()
	pcfg.Producer.RequiredAcks = sarama.WaitForAll
	pcfg.Producer.Retry.Max = 3
	pcfg.Producer.Retry.Backoff = 100 * time.Millisecond
	pcfg.Metadata.Retry.Backoff = 250 * time.Millisecond
	// Kafka's default partitioner (murmur2), as eventstore.PartitionFor: a key
	// lands in the same partition number in Muninn and in Kafka.
	pcfg.Producer.Partitioner = sarama.NewMurmur2Partitioner
	pub, err := kafka.NewPublisher(kafka.PublisherConfig{Brokers: brokers, Marshaler: marshaler, OverwriteSaramaConfig: pcfg}, logger)
	if err != nil {
		return fmt.Errorf("engines: kafka publisher: %w", err)
	}
	scfg := kafka.DefaultSaramaSubscriberConfig()
	scfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	scfg.Metadata.Retry.Backoff = 250 * time.Millisecond
	sub, err := kafka.NewSubscriber(kafka.SubscriberConfig{
		Brokers:               brokers,
		Unmarshaler:           marshaler,
		OverwriteSaramaConfig: scfg,
		ConsumerGroup:         cfg.ConsumerGroup,
		NackResendSleep:       100 * time.Millisecond,
		ReconnectRetrySleep:   250 * time.Millisecond,
		InitializeTopicDetails: &sarama.TopicDetail{
			NumPartitions:     int32(cmp.Or(cfg.Partitions, broker.DefaultPartitions)),
			ReplicationFactor: 1,
		},
	}, logger)
	if err != nil {
		pub.Close()
		return fmt.Errorf("engines: kafka subscriber: %w", err)
	}
	e.Publisher, e.Subscriber = pub, sub
	e.closers = []func() error{sub.Close, pub.Close}
	return nil
}

func openNATS(e *Engine, cfg Config, logger watermill.LoggerAdapter) error {
	ackWait := cfg.AckWait
	if ackWait == 0 {
		ackWait = 30 * time.Second
	}
	opts := []nats.Option{
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(100 * time.Millisecond),
		nats.Timeout(5 * time.Second),
	}
	group := broker.SanitizeSubject(cfg.ConsumerGroup)
	js := wmnats.JetStreamConfig{
		AutoProvision: true,
		// One unacknowledged message at a time per consumer: a message
		// redelivered after an outage cannot overtake a later one.
		SubscribeOptions: []nats.SubOpt{nats.DeliverAll(), nats.AckExplicit(), nats.MaxAckPending(1)},
		TrackMsgId:       true,
		DurablePrefix:    group,
		DurableCalculator: func(prefix, topic string) string {
			return prefix + "_" + topic
		},
	}
	pub, err := wmnats.NewPublisher(wmnats.PublisherConfig{URL: cfg.URL, NatsOptions: opts, JetStream: js}, logger)
	if err != nil {
		return fmt.Errorf("engines: nats publisher: %w", err)
	}
	sub, err := wmnats.NewSubscriber(wmnats.SubscriberConfig{
		URL:              cfg.URL,
		QueueGroupPrefix: group,
		SubscribersCount: 1,
		AckWaitTimeout:   ackWait,
		CloseTimeout:     5 * time.Second,
		SubscribeTimeout: 10 * time.Second,
		NatsOptions:      opts,
		JetStream:        js,
	}, logger)
	if err != nil {
		pub.Close()
		return fmt.Errorf("engines: nats subscriber: %w", err)
	}
	e.Publisher = natsPublisher{pub}
	e.Subscriber = natsSubscriber{sub}
	e.closers = []func() error{sub.Close, pub.Close}
	return nil
}

// natsPublisher and natsSubscriber map topic names to valid subjects and
// stream names (SanitizeSubject) on both sides.
type natsPublisher struct{ p *wmnats.Publisher }

func (n natsPublisher) Publish(topic string, msgs ...*message.Message) error {
	return n.p.Publish(broker.SanitizeSubject(topic), msgs...)
}
func (n natsPublisher) Close() error { return n.p.Close() }

type natsSubscriber struct{ s *wmnats.Subscriber }

func (n natsSubscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	return n.s.Subscribe(ctx, broker.SanitizeSubject(topic))
}
func (n natsSubscriber) SubscribeInitialize(topic string) error {
	return n.s.SubscribeInitialize(broker.SanitizeSubject(topic))
}
func (n natsSubscriber) Close() error { return n.s.Close() }
