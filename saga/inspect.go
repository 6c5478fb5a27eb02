package saga

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/muninn-es/muninn/eventstore"
)

// Status is where an instance is in its life.
type Status string

// The statuses of an instance.
const (
	// StatusRunning: the instance reacts to its events and deadlines.
	StatusRunning Status = "running"
	// StatusCompleted: a step called Complete. Commands it sent may still
	// be pending.
	StatusCompleted Status = "completed"
	// StatusCompensating: a step failed, and the compensations (and the
	// OnFailure handler's commands) are being dispatched.
	StatusCompensating Status = "compensating"
	// StatusFailed: a step failed and its compensation is over;
	// Instance.CompensationErrors lists compensations (and OnFailure
	// commands) that were rejected.
	StatusFailed Status = "failed"
)

func (s Status) valid() bool {
	switch s {
	case StatusRunning, StatusCompleted, StatusCompensating, StatusFailed:
		return true
	}
	return false
}

// Instance is one saga instance as inspection sees it.
type Instance[S any] struct {
	// Key is the instance's correlation key.
	Key string
	// Status is where it is in its life.
	Status Status
	// State is its state after its last step.
	State S
	// CorrelationID is the workflow's correlation ID, carried by every
	// command it sends.
	CorrelationID string
	// Started is the time of its first step, Updated that of its last
	// change (a step, or the dispatch of its commands), and Ended when it
	// completed or failed (zero until then).
	Started, Updated, Ended time.Time
	// Steps counts the steps it has taken.
	Steps uint64
	// PendingCommands counts the commands in its outbox, not yet known to
	// be dispatched.
	PendingCommands int
	// Deadlines are its pending deadlines, soonest first.
	Deadlines []Deadline
	// LastError is the last failure or rejected compensation, or "".
	LastError string
	// Failure is the failure that ended it, if it failed.
	Failure *Failure
	// CompensationErrors lists the compensations, and the commands of the
	// OnFailure handler, that were rejected.
	CompensationErrors []string
}

// Deadline is a pending deadline.
type Deadline struct {
	// Key is the instance's key and Name the deadline's.
	Key, Name string
	// ID is the deadline's ID, the causation ID of what it sends.
	ID string
	// At is when it is due.
	At time.Time
	// Command is the type of the command it sends, or "" for a timeout
	// message to the saga. Saga.Deadlines, which reads the time index
	// only, leaves it "".
	Command string
}

// Get returns instance key, or an error wrapping ErrNotFound. Instances
// that ended stay until their retention (WithRetention) has passed; a
// policy's instance is gone as soon as its commands are dispatched and its
// deadlines have fired.
func (s *Saga[S]) Get(ctx context.Context, key string) (Instance[S], error) {
	v, ok, err := s.store.Get(ctx, s.keys.instance(key))
	if err != nil {
		return Instance[S]{}, fmt.Errorf("saga %q: get %q: %w", s.def.name, key, err)
	}
	if !ok {
		return Instance[S]{}, fmt.Errorf("saga %q: %q: %w", s.def.name, key, ErrNotFound)
	}
	return s.inspect(ctx, key, v)
}

func (s *Saga[S]) inspect(ctx context.Context, key string, v []byte) (Instance[S], error) {
	in, err := s.decode(key, v)
	if err != nil {
		return Instance[S]{}, fmt.Errorf("saga %q: %w", s.def.name, err)
	}
	pending, err := s.pendingOf(ctx, key)
	if err != nil {
		return Instance[S]{}, err
	}
	r := in.rec
	out := Instance[S]{
		Key: key, Status: r.Status, State: in.state, CorrelationID: r.Correlation,
		Started: r.Started, Updated: r.Updated, Ended: r.Ended, Steps: r.Steps, PendingCommands: pending,
		LastError: r.LastError, Failure: r.Failure, CompensationErrors: r.CompErrors,
	}
	for _, d := range r.Deadlines {
		out.Deadlines = append(out.Deadlines, deadlineOf(key, d))
	}
	slices.SortFunc(out.Deadlines, func(a, b Deadline) int { return a.At.Compare(b.At) })
	return out, nil
}

