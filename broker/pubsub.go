package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
)

// DefaultPartitions is the partition count of topics the log's Publisher
// and Subscriber create.
const DefaultPartitions = 4

// DefaultMessageType is the event type of a published message that has no
// MetaType metadata.
const DefaultMessageType = "watermill.message"

// MetaMessageUUID is the header under which the log keeps a published
// message's UUID when it is not a UUID (the event ID is then derived from
// it), so that subscribers get the UUID back unchanged.
const MetaMessageUUID = "muninn_message_uuid"

// MetaOriginPrefix starts the headers under which the log's Publisher keeps
// a message's own position metadata (MetaStreamVersion, MetaTopic,
// MetaPartition, MetaOffset), for instance that of a record relayed from
// another log: the Subscriber hands them back unchanged instead of the
// position in this log, so the log is a transparent engine between a Relay
// and an Inbound.
const MetaOriginPrefix = "muninn_origin_"

// originKeys are the metadata keys that describe a position in a log.
var originKeys = []string{MetaStreamVersion, MetaTopic, MetaPartition, MetaOffset}

// ErrPubSubClosed is returned by Publish and Subscribe after Close.
var ErrPubSubClosed = errors.New("broker: publisher or subscriber closed")

// PublisherConfig configures the log's Publisher.
type PublisherConfig struct {
	// KeyFunc returns a message's key (aggregate ID): messages of one key
	// share a partition and keep their order. The default is the MetaKey
	// metadata, else the message UUID.
	KeyFunc func(topic string, msg *message.Message) (string, error)
	// Partitions is the partition count of the topics Publish creates.
	// Default DefaultPartitions.
	Partitions int
	// NoAutoCreate makes Publish fail on a missing topic instead of
	// creating it.
	NoAutoCreate bool
	// NoSync publishes without waiting for fsync (eventstore.NoSync): a
	// crash may lose what was published last.
	NoSync bool
}

// Validate reports every problem with c at once.
func (c PublisherConfig) Validate() error {
	var errs []error
	if c.Partitions < 0 || c.Partitions > eventstore.MaxPartitions {
		errs = append(errs, fmt.Errorf("broker: PublisherConfig.Partitions %d is outside [0, %d]", c.Partitions, eventstore.MaxPartitions))
	}
	return errors.Join(errs...)
}

// Publisher is a watermill message.Publisher that appends to the log: each
// message becomes an event of its key's stream (its UUID the event ID, its
// metadata the event's fields and headers, see DecodeMessage).
type Publisher struct {
	store eventstore.Store
	cfg   PublisherConfig
	mu    sync.RWMutex
	done  bool
}

// NewPublisher returns a Publisher on store.
func NewPublisher(store eventstore.Store, cfg PublisherConfig) (*Publisher, error) {
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("broker: NewPublisher: store is nil"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.KeyFunc == nil {
		cfg.KeyFunc = func(_ string, msg *message.Message) (string, error) {
			if k := msg.Metadata.Get(MetaKey); k != "" {
				return k, nil
			}
			return msg.UUID, nil
		}
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = DefaultPartitions
	}
	return &Publisher{store: store, cfg: cfg}, nil
}

// ensureTopic creates topic with the given partitions if it does not exist.
func ensureTopic(ctx context.Context, store eventstore.Store, topic string, partitions int) error {
	if _, err := store.Partitions(topic); err == nil {
		return nil
	}
	err := store.CreateTopic(ctx, topic, eventstore.TopicConfig{Partitions: partitions})
	if err != nil && !errors.Is(err, eventstore.ErrTopicExists) {
		return err
	}
	return nil
}

// Publish appends the messages to topic, durably unless NoSync, and returns
// once all are appended. Messages of one key are appended together, in the
// order given, as one atomic append; different keys are appended
// concurrently. On an error some keys' messages may be appended and others
// not; publishing all of them again gives duplicates (same event IDs), never
// a gap. Publish does not modify the messages.
func (p *Publisher) Publish(topic string, msgs ...*message.Message) error {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.done {
		return ErrPubSubClosed
	}
	if len(msgs) == 0 {
		return nil
	}
	ctx := context.Background()
	if !p.cfg.NoAutoCreate {
		if err := ensureTopic(ctx, p.store, topic, p.cfg.Partitions); err != nil {
			return fmt.Errorf("broker: publish to %s: %w", topic, err)
		}
	}
	type stream struct {
		key    string
		events []eventstore.Event
	}
	var streams []*stream
	byKey := make(map[string]*stream)
	for _, msg := range msgs {
		ev, err := messageEvent(msg)
		if err != nil {
			return fmt.Errorf("broker: publish to %s: %w", topic, err)
		}
		key, err := p.cfg.KeyFunc(topic, msg)
		if err != nil {
			return fmt.Errorf("broker: publish to %s: key of message %s: %w", topic, msg.UUID, err)
		}
		if key == "" {
			return fmt.Errorf("broker: publish to %s: message %s has an empty key", topic, msg.UUID)
		}
		s := byKey[key]
		if s == nil {
			s = &stream{key: key}
			byKey[key] = s
			streams = append(streams, s)
		}
		s.events = append(s.events, ev)
	}
	var opts []eventstore.AppendOption
	if p.cfg.NoSync {
		opts = append(opts, eventstore.NoSync())
	}
	if len(streams) == 1 {
		_, err := p.store.Append(ctx, topic, streams[0].key, eventstore.Any, streams[0].events, opts...)
		return wrapPublish(topic, err)
	}
	errs := make([]error, len(streams))
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Go(func() {
			_, errs[i] = p.store.Append(ctx, topic, s.key, eventstore.Any, s.events, opts...)
		})
	}
	wg.Wait()
	return wrapPublish(topic, errors.Join(errs...))
}

