package consume

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
)

// Loop is an exactly-once consumer: it polls a Source and applies each
// batch of records with a Handler in one durable Update together with the
// source's progress. See the package documentation.
//
// Run it once at a time (a second concurrent Run returns ErrRunning);
// Status, WaitFor, Parked, Replay and Discard may be called at any time.
type Loop struct {
	store   eventstore.Store
	name    string
	open    sourceOpener
	handler Handler
	opts    options

	running atomic.Bool

	st struct {
		sync.Mutex
		state     State
		err       error
		positions map[eventstore.TopicPartition]int64
		counters  Counters
		topics    []string
		group     string
		changed   chan struct{}
	}
}

// New returns a Loop called name that consumes topics as the consumer
// group group (a member of it joins in Run) and applies them with h. name
// and group are checked with eventstore.ValidateName; the topics must exist
// when Run starts. New does no I/O.
func New(store eventstore.Store, group string, topics []string, h Handler, opts ...Option) (*Loop, error) {
	var errs []error
	errs = append(errs, eventstore.ValidateName("consumer group", group))
	if len(topics) == 0 {
		errs = append(errs, invalid("topics", "none given"))
	}
	seen := map[string]bool{}
	for _, t := range topics {
		if seen[t] {
			errs = append(errs, invalid("topics", "%q is given twice", t))
		}
		seen[t] = true
		if err := eventstore.ValidateTopicName(t); err != nil {
			errs = append(errs, err)
		}
	}
	l, err := newLoop(store, group, h, opts, errs)
	if err != nil {
		return nil, err
	}
	topics = slices.Clone(topics)
	l.open = func(ctx context.Context) (Source, error) {
		g, err := JoinGroup(ctx, store, group, topics, l.opts.member...)
		if err != nil {
			return nil, fmt.Errorf("%s: join group: %w", group, err)
		}
		if l.opts.wrap != nil {
			return l.opts.wrap(g), nil
		}
		return g, nil
	}
	l.st.topics, l.st.group = topics, group
	if err := l.observeLag(); err != nil {
		return nil, fmt.Errorf("consume: %q: metrics: %w", group, err)
	}
	return l, nil
}

// NewFrom returns a Loop called name that reads the Source open returns,
// at the start of each Run, and applies it with h.
func NewFrom(store eventstore.Store, name string, open func(ctx context.Context) (Source, error), h Handler, opts ...Option) (*Loop, error) {
	var errs []error
	errs = append(errs, eventstore.ValidateName("consumer", name))
	if open == nil {
		errs = append(errs, invalid("source", "open function is nil"))
	}
	l, err := newLoop(store, name, h, opts, errs)
	if err != nil {
		return nil, err
	}
	l.open = open
	return l, nil
}

func newLoop(store eventstore.Store, name string, h Handler, opts []Option, errs []error) (*Loop, error) {
	if store == nil {
		errs = append(errs, invalid("store", "is nil"))
	}
	if h == nil {
		errs = append(errs, invalid("handler", "is nil"))
	}
	o, err := newOptions(name, opts)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("consume: %q: %w", name, err)
	}
	l := &Loop{store: store, name: name, handler: h, opts: o}
	l.st.changed = make(chan struct{})
	l.st.positions = map[eventstore.TopicPartition]int64{}
	return l, nil
}

// Name returns the loop's name.
func (l *Loop) Name() string { return l.name }

// Policy returns the loop's ErrorPolicy.
func (l *Loop) Policy() ErrorPolicy { return l.opts.policy }

// Run consumes until ctx ends (then it returns nil) or an error stops it: a
// record that failed under the Stop policy (a *HandlerError), an error of
// the handler's Begin, Flush, Prepare or Fail, or of the store. It may be
// called again after it returned; it resumes from the committed progress.
func (l *Loop) Run(ctx context.Context) error { return l.run(ctx, false) }

// CatchUp is Run that returns nil as soon as the loop has applied
// everything its source had (a poll came back short and its records are
// committed): a rebuild, a batch job, a test.
func (l *Loop) CatchUp(ctx context.Context) error { return l.run(ctx, true) }

