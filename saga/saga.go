package saga

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/eventstore"
)

// Errors callers branch on.
var (
	// ErrRunning is returned by Run while another Run of the same Saga is
	// running.
	ErrRunning = errors.New("saga: already running")
	// ErrNotFound is returned by Get for a key with no instance.
	ErrNotFound = errors.New("saga: instance not found")
	// ErrInvalid wraps the errors of New.
	ErrInvalid = errors.New("saga: invalid argument")
)

// PermanentError marks a handler error that retrying cannot fix: its step
// fails at once.
type PermanentError struct{ Err error }

// Error returns the wrapped error's message.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent: a handler returning it is not retried.
func Permanent(err error) error { return &PermanentError{Err: err} }

func permanent(err error) error { return Permanent(err) }

// Saga runs a Definition on a store: it reads the saga's topics as the
// consumer group "saga.<name>", moves each instance's state forward in the
// same durable batch as the group's offsets, and dispatches the commands
// its steps send through a Dispatcher (a *command.Bus), each with an ID
// derived from its instance and trigger, so that no crash repeats or loses
// a step and no command is applied twice. Deadlines are kept in the store
// and fire once, at their time by the saga's Clock, across restarts.
//
// Run it once per process (a second concurrent Run returns ErrRunning).
// Get, Instances, Deadlines, Stats and WaitFor inspect it at any time.
type Saga[S any] struct {
	store *eventstore.Store
	bus   Dispatcher
	def   *Definition[S]
	opts  options
	keys  keyspace
	group string

	running atomic.Bool

	mu struct {
		sync.Mutex
		changed chan struct{}
		stats   Stats
	}

	// Owned by Run.
	pending map[string][]outboxItem
	timers  deadlineHeap
	purgeAt time.Time
}

// outboxItem is one command waiting in the outbox.
type outboxItem struct {
	seq uint64
	cmd storedCommand
}

// New returns a Saga that runs def on store and dispatches commands with
// bus. It reports every problem with def and the options at once, in an
// error wrapping ErrInvalid.
func New[S any](store *eventstore.Store, bus Dispatcher, def *Definition[S], opts ...Option) (*Saga[S], error) {
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("nil store"))
	}
	if bus == nil {
		errs = append(errs, errors.New("nil dispatcher"))
	}
	name := "?"
	if def == nil {
		errs = append(errs, errors.New("nil definition"))
	} else {
		name = def.name
		if err := def.Err(); err != nil {
			errs = append(errs, err)
		}
	}
	o, err := newOptions(opts)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: saga %q: %w", ErrInvalid, name, err)
	}
	s := &Saga[S]{store: store, bus: bus, def: def, opts: o, keys: newKeyspace(def.name), group: groupPrefix + def.name}
	s.mu.changed = make(chan struct{})
	return s, nil
}

// Name returns the saga's name.
func (s *Saga[S]) Name() string { return s.def.name }

// Group returns the name of the saga's consumer group.
func (s *Saga[S]) Group() string { return s.group }

// Run runs the saga until ctx ends (then it returns nil) or it fails: it
// first dispatches the commands a previous run left in the outbox, then
// handles events and due deadlines, each batch in one durable write with
// the checkpoint, and dispatches the commands of each batch before it
// reads the next. A failing handler fails its instance, not the saga; Run
// fails on errors that concern no instance (a payload that does not
// decode, a key function that panics or returns a key the saga cannot
// store, with a NUL byte or longer than eventstore.MaxKeyBytes, the store
// closing), leaving the checkpoint before the record at fault.
func (s *Saga[S]) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("saga %q: Run: %w", s.def.name, ErrRunning)
	}
	defer s.running.Store(false)
	err := s.run(ctx)
	if ctx.Err() != nil {
		s.setRunState(RunStopped, nil)
		return nil
	}
	err = fmt.Errorf("saga %q: %w", s.def.name, err)
	s.setRunState(RunFailed, err)
	return err
}

func (s *Saga[S]) run(ctx context.Context) error {
	c, err := s.store.JoinGroup(ctx, s.group, s.def.topics)
	if err != nil {
		return fmt.Errorf("join group: %w", err)
	}
	defer c.Close()
	if err := s.recover(ctx); err != nil {
		return err
	}
	s.setRunState(RunRunning, nil)
	s.purgeAt = s.opts.clock.Now()
	for {
		if err := s.drain(ctx); err != nil {
			return err
		}
		fired, err := s.fireDue(ctx, c)
		if err != nil {
			return err
		}
		if fired {
			continue
		}
		if now := s.opts.clock.Now(); !now.Before(s.purgeAt) {
			if _, err := s.Purge(ctx); err != nil {
				return err
			}
			s.purgeAt = now.Add(s.opts.purge)
		}
		recs, woke, err := s.poll(ctx, c)
		if err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		if woke {
			continue
		}
		items := make([]work, len(recs))
		for i := range recs {
			items[i] = work{rec: &recs[i]}
		}
		if err := s.apply(ctx, c, items); err != nil {
			return err
		}
	}
}

