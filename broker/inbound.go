package broker

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/muninn-es/muninn/eventstore"
)

// Defaults of InboundConfig.
const (
	DefaultDedupRetention = 7 * 24 * time.Hour
	DefaultPurgeInterval  = time.Hour
	DefaultMaxAttempts    = 5
)

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
// keep it short. An error rolls tx back and the record is retried.
type Handler func(ctx context.Context, tx eventstore.Txn, rec eventstore.Record) error

// HandlerError reports a message that could not be handled: its decoding
// failed, or the handler failed MaxAttempts times, and there is no
// dead-letter publisher to take it.
type HandlerError struct {
	Inbound string
	Topic   string
	// MessageUUID is the message's UUID (the event ID).
	MessageUUID string
	Attempts    int
	Err         error
}

// Error names the inbound consumer, the message and the cause.
func (e *HandlerError) Error() string {
	return fmt.Sprintf("broker: inbound %s: message %s on %s failed after %d attempt(s): %v",
		e.Inbound, e.MessageUUID, e.Topic, e.Attempts, e.Err)
}

// Unwrap returns the cause.
func (e *HandlerError) Unwrap() error { return e.Err }

// InboundConfig configures an Inbound consumer.
type InboundConfig struct {
	// Name names the consumer: its deduplication marks live under
	// "broker/dedup/<Name>/" in the state space. Required; stable across
	// restarts.
	Name string
	// Topics are the engine topics to consume. Required.
	Topics []string
	// Retention is how long an event ID is remembered: a duplicate that
	// arrives later than this is handled again. Default
	// DefaultDedupRetention (7 days).
	Retention time.Duration
	// PurgeInterval is how often Run removes expired marks. Default
	// DefaultPurgeInterval (1 hour).
	PurgeInterval time.Duration
	// MaxAttempts is how many times a message is handed to the handler
	// (each attempt its own transaction, with Backoff between them) before
	// it is given up: sent to DeadLetter if there is one, else Nacked and
	// Run stops with a *HandlerError, so that nothing is lost and an
	// operator can look. Default DefaultMaxAttempts.
	MaxAttempts int
	// Backoff paces the attempts. Default DefaultBackoff.
	Backoff Backoff
	// DeadLetter, with DeadLetterTopic, receives the messages given up,
	// with the MetaDeadLetter... metadata added; then they are Acked.
	DeadLetter      message.Publisher
	DeadLetterTopic string
	// Clock is the source of the marks' timestamps and of the waits.
	// Default SystemClock().
	Clock Clock
	// Logger receives a warning for each failed attempt. Default: discard.
	Logger *slog.Logger
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
	if c.Name == "" {
		errs = append(errs, errors.New("broker: InboundConfig.Name is empty"))
	} else if len(c.Name) > 249 {
		errs = append(errs, errors.New("broker: InboundConfig.Name is longer than 249 bytes"))
	}
	if len(c.Topics) == 0 {
		errs = append(errs, errors.New("broker: InboundConfig.Topics is empty"))
	}
	for i, t := range c.Topics {
		if t == "" {
			errs = append(errs, fmt.Errorf("broker: InboundConfig.Topics[%d] is empty", i))
		}
	}
	if c.Retention < 0 {
		errs = append(errs, errors.New("broker: InboundConfig.Retention is negative"))
	}
	if c.PurgeInterval < 0 {
		errs = append(errs, errors.New("broker: InboundConfig.PurgeInterval is negative"))
	}
	if c.MaxAttempts < 0 {
		errs = append(errs, errors.New("broker: InboundConfig.MaxAttempts is negative"))
	}
	if (c.DeadLetter == nil) != (c.DeadLetterTopic == "") {
		errs = append(errs, errors.New("broker: InboundConfig.DeadLetter and DeadLetterTopic go together"))
	}
	if err := c.Backoff.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("broker: InboundConfig: %w", err))
	}
	return errors.Join(errs...)
}

// Inbound consumes messages from a watermill subscriber into a handler,
// deduplicating by event ID in the store's state space.
//
// For each message it runs one Store.Update that checks the event ID's mark,
// calls the handler and writes the mark: an event ID already marked is
// Acked without calling the handler, so effects written through the Txn
// happen once although the engine delivers at least once. The message is
// Acked only after the Update is durable. Marks expire after Retention and
// are purged in the background.
type Inbound struct {
	store   eventstore.Store
	sub     message.Subscriber
	handler Handler
	cfg     InboundConfig
	prefix  []byte

	running atomic.Bool
	// subscribed is true while Run holds a subscription to every topic.
	subscribed atomic.Bool
	mu         struct {
		sync.Mutex
		handled, duplicates, failures, deadLettered uint64
		lastErr                                     error
	}
}

