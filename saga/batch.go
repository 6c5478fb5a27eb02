package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
)

// batch is what one Update does to the saga's instances: it loads each
// instance once, runs steps on it, and writes it back in flush.
type batch[S any] struct {
	s     *Saga[S]
	txn   eventstore.Txn
	now   time.Time
	insts map[string]*instance[S]
	dirty []*instance[S]

	// What the batch adds to the run's memory once it is durable.
	outbox []keyedItem
	timers []timerOp
	drops  map[string]seqRange
	stats  tally
	// r is the run whose loop applies the batch (nil for the writes of
	// the dispatcher).
	r *run[S]
	// ctx is the context of the loop's batch (its span), nil for the
	// dispatcher's writes.
	ctx context.Context

	// queued returns the sequence number of the first command of an
	// instance still in the dispatcher's queue (not being sent: the run
	// holds the instance), if it has one.
	queued func(key string) (uint64, bool)
}

type keyedItem struct {
	key  string
	item outboxItem
}

// seqRange is the outbox sequence numbers [from, to) of an instance.
type seqRange struct{ from, to uint64 }

func (r seqRange) has(seq uint64) bool { return seq >= r.from && seq < r.to }

// instance is one instance as a batch holds it.
type instance[S any] struct {
	key    string
	rec    *instanceRecord
	state  S
	stored bool // in the store before the batch
	dirty  bool
	// pendFrom is the sequence number of its first command not yet sent
	// (nil if none): all from there to rec.NextSeq are in the outbox.
	pendFrom *uint64
}

func (s *Saga[S]) newBatch(txn eventstore.Txn, queued func(string) (uint64, bool)) *batch[S] {
	if queued == nil {
		queued = func(string) (uint64, bool) { return 0, false }
	}
	return &batch[S]{s: s, txn: txn, now: s.opts.clock.Now().UTC(), insts: map[string]*instance[S]{},
		drops: map[string]seqRange{}, queued: queued}
}

// load returns instance key, or nil if it does not exist.
func (b *batch[S]) load(key string) (*instance[S], error) {
	if in, ok := b.insts[key]; ok {
		return in, nil
	}
	v, ok, err := b.txn.Get(b.s.keys.instance(key))
	if err != nil {
		return nil, fmt.Errorf("load instance %q: %w", key, err)
	}
	if !ok {
		return nil, nil
	}
	in, err := b.s.decode(key, v)
	if err != nil {
		return nil, err
	}
	in.stored = true
	if seq, ok := b.queued(key); ok {
		in.pendFrom = &seq
	}
	b.insts[key] = in
	return in, nil
}

// decode decodes a stored instance with its state.
func (s *Saga[S]) decode(key string, v []byte) (*instance[S], error) {
	rec, err := decodeInstance(v)
	if err != nil {
		return nil, fmt.Errorf("instance %q: %w", key, err)
	}
	st, err := aggregate.Decode[S](s.opts.codec, rec.State)
	if err != nil {
		return nil, fmt.Errorf("instance %q: decode state with codec %s: %w", key, s.opts.codec.Name(), err)
	}
	return &instance[S]{key: key, rec: rec, state: st}, nil
}

func (b *batch[S]) create(key, correlation string) *instance[S] {
	in := &instance[S]{key: key, rec: &instanceRecord{Status: StatusRunning, Correlation: correlation, Started: b.now, Updated: b.now}}
	b.insts[key] = in
	b.stats.Started++
	return in
}

func (b *batch[S]) touch(in *instance[S]) {
	in.rec.Updated = b.now
	if !in.dirty {
		in.dirty = true
		b.dirty = append(b.dirty, in)
	}
}

// checkKey refuses instance keys longer than the store's keys.
func checkKey(key string) error {
	if len(key) > eventstore.MaxKeyBytes {
		return fmt.Errorf("instance key of %d bytes is longer than %d", len(key), eventstore.MaxKeyBytes)
	}
	return nil
}