func (l *Loop) run(ctx context.Context, untilCaughtUp bool) (err error) {
	if !l.running.CompareAndSwap(false, true) {
		return fmt.Errorf("%s: %w", l.name, ErrRunning)
	}
	defer l.running.Store(false)
	defer func() {
		if ctx.Err() != nil {
			l.setState(StateStopped, nil)
			l.opts.logger.Info("consume: stopped", "consumer", l.name)
			err = nil
			return
		}
		if err != nil {
			l.setState(StateFailed, err)
			l.opts.logger.Error("consume: failed", "consumer", l.name, "err", err)
		}
	}()
	l.setState(StateCatchingUp, nil)
	src, err := l.open(ctx)
	if err != nil {
		return err
	}
	defer src.Close()
	if p, ok := src.(Partitioned); ok {
		l.st.Lock()
		l.st.topics, l.st.group = p.Topics(), p.Group()
		l.st.Unlock()
	}
	r := &runner{l: l, src: src, firstSeen: map[eventstore.TopicPartition]bool{}, parked: map[eventstore.TopicPartition]int64{}}
	if err := r.refreshPositions(ctx, true); err != nil {
		return err
	}
	l.opts.logger.Info("consume: started", "consumer", l.name, "policy", l.opts.policy.String())
	try, canTry := src.(TryPoller)
	for {
		var recs []eventstore.Record
		var err error
		if canTry {
			// A source that can say it has nothing lets the loop know it is
			// caught up before it blocks: an idle loop is live.
			if recs, err = try.TryPoll(ctx, l.opts.batch); err == nil && len(recs) == 0 {
				// Caught up. A partition gained in a rebalance with nothing
				// left to read shows its committed offset only here.
				if err := r.refreshPositions(ctx, false); err != nil {
					return err
				}
				l.setState(StateLive, nil)
				if untilCaughtUp {
					return nil
				}
			}
		}
		if err == nil && len(recs) == 0 {
			recs, err = src.Poll(ctx, l.opts.batch)
		}
		if err != nil {
			return fmt.Errorf("%s: poll: %w", l.name, err)
		}
		if len(recs) == 0 {
			// The assignment changed: learn what the group committed on the
			// partitions gained, for WaitFor and Status.
			if err := r.refreshPositions(ctx, false); err != nil {
				return err
			}
			continue
		}
		caughtUp := len(recs) < l.opts.batch
		r.caughtUp = caughtUp
		err = r.applyPoll(ctx, recs)
		if errors.Is(err, eventstore.ErrNotAssigned) {
			l.opts.logger.Info("consume: batch void after a rebalance; reading again from the committed offsets", "consumer", l.name)
			clear(r.firstSeen)
			clear(r.parked)
			if err := src.Rewind(ctx); err != nil {
				return fmt.Errorf("%s: rewind: %w", l.name, err)
			}
			continue
		}
		if err != nil {
			return err
		}
		if caughtUp {
			l.setState(StateLive, nil)
			if untilCaughtUp {
				return nil
			}
		} else {
			l.setState(StateCatchingUp, nil)
		}
	}
}

// runner is one Run's state.
type runner struct {
	l   *Loop
	src Source
	// firstSeen marks the partitions whose first record of this run has
	// been checked for a park mark: a crash between parking a record and
	// committing past it leaves it, and only it, parked but not committed.
	firstSeen map[eventstore.TopicPartition]bool
	parked    map[eventstore.TopicPartition]int64
	// assigned is the member's assignment when positions were last loaded.
	assigned []eventstore.TopicPartition
	// caughtUp is set while the loop applies a poll that read all there
	// was: its commits make the loop live in the same step as they move
	// its positions, so a WaitFor woken by them sees it live.
	caughtUp bool
}

// refreshPositions loads the group's committed offsets into the loop's
// positions when the member's assignment changed since the last load (or
// always, with force), for a Partitioned source.
func (r *runner) refreshPositions(ctx context.Context, force bool) error {
	p, ok := r.src.(Partitioned)
	if !ok {
		return nil
	}
	a := p.Assignment()
	if !force && slices.Equal(a, r.assigned) {
		return nil
	}
	if err := r.l.loadPositions(ctx, p.Group(), p.Topics()); err != nil {
		return fmt.Errorf("%s: load committed offsets: %w", r.l.name, err)
	}
	r.assigned = slices.Clone(a)
	return nil
}

// applyPoll applies one poll's records.
func (r *runner) applyPoll(ctx context.Context, recs []eventstore.Record) (err error) {
	if len(recs) == 0 {
		return nil
	}
	if span := r.l.startPoll(&ctx, recs); span != nil {
		defer endPoll(span, &err)
	}
	if p, ok := r.l.handler.(Preparer); ok {
		release, err := r.prepare(ctx, p, recs)
		if err != nil {
			return err
		}
		if release != nil {
			defer release()
		}
	}
	for len(recs) > 0 {
		n, herr, err := r.tryBatch(ctx, recs)
		if err != nil {
			return err
		}
		recs = recs[n:]
		if herr == nil {
			continue
		}
		if err := r.retry(ctx, &recs[0], herr); err != nil {
			return err
		}
		recs = recs[1:]
	}
	return nil
}

