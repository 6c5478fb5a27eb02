package saga

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/muninn-es/muninn/consume"
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
	// Pending are those commands, in the order they are sent.
	Pending []PendingCommand
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

// PendingCommand is a command in an instance's outbox.
type PendingCommand struct {
	// ID is the command's ID (derived from the saga, the instance and its
	// trigger), Type its type name and AggregateID its aggregate.
	ID, Type, AggregateID string
	// CausationID is the ID of what triggered the step that sent it: an
	// event or a deadline.
	CausationID string
	// Compensation marks a compensating command, or one of the OnFailure
	// handler's.
	Compensation bool
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
		Started: r.Started, Updated: r.Updated, Ended: r.Ended, Steps: r.Steps, PendingCommands: len(pending), Pending: pending,
		LastError: r.LastError, Failure: r.Failure, CompensationErrors: r.CompErrors,
	}
	for _, d := range r.Deadlines {
		out.Deadlines = append(out.Deadlines, deadlineOf(key, d))
	}
	slices.SortFunc(out.Deadlines, func(a, b Deadline) int { return a.At.Compare(b.At) })
	return out, nil
}

// pendingOf returns the commands of instance key in the outbox.
func (s *Saga[S]) pendingOf(ctx context.Context, key string) ([]PendingCommand, error) {
	lower, upper := s.keys.outboxOf(key).Range()
	var out []PendingCommand
	for kv, err := range s.store.Scan(ctx, lower, upper, false) {
		if err != nil {
			return nil, fmt.Errorf("saga %q: read the outbox of %q: %w", s.def.name, key, err)
		}
		c, err := decodeCommand(kv.Value)
		if err != nil {
			return nil, fmt.Errorf("saga %q: outbox of %q: %w", s.def.name, key, err)
		}
		out = append(out, PendingCommand{ID: c.ID, Type: c.Type, AggregateID: c.AggregateID, CausationID: c.Causation, Compensation: c.Compensation})
	}
	return out, nil
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
		lower, upper := s.keys.instances().Range()
		if o.after != "" {
			// The smallest key after the instance's: no encoded key lies
			// between them.
			lower = append(s.keys.instance(o.after), 0)
		}
		for kv, err := range s.store.Scan(ctx, lower, upper, false) {
			if err != nil {
				yield(Instance[S]{}, fmt.Errorf("saga %q: list instances: %w", s.def.name, err))
				return
			}
			key, err := s.keys.parseInstanceKey(kv.Key)
			if err != nil {
				if !yield(Instance[S]{}, fmt.Errorf("saga %q: list instances: %w", s.def.name, err)) {
					return
				}
				continue
			}
			in, err := s.inspect(ctx, key, kv.Value)
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
		lower, upper := s.keys.deadlines().Range()
		for kv, err := range s.store.Scan(ctx, lower, upper, false) {
			if err != nil {
				yield(Deadline{}, fmt.Errorf("saga %q: list deadlines: %w", s.def.name, err))
				return
			}
			at, key, name, err := s.keys.parseDeadlineKey(kv.Key)
			d := Deadline{Key: key, Name: name, ID: string(kv.Value), At: at}
			if err != nil {
				err = fmt.Errorf("saga %q: list deadlines: %w", s.def.name, err)
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
			return in, s.waitWrites(ctx, key, in)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return in, fmt.Errorf("saga %q: wait for %q: %w (status %q, last error %q)", s.def.name, key, ctx.Err(), in.Status, in.LastError)
		}
	}
}

// waitWrites waits until every write that began before it is counted in
// the Stats.
func (s *Saga[S]) waitWrites(ctx context.Context, key string, in Instance[S]) error {
	s.mu.Lock()
	next := s.mu.nextTicket
	s.mu.ticketWaiters++
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.mu.ticketWaiters--
		s.mu.Unlock()
	}()
	for {
		open, changed := s.writesBefore(next)
		if !open {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("saga %q: wait for %q: %w (status %q, last error %q)", s.def.name, key, ctx.Err(), in.Status, in.LastError)
		}
	}
}