// Handle handles a record of the poll Prepare saw (a step of the instance
// it concerns) or a due deadline. A handler's error fails the record (the
// loop retries it alone, then hands it to Fail); so does an error that
// concerns no instance, such as a store error.
func (b *batch[S]) Handle(rec *eventstore.Record) error {
	err := b.handle(rec, nil)
	if err != nil {
		// The loop aborts the batch.
		b.r.release()
	}
	return err
}

func (b *batch[S]) handle(rec *eventstore.Record, failWith error) error {
	if rec.Topic == "" {
		return b.fire(timerOf(rec), failWith)
	}
	w, ok := b.r.works[recPos{rec.Topic, rec.Partition, rec.Offset}]
	if !ok {
		return fmt.Errorf("%s: not prepared", describe(rec))
	}
	if !w.routed {
		return nil
	}
	return b.event(*rec, w.start, w.key, w.run, failWith)
}

// Fail fails the instance of a record whose handler kept failing: its
// step fails with the handler's last error, and the instance compensates.
// An error that concerns no instance stops Run.
func (b *batch[S]) Fail(rec *eventstore.Record, he *consume.HandlerError) error {
	err := b.handle(rec, fmt.Errorf("handler failed after %d attempts: %w", he.Attempts, he.Err))
	if err != nil {
		b.r.release()
	}
	return err
}

// Flush writes the batch's instances.
func (b *batch[S]) Flush() error {
	if err := b.flush(); err != nil {
		b.r.release()
		return err
	}
	return nil
}

// Committed takes what the durable batch did into the run's memory.
func (b *batch[S]) Committed() {
	b.r.committed(b)
	b.r.release()
}

// event handles rec, which prepare correlated to instance key ("" for
// none) and bound to run; with failWith, its step fails with it instead of
// running the handler. It returns the handler's error, or one that
// concerns no instance (a store error): either fails the record.
func (b *batch[S]) event(rec eventstore.Record, start bool, key string, run func(*Step[S]) error, failWith error) error {
	if key == "" {
		b.stats.Ignored++
		return nil
	}
	in, err := b.load(key)
	if err != nil {
		return err
	}
	switch {
	case in == nil && !start:
		b.stats.Ignored++
		return nil
	case in == nil:
		corr := rec.CorrelationID
		if corr == "" {
			corr = rec.ID.String()
		}
		in = b.create(key, corr)
	case in.rec.Status != StatusRunning:
		// Ended, or failed and compensating: it reacts to nothing more.
		b.stats.Ignored++
		return nil
	}
	st := b.step(in, rec.ID.String())
	st.event = &rec
	span := b.startStep(&rec, st)
	if failWith != nil {
		return endStep(span, b.failStep(in, failWith.Error(), st))
	}
	if err := call(run, st); err != nil {
		return endStep(span, err)
	}
	return endStep(span, b.commitStep(in, st))
}

// fire handles the due deadline t, as event handles a record.
func (b *batch[S]) fire(t timer, failWith error) error {
	b.timers = append(b.timers, timerOp{t: t})
	in, err := b.load(t.key)
	if err != nil || in == nil {
		return err
	}
	d, ok := in.rec.deadline(t.name)
	if !ok || d.ID != t.id || in.rec.Status != StatusRunning {
		return nil // cancelled or replaced since
	}
	b.touch(in)
	b.stats.DeadlinesFired++
	in.rec.removeDeadline(t.name)
	if err := b.txn.Delete(b.s.keys.deadline(d.At, t.key, d.Name)); err != nil {
		return err
	}
	if d.Command != nil {
		cmd := *d.Command
		cmd.Causation = d.ID
		return b.enqueue(in, cmd)
	}
	st := b.step(in, d.ID)
	st.timeout = d.Name
	span := b.startTimeout(&d, st)
	if failWith != nil {
		return endStep(span, b.failStep(in, failWith.Error(), st))
	}
	to, ok := b.s.def.timeouts[d.Name]
	if !ok {
		return endStep(span, b.failStep(in, fmt.Sprintf("timeout %q has no OnTimeout handler", d.Name), st))
	}
	if err := call(func(st *Step[S]) error { return to.run(b.s.opts.codec, d.Message, st) }, st); err != nil {
		return endStep(span, err)
	}
	return endStep(span, b.commitStep(in, st))
}