func wrapPublish(topic string, err error) error {
	if err != nil {
		return fmt.Errorf("broker: publish to %s: %w", topic, err)
	}
	return nil
}

// messageEvent turns a published message into an event.
func messageEvent(msg *message.Message) (eventstore.Event, error) {
	rec, err := DecodeMessage(msg)
	if err != nil {
		return eventstore.Event{}, err
	}
	if _, err := uuid.Parse(msg.UUID); err != nil {
		setHeader(&rec, MetaMessageUUID, msg.UUID)
	}
	for _, k := range originKeys {
		if v, ok := msg.Metadata[k]; ok {
			setHeader(&rec, MetaOriginPrefix+strings.TrimPrefix(k, MetaPrefix), v)
		}
	}
	typ := rec.Type
	if typ == "" && rec.Payload != nil {
		typ = DefaultMessageType
	}
	return eventstore.Event{
		ID:            rec.ID,
		Type:          typ,
		SchemaVersion: rec.SchemaVersion,
		Payload:       rec.Payload,
		Timestamp:     rec.Timestamp,
		CorrelationID: rec.CorrelationID,
		CausationID:   rec.CausationID,
		Headers:       rec.Headers,
	}, nil
}

// Close makes later Publish calls fail with ErrPubSubClosed, after the
// running ones return. It does not close the store. Close is idempotent.
func (p *Publisher) Close() error {
	p.mu.Lock()
	p.done = true
	p.mu.Unlock()
	return nil
}

// SubscriberConfig configures the log's Subscriber.
type SubscriberConfig struct {
	// ConsumerGroup is the group every subscription of this Subscriber
	// joins: the members of a group, in this process, share the topic's
	// partitions and resume from the group's committed offsets. Required.
	ConsumerGroup string
	// StartPosition is where the group starts on partitions it never
	// committed. Default eventstore.Earliest.
	StartPosition eventstore.StartPosition
	// Partitions is the partition count of the topics Subscribe and
	// SubscribeInitialize create. Default DefaultPartitions.
	Partitions int
	// BatchSize is how many records a subscription reads ahead. Default 64.
	BatchSize int
	// Logger receives the errors that end a subscription. Default: discard.
	Logger *slog.Logger
}

// Validate reports every problem with c at once.
func (c SubscriberConfig) Validate() error {
	var errs []error
	if c.ConsumerGroup == "" {
		errs = append(errs, errors.New("broker: SubscriberConfig.ConsumerGroup is empty"))
	} else if err := eventstore.ValidateGroupName(c.ConsumerGroup); err != nil {
		errs = append(errs, fmt.Errorf("broker: SubscriberConfig.ConsumerGroup: %w", err))
	}
	if c.StartPosition != eventstore.Earliest && c.StartPosition != eventstore.Latest {
		errs = append(errs, fmt.Errorf("broker: SubscriberConfig.StartPosition %d is neither Earliest nor Latest", c.StartPosition))
	}
	if c.Partitions < 0 || c.Partitions > eventstore.MaxPartitions {
		errs = append(errs, fmt.Errorf("broker: SubscriberConfig.Partitions %d is outside [0, %d]", c.Partitions, eventstore.MaxPartitions))
	}
	if c.BatchSize < 0 {
		errs = append(errs, errors.New("broker: SubscriberConfig.BatchSize is negative"))
	}
	return errors.Join(errs...)
}

// Subscriber is a watermill message.Subscriber on the log, with consumer
// groups.
//
// Each Subscribe joins the group as a new member. A subscription delivers
// one message at a time and waits for its Ack or Nack: Ack commits the
// offset after it (without waiting for fsync: after a crash the last Acked
// messages may be delivered again), Nack delivers the same record again.
// Messages of one key arrive in the order they were published. Delivery is
// at least once: a rebalance or a restart redelivers what was not committed.
type Subscriber struct {
	store eventstore.Store
	cfg   SubscriberConfig

	mu struct {
		sync.Mutex
		closed bool
		subs   map[*subscription]struct{}
	}
	wg sync.WaitGroup
}

type subscription struct {
	cancel context.CancelFunc
}

