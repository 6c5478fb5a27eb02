package saga

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
)

// Errors callers branch on.
var (
	// ErrNotFound is returned by Get for a key with no instance.
	ErrNotFound = errors.New("saga: instance not found")
	// ErrInvalidArgument wraps the errors of New. It is the framework's one
	// bad-input error, eventstore.ErrInvalidArgument.
	ErrInvalidArgument = eventstore.ErrInvalidArgument
)

// Saga runs a Definition on a store: it reads the saga's topics as the
// consumer group "saga.<name>", moves each instance's state forward in the
// same durable batch as the group's offsets, and dispatches the commands
// its steps send through a Dispatcher (a *command.Bus), each with an ID
// derived from its instance and trigger, so that no crash repeats or loses
// a step and no command is applied twice. Deadlines are kept in the store
// and fire once, at their time by the saga's clock, across restarts.
//
// A Saga is a handler of package consume: its Run is a consume.Loop over
// the group, whose source also delivers the due deadlines, with the
// HandOff error policy (a step that keeps failing fails its instance).
//
// Run it once per process (a second concurrent Run returns an error
// wrapping consume.ErrRunning). Get, Instances, Deadlines, Stats, Status
// and WaitFor inspect it at any time.
type Saga[S any] struct {
	store eventstore.Store
	bus   Dispatcher
	def   *Definition[S]
	opts  options
	keys  sagaKeys
	group string
	loop  *consume.Loop

	running atomic.Bool

	// disp is the running dispatcher, and unreleased counts the commands
	// that committed batches enqueued and that are not in it yet: with it,
	// they are Stats.PendingCommands.
	disp       atomic.Pointer[dispatcher[S]]
	unreleased atomic.Int64
	// deadlines counts the pending deadlines, as the last Run knew them.
	deadlines atomic.Int64

	mu struct {
		sync.Mutex
		changed chan struct{}
		stats   Stats
		// Every write of Run to the store takes a ticket (beginWrite)
		// before it commits and gives it back once its Stats count it
		// (endWrite); WaitFor waits for the tickets taken before its
		// condition held, so that Stats read after WaitFor count the
		// write that met it. Taking a ticket never blocks, so a write
		// never waits for WaitFor.
		nextTicket uint64
		open       map[uint64]struct{}
		// ticketWaiters counts the WaitFor calls waiting for tickets:
		// endWrite wakes them.
		ticketWaiters int
	}

	// r is the state of the Run in progress. The loop calls the handler
	// and the source from Run's goroutine, the only one that uses it.
	r *run[S]
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
	s := &Saga[S]{store: store, bus: bus, def: def, opts: o, keys: newKeys(def.name), group: groupPrefix + def.name}
	s.mu.changed = make(chan struct{})
	s.mu.open = map[uint64]struct{}{}
	s.loop, err = consume.New(store, s.group, def.topics, loopHandler[S]{s},
		consume.WithBatchSize(o.batch),
		consume.WithRetries(o.retries),
		consume.WithBackoff(o.backoff),
		consume.WithClock(o.clock),
		consume.WithLogger(o.logger),
		consume.WithTracerProvider(o.tracerProvider),
		consume.WithErrorPolicy(consume.HandOff()),
		consume.WithSourceWrapper(func(g *consume.GroupSource) consume.Source { return &source[S]{g: g, r: s.r} }),
		o.loopMeters())
	if err != nil {
		return nil, fmt.Errorf("%w: saga %q: %w", ErrInvalidArgument, name, err)
	}
	if err := s.registerMetrics(); err != nil {
		return nil, fmt.Errorf("saga %q: metrics: %w", name, err)
	}
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
// while too many commands wait. A failing handler fails its instance, not
// the saga; Run fails on errors that concern no instance (a payload that
// does not decode, a key function that panics or returns a key longer than
// eventstore.MaxKeyBytes, the store closing), leaving the checkpoint
// before the record at fault.
func (s *Saga[S]) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("saga %q: Run: %w", s.def.name, consume.ErrRunning)
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
	var fatalErr atomic.Pointer[error]
	d := newDispatcher(s, ctx, func(err error) {
		fatalErr.CompareAndSwap(nil, &err)
		cancel()
	})
	r := &run[S]{s: s, d: d, inflight: map[string]timer{}, works: map[recPos]prepared[S]{}}
	if err := r.recover(ctx); err != nil {
		return err
	}
	s.r = r
	d.start()
	s.disp.Store(d)
	defer func() {
		r.release()
		d.stop()
		n := d.pending() + int(s.unreleased.Load())
		s.disp.Store(nil)
		s.r = nil
		s.updateStats(func(st *Stats) { st.PendingCommands = n })
	}()
	s.setRunState(RunRunning, nil)
	r.purgeAt = s.opts.clock.Now()
	err := s.loop.Run(ctx)
	if e := fatalErr.Load(); e != nil {
		return *e
	}
	if err == nil && ctx.Err() == nil {
		err = errors.New("consume loop returned early")
	}
	return err
}

