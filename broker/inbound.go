package broker

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/keyspace"
	"github.com/muninn-es/muninn/telemetry"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of InboundConfig.
const (
	// DefaultDedupRetention is how long an event ID is remembered.
	DefaultDedupRetention = 7 * 24 * time.Hour
	// DefaultPurgeInterval is how often Run purges expired marks.
	DefaultPurgeInterval = time.Hour
	// DefaultRetries is how many times a failed message is tried again.
	DefaultRetries = 4
	// DefaultInboundBatch is how many messages one Update applies at most.
	DefaultInboundBatch = 256
)

// NoRetries, as InboundConfig.Retries, gives a failed message up after its
// first attempt.
const NoRetries = -1

// Metadata keys that Inbound adds to a message it sends to the dead-letter
// topic.
const (
	MetaDeadLetterError   = "muninn_dead_letter_error"
	MetaDeadLetterInbound = "muninn_dead_letter_inbound"
	MetaDeadLetterTopic   = "muninn_dead_letter_topic"
)

// ErrSubscriptionClosed is returned by Inbound.Run when the subscriber closed
// a subscription's channel while Run's context was still live.
var ErrSubscriptionClosed = errors.New("broker: subscription closed")

// Handler handles one inbound record inside a state-space transaction. What
// it writes through tx commits atomically with the record's deduplication
// mark, so it happens exactly once; anything else it does (a network call)
// happens at least once. It runs while the store's Updates are serialized:
// keep it short. An error rolls tx back and the record is retried; wrap it
// with consume.Permanent when a retry cannot help.
type Handler func(ctx context.Context, tx eventstore.Txn, rec eventstore.Record) error

// InboundConfig configures an Inbound consumer.
type InboundConfig struct {
	// Name names the consumer: its deduplication marks live under
	// (broker, Name) in the state space (see the package documentation).
	// Required; stable across restarts; checked with
	// eventstore.ValidateName.
	Name string
	// Topics are the engine topics to consume. Required.
	Topics []string
	// Retention is how long an event ID is remembered: a duplicate that
	// arrives later than this is handled again. Default
	// DefaultDedupRetention (7 days).
	Retention time.Duration
	// PurgeInterval is how often Run removes expired marks, on Clock.
	// Default DefaultPurgeInterval (1 hour).
	PurgeInterval time.Duration
	// BatchSize is how many messages one Update (one fsync) applies at
	// most: Run takes a message and what else the subscription has ready.
	// Default DefaultInboundBatch.
	BatchSize int
	// Retries is how many times a message whose handler failed is tried
	// again, each after a Backoff wait, before it is given up: sent to
	// DeadLetter if there is one, else Nacked and Run stops with a
	// *consume.HandlerError, so that nothing is lost and an operator can
	// look. Zero means DefaultRetries (4); NoRetries gives up after the
	// first attempt. (It replaces MaxAttempts, which counted the first
	// attempt too: MaxAttempts n is Retries n-1.) A handler error wrapped
	// with consume.Permanent, a message that does not decode and a
	// handler that panics are not retried.
	Retries int
	// Backoff paces the retries. Default clock.DefaultBackoff.
	Backoff clock.Backoff
	// DeadLetter, with DeadLetterTopic, receives the messages given up,
	// with the MetaDeadLetter... metadata added; then they are Acked. A
	// failed Publish is retried with Backoff until it succeeds or Run
	// stops.
	DeadLetter      message.Publisher
	DeadLetterTopic string
	// Clock is the source of the marks' timestamps and of every wait
	// (retries, purges). Default clock.System().
	Clock clock.Clock
	// Logger receives a warning for each failed attempt. Default: discard.
	Logger *slog.Logger
	// TracerProvider receives the inbound consumer's spans: one per poll
	// (see consume.WithTracerProvider) and one "muninn.inbound.handle" per
	// message handled, a child of the span whose trace context the
	// message's traceparent/tracestate metadata carries (the relay's
	// publish on the other side); the handler gets it in its context.
	// Default otel.GetTracerProvider().
	TracerProvider trace.TracerProvider
	// AfterCommit, if set, is called with each record the handler applied,
	// once its transaction is durable (not for duplicates): the place for
	// effects that must not run before the state they report is committed,
	// such as a notification. It runs at most once per record: a crash
	// between the commit and the call loses it, and the copy redelivered
	// after that crash is a duplicate, not handled again.
	AfterCommit func(ctx context.Context, rec eventstore.Record)
}

