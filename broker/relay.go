package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/trace"
)

// DefaultRelayBatch is how many records the relay reads and publishes at a
// time when RelayConfig.BatchSize is zero.
const DefaultRelayBatch = 256

// RelayConfig configures a Relay.
type RelayConfig struct {
	// Group is the consumer group the relay reads the log as. Its committed
	// offsets are the relay's position: a restarted relay resumes there.
	// Several relays of one group in one process share the partitions.
	// Required; checked with eventstore.ValidateName.
	Group string
	// Topics are the log topics to relay. Required; they must exist when
	// Run starts.
	Topics []string
	// TopicMapper maps a log topic to the engine's topic name. The default
	// keeps the name. For NATS subjects, SanitizeSubject helps.
	TopicMapper func(topic string) string
	// BatchSize is how many records are read and published at a time.
	// Default DefaultRelayBatch.
	BatchSize int
	// Backoff paces the retries while the engine refuses records. Default
	// clock.DefaultBackoff.
	Backoff clock.Backoff
	// StartPosition is where the group starts on partitions it never
	// committed. Default eventstore.Earliest: everything in the log.
	StartPosition eventstore.StartPosition
	// Clock is the clock the relay waits on between retries and stamps
	// its status with. Default clock.System().
	Clock clock.Clock
	// Logger receives a warning for each failed publish. Default: discard.
	Logger *slog.Logger
	// MeterProvider is where the relay reports its metrics, read when they
	// are collected: muninn_relay_published_total{relay} (relay is the
	// Group) and the group's lag (muninn_consumer_lag_records and
	// muninn_consumer_lag_seconds). Default otel.GetMeterProvider(), a
	// no-op until a program sets one. They stay registered as long as the
	// provider lives.
	MeterProvider metric.MeterProvider

	// TracerProvider receives the relay's spans: one per poll (see
	// consume.WithTracerProvider) and one "muninn.relay.publish" per
	// record published, a child of the append that wrote the record, whose
	// trace context goes into the message's traceparent/tracestate
	// metadata for the consumer on the other side. Default
	// otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
}

// Validate reports every problem with c at once.
func (c RelayConfig) Validate() error {
	var errs []error
	if err := eventstore.ValidateName("relay group", c.Group); err != nil {
		errs = append(errs, fmt.Errorf("broker: RelayConfig.Group: %w", err))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, invalid("RelayConfig.Topics is empty"))
	}
	for _, t := range c.Topics {
		if err := eventstore.ValidateTopicName(t); err != nil {
			errs = append(errs, fmt.Errorf("broker: RelayConfig.Topics: %w", err))
		}
	}
	if c.BatchSize < 0 || c.BatchSize > consume.MaxBatchSize {
		errs = append(errs, invalid("RelayConfig.BatchSize %d is outside [0, %d]", c.BatchSize, consume.MaxBatchSize))
	}
	if err := c.Backoff.Validate(); err != nil {
		errs = append(errs, invalid("RelayConfig: %v", err))
	}
	if c.StartPosition != eventstore.Earliest && c.StartPosition != eventstore.Latest {
		errs = append(errs, invalid("RelayConfig.StartPosition %d is neither Earliest nor Latest", c.StartPosition))
	}
	return errors.Join(errs...)
}

// Relay is the outbox relay: it tails topics of the log as a consumer group
// and publishes every record, in order, to a watermill publisher. It is a
// consume.Loop whose handler publishes each polled batch before the loop
// commits the group's offsets past it.
//
// Delivery is at least once. A batch of records is published (one Publish
// per engine topic, the records of each key in log order), and the group's
// offsets are committed only once every Publish of the batch succeeded.
// When a Publish fails the relay waits (Backoff, on Clock) and publishes the
// same records again, from the first message of the failed Publish call,
// until the engine takes them: no record is skipped, none overtakes an
// earlier one of its key. A crash or a retry can therefore publish a record
// twice; consumers deduplicate by event ID (the message UUID), as Inbound
// does.
type Relay struct {
	pub   message.Publisher
	cfg   RelayConfig
	clock clock.Clock
	loop  *consume.Loop

	mu struct {
		sync.Mutex
		published, retries int64
		lastErr            string
		lastErrAt          time.Time
		lastPublishedAt    time.Time
	}
}