// NewInbound returns an inbound consumer of sub's topics into handler.
// Nothing runs until Run.
func NewInbound(store eventstore.Store, sub message.Subscriber, handler Handler, cfg InboundConfig) (*Inbound, error) {
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("broker: NewInbound: store is nil"))
	}
	if sub == nil {
		errs = append(errs, errors.New("broker: NewInbound: subscriber is nil"))
	}
	if handler == nil {
		errs = append(errs, errors.New("broker: NewInbound: handler is nil"))
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
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	cfg.Backoff = cfg.Backoff.withDefaults()
	if cfg.Clock == nil {
		cfg.Clock = SystemClock()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Topics = append([]string(nil), cfg.Topics...)
	return &Inbound{store: store, sub: sub, handler: handler, cfg: cfg,
		prefix: []byte("broker/dedup/" + cfg.Name + "/")}, nil
}

func (in *Inbound) idKey(id uuid.UUID) []byte {
	k := append(append([]byte(nil), in.prefix...), "id/"...)
	return append(k, id[:]...)
}

func (in *Inbound) timePrefix() []byte {
	return append(append([]byte(nil), in.prefix...), "t/"...)
}

func (in *Inbound) timeKey(t time.Time, id uuid.UUID) []byte {
	k := binary.BigEndian.AppendUint64(in.timePrefix(), uint64(t.UnixNano()))
	return append(k, id[:]...)
}

// Seen reports whether the event ID has an unexpired deduplication mark.
func (in *Inbound) Seen(ctx context.Context, id uuid.UUID) (bool, error) {
	_, ok, err := in.store.Get(ctx, in.idKey(id))
	return ok, err
}

// Run subscribes to the topics and handles messages until ctx ends (then it
// returns nil), a message is given up without a dead-letter publisher (a
// *HandlerError), a subscription closes (ErrSubscriptionClosed), or the
// store fails. The topics are consumed concurrently, each channel's
// messages one at a time, in the order the subscriber delivers them. Only
// one Run may be active per Inbound.
func (in *Inbound) Run(ctx context.Context) error {
	if !in.running.CompareAndSwap(false, true) {
		return fmt.Errorf("broker: inbound %s: %w", in.cfg.Name, ErrRunning)
	}
	defer in.running.Store(false)
	defer in.subscribed.Store(false)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	for _, topic := range in.cfg.Topics {
		ch, err := in.sub.Subscribe(ctx, topic)
		if err != nil {
			fail(fmt.Errorf("broker: inbound %s: subscribe %s: %w", in.cfg.Name, topic, err))
			break
		}
		wg.Go(func() {
			if err := in.consume(ctx, topic, ch); err != nil {
				fail(err)
			}
		})
	}
	if ctx.Err() == nil {
		in.subscribed.Store(true)
	}
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-in.cfg.Clock.After(in.cfg.PurgeInterval):
			}
			if _, err := in.Purge(ctx); err != nil && ctx.Err() == nil {
				in.cfg.Logger.Warn("inbound: purge of expired marks failed", "inbound", in.cfg.Name, "error", err)
			}
		}
	})
	wg.Wait()
	return firstErr
}

func (in *Inbound) consume(ctx context.Context, topic string, ch <-chan *message.Message) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg, ok := <-ch:
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("broker: inbound %s: topic %s: %w", in.cfg.Name, topic, ErrSubscriptionClosed)
			}
			if err := in.handle(ctx, topic, msg); err != nil {
				return err
			}
		}
	}
}

// handlerFailure marks an error that came from the handler, as opposed to
// the store.
type handlerFailure struct{ err error }

func (h handlerFailure) Error() string { return h.err.Error() }

func (in *Inbound) callHandler(ctx context.Context, tx eventstore.Txn, rec eventstore.Record) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	return in.handler(ctx, tx, rec)
}