// Validate reports every problem with c at once.
func (c InboundConfig) Validate() error {
	var errs []error
	if err := eventstore.ValidateName("inbound consumer", c.Name); err != nil {
		errs = append(errs, fmt.Errorf("broker: InboundConfig.Name: %w", err))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, invalid("InboundConfig.Topics is empty"))
	}
	seen := map[string]bool{}
	for i, t := range c.Topics {
		if t == "" {
			errs = append(errs, invalid("InboundConfig.Topics[%d] is empty", i))
		} else if seen[t] {
			errs = append(errs, invalid("InboundConfig.Topics[%d]: %q is given twice", i, t))
		}
		seen[t] = true
	}
	if c.Retention < 0 {
		errs = append(errs, invalid("InboundConfig.Retention is negative"))
	}
	if c.PurgeInterval < 0 {
		errs = append(errs, invalid("InboundConfig.PurgeInterval is negative"))
	}
	if c.BatchSize < 0 || c.BatchSize > consume.MaxBatchSize {
		errs = append(errs, invalid("InboundConfig.BatchSize %d is outside [0, %d]", c.BatchSize, consume.MaxBatchSize))
	}
	if c.Retries < NoRetries {
		errs = append(errs, invalid("InboundConfig.Retries is %d; use NoRetries (-1) for none", c.Retries))
	}
	if (c.DeadLetter == nil) != (c.DeadLetterTopic == "") {
		errs = append(errs, invalid("InboundConfig.DeadLetter and DeadLetterTopic go together"))
	}
	if err := c.Backoff.Validate(); err != nil {
		errs = append(errs, invalid("InboundConfig: %v", err))
	}
	return errors.Join(errs...)
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("broker: %w: %s", eventstore.ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// Inbound consumes messages from a watermill subscriber into a handler,
// deduplicating by event ID in the store's state space. It is a
// consume.Loop per topic, on a source that reads the topic's subscription.
//
// Each Update applies a batch of messages (one that arrived, and what else
// the subscription had ready, up to BatchSize): for each it checks the
// event ID's mark, calls the handler and writes the mark. An event ID
// already marked is not handed to the handler, so effects written through
// the Txn happen once although the engine delivers at least once. The
// messages are Acked only after the Update is durable, and Nacked when Run
// stops before that. Marks expire after Retention and are purged in the
// background.
//
// A failing handler is retried on its message alone (the messages before
// it in the batch commit without it), Retries times with Backoff, and then
// given up (see InboundConfig.Retries). A panicking handler is given up at
// once, as every consume.Loop does; the inbound consumer used to retry
// panics like errors.
type Inbound struct {
	store   eventstore.Store
	sub     message.Subscriber
	handler Handler
	cfg     InboundConfig
	clock   clock.Clock
	// ids and times are the prefixes of the marks and of their time
	// index: see "State-space layout" in the package documentation.
	ids, times keyspace.Key
	topics     []*inboundTopic

	running atomic.Bool
	// subscribed is true while Run holds a subscription to every topic.
	subscribed atomic.Bool
	mu         struct {
		sync.Mutex
		handled, duplicates, deadLettered int64
	}
}

// inboundTopic is the loop of one topic, and the source of its current
// Run.
type inboundTopic struct {
	in    *Inbound
	topic string
	loop  *consume.Loop
	// ch is the subscription Run opened for the loop's next Run; src the
	// source of the Run under way. Both belong to the loop's goroutine.
	ch  <-chan *message.Message
	src *messageSource
}

// NewInbound returns an inbound consumer of sub's topics into handler.
// Nothing runs until Run.
func NewInbound(store eventstore.Store, sub message.Subscriber, handler Handler, cfg InboundConfig) (*Inbound, error) {
	var errs []error
	if store == nil {
		errs = append(errs, invalid("NewInbound: store is nil"))
	}
	if sub == nil {
		errs = append(errs, invalid("NewInbound: subscriber is nil"))
	}
	if handler == nil {
		errs = append(errs, invalid("NewInbound: handler is nil"))
	}
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if cfg.Retention == 0 {
		cfg.Retention = DefaultDedupRetention
	}
	if cfg.PurgeInterval == 0 {
		cfg.PurgeInterval = DefaultPurgeInterval
	}
	if cfg.BatchSize == 0 {
		cfg.BatchSize = DefaultInboundBatch
	}
	switch cfg.Retries {
	case 0:
		cfg.Retries = DefaultRetries
	case NoRetries:
		cfg.Retries = 0
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Topics = slices.Clone(cfg.Topics)
	prefix := keyspace.New(keyspace.Broker, cfg.Name)
	in := &Inbound{store: store, sub: sub, handler: handler, cfg: cfg, clock: clock.OrSystem(cfg.Clock),
		ids: prefix.String("id"), times: prefix.String("t")}
	for _, topic := range cfg.Topics {
		t := &inboundTopic{in: in, topic: topic}
		policy := consume.Stop()
		if cfg.DeadLetter != nil {
			policy = consume.DeadLetter(t.deadLetter)
		}
		loop, err := consume.NewFrom(store, cfg.Name, t.open, t, consume.WithBatchSize(cfg.BatchSize),
			consume.WithRetries(cfg.Retries), consume.WithBackoff(cfg.Backoff), consume.WithClock(in.clock),
			consume.WithLogger(cfg.Logger), consume.WithErrorPolicy(policy), consume.WithTracerProvider(cfg.TracerProvider))
		if err != nil {
			return nil, fmt.Errorf("broker: NewInbound: %w", err)
		}
		t.loop = loop
		in.topics = append(in.topics, t)
	}
	return in, nil
}

// idKey is the key of the mark of the event ID id, and timeKey that of its
// time-index entry.
func (in *Inbound) idKey(id []byte) []byte { return in.ids.Bytes(id) }

func (in *Inbound) timeKey(at time.Time, id []byte) []byte { return in.times.Time(at).Bytes(id) }

// Seen reports whether the event ID has an unexpired deduplication mark.
func (in *Inbound) Seen(ctx context.Context, id uuid.UUID) (bool, error) {
	_, ok, err := in.store.Get(ctx, in.idKey(id[:]))
	return ok, err
}

// Run subscribes to the topics and handles messages until ctx ends (then it
// returns nil), a message is given up without a dead-letter publisher (a
// *consume.HandlerError), a subscription closes (ErrSubscriptionClosed),
// or the store fails. The topics are consumed concurrently, each by a
// consume.Loop of its own, its messages in the order the subscriber
// delivers them. Only one Run may be active per Inbound (another returns
// an error wrapping consume.ErrRunning).
func (in *Inbound) Run(ctx context.Context) error {
	if !in.running.CompareAndSwap(false, true) {
		return fmt.Errorf("broker: inbound %s: %w", in.cfg.Name, consume.ErrRunning)
	}
	defer in.running.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for _, t := range in.topics {
		ch, err := in.sub.Subscribe(ctx, t.topic)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("broker: inbound %s: subscribe %s: %w", in.cfg.Name, t.topic, err)
		}
		t.ch = ch
	}
	in.subscribed.Store(true)
	defer in.subscribed.Store(false)

	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	for _, t := range in.topics {
		wg.Go(func() {
			if err := t.loop.Run(ctx); err != nil {
				errOnce.Do(func() { firstErr = err; cancel() })
			}
		})
	}
	wg.Go(func() {
		for clock.Sleep(ctx, in.clock, in.cfg.PurgeInterval) == nil {
			if _, err := in.Purge(ctx); err != nil && ctx.Err() == nil {
				in.cfg.Logger.Warn("inbound: purge of expired marks failed", "inbound", in.cfg.Name, telemetry.AttrError, err)
			}
		}
	})
	wg.Wait()
	return firstErr
}

// open is the loop's source opener: the subscription Run made.
func (t *inboundTopic) open(ctx context.Context) (consume.Source, error) {
	if t.ch == nil {
		return nil, fmt.Errorf("broker: inbound %s: topic %s: no subscription (the loop runs only inside Inbound.Run)", t.in.cfg.Name, t.topic)
	}
	t.src = &messageSource{t: t, ctx: ctx, ch: t.ch, pending: map[int64]*pendingMessage{}}
	t.ch = nil
	return t.src, nil
}

// A messageSource is the consume.Source of one topic's subscription. The
// records it gives the loop stand for its messages: they have no Topic
// (they are no position of the store), their Offset is the message's
// sequence number in the Run, and their ID, Key and Type are those of the
// decoded record (for logs and errors). The batch finds the decoded record
// and the message by the sequence number.
type messageSource struct {
	t *inboundTopic
	// ctx is the loop's Run context, for AfterCommit.
	ctx context.Context
	ch  <-chan *message.Message
	seq int64
	// pending holds the messages polled and not yet Acked, by sequence
	// number; redo those to deliver again after a Rewind.
	pending map[int64]*pendingMessage
	redo    []int64
}

type pendingMessage struct {
	msg *message.Message
	rec eventstore.Record
	err error // why the message does not decode
	// outcome is what the last Update that applied it did.
	outcome outcome
}

type outcome uint8

const (
	outcomeFailed outcome = iota
	outcomeHandled
	outcomeDuplicate
)

func (s *messageSource) add(msg *message.Message) eventstore.Record {
	s.seq++
	p := &pendingMessage{msg: msg}
	p.rec, p.err = DecodeMessage(msg)
	s.pending[s.seq] = p
	return p.stand(s.seq)
}

// stand returns the record that stands for the message in the loop.
func (p *pendingMessage) stand(seq int64) eventstore.Record {
	return eventstore.Record{Offset: seq, ID: p.rec.ID, Key: p.rec.Key, Type: p.rec.Type}
}

func (s *messageSource) closed(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return fmt.Errorf("broker: inbound %s: topic %s: %w", s.t.in.cfg.Name, s.t.topic, ErrSubscriptionClosed)
}

// Poll waits for a message, then takes what else is ready, up to max.
func (s *messageSource) Poll(ctx context.Context, max int) ([]eventstore.Record, error) {
	if len(s.redo) > 0 {
		return s.takeRedo(max), nil
	}
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case msg, ok := <-s.ch:
		if !ok {
			return nil, s.closed(ctx)
		}
		return s.drain(ctx, []eventstore.Record{s.add(msg)}, max)
	}
}