// NewRelay returns a relay from store to pub. Nothing runs until Run.
func NewRelay(store eventstore.Store, pub message.Publisher, cfg RelayConfig) (*Relay, error) {
	var errs []error
	if store == nil {
		errs = append(errs, invalid("NewRelay: store is nil"))
	}
	if pub == nil {
		errs = append(errs, invalid("NewRelay: publisher is nil"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.TopicMapper == nil {
		cfg.TopicMapper = func(t string) string { return t }
	}
	for _, t := range cfg.Topics {
		if cfg.TopicMapper(t) == "" {
			errs = append(errs, invalid("NewRelay: TopicMapper maps topic %q to an empty name", t))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultRelayBatch
	}
	cfg.Backoff = cfg.Backoff.WithDefaults()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Topics = slices.Clone(cfg.Topics)
	r := &Relay{pub: pub, cfg: cfg, clock: clock.OrSystem(cfg.Clock)}
	loop, err := consume.New(store, cfg.Group, cfg.Topics, relayHandler{r}, consume.WithBatchSize(cfg.BatchSize),
		consume.WithClock(r.clock), consume.WithLogger(cfg.Logger), consume.WithTracerProvider(cfg.TracerProvider),
		consume.WithConsumerOptions(eventstore.WithStartPosition(cfg.StartPosition)), cfg.loopMeters())
	if err != nil {
		return nil, fmt.Errorf("broker: NewRelay: %w", err)
	}
	r.loop = loop
	if err := r.registerMetrics(); err != nil {
		return nil, fmt.Errorf("broker: NewRelay: metrics: %w", err)
	}
	return r, nil
}

// Run joins the group and relays records until ctx ends (then it returns
// nil) or the store closes or fails (then it returns the error). Records
// published but not yet committed when it stops are published again by the
// next Run. Only one Run may be active per Relay (another returns an error
// wrapping consume.ErrRunning).
func (r *Relay) Run(ctx context.Context) error {
	if err := r.loop.Run(ctx); err != nil {
		return fmt.Errorf("broker: relay: %w", err)
	}
	return nil
}

// relayHandler publishes in Prepare, outside any transaction, once per
// poll; the loop then commits the group's offsets past the records in one
// Update.
type relayHandler struct{ r *Relay }

func (h relayHandler) Prepare(ctx context.Context, recs []eventstore.Record) (func(), error) {
	return nil, h.r.publish(ctx, recs)
}

func (h relayHandler) Begin(context.Context, eventstore.Txn) (consume.Batch, error) {
	return relayBatch{}, nil
}

// relayBatch has nothing to write: the records are published.
type relayBatch struct{}

func (relayBatch) Handle(*eventstore.Record) error { return nil }
func (relayBatch) Flush() error                    { return nil }
func (relayBatch) Committed()                      {}

// batchPart is the records of one batch bound for one engine topic.
type batchPart struct {
	topic string
	recs  []eventstore.Record
}

// publish publishes recs, one Publish per engine topic, retrying a failed
// Publish until it succeeds or ctx ends (then it returns ctx's error).
func (r *Relay) publish(ctx context.Context, recs []eventstore.Record) error {
	var parts []batchPart
	index := make(map[string]int)
	for _, rec := range recs {
		t := r.cfg.TopicMapper(rec.Topic)
		i, ok := index[t]
		if !ok {
			i = len(parts)
			index[t] = i
			parts = append(parts, batchPart{topic: t})
		}
		parts[i].recs = append(parts[i].recs, rec)
	}
	for _, p := range parts {
		for retry := 1; ; retry++ {
			// Fresh messages for every attempt: a publisher may have
			// changed the last ones.
			msgs := make([]*message.Message, len(p.recs))
			for i, rec := range p.recs {
				msgs[i] = EncodeRecord(rec)
			}
			spans := startPublish(ctx, p.topic, p.recs, msgs)
			err := r.pub.Publish(p.topic, msgs...)
			endPublish(spans, err)
			now := r.clock.Now()
			if err == nil {
				r.mu.Lock()
				r.mu.published += int64(len(msgs))
				r.mu.lastPublishedAt = now
				r.mu.Unlock()
				break
			}
			r.mu.Lock()
			r.mu.retries++
			r.mu.lastErr = err.Error()
			r.mu.lastErrAt = now
			r.mu.Unlock()
			d := r.cfg.Backoff.Delay(retry)
			r.cfg.Logger.Warn("relay: publish failed, retrying", "group", r.cfg.Group, telemetry.AttrTopic, p.topic,
				"records", len(msgs), telemetry.AttrAttempt, retry, "retry_in", d, telemetry.AttrError, err)
			if err := clock.Sleep(ctx, r.clock, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// RelayStatus is a relay's progress. It marshals to readable JSON: the
// loop's status (state, the group's position and lag per partition, in
// records and in seconds) with the relay's own counters.
type RelayStatus struct {
	// Status is the loop's: its state, the group's positions and lag.
	consume.Status
	// Running says whether Run is active.
	Running bool `json:"running"`
	// Published counts the records published (a retried record counts
	// once per successful Publish) since the relay was created.
	Published int64 `json:"published"`
	// Retries counts failed Publish calls.
	Retries int64 `json:"retries"`
	// LastError is the last Publish error and LastErrorAt its time; "" and
	// zero if there was none.
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// LastPublishedAt is the time of the last successful Publish.
	LastPublishedAt time.Time `json:"last_published_at,omitzero"`
}

// Status returns the relay's progress, with the group's committed offsets
// and lag read from the store.
func (r *Relay) Status(ctx context.Context) (RelayStatus, error) {
	ls, err := r.loop.Status(ctx)
	if err != nil {
		return RelayStatus{}, fmt.Errorf("broker: relay: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return RelayStatus{
		Status:          ls,
		Running:         ls.State == consume.StateCatchingUp || ls.State == consume.StateLive,
		Published:       r.mu.published,
		Retries:         r.mu.retries,
		LastError:       r.mu.lastErr,
		LastErrorAt:     r.mu.lastErrAt,
		LastPublishedAt: r.mu.lastPublishedAt,
	}, nil
}
