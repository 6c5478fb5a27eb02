package saga

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
)

// dispatcher sends the outbox's commands in the background while the run
// handles events: each instance's commands in order, up to WithConcurrency
// instances at once. Before a batch touches instances, the run holds them
// (hold): no command of theirs starts, and the batch waits for those being
// sent. So a step never runs while its instance's commands are in flight,
// and a failing step knows which commands were sent (those to compensate)
// and which were not (those to drop).
//
// A rejected command fails its instance, whose compensations then join its
// queue; a rejected compensation is recorded; any other error is retried
// with backoff until the run stops. Sent commands leave the outbox in a
// write that need not be durable: a command sent again after a crash
// carries the same ID, and the bus returns its first result.
type dispatcher[S any] struct {
	s   *Saga[S]
	ctx context.Context
	// fatal ends the run with the dispatcher's error.
	fatal func(error)

	mu struct {
		sync.Mutex
		cond   *sync.Cond
		queues map[string][]outboxItem
		ready  []string       // keys that may have a queue to start; checked when taken
		busy   map[string]int // key -> commands taken by a worker
		// finishing counts the commands sent whose record the finisher
		// has not written yet: they count as pending until it has.
		finishing int
		held      map[string]int
		// attempts counts the failed tries of a key's first command, and
		// waiting holds the keys backing off before the next.
		attempts map[string]int
		waiting  map[string]bool
		closed   bool
	}
	wg sync.WaitGroup

	// fin collects what the workers sent, for the finisher to record.
	fin struct {
		sync.Mutex
		items []sent
	}
	unwatch func() bool
	// retries are the goroutines waiting out back-offs; done ends them.
	retries sync.WaitGroup
	done    chan struct{}
	finWake chan struct{}
	finDone chan struct{}
	finStop chan struct{}
}

func newDispatcher[S any](s *Saga[S], ctx context.Context, fatal func(error)) *dispatcher[S] {
	d := &dispatcher[S]{s: s, ctx: ctx, fatal: fatal,
		done: make(chan struct{}), finWake: make(chan struct{}, 1), finDone: make(chan struct{}), finStop: make(chan struct{})}
	d.mu.cond = sync.NewCond(&d.mu)
	d.mu.queues = map[string][]outboxItem{}
	d.mu.busy = map[string]int{}
	d.mu.held = map[string]int{}
	d.mu.attempts = map[string]int{}
	d.mu.waiting = map[string]bool{}
	return d
}

// start starts the workers and the finisher.
func (d *dispatcher[S]) start() {
	for range d.s.opts.concurrency {
		d.wg.Go(d.work)
	}
	go d.finisher()
	// Wake waiters when the run ends.
	d.unwatch = context.AfterFunc(d.ctx, func() {
		d.mu.Lock()
		d.mu.cond.Broadcast()
		d.mu.Unlock()
	})
}

// maxPending is how many commands may wait to be sent before the run stops
// reading events: backpressure, so that the queue stays bounded when the
// bus is slower than the events.
func (d *dispatcher[S]) maxPending() int {
	return max(4*d.s.opts.batch, 4*d.s.opts.concurrency)
}

// waitRoom waits until fewer than maxPending commands wait, or the run
// ends.
func (d *dispatcher[S]) waitRoom() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for d.pendingLocked() >= d.maxPending() {
		if err := d.ctx.Err(); err != nil {
			return err
		}
		d.mu.cond.Wait()
	}
	return d.ctx.Err()
}

// stop stops the workers once their current commands are done (the run's
// context has ended) and waits for them.
func (d *dispatcher[S]) stop() {
	d.mu.Lock()
	d.mu.closed = true
	d.mu.cond.Broadcast()
	d.mu.Unlock()
	d.wg.Wait()
	d.unwatch()
	close(d.done)
	d.retries.Wait()
	close(d.finStop)
	<-d.finDone
}

// finisher records what the workers sent, many queues in one write, until
// the dispatcher stops (then it records the rest).
func (d *dispatcher[S]) finisher() {
	defer close(d.finDone)
	for {
		stopping := false
		select {
		case <-d.finWake:
		case <-d.finStop:
			stopping = true
		}
		d.fin.Lock()
		items := d.fin.items
		d.fin.items = nil
		d.fin.Unlock()
		if len(items) > 0 {
			// Record what was sent, even when the run is stopping.
			ticket := d.s.beginWrite()
			if err := d.s.finish(context.WithoutCancel(d.ctx), d, items); err != nil && d.ctx.Err() == nil {
				d.fatal(err)
			}
			n := 0
			for _, r := range items {
				n += len(r.done)
			}
			d.mu.Lock()
			d.mu.finishing -= n
			d.mu.Unlock()
			d.s.endWrite(ticket)
			d.s.notify()
		}
		if stopping {
			return
		}
	}
}