func (r *runner) prepare(ctx context.Context, p Preparer, recs []eventstore.Record) (release func(), err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("%s: prepare panicked: %v", r.l.name, v)
		}
	}()
	release, err = p.Prepare(ctx, recs)
	if err != nil {
		return nil, fmt.Errorf("%s: prepare: %w", r.l.name, err)
	}
	return release, nil
}

var errAbort = errors.New("consume: batch aborted")

// stopErr marks an error of the handler's Begin, Flush or Fail (not of a
// record): it stops the loop.
type stopErr struct{ err error }

func (e stopErr) Error() string { return e.err.Error() }
func (e stopErr) Unwrap() error { return e.err }

// tryBatch applies recs in one Update. If the handler fails on recs[i], it
// applies recs[:i] on their own and returns i and the handler's error.
func (r *runner) tryBatch(ctx context.Context, recs []eventstore.Record) (int, error, error) {
	failed := -1
	var herr error
	var b Batch
	var skipped map[eventstore.TopicPartition]int64
	err := r.l.store.Update(ctx, func(tx eventstore.Txn) error {
		failed, herr, skipped = -1, nil, nil
		var err error
		if b, err = r.begin(ctx, tx); err != nil {
			return err
		}
		for i := range recs {
			rec := &recs[i]
			skip, err := r.isParked(tx, rec)
			if err != nil {
				return err
			}
			if skip {
				if skipped == nil {
					skipped = map[eventstore.TopicPartition]int64{}
				}
				skipped[eventstore.TopicPartition{Topic: rec.Topic, Partition: rec.Partition}] = rec.Offset
				continue
			}
			if e := handle(b, rec); e != nil {
				failed, herr = i, e
				return errAbort
			}
		}
		if err := flush(b); err != nil {
			return err
		}
		return r.src.Stage(tx, recs)
	})
	if errors.Is(err, errAbort) {
		if failed == 0 {
			return 0, herr, nil
		}
		n, herr2, err := r.tryBatch(ctx, recs[:failed])
		if err != nil || herr2 != nil {
			return n, herr2, err
		}
		return failed, herr, nil
	}
	if err != nil {
		return 0, nil, r.wrap(err)
	}
	for tp := range skipped {
		delete(r.parked, tp)
	}
	r.committed(b, recs, int64(len(recs)-len(skipped)), 0)
	return len(recs), nil, nil
}

func (r *runner) wrap(err error) error {
	var se stopErr
	if errors.As(err, &se) || errors.Is(err, eventstore.ErrNotAssigned) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return fmt.Errorf("%s: apply batch: %w", r.l.name, err)
}

func (r *runner) begin(ctx context.Context, tx eventstore.Txn) (b Batch, err error) {
	defer func() {
		if v := recover(); v != nil {
			err = stopErr{fmt.Errorf("%s: Begin panicked: %v", r.l.name, v)}
		}
	}()
	b, err = r.l.handler.Begin(ctx, tx)
	if err != nil {
		return nil, stopErr{fmt.Errorf("%s: begin batch: %w", r.l.name, err)}
	}
	if b == nil {
		return nil, stopErr{fmt.Errorf("%s: Begin returned a nil batch", r.l.name)}
	}
	return b, nil
}

// handle runs the batch's handler on rec, turning a panic into a permanent
// error: a panic is a bug that a retry will not fix.
func handle(b Batch, rec *eventstore.Record) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = Permanent(fmt.Errorf("handler panicked: %v", v))
		}
	}()
	return b.Handle(rec)
}

func flush(b Batch) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = stopErr{fmt.Errorf("Flush panicked: %v", v)}
		}
	}()
	if err := b.Flush(); err != nil {
		return stopErr{fmt.Errorf("flush batch: %w", err)}
	}
	return nil
}

func committedCall(b Batch) {
	if b != nil {
		b.Committed()
	}
}

// committed records a durable batch.
func (r *runner) committed(b Batch, recs []eventstore.Record, applied, parked int64) {
	committedCall(b)
	r.src.Committed(recs)
	r.l.advance(recs, r.caughtUp, func(c *Counters) {
		c.Applied += applied
		c.Parked += parked
	})
}