// pendingOf counts the commands of instance key in the outbox.
func (s *Saga[S]) pendingOf(ctx context.Context, key string) (int, error) {
	prefix := append(s.keys.with('o', []byte(key)), 0)
	n := 0
	for _, err := range s.store.Scan(ctx, prefix, eventstore.PrefixEnd(prefix), false) {
		if err != nil {
			return 0, fmt.Errorf("saga %q: count the outbox of %q: %w", s.def.name, key, err)
		}
		n++
	}
	return n, nil
}

func deadlineOf(key string, d deadlineRecord) Deadline {
	out := Deadline{Key: key, Name: d.Name, ID: d.ID, At: d.At}
	if d.Command != nil {
		out.Command = d.Command.Type
	}
	return out
}

// ListOption narrows Instances.
type ListOption func(*listOptions)

type listOptions struct {
	statuses []Status
	after    string
}

// WithStatus lists only instances in one of statuses (for example
// StatusRunning, to list the running sagas).
func WithStatus(statuses ...Status) ListOption {
	return func(o *listOptions) { o.statuses = append(o.statuses, statuses...) }
}

// After lists only instances whose key sorts after key: pass the last key
// of a page to get the next.
func After(key string) ListOption { return func(o *listOptions) { o.after = key } }

// Instances yields the saga's instances in key order, from a consistent
// snapshot of the store. An instance that does not decode is yielded as an
// error, and the listing goes on.
func (s *Saga[S]) Instances(ctx context.Context, opts ...ListOption) iter.Seq2[Instance[S], error] {
	var o listOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return func(yield func(Instance[S], error) bool) {
		prefix := s.keys.instances()
		lower := prefix
		if o.after != "" {
			lower = append(s.keys.instance(o.after), 0)
		}
		for kv, err := range s.store.Scan(ctx, lower, eventstore.PrefixEnd(prefix), false) {
			if err != nil {
				yield(Instance[S]{}, fmt.Errorf("saga %q: list instances: %w", s.def.name, err))
				return
			}
			in, err := s.inspect(ctx, string(kv.Key[len(prefix):]), kv.Value)
			if err != nil {
				if !yield(Instance[S]{}, err) {
					return
				}
				continue
			}
			if len(o.statuses) > 0 && !slices.Contains(o.statuses, in.Status) {
				continue
			}
			if !yield(in, nil) {
				return
			}
		}
	}
}

// Deadlines yields the saga's pending deadlines, soonest first, from the
// time index (so without their Command; Get and Instances have it).
func (s *Saga[S]) Deadlines(ctx context.Context) iter.Seq2[Deadline, error] {
	return func(yield func(Deadline, error) bool) {
		prefix := s.keys.deadlines()
		for kv, err := range s.store.Scan(ctx, prefix, eventstore.PrefixEnd(prefix), false) {
			if err != nil {
				yield(Deadline{}, fmt.Errorf("saga %q: list deadlines: %w", s.def.name, err))
				return
			}
			at, key, name, err := parseDeadlineKey(kv.Key[len(prefix):])
			d := Deadline{Key: key, Name: name, ID: string(kv.Value), At: at}
			if err != nil {
				err = fmt.Errorf("saga %q: list deadlines: %q: %w", s.def.name, kv.Key, err)
			}
			if !yield(d, err) {
				return
			}
		}
	}
}

// WaitFor returns instance key once cond holds for it, checking after
// every step and dispatch of the saga (it is woken by them, not by
// polling), or an error when ctx ends: give ctx a timeout. cond sees the
// zero Instance with Status "" while the instance does not exist. Stats
// read after WaitFor returns count the step or dispatch that met cond.
func (s *Saga[S]) WaitFor(ctx context.Context, key string, cond func(Instance[S]) bool) (Instance[S], error) {
	for {
		s.mu.Lock()
		changed := s.mu.changed
		s.mu.Unlock()
		in, err := s.Get(ctx, key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return in, err
		}
		if cond(in) {
			// Let the writes in progress reach the Stats.
			s.applying.Lock()
			s.applying.Unlock() //nolint:staticcheck // an empty critical section is the point
			return in, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return in, fmt.Errorf("saga %q: wait for %q: %w (status %q, last error %q)", s.def.name, key, ctx.Err(), in.Status, in.LastError)
		}
	}
}