// pendingFor reports whether key has commands queued or in flight.
func (d *dispatcher[S]) pendingFor(key string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.mu.queues[key]) > 0 || d.mu.busy[key] > 0
}

// add appends items to key's queue. The caller holds key or the workers
// have not started.
func (d *dispatcher[S]) addLocked(key string, items ...outboxItem) {
	if len(items) == 0 {
		return
	}
	d.mu.queues[key] = append(d.mu.queues[key], items...)
	d.mu.ready = append(d.mu.ready, key)
}

// pending counts the commands not yet sent.
func (d *dispatcher[S]) pending() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pendingLocked()
}

func (d *dispatcher[S]) pendingLocked() int {
	n := 0
	for _, q := range d.mu.queues {
		n += len(q)
	}
	for _, b := range d.mu.busy {
		n += b
	}
	return n + d.mu.finishing
}

// hold stops the workers from starting commands of keys and waits until
// none of keys has a command in flight. Release with release.
func (d *dispatcher[S]) hold(keys map[string]bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for k := range keys {
		d.mu.held[k]++
	}
	for {
		busy := false
		for k := range keys {
			if d.mu.busy[k] > 0 {
				busy = true
				break
			}
		}
		if !busy {
			return
		}
		d.mu.cond.Wait()
	}
}

// first returns the sequence number of key's first queued command that
// was surely not sent, if any. The caller holds key.
func (d *dispatcher[S]) first(key string) (uint64, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, it := range d.mu.queues[key] {
		if !it.maybeSent {
			return it.seq, true
		}
	}
	return 0, false
}

// release lets the workers at keys again, after adding what committed
// batches enqueued and dropping what they dropped, in that order.
func (d *dispatcher[S]) release(keys map[string]bool, added []keyedItem, drops map[string]seqRange) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, it := range added {
		d.addLocked(it.key, it.item)
	}
	for key, r := range drops {
		kept := dropRange(d.mu.queues[key], r)
		if len(kept) == 0 {
			delete(d.mu.queues, key)
		} else {
			d.mu.queues[key] = kept
		}
	}
	for k := range keys {
		if d.mu.held[k]--; d.mu.held[k] <= 0 {
			delete(d.mu.held, k)
			d.mu.ready = append(d.mu.ready, k)
		}
	}
	d.mu.cond.Broadcast()
}

func dropRange(items []outboxItem, r seqRange) []outboxItem {
	return slices.DeleteFunc(items, func(it outboxItem) bool { return r.has(it.seq) })
}

// take waits for a queue that no one holds or sends, and takes it.
func (d *dispatcher[S]) take() (string, []outboxItem, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for {
		if d.mu.closed {
			return "", nil, false
		}
		for len(d.mu.ready) > 0 {
			key := d.mu.ready[0]
			d.mu.ready = d.mu.ready[1:]
			q := d.mu.queues[key]
			if len(q) == 0 || d.mu.busy[key] > 0 || d.mu.held[key] > 0 || d.mu.waiting[key] {
				continue // such keys are made ready again when freed
			}
			delete(d.mu.queues, key)
			d.mu.busy[key] = len(q)
			return key, q, true
		}
		d.mu.cond.Wait()
	}
}

