package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/muninn-es/muninn/eventstore"
)

// DefaultRelayBatch is how many records the relay reads and publishes at a
// time when RelayConfig.BatchSize is zero.
const DefaultRelayBatch = 256

// ErrRunning is returned by Run on a relay or inbound consumer that is
// already running.
var ErrRunning = errors.New("broker: already running")

// RelayConfig configures a Relay.
type RelayConfig struct {
	// Group is the consumer group the relay reads the log as. Its committed
	// offsets are the relay's position: a restarted relay resumes there.
	// Several relays of one group in one process share the partitions.
	// Required.
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
	// DefaultBackoff.
	Backoff Backoff
	// StartPosition is where the group starts on partitions it never
	// committed. Default eventstore.Earliest: everything in the log.
	StartPosition eventstore.StartPosition
	// Clock is the source of time for the backoff. Default SystemClock().
	Clock Clock
	// Logger receives a warning for each failed publish. Default: discard.
	Logger *slog.Logger
}

// Validate reports every problem with c at once.
func (c RelayConfig) Validate() error {
	var errs []error
	if c.Group == "" {
		errs = append(errs, errors.New("broker: RelayConfig.Group is empty"))
	} else if err := eventstore.ValidateGroupName(c.Group); err != nil {
		errs = append(errs, fmt.Errorf("broker: RelayConfig.Group: %w", err))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("broker: RelayConfig.Topics is empty"))
	}
	for _, t := range c.Topics {
		if err := eventstore.ValidateTopicName(t); err != nil {
			errs = append(errs, fmt.Errorf("broker: RelayConfig.Topics: %w", err))
		}
	}
	if c.BatchSize < 0 {
		errs = append(errs, errors.New("broker: RelayConfig.BatchSize is negative"))
	}
	if err := c.Backoff.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("broker: RelayConfig: %w", err))
	}
	if c.StartPosition != eventstore.Earliest && c.StartPosition != eventstore.Latest {
		errs = append(errs, fmt.Errorf("broker: RelayConfig.StartPosition %d is neither Earliest nor Latest", c.StartPosition))
	}
	return errors.Join(errs...)
}

// Relay is the outbox relay: it tails topics of the log as a consumer group
// and publishes every record, in order, to a watermill publisher.
//
// Delivery is at least once. A batch of records is published (one Publish
// per engine topic, the records of each key in log order), and the group's
// offsets are committed only once every Publish of the batch succeeded.
// When a Publish fails the relay waits (Backoff) and publishes the same
// records again, from the first message of the failed Publish call, until
// the engine takes them: no record is skipped, none overtakes an earlier one
// of its key. A crash or a retry can therefore publish a record twice;
// consumers deduplicate by event ID (the message UUID), as Inbound does.
type Relay struct {
	store eventstore.Store
	pub   message.Publisher
	cfg   RelayConfig

	running atomic.Bool
	mu      struct {
		sync.Mutex
		published, retries uint64
		lastErr            error
		lastErrAt          time.Time
		lastPublishedAt    time.Time
	}
}

