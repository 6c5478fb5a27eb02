package saga

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	// ErrInvalidArgument wraps the errors of New. It is the framework's one
	// bad-input error, eventstore.ErrInvalidArgument.
	ErrInvalidArgument = eventstore.ErrInvalidArgument
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
	store eventstore.Store
	bus   Dispatcher
	def   *Definition[S]
	opts  options
	keys  keyspace
	group string

	running atomic.Bool

	// applying is read-locked by Run from each write to the store until
	// its Stats count it; WaitFor passes through it before it returns, so
	// that Stats read after WaitFor count the write that met its
	// condition.
	applying sync.RWMutex
	// disp is the running dispatcher, and unreleased counts the commands
	// that committed batches enqueued and that are not in it yet: with it,
	// they are Stats.PendingCommands.
	disp       atomic.Pointer[dispatcher[S]]
	unreleased atomic.Int64

	mu struct {
		sync.Mutex
		changed chan struct{}
		stats   Stats
	}

	// Owned by Run.
	timers  deadlineHeap
	purgeAt time.Time
}

// outboxItem is one command waiting in the outbox.
type outboxItem struct {
	seq uint64
	cmd storedCommand
	// maybeSent marks a command that may have been applied: one a
	// previous run left in the outbox, or one whose dispatch failed with
	// a transient error. A failing step does not drop it: it is sent (a
	// duplicate, if it was applied) and compensated like a sent one.
	maybeSent bool
}