// work sends queues until the dispatcher stops.
func (d *dispatcher[S]) work() {
	for {
		key, queue, ok := d.take()
		if !ok {
			return
		}
		// Stats count what the worker did before WaitFor can see it.
		ticket := d.s.beginWrite()
		r := d.s.sendQueue(d.ctx, key, queue)
		d.s.updateStats(func(st *Stats) { st.add(r.stats) })
		d.mu.Lock()
		delete(d.mu.busy, key)
		if len(r.left) > 0 {
			d.mu.queues[key] = append(r.left, d.mu.queues[key]...)
		}
		if d.mu.queues[key] != nil {
			d.mu.ready = append(d.mu.ready, key)
		}
		d.mu.finishing += len(r.done)
		if r.retry != nil {
			// A transient error: the queue waits out a backoff, free, so
			// that batches touching the instance need not wait for it.
			d.mu.attempts[key]++
			d.mu.waiting[key] = true
			wait := d.s.opts.backoff.Delay(d.mu.attempts[key])
			d.s.opts.logger.Warn("saga command failed; retrying", "saga", d.s.def.name, "instance", key,
				telemetry.AttrAttempt, d.mu.attempts[key], "wait", wait, telemetry.AttrError, r.retry)
			d.retryAfter(key, wait)
		} else {
			delete(d.mu.attempts, key)
		}
		d.mu.cond.Broadcast()
		d.mu.Unlock()
		if r.retry != nil {
			d.s.updateStats(func(st *Stats) { st.LastError = r.retry.Error() })
		}
		d.s.endWrite(ticket)
		if len(r.done) > 0 || len(r.compErrs) > 0 {
			r.key = key
			d.fin.Lock()
			d.fin.items = append(d.fin.items, r)
			d.fin.Unlock()
			select {
			case d.finWake <- struct{}{}:
			default:
			}
		}
		d.s.notify()
		if r.err != nil && d.ctx.Err() == nil {
			d.fatal(r.err)
			return
		}
	}
}

// retryAfter makes key's queue ready again once wait has passed on the
// saga's clock, or forgets it when the dispatcher stops. The caller holds
// d.mu.
func (d *dispatcher[S]) retryAfter(key string, wait time.Duration) {
	due, stop := clock.After(d.s.opts.clock, wait)
	d.retries.Go(func() {
		defer stop()
		select {
		case <-due:
		case <-d.done:
			return
		}
		d.mu.Lock()
		delete(d.mu.waiting, key)
		d.mu.ready = append(d.mu.ready, key)
		d.mu.cond.Broadcast()
		d.mu.Unlock()
	})
}

// sent is what sending one instance's queue did.
type sent struct {
	key      string
	done     []uint64 // sent, to delete from the outbox
	compErrs []string // rejected compensations
	left     []outboxItem
	// retry is the transient error that stopped the queue at left[0].
	retry error
	// compensated is set when the queue held compensations: the instance
	// ends when they are all sent.
	compensated bool
	stats       tally
	err         error
}

// sendQueue sends key's queue in order. A rejected command fails the
// instance, and the compensations that the failure enqueues are sent next.
func (s *Saga[S]) sendQueue(ctx context.Context, key string, queue []outboxItem) (r sent) {
	for len(queue) > 0 {
		it := queue[0]
		err := s.dispatch(ctx, it.cmd, &r.stats)
		switch {
		case err != nil && ctx.Err() != nil:
			// Stopped mid-dispatch: the command stays in the outbox.
			r.err, r.left = ctx.Err(), queue
			return r
		case err != nil && !rejection(err):
			r.retry, r.left = err, slices.Clone(queue)
			r.left[0].maybeSent = true
			return r
		case err == nil:
			r.done = append(r.done, it.seq)
			r.compensated = r.compensated || it.cmd.Compensation
			queue = queue[1:]
		case it.cmd.Compensation:
			r.compErrs = append(r.compErrs, fmt.Sprintf("compensation %s to %q: %v", it.cmd.Type, it.cmd.AggregateID, err))
			r.done = append(r.done, it.seq)
			r.compensated = true
			queue = queue[1:]
		default:
			// The command is rejected: its step fails the instance. The
			// rest of its queue is dropped, and what the failure enqueues
			// (compensations) takes its place.
			f := Failure{Reason: fmt.Sprintf("command %s to %q rejected: %v", it.cmd.Type, it.cmd.AggregateID, err),
				Command: it.cmd.Type, AggregateID: it.cmd.AggregateID, Kind: command.KindOf(err), Message: rejectionMessage(err)}
			next, stats, ferr := s.failOnRejection(ctx, key, it, f)
			if ferr != nil {
				r.err, r.left = ferr, queue
				return r
			}
			s.updateStats(func(st *Stats) { st.add(stats) })
			r.compensated = true
			queue = next
		}
	}
	return r
}