// Purge deletes the instances that ended longer ago than the retention
// (WithRetention); Run calls it every purge interval. It returns how many
// it deleted.
func (s *Saga[S]) Purge(ctx context.Context) (int, error) {
	prefix := s.keys.endeds()
	upper := append(slices.Clip(prefix), timeKey(s.opts.clock.Now().Add(-s.opts.retention))...)
	n := 0
	err := s.store.Update(ctx, func(txn eventstore.Txn) error {
		n = 0
		for kv, err := range txn.Scan(prefix, upper, false) {
			if err != nil {
				return err
			}
			if len(kv.Key) < len(prefix)+8 {
				continue
			}
			key := string(kv.Key[len(prefix)+8:])
			if err := txn.Delete(s.keys.instance(key)); err != nil {
				return err
			}
			n++
		}
		return txn.DeleteRange(prefix, upper)
	}, eventstore.UpdateNoSync())
	if err != nil {
		return 0, fmt.Errorf("saga %q: purge: %w", s.def.name, err)
	}
	return n, nil
}

// RunState is the state of a saga's Run.
type RunState string

// The states of Run.
const (
	// RunIdle: no Run has started handling events yet.
	RunIdle RunState = "idle"
	// RunRunning: Run is handling events and deadlines.
	RunRunning RunState = "running"
	// RunStopped: Run returned because its context ended.
	RunStopped RunState = "stopped"
	// RunFailed: Run returned an error, Stats.Err.
	RunFailed RunState = "failed"
)

// Stats is what a Saga has done since it was created (they are not
// stored: a new Saga on the same store counts from zero). Run counts work
// just after the write that does it; WaitFor returns only once the writes
// it may have seen are counted, so Stats read after it count the change
// that met its condition.
type Stats struct {
	// State is Run's state, and Err its error once it has failed.
	State RunState
	Err   error
	// Started, Completed and Failed count instances.
	Started, Completed, Failed int
	// Steps counts the steps taken (events and timeouts handled).
	Steps int
	// Ignored counts events that concerned no running instance.
	Ignored int
	// Commands counts dispatched commands, and Duplicates those of them the
	// bus had already applied (redelivered after a crash).
	Commands, Duplicates int
	// Compensations counts compensating commands enqueued.
	Compensations int
	// DeadlinesFired counts deadlines that fired.
	DeadlinesFired int
	// PendingCommands counts the commands waiting to be sent, or sent and
	// not yet recorded as sent (while Run runs; as Run left them after).
	PendingCommands int
	// LastError is the last failure, rejected compensation or retried
	// dispatch error.
	LastError string
}

// counters are what a batch counts as it runs; add adds them to the
// saga's Stats once the batch is durable.
type counters struct {
	Started, Completed, Failed int
	Steps, Ignored             int
	Commands, Duplicates       int
	Compensations              int
	DeadlinesFired             int
	lastError                  string
}

func (st *Stats) add(c counters) {
	st.Started += c.Started
	st.Completed += c.Completed
	st.Failed += c.Failed
	st.Steps += c.Steps
	st.Ignored += c.Ignored
	st.Commands += c.Commands
	st.Duplicates += c.Duplicates
	st.Compensations += c.Compensations
	st.DeadlinesFired += c.DeadlinesFired
	if c.lastError != "" {
		st.LastError = c.lastError
	}
}

// Stats returns what the saga has done since it was created.
func (s *Saga[S]) Stats() Stats {
	d := s.disp.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.mu.stats
	if st.State == "" {
		st.State = RunIdle
	}
	if d != nil {
		st.PendingCommands = d.pending() + int(s.unreleased.Load())
	}
	return st
}

func (s *Saga[S]) updateStats(f func(*Stats)) {
	s.mu.Lock()
	f(&s.mu.stats)
	s.mu.Unlock()
}

func (s *Saga[S]) setRunState(state RunState, err error) {
	s.updateStats(func(st *Stats) {
		st.State, st.Err = state, err
		if err != nil {
			st.LastError = err.Error()
		}
	})
	s.notify()
}
