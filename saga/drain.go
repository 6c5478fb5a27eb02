package saga

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
)

// drain dispatches every command in the outbox: the instances' queues run
// side by side (WithConcurrency), each in order. A rejected command fails
// its instance, whose compensations then join its queue; a compensation
// that is rejected is recorded; any other error is retried with backoff
// until ctx ends. Dispatched commands leave the outbox in one write at the
// end, which need not be durable: a command dispatched again after a crash
// carries the same ID, and the bus returns its first result.
func (s *Saga[S]) drain(ctx context.Context) error {
	if len(s.pending) == 0 {
		return nil
	}
	keys := make([]string, 0, len(s.pending))
	for k := range s.pending {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	results := make([]drained, len(keys))
	sem := make(chan struct{}, s.opts.concurrency)
	var wg sync.WaitGroup
	for i, key := range keys {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			results[i] = s.drainInstance(ctx, key, s.pending[key])
		}()
	}
	wg.Wait()
	var errs []error
	for i, r := range results {
		if r.err != nil {
			errs = append(errs, r.err)
		}
		if len(r.left) == 0 {
			delete(s.pending, keys[i])
		} else {
			s.pending[keys[i]] = r.left
		}
	}
	// Record what was done, even when ctx ended half way.
	s.applying.Lock()
	if err := s.finishDrain(context.WithoutCancel(ctx), keys, results); err != nil {
		errs = append(errs, err)
	}
	s.updateStats(func(st *Stats) { st.PendingCommands = s.pendingCount() })
	s.applying.Unlock()
	s.notify()
	return errors.Join(errs...)
}

// drained is what dispatching one instance's queue did.
type drained struct {
	done      []uint64 // dispatched, to delete
	compErrs  []string // rejected compensations
	left      []outboxItem
	err       error
	dispatch  int
	dups      int
	rejection bool
}

func (s *Saga[S]) drainInstance(ctx context.Context, key string, queue []outboxItem) (r drained) {
	queue = slices.Clone(queue)
	for len(queue) > 0 {
		it := queue[0]
		err := s.dispatch(ctx, it.cmd, &r)
		if err != nil && ctx.Err() != nil && !rejection(err) {
			// Stopped, not rejected: the command stays in the outbox for
			// the next run.
			r.err, r.left = ctx.Err(), queue
			return r
		}
		switch {
		case err == nil:
			r.done = append(r.done, it.seq)
			queue = queue[1:]
		case it.cmd.Compensation:
			r.compErrs = append(r.compErrs, fmt.Sprintf("compensation %s to %q: %v", it.cmd.Type, it.cmd.AggregateID, err))
			r.done = append(r.done, it.seq)
			queue = queue[1:]
		default:
			// The command is rejected: its step fails the instance. The
			// rest of its queue is dropped, and what the failure enqueues
			// (compensations) takes its place.
			r.rejection = true
			f := Failure{Reason: fmt.Sprintf("command %s to %q rejected: %v", it.cmd.Type, it.cmd.AggregateID, err),
				Command: it.cmd.Type, AggregateID: it.cmd.AggregateID}
			next, ferr := s.failOnRejection(ctx, key, it, f)
			if ferr != nil {
				r.err, r.left = ferr, queue
				return r
			}
			queue = next
		}
		if ctx.Err() != nil {
			r.err, r.left = ctx.Err(), queue
			return r
		}
	}
	return r
}

// dispatch sends cmd, retrying errors that are not rejections; it returns
// nil or the rejection.
func (s *Saga[S]) dispatch(ctx context.Context, sc storedCommand, r *drained) error {
	decode := s.def.commands[sc.Type]
	if decode == nil {
		return fmt.Errorf("command type %q is no longer declared", sc.Type)
	}
	cmd, err := decode(s.opts.codec, sc.Payload)
	if err != nil {
		return fmt.Errorf("decode %s: %w", sc.Type, err)
	}
	dctx := ctx
	if sc.Correlation != "" {
		dctx = command.WithCorrelationID(ctx, sc.Correlation)
	}
	opts := []command.DispatchOption{command.WithCommandID(sc.ID)}
	if sc.Causation != "" {
		opts = append(opts, command.WithCausationID(sc.Causation))
	}
	for attempt := 1; ; attempt++ {
		res, err := s.bus.Dispatch(dctx, sc.AggregateID, cmd, opts...)
		if err == nil {
			r.dispatch++
			if res.Duplicate {
				r.dups++
			}
			return nil
		}
		if rejection(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.opts.logger.Warn("saga command failed; retrying", "saga", s.def.name, "command", sc.Type, "aggregate", sc.AggregateID, "attempt", attempt, "err", err)
		s.updateStats(func(st *Stats) { st.LastError = err.Error() })
		if err := sleep(ctx, s.opts.backoff(attempt)); err != nil {
			return err
		}
	}
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

// failOnRejection fails instance key because its command it was rejected,
// and returns the instance's new queue.
func (s *Saga[S]) failOnRejection(ctx context.Context, key string, it outboxItem, f Failure) ([]outboxItem, error) {
	var b *batch[S]
	s.applying.Lock()
	defer s.applying.Unlock()
	err := s.store.Update(context.WithoutCancel(ctx), func(txn *eventstore.Txn) error {
		b = s.newBatch(txn)
		in, err := b.load(key)
		if err != nil {
			return err
		}
		if in == nil {
			return fmt.Errorf("instance %q of an outbox command is missing", key)
		}
		// The commands before it were dispatched (the queue runs in order)
		// and stay counted until the end of the drain deletes them; it and
		// those after it are dropped.
		if err := b.fail(in, f, it.seq, it.cmd.ID); err != nil {
			return err
		}
		return b.flush()
	})
	if err != nil {
		return nil, fmt.Errorf("fail instance %q: %w", key, err)
	}
	s.opts.logger.Warn("saga instance failed", "saga", s.def.name, "instance", key, "reason", f.Reason)
	s.updateStats(func(st *Stats) { st.add(b.stats) })
	var next []outboxItem
	for _, o := range b.outbox {
		next = append(next, o.item)
	}
	return next, nil
}

// finishDrain deletes the dispatched commands from the outbox, records
// rejected compensations, and ends the instances whose compensation is
// over. The write is not durable (see drain).
func (s *Saga[S]) finishDrain(ctx context.Context, keys []string, results []drained) error {
	var b *batch[S]
	err := s.store.Update(ctx, func(txn *eventstore.Txn) error {
		b = s.newBatch(txn)
		for i, key := range keys {
			r := results[i]
			b.stats.Commands += r.dispatch
			b.stats.Duplicates += r.dups
			if len(r.done) == 0 && len(r.compErrs) == 0 {
				continue
			}
			for _, seq := range r.done {
				if err := txn.Delete(s.keys.outbox(key, seq)); err != nil {
					return err
				}
			}
			in, err := b.load(key)
			if err != nil {
				return err
			}
			if in == nil {
				continue
			}
			b.touch(in)
			in.rec.Pending = max(0, in.rec.Pending-len(r.done))
			if len(r.compErrs) > 0 {
				in.rec.CompErrors = append(in.rec.CompErrors, r.compErrs...)
				in.rec.LastError = r.compErrs[len(r.compErrs)-1]
			}
			if in.rec.Pending == 0 && in.rec.Status == StatusCompensating {
				if err := b.end(in, StatusFailed); err != nil {
					return err
				}
			}
		}
		return b.flush()
	}, eventstore.UpdateNoSync())
	if err != nil {
		return fmt.Errorf("record dispatched commands: %w", err)
	}
	s.updateStats(func(st *Stats) { st.add(b.stats) })
	return nil
}