// TryPoll takes what the subscription has ready, up to max, without
// waiting.
func (s *messageSource) TryPoll(ctx context.Context, max int) ([]eventstore.Record, error) {
	if len(s.redo) > 0 {
		return s.takeRedo(max), nil
	}
	return s.drain(ctx, nil, max)
}

func (s *messageSource) drain(ctx context.Context, recs []eventstore.Record, max int) ([]eventstore.Record, error) {
	for len(recs) < max {
		select {
		case msg, ok := <-s.ch:
			if !ok {
				if len(recs) > 0 {
					return recs, nil // the next poll reports the close
				}
				return nil, s.closed(ctx)
			}
			recs = append(recs, s.add(msg))
		default:
			return recs, nil
		}
	}
	return recs, nil
}

func (s *messageSource) takeRedo(max int) []eventstore.Record {
	n := min(max, len(s.redo))
	recs := make([]eventstore.Record, n)
	for i, seq := range s.redo[:n] {
		recs[i] = s.pending[seq].stand(seq)
	}
	s.redo = s.redo[n:]
	return recs
}

// Stage adds nothing: the batch wrote the marks, and the engine learns of
// the progress by the Acks.
func (s *messageSource) Stage(eventstore.Txn, []eventstore.Record) error { return nil }

// Committed reports and Acks the messages of a durable Update, in order:
// counters first, then AfterCommit for the records handled, then the Ack
// (which lets engines that deliver one message at a time send the next).
func (s *messageSource) Committed(recs []eventstore.Record) {
	in := s.t.in
	var handled, dups, dead int64
	for i := range recs {
		switch s.pending[recs[i].Offset].outcome {
		case outcomeHandled:
			handled++
		case outcomeDuplicate:
			dups++
		default:
			dead++ // committed past a message that failed: dead-lettered
		}
	}
	in.mu.Lock()
	in.mu.handled += handled
	in.mu.duplicates += dups
	in.mu.deadLettered += dead
	in.mu.Unlock()
	for i := range recs {
		p := s.pending[recs[i].Offset]
		delete(s.pending, recs[i].Offset)
		if p.outcome == outcomeHandled && in.cfg.AfterCommit != nil {
			in.cfg.AfterCommit(s.ctx, p.rec)
		}
		p.msg.Ack()
	}
}