// retry runs rec's handler again, alone, after back-offs, and applies the
// ErrorPolicy if it keeps failing.
func (r *runner) retry(ctx context.Context, rec *eventstore.Record, herr error) error {
	l := r.l
	attempts := 1
	l.count(func(c *Counters) { c.Failures++; c.LastError = herr.Error() })
	for attempts <= l.opts.retries && !IsPermanent(herr) {
		d := l.opts.backoff.Delay(attempts)
		l.logRecord(ctx, slog.LevelWarn, "consume: handler failed; retrying", rec,
			slog.Int(telemetry.AttrAttempt, attempts), slog.Duration("retry_in", d), slog.Any(telemetry.AttrError, herr))
		if err := clock.Sleep(ctx, l.opts.clock, d); err != nil {
			return err
		}
		attempts++
		l.count(func(c *Counters) { c.Retries++ })
		_, e, err := r.tryBatch(ctx, []eventstore.Record{*rec})
		if err != nil {
			return err
		}
		if e == nil {
			return nil
		}
		herr = e
		l.count(func(c *Counters) { c.Failures++; c.LastError = herr.Error() })
	}
	he := &HandlerError{Consumer: l.name, Topic: rec.Topic, Partition: rec.Partition, Offset: rec.Offset,
		Key: rec.Key, EventType: rec.Type, EventID: rec.ID, Attempts: attempts, Err: herr}
	l.logRecord(ctx, slog.LevelError, "consume: handler gave up", rec,
		slog.Int("attempts", attempts), slog.String("policy", l.opts.policy.String()), slog.Any(telemetry.AttrError, herr))
	switch l.opts.policy.kind {
	case policyPark:
		return r.park(ctx, rec, he)
	case policyDeadLetter:
		return r.deadLetter(ctx, rec, he)
	case policyHandOff:
		return r.handOff(ctx, rec, he)
	}
	return he
}

func describe(rec *eventstore.Record) string {
	if rec.Topic == "" {
		return fmt.Sprintf("%s of %s", rec.Type, rec.Key)
	}
	return fmt.Sprintf("%s/%d@%d (%s)", rec.Topic, rec.Partition, rec.Offset, rec.Type)
}

// commitPast commits the source's progress past rec, with extra (if not
// nil) writing in the same Update.
func (r *runner) commitPast(ctx context.Context, rec *eventstore.Record, extra func(tx eventstore.Txn) error, parked int64) error {
	recs := []eventstore.Record{*rec}
	err := r.l.store.Update(ctx, func(tx eventstore.Txn) error {
		if extra != nil {
			if err := extra(tx); err != nil {
				return err
			}
		}
		return r.src.Stage(tx, recs)
	})
	if err != nil {
		return r.wrap(err)
	}
	r.committed(nil, recs, 0, parked)
	return nil
}

func (r *runner) deadLetter(ctx context.Context, rec *eventstore.Record, he *HandlerError) error {
	l := r.l
	for attempt := 1; ; attempt++ {
		err := l.opts.policy.publish(ctx, *rec, he)
		if err == nil {
			break
		}
		d := l.opts.backoff.Delay(attempt)
		l.logRecord(ctx, slog.LevelWarn, "consume: dead-letter publish failed; retrying", rec,
			slog.Int(telemetry.AttrAttempt, attempt), slog.Duration("retry_in", d), slog.Any(telemetry.AttrError, err))
		if err := clock.Sleep(ctx, l.opts.clock, d); err != nil {
			return err
		}
	}
	return r.commitPast(ctx, rec, nil, 1)
}

func (r *runner) handOff(ctx context.Context, rec *eventstore.Record, he *HandlerError) error {
	var b Batch
	recs := []eventstore.Record{*rec}
	err := r.l.store.Update(ctx, func(tx eventstore.Txn) error {
		var err error
		if b, err = r.begin(ctx, tx); err != nil {
			return err
		}
		f, ok := b.(Failer)
		if !ok {
			return stopErr{fmt.Errorf("%s: the HandOff policy needs a Batch with a Fail method; %T has none", r.l.name, b)}
		}
		if err := callFail(f, rec, he); err != nil {
			return stopErr{fmt.Errorf("%s: fail %s: %w", r.l.name, describe(rec), err)}
		}
		if err := flush(b); err != nil {
			return err
		}
		return r.src.Stage(tx, recs)
	})
	if err != nil {
		return r.wrap(err)
	}
	r.committed(b, recs, 0, 0)
	r.l.count(func(c *Counters) { c.HandedOff++ })
	return nil
}

func callFail(f Failer, rec *eventstore.Record, he *HandlerError) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("Fail panicked: %v", v)
		}
	}()
	return f.Fail(rec, he)
}