// New returns a Saga that runs def on store and dispatches commands with
// bus. It reports every problem with def and the options at once, in an
// error wrapping ErrInvalidArgument.
func New[S any](store eventstore.Store, bus Dispatcher, def *Definition[S], opts ...Option) (*Saga[S], error) {
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
		return nil, fmt.Errorf("%w: saga %q: %w", ErrInvalidArgument, name, err)
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
// handles events and due deadlines, each batch in one durable write with
// the checkpoint, while the commands in the outbox (those a previous run
// left too) are sent in the background, each instance's in order, up to
// WithConcurrency instances at once. A batch waits for the commands in
// flight of the instances it touches, and the run stops reading events
// while too many commands wait. A failing handler fails its instance, not the saga; Run
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

func (s *Saga[S]) run(parent context.Context) error {
	ctx, cancel := context.WithCancel(parent)
	defer cancel()
	c, err := s.store.JoinGroup(ctx, s.group, s.def.topics)
	if err != nil {
		return fmt.Errorf("join group: %w", err)
	}
	defer c.Close()
	var fatalErr atomic.Pointer[error]
	d := newDispatcher(s, ctx, func(err error) {
		fatalErr.CompareAndSwap(nil, &err)
		cancel()
	})
	if err := s.recover(ctx, d); err != nil {
		return err
	}
	d.start()
	s.disp.Store(d)
	defer func() {
		d.stop()
		n := d.pending() + int(s.unreleased.Load())
		s.disp.Store(nil)
		s.updateStats(func(st *Stats) { st.PendingCommands = n })
	}()
	s.setRunState(RunRunning, nil)
	s.purgeAt = s.opts.clock.Now()
	err = s.loop(ctx, c, d)
	if e := fatalErr.Load(); e != nil {
		return *e
	}
	return err
}

// loop handles due deadlines and polled records until an error or ctx's
// end, while the dispatcher sends the commands.
func (s *Saga[S]) loop(ctx context.Context, c eventstore.Consumer, d *dispatcher[S]) error {
	for {
		fired, err := s.fireDue(ctx, c, d)
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
		if err := d.waitRoom(); err != nil {
			return err
		}
		recs, woke, err := s.poll(ctx, c)
		if err != nil {
			return fmt.Errorf("poll: %w", err)
		}
		if woke {
			continue
		}
		items := make([]work[S], len(recs))
		for i := range recs {
			items[i] = work[S]{rec: &recs[i]}
		}
		if err := s.apply(ctx, c, d, items); err != nil {
			return err
		}
	}
}

// recover loads what the store holds for this run: the commands waiting in
// the outbox (into the dispatcher, before it starts) and the pending
// deadlines.
func (s *Saga[S]) recover(ctx context.Context, d *dispatcher[S]) error {
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
		d.addLocked(key, outboxItem{seq: seq, cmd: cmd, maybeSent: true})
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
	return nil
}

// poll reads the next batch of records, waking early (woke) when the
// earliest deadline, or the next purge, falls due.
func (s *Saga[S]) poll(ctx context.Context, c eventstore.Consumer) (recs []eventstore.Record, woke bool, err error) {
	wake := s.purgeAt
	if next, ok := s.timers.peek(); ok && next.at.Before(wake) {
		wake = next.at
	}
	if !wake.After(s.opts.clock.Now()) {
		return nil, true, nil
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := make(chan struct{})
	defer close(stop)
	due := s.opts.clock.At(wake)
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
type work[S any] struct {
	rec *eventstore.Record
	dl  *timer

	// What prepare found for a record: whether the saga routes its type,
	// the instance key ("" for none), and the handler bound to its decoded
	// event.
	routed bool
	start  bool
	key    string
	run    func(*Step[S]) error
}

func (w *work[S]) String() string {
	if w.rec != nil {
		return fmt.Sprintf("%s/%d@%d (%s)", w.rec.Topic, w.rec.Partition, w.rec.Offset, w.rec.Type)
	}
	return fmt.Sprintf("deadline %q of instance %q", w.dl.name, w.dl.key)
}

// prepare decodes a record's event and computes its instance key, outside
// any write: both are pure.
func (s *Saga[S]) prepare(w *work[S]) error {
	if w.rec == nil {
		w.key = w.dl.key
		return nil
	}
	r, ok := s.def.routes[w.rec.Type]
	if !ok {
		return nil
	}
	m, err := r.prepare(s.opts.codec, *w.rec)
	if err != nil {
		return fmt.Errorf("%s: %w", w, err)
	}
	if !m.routed {
		return nil
	}
	if err := checkKey(m.key); err != nil {
		return fmt.Errorf("%s: %w", w, err)
	}
	w.routed, w.start, w.key, w.run = true, m.start, m.key, m.run
	return nil
}

// apply handles items: it holds their instances in the dispatcher, then
// handles them in batches that each commit with their offsets; a failing
// handler is retried alone, and its step then fails its instance.
func (s *Saga[S]) apply(ctx context.Context, c eventstore.Consumer, d *dispatcher[S], items []work[S]) error {
	keys := map[string]bool{}
	for i := range items {
		if err := s.prepare(&items[i]); err != nil {
			return err
		}
		if items[i].key != "" {
			keys[items[i].key] = true
		}
	}
	d.hold(keys)
	a := &applied{drops: map[string]seqRange{}}
	defer func() {
		d.release(keys, a.outbox, a.drops)
		s.unreleased.Add(-int64(len(a.outbox)))
	}()
	for len(items) > 0 {
		n, herr, err := s.tryBatch(ctx, c, d, items, nil, a)
		if err != nil {
			return err
		}
		items = items[n:]
		if herr == nil {
			continue
		}
		if err := s.retry(ctx, c, d, items[0], herr, a); err != nil {
			return err
		}
		items = items[1:]
	}
	return nil
}

// applied collects what the committed batches of one apply enqueued and
// dropped, for the dispatcher.
type applied struct {
	outbox []keyedItem
	drops  map[string]seqRange
}

// retry runs item's handler again, alone, after backoffs; if it keeps
// failing, the step fails its instance.
func (s *Saga[S]) retry(ctx context.Context, c eventstore.Consumer, d *dispatcher[S], item work[S], herr error, a *applied) error {
	var perm *PermanentError
	attempts := 1
	for attempts <= s.opts.retries && !errors.As(herr, &perm) {
		s.opts.logger.Warn("saga handler failed; retrying", "saga", s.def.name, "work", item.String(), "attempt", attempts, "err", herr)
		if err := sleep(ctx, s.opts.backoff(attempts)); err != nil {
			return err
		}
		attempts++
		_, e, err := s.tryBatch(ctx, c, d, []work[S]{item}, nil, a)
		if err != nil || e == nil {
			return err
		}
		herr = e
	}
	s.opts.logger.Error("saga step failed", "saga", s.def.name, "work", item.String(), "attempts", attempts, "err", herr)
	_, e, err := s.tryBatch(ctx, c, d, []work[S]{item}, fmt.Errorf("handler failed after %d attempts: %w", attempts, herr), a)
	if err == nil && e != nil {
		err = fmt.Errorf("%s: fail the instance: %w", item.String(), e)
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
// instance with failWith instead of running the handler. The caller holds
// the items' instances in d.
func (s *Saga[S]) tryBatch(ctx context.Context, c eventstore.Consumer, d *dispatcher[S], items []work[S], failWith error, a *applied) (int, error, error) {
	failed := -1
	var herr error
	var b *batch[S]
	offsets := map[eventstore.TopicPartition]int64{}
	s.applying.RLock()
	defer s.applying.RUnlock()
	err := s.store.Update(ctx, func(txn eventstore.Txn) error {
		clear(offsets)
		b = s.newBatch(txn, func(key string) (uint64, bool) {
			// Commands enqueued by earlier batches of this apply are not in
			// the dispatcher yet.
			if seq, ok := d.first(key); ok {
				return seq, true
			}
			for _, o := range a.outbox {
				if o.key == key {
					return o.item.seq, true
				}
			}
			return 0, false
		})
		for i := range items {
			item := &items[i]
			var e, err error
			if item.rec != nil {
				if item.routed {
					e, err = b.event(*item.rec, item.start, item.key, item.run, failWith)
				}
				tp := eventstore.TopicPartition{Topic: item.rec.Topic, Partition: item.rec.Partition}
				offsets[tp] = item.rec.Offset + 1
			} else {
				e, err = b.fire(*item.dl, failWith)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", item.String(), err)
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
		n, herr2, err := s.tryBatch(ctx, c, d, items[:failed], nil, a)
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
	s.committed(b, a)
	return len(items), nil, nil
}

// committed takes what a durable batch did into the run's memory.
func (s *Saga[S]) committed(b *batch[S], a *applied) {
	before := len(a.outbox)
	a.outbox = append(a.outbox, b.outbox...)
	for key, r := range b.drops {
		a.drops[key] = r
		a.outbox = slices.DeleteFunc(a.outbox, func(o keyedItem) bool { return o.key == key && r.has(o.item.seq) })
	}
	s.unreleased.Add(int64(len(a.outbox) - before))
	for _, op := range b.timers {
		s.timers.apply(op)
	}
	s.updateStats(func(st *Stats) { st.add(b.stats) })
	s.notify()
}

// fireDue handles the deadlines due by now, if any.
func (s *Saga[S]) fireDue(ctx context.Context, c eventstore.Consumer, d *dispatcher[S]) (bool, error) {
	now := s.opts.clock.Now()
	var items []work[S]
	for len(items) < s.opts.batch {
		t, ok := s.timers.peek()
		if !ok || t.at.After(now) {
			break
		}
		s.timers.pop()
		items = append(items, work[S]{dl: &t})
	}
	if len(items) == 0 {
		return false, nil
	}
	return true, s.apply(ctx, c, d, items)
}

// notify wakes WaitFor calls.
func (s *Saga[S]) notify() {
	s.mu.Lock()
	close(s.mu.changed)
	s.mu.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Saga[S]) codec() aggregate.Codec { return s.opts.codec }