// NewRelay returns a relay from store to pub. Nothing runs until Run.
func NewRelay(store eventstore.Store, pub message.Publisher, cfg RelayConfig) (*Relay, error) {
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("broker: NewRelay: store is nil"))
	}
	if pub == nil {
		errs = append(errs, errors.New("broker: NewRelay: publisher is nil"))
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
			errs = append(errs, fmt.Errorf("broker: NewRelay: TopicMapper maps topic %q to an empty name", t))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultRelayBatch
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.Clock == nil {
		cfg.Clock = SystemClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Topics = append([]string(nil), cfg.Topics...)
	return &Relay{store: store, pub: pub, cfg: cfg}, nil
}

// Run joins the group and relays records until ctx ends (then it returns
// nil) or the store closes or fails (then it returns the error). Records
// published but not yet committed when it stops are published again by the
// next Run. Only one Run may be active per Relay.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return fmt.Errorf("broker: relay %s: %w", r.cfg.Group, ErrRunning)
	}
	defer r.running.Store(false)
	c, err := r.store.JoinGroup(ctx, r.cfg.Group, r.cfg.Topics, eventstore.WithStartPosition(r.cfg.StartPosition))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("broker: relay %s: %w", r.cfg.Group, err)
	}
	defer c.Close()
	for {
		recs, err := c.Poll(ctx, r.cfg.BatchSize)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("broker: relay %s: %w", r.cfg.Group, err)
		}
		if err := r.publish(ctx, recs); err != nil {
			return nil // ctx ended during a backoff; nothing was committed
		}
		offsets := make(map[eventstore.TopicPartition]int64)
		for _, rec := range recs {
			offsets[eventstore.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}] = rec.Offset + 1
		}
		// Commit even if ctx just ended: the records are published, and
		// committing spares their republication.
		if err := c.CommitOffsets(context.WithoutCancel(ctx), offsets); err != nil {
			if errors.Is(err, eventstore.ErrNotAssigned) {
				// Another member of the group owns the partition now and
				// republishes from the last commit: duplicates, no loss.
				r.cfg.Logger.Warn("relay: partition reassigned before commit", "group", r.cfg.Group, "error", err)
				continue
			}
			return fmt.Errorf("broker: relay %s: commit: %w", r.cfg.Group, err)
		}
	}
}

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
		for attempt := 0; ; attempt++ {
			// Fresh messages for every attempt: a publisher may have
			// changed the last ones.
			msgs := make([]*message.Message, len(p.recs))
			for i, rec := range p.recs {
				msgs[i] = EncodeRecord(rec)
			}
			err := r.pub.Publish(p.topic, msgs...)
			now := r.cfg.Clock.Now()
			if err == nil {
				r.mu.Lock()
				r.mu.published += uint64(len(msgs))
				r.mu.lastPublishedAt = now
				r.mu.Unlock()
				break
			}
			r.mu.Lock()
			r.mu.retries++
			r.mu.lastErr = err
			r.mu.lastErrAt = now
			r.mu.Unlock()
			d := r.cfg.Backoff.Delay(attempt)
			r.cfg.Logger.Warn("relay: publish failed, retrying", "group", r.cfg.Group, "topic", p.topic,
				"records", len(msgs), "attempt", attempt+1, "retry_in", d, "error", err)
			if err := sleep(ctx, r.cfg.Clock, d); err != nil {
				return err
			}
		}
	}
	return nil
}

// RelayStatus is a relay's progress.
type RelayStatus struct {
	// Running says whether Run is active.
	Running bool
	// Published counts the records published (a retried record counts
	// once per successful Publish) since the relay was created.
	Published uint64
	// Retries counts failed Publish calls.
	Retries uint64
	// LastError is the last Publish error and LastErrorAt its time; nil and
	// zero if there was none.
	LastError   error
	LastErrorAt time.Time
	// LastPublishedAt is the time of the last successful Publish.
	LastPublishedAt time.Time
	// Partitions are the group's committed positions and lag per partition.
	Partitions []eventstore.GroupPartitionInfo
	// Lag is the sum of the partitions' lag: records not yet committed.
	Lag int64
}

// Status returns the relay's progress, with the group's committed offsets
// and lag read from the store.
func (r *Relay) Status(ctx context.Context) (RelayStatus, error) {
	r.mu.Lock()
	st := RelayStatus{
		Running:         r.running.Load(),
		Published:       r.mu.published,
		Retries:         r.mu.retries,
		LastError:       r.mu.lastErr,
		LastErrorAt:     r.mu.lastErrAt,
		LastPublishedAt: r.mu.lastPublishedAt,
	}
	r.mu.Unlock()
	info, err := r.store.DescribeGroup(ctx, r.cfg.Group)
	if errors.Is(err, eventstore.ErrGroupNotFound) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("broker: relay %s: status: %w", r.cfg.Group, err)
	}
	st.Partitions = info.Partitions
	for _, p := range info.Partitions {
		st.Lag += p.Lag
	}
	return st, nil
}