// run is the state of one Run: its dispatcher, its pending deadlines, and
// what the loop's current poll prepared.
type run[S any] struct {
	s *Saga[S]
	d *dispatcher[S]

	timers deadlineHeap
	// inflight holds the deadlines the source delivered whose batch has
	// not committed, by ID: Rewind puts them back.
	inflight map[string]timer
	purgeAt  time.Time
	// ticket is the write ticket of the batch being applied, from its
	// Begin to its Committed (or its abort); holding says there is one.
	ticket  uint64
	holding bool

	// What Prepare found for the records of the poll being applied, by
	// position, and what its committed batches enqueued and dropped.
	works map[recPos]prepared[S]
	a     *applied
}

// recPos is where a polled record is.
type recPos struct {
	topic     string
	partition int
	offset    int64
}

// recover loads what the store holds for this run: the commands waiting in
// the outbox (into the dispatcher, before it starts) and the pending
// deadlines.
func (r *run[S]) recover(ctx context.Context) error {
	s := r.s
	lower, upper := s.keys.outboxes().Range()
	for kv, err := range s.store.Scan(ctx, lower, upper, false) {
		if err != nil {
			return fmt.Errorf("load outbox: %w", err)
		}
		key, seq, err := s.keys.parseOutboxKey(kv.Key)
		if err != nil {
			return fmt.Errorf("load outbox: %w", err)
		}
		cmd, err := decodeCommand(kv.Value)
		if err != nil {
			return fmt.Errorf("load outbox: instance %q: %w", key, err)
		}
		r.d.addLocked(key, outboxItem{seq: seq, cmd: cmd, maybeSent: true})
	}
	lower, upper = s.keys.deadlines().Range()
	for kv, err := range s.store.Scan(ctx, lower, upper, false) {
		if err != nil {
			return fmt.Errorf("load deadlines: %w", err)
		}
		at, key, name, err := s.keys.parseDeadlineKey(kv.Key)
		if err != nil {
			return fmt.Errorf("load deadlines: %w", err)
		}
		r.timers.push(timer{at: at, key: key, name: name, id: string(kv.Value)})
	}
	r.countDeadlines()
	return nil
}

func (r *run[S]) countDeadlines() { r.s.deadlines.Store(int64(r.timers.len())) }

// acquire takes a write ticket for a batch, release gives it back.
func (r *run[S]) acquire() {
	if !r.holding {
		r.ticket = r.s.beginWrite()
		r.holding = true
	}
}

func (r *run[S]) release() {
	if r.holding {
		r.holding = false
		r.s.endWrite(r.ticket)
	}
}

// beginWrite takes a ticket for a write about to commit.
func (s *Saga[S]) beginWrite() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.mu.nextTicket
	s.mu.nextTicket++
	s.mu.open[t] = struct{}{}
	return t
}

// endWrite gives back the ticket of a write that is counted (or did not
// happen), and wakes WaitFor.
func (s *Saga[S]) endWrite(t uint64) {
	s.mu.Lock()
	delete(s.mu.open, t)
	if s.mu.ticketWaiters > 0 {
		s.notifyLocked()
	}
	s.mu.Unlock()
}

// writesBefore reports whether a write that took a ticket before next is
// still uncounted, and returns the channel notify closes next.
func (s *Saga[S]) writesBefore(next uint64) (bool, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for t := range s.mu.open {
		if t < next {
			return true, s.mu.changed
		}
	}
	return false, s.mu.changed
}