// step returns a step of in, triggered by trigger.
func (b *batch[S]) step(in *instance[S], trigger string) *Step[S] {
	return &Step[S]{
		State:       in.state,
		def:         b.s.def,
		codec:       b.s.opts.codec,
		key:         in.key,
		now:         b.now,
		correlation: in.rec.Correlation,
		trigger:     trigger,
		deadlines:   in.rec.Deadlines,
	}
}

// call runs a handler, turning a panic into a permanent error.
func call[S any](run func(*Step[S]) error, st *Step[S]) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = consume.Permanent(fmt.Errorf("handler panicked: %v", v))
		}
	}()
	return run(st)
}

// commitStep applies what step st did to in.
func (b *batch[S]) commitStep(in *instance[S], st *Step[S]) error {
	b.touch(in)
	in.rec.Steps++
	b.stats.Steps++
	in.state = st.State
	if len(st.errs) > 0 {
		return b.fail(in, Failure{Reason: errors.Join(st.errs...).Error()}, st.trigger, st.trace)
	}
	if st.failed != nil {
		return b.fail(in, Failure{Reason: *st.failed}, st.trigger, st.trace)
	}
	for _, name := range st.cancels {
		if err := b.cancel(in, name); err != nil {
			return err
		}
	}
	for _, d := range st.schedules {
		if err := b.cancel(in, d.Name); err != nil {
			return err
		}
		in.rec.Deadlines = append(in.rec.Deadlines, d)
		if err := b.txn.Set(b.s.keys.deadline(d.At, in.key, d.Name), []byte(d.ID)); err != nil {
			return err
		}
		b.timers = append(b.timers, timerOp{t: timer{at: d.At, key: in.key, name: d.Name, id: d.ID}, set: true})
	}
	for _, c := range st.comps {
		c.Compensation = true
		in.rec.Compensations = append(in.rec.Compensations, compensation{Done: true, Cmd: c})
	}
	for _, sr := range st.sends {
		seq := in.rec.NextSeq
		if err := b.enqueue(in, sr.cmd); err != nil {
			return err
		}
		if sr.comp != nil {
			c := *sr.comp
			c.Compensation = true
			in.rec.Compensations = append(in.rec.Compensations, compensation{ForSeq: seq, Cmd: c})
		}
	}
	if st.completed {
		if err := b.end(in, StatusCompleted); err != nil {
			return err
		}
		b.stats.Completed++
	}
	return nil
}

// failStep takes a step of in that fails with reason, without running a
// handler.
func (b *batch[S]) failStep(in *instance[S], reason string, st *Step[S]) error {
	in.rec.Steps++
	return b.fail(in, Failure{Reason: reason}, st.trigger, st.trace)
}

// enqueue puts cmd into in's outbox.
func (b *batch[S]) enqueue(in *instance[S], cmd storedCommand) error {
	seq := in.rec.NextSeq
	in.rec.NextSeq++
	if in.pendFrom == nil {
		in.pendFrom = &seq
	}
	v, err := json.Marshal(cmd)
	if err != nil {
		return err
	}
	if err := b.txn.Set(b.s.keys.outbox(in.key, seq), v); err != nil {
		return err
	}
	b.outbox = append(b.outbox, keyedItem{key: in.key, item: outboxItem{seq: seq, cmd: cmd}})
	return nil
}

// cancel removes in's deadline name, if any.
func (b *batch[S]) cancel(in *instance[S], name string) error {
	d, ok := in.rec.deadline(name)
	if !ok {
		return nil
	}
	in.rec.removeDeadline(name)
	b.timers = append(b.timers, timerOp{t: timer{key: in.key, name: name}})
	return b.txn.Delete(b.s.keys.deadline(d.At, in.key, d.Name))
}