// recover loads what the store holds for this run: the commands waiting in
// the outbox and the pending deadlines.
func (s *Saga[S]) recover(ctx context.Context) error {
	s.pending = map[string][]outboxItem{}
	s.timers = deadlineHeap{}
	prefix := s.keys.outboxes()
	for kv, err := range s.store.Scan(ctx, prefix, eventstore.PrefixEnd(prefix), false) {
		if err != nil {
			return fmt.Errorf("load outbox: %w", err)
		}
		key, seq, err := parseOutboxKey(kv.Key[len(prefix):])
		if err != nil {
			return fmt.Errorf("load outbox: %q: %w", kv.Key, err)
		}
		cmd, err := decodeCommand(kv.Value)
		if err != nil {
			return fmt.Errorf("load outbox: instance %q: %w", key, err)
		}
		s.pending[key] = append(s.pending[key], outboxItem{seq: seq, cmd: cmd})
	}
	prefix = s.keys.deadlines()
	for kv, err := range s.store.Scan(ctx, prefix, eventstore.PrefixEnd(prefix), false) {
		if err != nil {
			return fmt.Errorf("load deadlines: %w", err)
		}
		at, key, name, err := parseDeadlineKey(kv.Key[len(prefix):])
		if err != nil {
			return fmt.Errorf("load deadlines: %q: %w", kv.Key, err)
		}
		s.timers.push(timer{at: at, key: key, name: name, id: string(kv.Value)})
	}
	s.updateStats(func(st *Stats) { st.PendingCommands = s.pendingCount() })
	return nil
}

func (s *Saga[S]) pendingCount() int {
	n := 0
	for _, items := range s.pending {
		n += len(items)
	}
	return n
}

// poll reads the next batch of records, waking early (woke) when the
// earliest deadline falls due.
func (s *Saga[S]) poll(ctx context.Context, c *eventstore.Consumer) (recs []eventstore.Record, woke bool, err error) {
	next, ok := s.timers.peek()
	if !ok {
		recs, err = c.Poll(ctx, s.opts.batch)
		return recs, false, err
	}
	wait := next.at.Sub(s.opts.clock.Now())
	if wait <= 0 {
		return nil, true, nil
	}
	// A clock with Until is waited on until the deadline's time: with
	// After, a clock that moves between Now above and the call to After
	// (a test's manual clock) would wake the poll that much too late.
	var due <-chan time.Time
	if u, ok := s.opts.clock.(untilClock); ok {
		due = u.Until(next.at)
	} else {
		due = s.opts.clock.After(wait)
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		select {
		case <-due:
			cancel()
		case <-stop:
		}
	}()
	recs, err = c.Poll(pctx, s.opts.batch)
	if err != nil && ctx.Err() == nil && pctx.Err() != nil {
		return nil, true, nil
	}
	return recs, false, err
}

// work is one thing a batch handles: a record, or a due deadline.
type work struct {
	rec *eventstore.Record
	dl  *timer
}

func (w work) String() string {
	if w.rec != nil {
		return fmt.Sprintf("%s/%d@%d (%s)", w.rec.Topic, w.rec.Partition, w.rec.Offset, w.rec.Type)
	}
	return fmt.Sprintf("deadline %q of instance %q", w.dl.name, w.dl.key)
}

// apply handles items, in batches that each commit with their offsets; a
// failing handler is retried alone, and its step then fails its instance.
func (s *Saga[S]) apply(ctx context.Context, c *eventstore.Consumer, items []work) error {
	for len(items) > 0 {
		n, herr, err := s.tryBatch(ctx, c, items, nil)
		if err != nil {
			return err
		}
		items = items[n:]
		if herr == nil {
			continue
		}
		if err := s.retry(ctx, c, items[0], herr); err != nil {
			return err
		}
		items = items[1:]
	}
	return nil
}