// Rewind delivers again, in order, every message polled and not
// committed.
func (s *messageSource) Rewind(context.Context) error {
	s.redo = slices.Sorted(maps.Keys(s.pending))
	return nil
}

// Close Nacks the messages polled and not committed: the engine delivers
// them again.
func (s *messageSource) Close() error {
	for _, seq := range slices.Sorted(maps.Keys(s.pending)) {
		s.pending[seq].msg.Nack()
	}
	clear(s.pending)
	return nil
}

// Begin opens a batch: one Update's worth of messages.
func (t *inboundTopic) Begin(ctx context.Context, tx eventstore.Txn) (consume.Batch, error) {
	return &inboundBatch{t: t, ctx: ctx, tx: tx, now: t.in.clock.Now()}, nil
}

type inboundBatch struct {
	t   *inboundTopic
	ctx context.Context
	tx  eventstore.Txn
	now time.Time
	// err is a failure of the store, not of the handler: Flush returns it
	// and the loop stops.
	err error
}

// Handle checks the message's mark, calls the handler and writes the mark.
func (b *inboundBatch) Handle(r *eventstore.Record) error {
	if b.err != nil {
		return nil
	}
	in, src := b.t.in, b.t.src
	p := src.pending[r.Offset]
	p.outcome = outcomeFailed
	if p.err != nil {
		return consume.Permanent(fmt.Errorf("message %q on %s: %w", p.msg.UUID, b.t.topic, p.err))
	}
	idKey := in.idKey(p.rec.ID[:])
	if _, seen, err := b.tx.Get(idKey); err != nil {
		b.err = err
		return nil
	} else if seen {
		p.outcome = outcomeDuplicate
		return nil
	}
	if err := handleTraced(b.ctx, in.handler, b.t.topic, b.tx, p.rec); err != nil {
		return err
	}
	if err := b.tx.Set(idKey, binary.BigEndian.AppendUint64(nil, uint64(b.now.UnixNano()))); err != nil {
		b.err = err
		return nil
	}
	if err := b.tx.Set(in.timeKey(b.now, p.rec.ID[:]), nil); err != nil {
		b.err = err
		return nil
	}
	p.outcome = outcomeHandled
	return nil
}