// dispatch sends cmd once. A command that cannot be decoded is a
// rejection: sending it again cannot help.
func (s *Saga[S]) dispatch(ctx context.Context, sc storedCommand, c *tally) error {
	decode := s.def.commands[sc.Type]
	if decode == nil {
		return &command.Error{Kind: command.KindInvalidArgument, Msg: fmt.Sprintf("command type %q is no longer declared", sc.Type)}
	}
	cmd, err := decode(s.opts.codec, sc.Payload)
	if err != nil {
		return &command.Error{Kind: command.KindInvalidArgument, Msg: fmt.Sprintf("decode %s", sc.Type), Err: err}
	}
	dctx := ctx
	if sc.Correlation != "" {
		dctx = command.WithCorrelationID(ctx, sc.Correlation)
	}
	dctx = telemetry.Extract(dctx, sc.Trace)
	opts := []command.DispatchOption{command.WithCommandID(sc.ID)}
	if sc.Causation != "" {
		opts = append(opts, command.WithCausationID(sc.Causation))
	}
	res, err := s.bus.Dispatch(dctx, sc.AggregateID, cmd, opts...)
	if err != nil {
		return err
	}
	c.Commands++
	if res.Duplicate {
		c.Duplicates++
	}
	return nil
}

// rejection reports whether err says the command itself is refused, so
// that sending it again cannot help.
func rejection(err error) bool {
	switch command.KindOf(err) {
	case command.KindInvalidArgument, command.KindFailedPrecondition, command.KindNotFound, command.KindPermissionDenied:
		return true
	}
	return false
}

// rejectionMessage is what a rejecting error says, without the command
// and the kind that a *command.Error adds to its Error.
func rejectionMessage(err error) string {
	var ce *command.Error
	if !errors.As(err, &ce) {
		return err.Error()
	}
	msg := ce.Msg
	if ce.Err != nil {
		if msg != "" {
			msg += ": "
		}
		msg += ce.Err.Error()
	}
	return msg
}

// failOnRejection fails instance key because its command it was rejected,
// and returns the instance's new queue: what the failure enqueued.
func (s *Saga[S]) failOnRejection(ctx context.Context, key string, it outboxItem, f Failure) ([]outboxItem, tally, error) {
	var b *batch[S]
	stale := false
	err := s.store.Update(context.WithoutCancel(ctx), func(txn eventstore.Txn) error {
		// The commands before it were sent (the queue runs in order); it
		// and those after it are dropped.
		b = s.newBatch(txn, func(string) (uint64, bool) { return it.seq, true })
		in, err := b.load(key)
		if err != nil {
			return err
		}
		if in == nil || in.rec.Status != StatusRunning {
			// Another runner of this saga handled the rejection first: a
			// replica on the same shared store, whose run loaded the
			// whole outbox when it started, sends the same commands (with
			// the same IDs, so the bus applies them once) and is refused
			// the same way. It failed the instance (or ended and deleted
			// it); failing it again would compensate twice.
			stale = true
			return txn.Delete(s.keys.outbox(key, it.seq))
		}
		if err := b.fail(in, f, it.cmd.ID, it.cmd.Trace); err != nil {
			return err
		}
		return b.flush()
	})
	if err != nil {
		return nil, tally{}, fmt.Errorf("fail instance %q: %w", key, err)
	}
	if stale {
		s.opts.logger.Info("saga instance already failed by another runner", "saga", s.def.name, "instance", key, "reason", f.Reason)
		return nil, tally{}, nil
	}
	s.opts.logger.Warn("saga instance failed", "saga", s.def.name, "instance", key, "reason", f.Reason)
	var next []outboxItem
	for _, o := range b.outbox {
		next = append(next, o.item)
	}
	return next, b.stats, nil
}

// finish deletes the sent commands from the outbox, records rejected
// compensations, ends the instances whose compensation is over and deletes
// the policy instances with nothing left to do, in one write that need not
// be durable (see dispatcher).
func (s *Saga[S]) finish(ctx context.Context, d *dispatcher[S], items []sent) error {
	return s.store.Update(ctx, func(txn eventstore.Txn) error {
		b := s.newBatch(txn, func(key string) (uint64, bool) { return 0, d.pendingFor(key) })
		for _, r := range items {
			for _, seq := range r.done {
				if err := txn.Delete(s.keys.outbox(r.key, seq)); err != nil {
					return err
				}
			}
			if !r.compensated && !s.def.stateless && len(r.compErrs) == 0 {
				continue
			}
			in, err := b.load(r.key)
			if err != nil {
				return err
			}
			if in == nil {
				continue
			}
			b.touch(in)
			if len(r.compErrs) > 0 {
				in.rec.CompErrors = append(in.rec.CompErrors, r.compErrs...)
				in.rec.LastError = r.compErrs[len(r.compErrs)-1]
			}
			if in.pendFrom == nil && in.rec.Status == StatusCompensating {
				if err := b.end(in, StatusFailed); err != nil {
					return err
				}
			}
		}
		return b.flush()
	}, eventstore.UpdateNoSync())
}