func describe(rec *eventstore.Record) string {
	if rec.Topic == "" {
		return fmt.Sprintf("deadline %q of instance %q", rec.Type, rec.Key)
	}
	return fmt.Sprintf("%s/%d@%d (%s)", rec.Topic, rec.Partition, rec.Offset, rec.Type)
}

// prepare decodes a record's event and computes its instance key, outside
// any write: both are pure. A due deadline has only its instance's key.
func (s *Saga[S]) prepare(rec *eventstore.Record) (prepared[S], error) {
	if rec.Topic == "" {
		return prepared[S]{key: rec.Key}, nil
	}
	rt, ok := s.def.routes[rec.Type]
	if !ok {
		return prepared[S]{}, nil
	}
	p, err := rt.prepare(s.opts.codec, *rec)
	if err != nil {
		return prepared[S]{}, fmt.Errorf("%s: %w", describe(rec), err)
	}
	if err := checkKey(p.key); err != nil {
		return prepared[S]{}, fmt.Errorf("%s: %w", describe(rec), err)
	}
	return p, nil
}

// applied collects what the committed batches of one poll enqueued and
// dropped, for the dispatcher.
type applied struct {
	outbox []keyedItem
	drops  map[string]seqRange
}

// loopHandler is the saga as a consume.Handler and consume.Preparer.
type loopHandler[S any] struct{ s *Saga[S] }

// Prepare decodes the poll's records and computes their instances, then
// holds those instances in the dispatcher (no command of theirs starts,
// and it waits for those in flight) until release, which hands the
// dispatcher what the poll's batches enqueued and dropped. A record that
// does not decode, or whose key cannot be stored, stops Run before any
// record of the poll is applied.
func (h loopHandler[S]) Prepare(_ context.Context, recs []eventstore.Record) (func(), error) {
	s, r := h.s, h.s.r
	clear(r.works)
	keys := map[string]bool{}
	for i := range recs {
		rec := &recs[i]
		w, err := s.prepare(rec)
		if err != nil {
			return nil, err
		}
		if rec.Topic != "" {
			r.works[recPos{rec.Topic, rec.Partition, rec.Offset}] = w
		}
		if w.key != "" {
			keys[w.key] = true
		}
	}
	r.d.hold(keys)
	a := &applied{drops: map[string]seqRange{}}
	r.a = a
	return func() {
		r.d.release(keys, a.outbox, a.drops)
		s.unreleased.Add(-int64(len(a.outbox)))
		// The dispatcher may have sent the released commands, and its
		// finisher woken WaitFor, before they left unreleased: wake it
		// again, or a wait for PendingCommands to reach 0 would miss it.
		s.notify()
	}, nil
}

// Begin opens a batch in tx.
func (h loopHandler[S]) Begin(ctx context.Context, tx eventstore.Txn) (consume.Batch, error) {
	s, r := h.s, h.s.r
	r.release()
	r.acquire()
	a, d := r.a, r.d
	b := s.newBatch(tx, func(key string) (uint64, bool) {
		// Commands enqueued by earlier batches of this poll are not in
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
	b.r, b.ctx = r, ctx
	return b, nil
}

// committed takes what a durable batch did into the run's memory.
func (r *run[S]) committed(b *batch[S]) {
	s, a := r.s, r.a
	before := len(a.outbox)
	a.outbox = append(a.outbox, b.outbox...)
	for key, rg := range b.drops {
		a.drops[key] = rg
		a.outbox = slices.DeleteFunc(a.outbox, func(o keyedItem) bool { return o.key == key && rg.has(o.item.seq) })
	}
	s.unreleased.Add(int64(len(a.outbox) - before))
	for _, op := range b.timers {
		r.timers.apply(op)
	}
	r.countDeadlines()
	s.updateStats(func(st *Stats) { st.add(b.stats) })
	s.notify()
}

// notify wakes WaitFor calls.
func (s *Saga[S]) notify() {
	s.mu.Lock()
	s.notifyLocked()
	s.mu.Unlock()
}

func (s *Saga[S]) notifyLocked() {
	close(s.mu.changed)
	s.mu.changed = make(chan struct{})
}