// Purge deletes the instances that ended longer ago than the retention
// (WithRetention); Run calls it every purge interval. It returns how many
// it deleted.
func (s *Saga[S]) Purge(ctx context.Context) (int, error) {
	// The ended index sorts by end time: everything below the key of the
	// cut-off time ended before it.
	lower, _ := s.keys.endeds().Range()
	upper := []byte(s.keys.endeds().Time(s.opts.clock.Now().Add(-s.opts.retention)))
	n := 0
	err := s.store.Update(ctx, func(txn eventstore.Txn) error {
		n = 0
		for kv, err := range txn.Scan(lower, upper, false) {
			if err != nil {
				return err
			}
			_, key, err := s.keys.parseEndedKey(kv.Key)
			if err != nil {
				continue // not an index entry: deleted with the range
			}
			if err := txn.Delete(s.keys.instance(key)); err != nil {
				return err
			}
			n++
		}
		return txn.DeleteRange(lower, upper)
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

// Counters count what a Saga has done since it was created.
type Counters struct {
	// Started, Completed and Failed count instances.
	Started   int `json:"started"`
	Completed int `json:"completed"`
	Failed    int `json:"failed"`
	// Steps counts the steps taken (events and timeouts handled).
	Steps int `json:"steps"`
	// Ignored counts events that concerned no running instance.
	Ignored int `json:"ignored"`
	// Commands counts dispatched commands, and Duplicates those of them the
	// bus had already applied (redelivered after a crash).
	Commands   int `json:"commands"`
	Duplicates int `json:"duplicates"`
	// Compensations counts compensating commands enqueued.
	Compensations int `json:"compensations"`
	// DeadlinesFired counts deadlines that fired.
	DeadlinesFired int `json:"deadlines_fired"`
}

// Stats is what a Saga has done since it was created (they are not
// stored: a new Saga on the same store counts from zero). Run counts work
// just after the write that does it; WaitFor returns only once the writes
// it may have seen are counted, so Stats read after it count the change
// that met its condition. Status has the same facts, ready for JSON, with
// the loop's.
type Stats struct {
	// State is Run's state, and Err its error once it has failed.
	State RunState
	Err   error
	Counters
	// PendingCommands counts the commands waiting to be sent, or sent and
	// not yet recorded as sent (while Run runs; as Run left them after).
	PendingCommands int
	// LastError is the last failure, rejected compensation or retried
	// dispatch error.
	LastError string
}

// tally is what a batch, or a dispatch, counts as it runs; add adds it to
// the saga's Stats once it is durable.
type tally struct {
	Counters
	lastError string
}

func (st *Stats) add(c tally) {
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

// RunStatus is a snapshot of a saga's runner, as Status returns it. It
// marshals to readable JSON: the state as its name, errors as strings,
// and the consume loop's status with the group's lag.
type RunStatus struct {
	// Name is the saga's name and Group its consumer group.
	Name  string `json:"name"`
	Group string `json:"group"`
	// State is Run's state, and Error why it failed.
	State RunState `json:"state"`
	Error string   `json:"error,omitempty"`
	// LastError is the last failure, rejected compensation or retried
	// dispatch error.
	LastError string   `json:"last_error,omitempty"`
	Counters  Counters `json:"counters"`
	// PendingCommands counts the commands waiting to be sent.
	PendingCommands int `json:"pending_commands"`
	// Deadlines counts the pending deadlines, as the last Run knew them
	// (0 before a Run has loaded them).
	Deadlines int `json:"deadlines"`
	// Loop is the status of the consume loop that reads the saga's
	// topics: its position and lag on each partition.
	Loop consume.Status `json:"loop"`
}

// Status returns the saga's state, counters, pending commands and
// deadlines, and its consume loop's status (positions and lag, read from
// the store). It is safe to call at any time.
func (s *Saga[S]) Status(ctx context.Context) (RunStatus, error) {
	st := s.Stats()
	ls, err := s.loop.Status(ctx)
	if err != nil {
		return RunStatus{}, fmt.Errorf("saga %q: status: %w", s.def.name, err)
	}
	out := RunStatus{
		Name: s.def.name, Group: s.group, State: st.State, LastError: st.LastError, Counters: st.Counters,
		PendingCommands: st.PendingCommands, Deadlines: int(s.deadlines.Load()), Loop: ls,
	}
	if st.Err != nil {
		out.Error = st.Err.Error()
	}
	return out, nil
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