// Flush reports a failure of the store met in Handle.
func (b *inboundBatch) Flush() error {
	if b.err != nil {
		return fmt.Errorf("broker: inbound %s: deduplication mark: %w", b.t.in.cfg.Name, b.err)
	}
	return nil
}

// Committed does nothing: the source's Committed reports and Acks.
func (b *inboundBatch) Committed() {}

// deadLetter publishes a copy of the message given up, with the
// MetaDeadLetter... metadata, to the dead-letter topic; the loop then
// commits past it, and the source Acks it.
func (t *inboundTopic) deadLetter(_ context.Context, r eventstore.Record, herr *consume.HandlerError) error {
	p := t.src.pending[r.Offset]
	dl := p.msg.Copy()
	dl.Metadata.Set(MetaDeadLetterError, herr.Err.Error())
	dl.Metadata.Set(MetaDeadLetterInbound, t.in.cfg.Name)
	dl.Metadata.Set(MetaDeadLetterTopic, t.topic)
	return t.in.cfg.DeadLetter.Publish(t.in.cfg.DeadLetterTopic, dl)
}

// purgeBatch bounds the marks one purge transaction removes.
const purgeBatch = 1024

// Purge removes the deduplication marks older than Retention and returns
// how many it removed. Run calls it every PurgeInterval.
func (in *Inbound) Purge(ctx context.Context) (int, error) {
	cutoff := in.clock.Now().Add(-in.cfg.Retention)
	lower, _ := in.times.Range()
	upper := []byte(in.times.Time(cutoff))
	total := 0
	for {
		n := 0
		err := in.store.Update(ctx, func(tx eventstore.Txn) error {
			n = 0
			var keys [][]byte
			for kv, err := range tx.Scan(lower, upper, false) {
				if err != nil {
					return err
				}
				keys = append(keys, append([]byte(nil), kv.Key...))
				if len(keys) == purgeBatch {
					break
				}
			}
			for _, k := range keys {
				if err := tx.Delete(k); err != nil {
					return err
				}
				r, err := keyspace.Read(k, in.times)
				if err != nil {
					return err
				}
				if _, err := r.Time(); err != nil {
					return err
				}
				id, err := r.Bytes()
				if err != nil {
					return err
				}
				if err := tx.Delete(in.idKey(id)); err != nil {
					return err
				}
			}
			n = len(keys)
			return nil
		})
		total += n
		if err != nil {
			return total, fmt.Errorf("broker: inbound %s: purge: %w", in.cfg.Name, err)
		}
		if n < purgeBatch {
			return total, nil
		}
	}
}