// NewSubscriber returns a Subscriber on store.
func NewSubscriber(store eventstore.Store, cfg SubscriberConfig) (*Subscriber, error) {
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("broker: NewSubscriber: store is nil"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Partitions == 0 {
		cfg.Partitions = DefaultPartitions
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Subscriber{store: store, cfg: cfg}
	s.mu.subs = make(map[*subscription]struct{})
	return s, nil
}

// SubscribeInitialize creates topic if it does not exist.
func (s *Subscriber) SubscribeInitialize(topic string) error {
	if err := ensureTopic(context.Background(), s.store, topic, s.cfg.Partitions); err != nil {
		return fmt.Errorf("broker: subscribe initialize %s: %w", topic, err)
	}
	return nil
}

// Subscribe joins the consumer group on topic (creating the topic if
// needed) and returns the channel of its messages. The channel is closed
// when ctx ends, the Subscriber closes, or the store closes.
func (s *Subscriber) Subscribe(ctx context.Context, topic string) (<-chan *message.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return nil, ErrPubSubClosed
	}
	if err := ensureTopic(ctx, s.store, topic, s.cfg.Partitions); err != nil {
		return nil, fmt.Errorf("broker: subscribe to %s: %w", topic, err)
	}
	c, err := s.store.JoinGroup(ctx, s.cfg.ConsumerGroup, []string{topic}, eventstore.WithStartPosition(s.cfg.StartPosition))
	if err != nil {
		return nil, fmt.Errorf("broker: subscribe to %s: %w", topic, err)
	}
	sctx, cancel := context.WithCancel(ctx)
	sub := &subscription{cancel: cancel}
	s.mu.subs[sub] = struct{}{}
	out := make(chan *message.Message)
	s.wg.Go(func() {
		defer func() {
			cancel()
			c.Close()
			close(out)
			s.mu.Lock()
			delete(s.mu.subs, sub)
			s.mu.Unlock()
		}()
		if err := s.deliver(sctx, c, out); err != nil && sctx.Err() == nil {
			s.cfg.Logger.Error("broker: subscription ended", telemetry.AttrTopic, topic, "group", s.cfg.ConsumerGroup, telemetry.AttrError, err)
		}
	})
	return out, nil
}

func (s *Subscriber) deliver(ctx context.Context, c eventstore.Consumer, out chan<- *message.Message) error {
	for {
		recs, err := c.Poll(ctx, s.cfg.BatchSize)
		if err != nil {
			return err
		}
		revoked := make(map[eventstore.TopicPartition]bool)
		for _, rec := range recs {
			tp := eventstore.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}
			if revoked[tp] {
				continue
			}
			if !assigned(c, tp) {
				// The partition moved to another member, which resumes it
				// from the committed offset.
				revoked[tp] = true
				continue
			}
			for {
				// The message's context ends once it is Acked or Nacked,
				// or when the subscription ends.
				msg := recordMessage(rec)
				mctx, mcancel := context.WithCancel(ctx)
				msg.SetContext(mctx)
				select {
				case out <- msg:
				case <-ctx.Done():
					mcancel()
					return nil
				}
				nacked := false
				select {
				case <-msg.Acked():
				case <-msg.Nacked():
					nacked = true
				case <-ctx.Done():
				}
				mcancel()
				if ctx.Err() != nil {
					return nil
				}
				if nacked {
					continue
				}
				err := s.store.Update(context.WithoutCancel(ctx), func(tx eventstore.Txn) error {
					return tx.CommitOffsets(c, map[eventstore.TopicPartition]int64{tp: rec.Offset + 1})
				}, eventstore.UpdateNoSync())
				if errors.Is(err, eventstore.ErrNotAssigned) {
					revoked[tp] = true
				} else if err != nil {
					return err
				}
				break
			}
		}
	}
}

func assigned(c eventstore.Consumer, tp eventstore.TopicPartition) bool {
	for _, a := range c.Assignment() {
		if a == tp {
			return true
		}
	}
	return false
}

// recordMessage turns a record of the log into a message for a subscriber:
// the message that was published, with the MetaMessageUUID and
// MetaOriginPrefix headers turned back into what they stand for.
func recordMessage(rec eventstore.Record) *message.Message {
	var origUUID string
	var origin map[string]string
	var headers map[string]string
	for k, v := range rec.Headers {
		switch {
		case k == MetaMessageUUID:
			origUUID = v
		case strings.HasPrefix(k, MetaOriginPrefix):
			if origin == nil {
				origin = make(map[string]string)
			}
			origin[MetaPrefix+strings.TrimPrefix(k, MetaOriginPrefix)] = v
		default:
			if headers == nil {
				headers = make(map[string]string, len(rec.Headers))
			}
			headers[k] = v
		}
	}
	rec.Headers = headers
	msg := EncodeRecord(rec)
	if origUUID != "" {
		msg.UUID = origUUID
	}
	for k, v := range origin {
		msg.Metadata[k] = v
	}
	return msg
}

// Close ends every subscription, closes their channels and waits for them;
// Subscribe then fails with ErrPubSubClosed. The store stays open. Close is
// idempotent.
func (s *Subscriber) Close() error {
	s.mu.Lock()
	s.mu.closed = true
	for sub := range s.mu.subs {
		sub.cancel()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