// handle processes one message. It returns an error only when Run must
// stop; the message is then Nacked.
func (in *Inbound) handle(ctx context.Context, topic string, msg *message.Message) error {
	rec, err := DecodeMessage(msg)
	if err != nil {
		return in.giveUp(ctx, topic, msg, 1, err)
	}
	idKey := in.idKey(rec.ID)
	for attempt := 1; ; attempt++ {
		dup := false
		now := in.cfg.Clock.Now()
		err := in.store.Update(ctx, func(tx eventstore.Txn) error {
			if _, seen, err := tx.Get(idKey); err != nil {
				return err
			} else if seen {
				dup = true
				return nil
			}
			if err := in.callHandler(ctx, tx, rec); err != nil {
				return handlerFailure{err}
			}
			if err := tx.Set(idKey, binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))); err != nil {
				return err
			}
			return tx.Set(in.timeKey(now, rec.ID), []byte{})
		})
		if err == nil {
			if !dup && in.cfg.AfterCommit != nil {
				in.cfg.AfterCommit(ctx, rec)
			}
			msg.Ack()
			in.mu.Lock()
			if dup {
				in.mu.duplicates++
			} else {
				in.mu.handled++
			}
			in.mu.Unlock()
			return nil
		}
		if ctx.Err() != nil {
			msg.Nack()
			return nil
		}
		var hf handlerFailure
		if !errors.As(err, &hf) {
			msg.Nack()
			return fmt.Errorf("broker: inbound %s: %w", in.cfg.Name, err)
		}
		in.mu.Lock()
		in.mu.failures++
		in.mu.lastErr = hf.err
		in.mu.Unlock()
		if attempt >= in.cfg.MaxAttempts {
			return in.giveUp(ctx, topic, msg, attempt, hf.err)
		}
		d := in.cfg.Backoff.Delay(attempt - 1)
		in.cfg.Logger.Warn("inbound: handler failed, retrying", "inbound", in.cfg.Name, "topic", topic,
			"message", msg.UUID, "attempt", attempt, "retry_in", d, "error", hf.err)
		if err := sleep(ctx, in.cfg.Clock, d); err != nil {
			msg.Nack()
			return nil
		}
	}
}

// giveUp sends msg to the dead-letter topic and Acks it, or, without one,
// Nacks it and returns a *HandlerError.
func (in *Inbound) giveUp(ctx context.Context, topic string, msg *message.Message, attempts int, cause error) error {
	herr := &HandlerError{Inbound: in.cfg.Name, Topic: topic, MessageUUID: msg.UUID, Attempts: attempts, Err: cause}
	if in.cfg.DeadLetter == nil {
		msg.Nack()
		in.mu.Lock()
		in.mu.lastErr = herr
		in.mu.Unlock()
		return herr
	}
	for attempt := 0; ; attempt++ {
		dl := msg.Copy()
		dl.Metadata.Set(MetaDeadLetterError, cause.Error())
		dl.Metadata.Set(MetaDeadLetterInbound, in.cfg.Name)
		dl.Metadata.Set(MetaDeadLetterTopic, topic)
		err := in.cfg.DeadLetter.Publish(in.cfg.DeadLetterTopic, dl)
		if err == nil {
			break
		}
		in.cfg.Logger.Warn("inbound: dead-letter publish failed, retrying", "inbound", in.cfg.Name, "error", err)
		if err := sleep(ctx, in.cfg.Clock, in.cfg.Backoff.Delay(attempt)); err != nil {
			msg.Nack()
			return nil
		}
	}
	msg.Ack()
	in.mu.Lock()
	in.mu.deadLettered++
	in.mu.lastErr = herr
	in.mu.Unlock()
	return nil
}

// purgeBatch bounds the marks one purge transaction removes.
const purgeBatch = 1024

// Purge removes the deduplication marks older than Retention and returns
// how many it removed. Run calls it every PurgeInterval.
func (in *Inbound) Purge(ctx context.Context) (int, error) {
	cutoff := in.cfg.Clock.Now().Add(-in.cfg.Retention)
	lower := in.timePrefix()
	upper := binary.BigEndian.AppendUint64(in.timePrefix(), uint64(max(cutoff.UnixNano(), 0)))
	total := 0
	for {
		n := 0
		err := in.store.Update(ctx, func(tx eventstore.Txn) error {
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
				var id uuid.UUID
				copy(id[:], k[len(k)-16:])
				if err := tx.Delete(k); err != nil {
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

// InboundStatus counts what an Inbound did since it was created.
type InboundStatus struct {
	// Running is true while Run runs; Subscribed once Run has subscribed
	// to every topic (messages published from then on reach it).
	Running, Subscribed bool
	// Handled counts messages the handler applied; Duplicates those Acked
	// without calling it because their event ID was marked.
	Handled, Duplicates uint64
	// Failures counts failed handler attempts; DeadLettered the messages
	// sent to the dead-letter topic.
	Failures, DeadLettered uint64
	// LastError is the last handler failure, nil if none.
	LastError error
}

// Status returns the consumer's counters.
func (in *Inbound) Status() InboundStatus {
	in.mu.Lock()
	defer in.mu.Unlock()
	return InboundStatus{Running: in.running.Load(), Subscribed: in.subscribed.Load(), Handled: in.mu.handled, Duplicates: in.mu.duplicates,
		Failures: in.mu.failures, DeadLettered: in.mu.deadLettered, LastError: in.mu.lastErr}
}