// InboundStatus is what an Inbound is doing and did since it was created.
// It marshals to readable JSON.
type InboundStatus struct {
	// Name is InboundConfig.Name.
	Name string `json:"name"`
	// Running is true while Run runs; Subscribed once Run has subscribed
	// to every topic (messages published from then on reach it).
	Running    bool `json:"running"`
	Subscribed bool `json:"subscribed"`
	// Handled counts messages the handler applied; Duplicates those Acked
	// without calling it because their event ID was marked. A message is
	// counted before it is Acked.
	Handled    int64 `json:"handled"`
	Duplicates int64 `json:"duplicates"`
	// Failures counts failed handler attempts; DeadLettered the messages
	// sent to the dead-letter topic.
	Failures     int64 `json:"failures"`
	DeadLettered int64 `json:"dead_lettered"`
	// LastError is the last handler failure ("" if none) or, if Run
	// failed, why; with several topics, that of the first topic that has
	// one.
	LastError string `json:"last_error,omitempty"`
	// Topics has the status of each topic's consume loop (its state,
	// counters and error). The loops read subscriptions, not partitions of
	// a store, so they report no partitions and no lag.
	Topics []InboundTopicStatus `json:"topics"`
}

// InboundTopicStatus is the status of the loop of one topic.
type InboundTopicStatus struct {
	// Topic is the engine topic.
	Topic string `json:"topic"`
	// Loop is the status of the topic's consume.Loop.
	Loop consume.Status `json:"loop"`
}

// Status returns the consumer's counters and the state of its loops. It is
// safe to call at any time.
func (in *Inbound) Status(ctx context.Context) (InboundStatus, error) {
	in.mu.Lock()
	st := InboundStatus{Name: in.cfg.Name, Running: in.running.Load(), Subscribed: in.subscribed.Load(),
		Handled: in.mu.handled, Duplicates: in.mu.duplicates, DeadLettered: in.mu.deadLettered}
	in.mu.Unlock()
	var failed, handlerErr string
	for _, t := range in.topics {
		ls, err := t.loop.Status(ctx)
		if err != nil {
			return InboundStatus{}, fmt.Errorf("broker: inbound %s: status: %w", in.cfg.Name, err)
		}
		st.Failures += ls.Counters.Failures
		if failed == "" {
			failed = ls.Error
		}
		if handlerErr == "" {
			handlerErr = ls.Counters.LastError
		}
		st.Topics = append(st.Topics, InboundTopicStatus{Topic: t.topic, Loop: ls})
	}
	st.LastError = cmp.Or(failed, handlerErr)
	return st, nil
}