// end ends in with status: its deadlines are cancelled, and it is indexed
// for purging after the retention.
func (b *batch[S]) end(in *instance[S], status Status) error {
	for _, d := range slices.Clone(in.rec.Deadlines) {
		if err := b.cancel(in, d.Name); err != nil {
			return err
		}
	}
	in.rec.Status = status
	in.rec.Ended = b.now
	in.rec.Compensations = nil
	if b.s.def.stateless {
		return nil
	}
	return b.txn.Set(b.s.keys.ended(b.now, in.key), nil)
}

// fail fails in: the commands still in its outbox (not sent yet) are
// dropped, the OnFailure handler runs, and the compensations of the
// commands sent before are enqueued, newest first, then the handler's
// commands. The instance is compensating until those are dispatched, then
// failed. trigger and trace are the ID and the trace context of what
// failed it (a step's trigger, a rejected command).
func (b *batch[S]) fail(in *instance[S], f Failure, trigger string, trace map[string]string) error {
	b.touch(in)
	b.stats.Failed++
	b.stats.lastError = fmt.Sprintf("instance %q: %s", in.key, f.Reason)
	in.rec.LastError = f.Reason
	in.rec.Failure = &f
	from := in.rec.NextSeq
	if in.pendFrom != nil {
		from = *in.pendFrom
		in.pendFrom = nil
	}
	if to := in.rec.NextSeq; from < to {
		for seq := from; seq < to; seq++ {
			if err := b.txn.Delete(b.s.keys.outbox(in.key, seq)); err != nil {
				return err
			}
		}
		b.drops[in.key] = seqRange{from, to}
	}
	for _, d := range slices.Clone(in.rec.Deadlines) {
		if err := b.cancel(in, d.Name); err != nil {
			return err
		}
	}
	var extra []sendRecord
	if b.s.def.onFailure != nil {
		st := b.step(in, "failure/"+trigger)
		st.trace = trace // its commands continue the trace of what failed
		if herr := call(func(st *Step[S]) error { return b.s.def.onFailure(st, f) }, st); herr != nil {
			in.rec.LastError = fmt.Sprintf("%s; OnFailure: %v", f.Reason, herr)
		} else {
			in.state = st.State
			extra = st.sends
			if len(st.errs) > 0 {
				in.rec.LastError = fmt.Sprintf("%s; OnFailure: %v", f.Reason, errors.Join(st.errs...))
			}
		}
	}
	for i := len(in.rec.Compensations) - 1; i >= 0; i-- {
		c := in.rec.Compensations[i]
		if !c.Done && c.ForSeq >= from {
			continue
		}
		b.stats.Compensations++
		if err := b.enqueue(in, c.Cmd); err != nil {
			return err
		}
	}
	in.rec.Compensations = nil
	for _, sr := range extra {
		// OnFailure's commands are part of the failure's handling: if
		// one is rejected, that is recorded, not compensated again.
		sr.cmd.Compensation = true
		if err := b.enqueue(in, sr.cmd); err != nil {
			return err
		}
	}
	if in.pendFrom != nil {
		in.rec.Status = StatusCompensating
		return nil
	}
	return b.end(in, StatusFailed)
}

// flush writes the batch's instances.
func (b *batch[S]) flush() error {
	for _, in := range b.dirty {
		if err := b.s.write(b.txn, in); err != nil {
			return err
		}
	}
	return nil
}

// write stores in, or deletes it if it is a policy's instance with
// nothing left to do.
func (s *Saga[S]) write(txn eventstore.Txn, in *instance[S]) error {
	key := s.keys.instance(in.key)
	if s.def.stateless && in.pendFrom == nil && len(in.rec.Deadlines) == 0 {
		if !in.stored {
			return nil
		}
		return txn.Delete(key)
	}
	state, err := s.opts.codec.Marshal(in.state)
	if err != nil {
		return fmt.Errorf("instance %q: encode state with codec %s: %w", in.key, s.opts.codec.Name(), err)
	}
	in.rec.State = state
	v, err := json.Marshal(in.rec)
	if err != nil {
		return fmt.Errorf("instance %q: encode: %w", in.key, err)
	}
	return txn.Set(key, v)
}