// retry runs item's handler again, alone, after backoffs; if it keeps
// failing, the step fails its instance.
func (s *Saga[S]) retry(ctx context.Context, c *eventstore.Consumer, item work, herr error) error {
	var perm *PermanentError
	attempts := 1
	for attempts <= s.opts.retries && !errors.As(herr, &perm) {
		s.opts.logger.Warn("saga handler failed; retrying", "saga", s.def.name, "work", item.String(), "attempt", attempts, "err", herr)
		if err := sleep(ctx, s.opts.backoff(attempts)); err != nil {
			return err
		}
		attempts++
		_, e, err := s.tryBatch(ctx, c, []work{item}, nil)
		if err != nil || e == nil {
			return err
		}
		herr = e
	}
	s.opts.logger.Error("saga step failed", "saga", s.def.name, "work", item.String(), "attempts", attempts, "err", herr)
	_, e, err := s.tryBatch(ctx, c, []work{item}, fmt.Errorf("handler failed after %d attempts: %w", attempts, herr))
	if err == nil && e != nil {
		err = fmt.Errorf("%s: fail the instance: %w", item, e)
	}
	return err
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errAbort = errors.New("saga: batch aborted")

// tryBatch handles items in one Update with the offsets of its records. If
// a handler fails on items[i], it handles items[:i] alone and returns i and
// the handler's error. With failWith, the (single) item's step fails its
// instance with failWith instead of running the handler.
func (s *Saga[S]) tryBatch(ctx context.Context, c *eventstore.Consumer, items []work, failWith error) (int, error, error) {
	failed := -1
	var herr error
	var b *batch[S]
	offsets := map[eventstore.TopicPartition]int64{}
	err := s.store.Update(ctx, func(txn *eventstore.Txn) error {
		clear(offsets)
		b = s.newBatch(txn)
		for i, item := range items {
			var e error
			var err error
			if item.rec != nil {
				e, err = b.event(*item.rec, failWith)
				tp := eventstore.TopicPartition{Topic: item.rec.Topic, Partition: item.rec.Partition}
				offsets[tp] = item.rec.Offset + 1
			} else {
				e, err = b.fire(*item.dl, failWith)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", item, err)
			}
			if e != nil {
				failed, herr = i, e
				return errAbort
			}
		}
		if err := b.flush(); err != nil {
			return err
		}
		if len(offsets) == 0 {
			return nil
		}
		return txn.CommitOffsets(c, offsets)
	})
	if errors.Is(err, errAbort) {
		if failed == 0 {
			return 0, herr, nil
		}
		n, herr2, err := s.tryBatch(ctx, c, items[:failed], nil)
		if err != nil || herr2 != nil {
			return n, herr2, err
		}
		return failed, herr, nil
	}
	if errors.Is(err, eventstore.ErrNotAssigned) {
		// A rebalance took a partition away: nothing was written, and its
		// records are read again by whoever owns it. The deadlines of the
		// batch go back to the heap.
		for _, item := range items {
			if item.dl != nil {
				s.timers.push(*item.dl)
			}
		}
		return len(items), nil, nil
	}
	if err != nil {
		return 0, nil, err
	}
	s.committed(b)
	return len(items), nil, nil
}

// committed takes what a durable batch did into the run's memory.
func (s *Saga[S]) committed(b *batch[S]) {
	for _, o := range b.outbox {
		s.pending[o.key] = append(s.pending[o.key], o.item)
	}
	for key, r := range b.drops {
		if s.pending[key] = dropRange(s.pending[key], r); len(s.pending[key]) == 0 {
			delete(s.pending, key)
		}
	}
	for _, t := range b.timers {
		s.timers.push(t)
	}
	s.updateStats(func(st *Stats) {
		st.add(b.stats)
		st.PendingCommands = s.pendingCount()
	})
	s.notify()
}

func dropRange(items []outboxItem, r seqRange) []outboxItem {
	out := items[:0]
	for _, it := range items {
		if it.seq < r.from || it.seq >= r.to {
			out = append(out, it)
		}
	}
	return out
}

// fireDue handles the deadlines due by now, if any.
func (s *Saga[S]) fireDue(ctx context.Context, c *eventstore.Consumer) (bool, error) {
	now := s.opts.clock.Now()
	var items []work
	for len(items) < s.opts.batch {
		t, ok := s.timers.peek()
		if !ok || t.at.After(now) {
			break
		}
		s.timers.pop()
		items = append(items, work{dl: &t})
	}
	if len(items) == 0 {
		return false, nil
	}
	return true, s.apply(ctx, c, items)
}

// notify wakes WaitFor calls.
func (s *Saga[S]) notify() {
	s.mu.Lock()
	close(s.mu.changed)
	s.mu.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Saga[S]) codec() aggregate.Codec { return s.opts.codec }
