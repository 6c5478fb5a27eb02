package saga

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/eventstore"
)

// Step is one step of a saga instance: a handler receives it with the
// instance's state, changes State in place, and says what the step does
// (Send, Schedule, Cancel, Complete, Fail). Nothing happens until the
// handler returns: then the new state, the commands and the deadlines are
// written in one batch with the saga's checkpoint, and the commands are
// dispatched after that batch is durable. A Step is valid only during its
// handler.
type Step[S any] struct {
	// State is the instance's state, as of the end of the previous step;
	// the handler changes it in place.
	State S

	def         *Definition[S]
	codec       aggregate.Codec
	key         string
	event       *eventstore.Record
	timeout     string
	now         time.Time
	correlation string
	// trigger is the ID that the step's command and deadline IDs derive
	// from: the event's ID, the deadline's, or the failure's.
	trigger string
	// trace is the trace context of the step's span, for its commands.
	trace     map[string]string
	deadlines []deadlineRecord

	sends     []sendRecord
	comps     []storedCommand
	schedules []deadlineRecord
	cancels   []string
	completed bool
	failed    *string
	errs      []error
}

// sendRecord is one command a step sends, with its compensation.
type sendRecord struct {
	cmd  storedCommand
	comp *storedCommand
}

// Key returns the instance's key (its correlation key).
func (s *Step[S]) Key() string { return s.key }

// Event returns the event the step reacts to, and false for a step that a
// timeout or a failure runs.
func (s *Step[S]) Event() (eventstore.Record, bool) {
	if s.event == nil {
		return eventstore.Record{}, false
	}
	return *s.event, true
}

// Timeout returns the name of the timeout the step handles, or "".
func (s *Step[S]) Timeout() string { return s.timeout }

// Now returns the time of the step by the saga's clock (WithClock).
func (s *Step[S]) Now() time.Time { return s.now }

// CorrelationID returns the workflow's correlation ID: that of the event
// that started the instance. Every command the instance sends carries it.
func (s *Step[S]) CorrelationID() string { return s.correlation }

// Deadline returns when the pending deadline name is due, and false if no
// deadline of that name is pending (or it is cancelled in this step).
func (s *Step[S]) Deadline(name string) (time.Time, bool) {
	for i := len(s.schedules) - 1; i >= 0; i-- {
		if s.schedules[i].Name == name {
			return s.schedules[i].At, true
		}
	}
	if slices.Contains(s.cancels, name) {
		return time.Time{}, false
	}
	for _, d := range s.deadlines {
		if d.Name == name {
			return d.At, true
		}
	}
	return time.Time{}, false
}

// SendOption configures one Send.
type SendOption func(*sendOptions)

type sendOptions struct {
	compID  string
	compCmd any
	set     bool
}

// CompensateWith gives the command a compensating command, cmd to
// aggregate id, which undoes it: if a later step of the instance fails, the
// compensations of the commands already done are dispatched, newest first.
func CompensateWith(aggregateID string, cmd any) SendOption {
	return func(o *sendOptions) { o.compID, o.compCmd, o.set = aggregateID, cmd, true }
}

// Send sends cmd to aggregate aggregateID once the step is durable, with a
// command ID derived from the instance and the step's trigger (so a
// redelivered event never sends it twice), the workflow's correlation ID,
// and as causation ID the ID of the step's trigger: the event's, the
// deadline's (Deadline.ID) in a timeout's step, or in OnFailure's step
// "failure/" followed by the failed step's trigger or the rejected
// command's ID. cmd's type must be
// declared with Command. A step's commands are dispatched in order, after
// those of the instance's earlier steps.
func (s *Step[S]) Send(aggregateID string, cmd any, opts ...SendOption) {
	n := len(s.sends)
	c, err := s.command(aggregateID, cmd, fmt.Sprintf("send/%d", n))
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("Send: %w", err))
		return
	}
	var o sendOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	rec := sendRecord{cmd: c}
	if o.set {
		comp, err := s.command(o.compID, o.compCmd, fmt.Sprintf("send/%d/compensation", n))
		if err != nil {
			s.errs = append(s.errs, fmt.Errorf("Send: CompensateWith: %w", err))
			return
		}
		rec.comp = &comp
	}
	s.sends = append(s.sends, rec)
}

// RegisterCompensation records cmd to aggregate aggregateID as the
// compensation of work the instance has seen done (a payment it saw
// captured): if a later step fails, it is dispatched with the other
// compensations, newest first. Use CompensateWith instead for a command
// the step sends itself.
func (s *Step[S]) RegisterCompensation(aggregateID string, cmd any) {
	c, err := s.command(aggregateID, cmd, fmt.Sprintf("compensation/%d", len(s.comps)))
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("RegisterCompensation: %w", err))
		return
	}
	s.comps = append(s.comps, c)
}

// Schedule schedules the timeout name to fire at at: msg, which must be of
// the type OnTimeout registered for name, is delivered to its handler as a
// step of this instance. A pending deadline of the same name is replaced.
// A time in the past fires as soon as the step is durable. Deadlines are
// kept in UTC; one after 2262-04-11 (or before 1677-09-21), past the range
// of int64 Unix nanoseconds, is kept at that end of the range.
func (s *Step[S]) Schedule(name string, at time.Time, msg any) {
	t, ok := s.def.timeouts[name]
	switch {
	case !ok:
		s.errs = append(s.errs, fmt.Errorf("Schedule(%q): no OnTimeout handler for it", name))
		return
	case reflect.TypeOf(msg) != t.msgType:
		s.errs = append(s.errs, fmt.Errorf("Schedule(%q): message of type %T, want %s", name, msg, t.msgType))
		return
	}
	payload, err := s.codec.Marshal(msg)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("Schedule(%q): encode message: %w", name, err))
		return
	}
	s.schedule(deadlineRecord{Name: name, At: at, Message: payload})
}

// ScheduleCommand schedules the deadline name to send cmd to aggregate
// aggregateID at at, unless it is cancelled first, with the deadline's ID
// as causation ID. A pending deadline of the same name is replaced, and
// times are kept as Schedule keeps them.
func (s *Step[S]) ScheduleCommand(name string, at time.Time, aggregateID string, cmd any) {
	if name == "" {
		s.errs = append(s.errs, errors.New("ScheduleCommand: empty deadline name"))
		return
	}
	id := deadlineID(s.def.name, s.key, name, s.trigger)
	c, err := s.command(aggregateID, cmd, "deadline/"+id)
	if err != nil {
		s.errs = append(s.errs, fmt.Errorf("ScheduleCommand(%q): %w", name, err))
		return
	}
	s.schedule(deadlineRecord{Name: name, At: at, Command: &c})
}

func (s *Step[S]) schedule(d deadlineRecord) {
	if d.Name == "" {
		s.errs = append(s.errs, errors.New("Schedule: empty deadline name"))
		return
	}
	if len(d.Name) > maxDeadlineName {
		s.errs = append(s.errs, fmt.Errorf("Schedule: deadline name of %d bytes is longer than %d", len(d.Name), maxDeadlineName))
		return
	}
	d.ID = deadlineID(s.def.name, s.key, d.Name, s.trigger)
	d.At = keyTime(d.At)
	if d.Command == nil {
		d.Trace = s.trace
	}
	s.schedules = slices.DeleteFunc(s.schedules, func(o deadlineRecord) bool { return o.Name == d.Name })
	s.cancels = slices.DeleteFunc(s.cancels, func(n string) bool { return n == d.Name })
	s.schedules = append(s.schedules, d)
}

// Cancel cancels the pending deadline name, if there is one (also one
// scheduled earlier in this step).
func (s *Step[S]) Cancel(name string) {
	s.schedules = slices.DeleteFunc(s.schedules, func(o deadlineRecord) bool { return o.Name == name })
	if !slices.Contains(s.cancels, name) {
		s.cancels = append(s.cancels, name)
	}
}

// Complete ends the instance successfully once the step is durable: its
// pending deadlines are cancelled, the commands of this step are still
// sent, and later events for its key are ignored.
func (s *Step[S]) Complete() { s.completed = true }

// Fail fails the instance with reason once the handler returns: what this
// step sends and schedules is dropped (its State changes are kept), as are
// the instance's commands not yet dispatched and its pending deadlines;
// the OnFailure handler runs, and the compensations of the commands
// already dispatched are dispatched, newest first. The instance is then
// StatusCompensating until they are, and then StatusFailed.
func (s *Step[S]) Fail(reason string) {
	if reason == "" {
		reason = "failed"
	}
	s.failed = &reason
}

// command encodes cmd to aggregateID as a stored command with an ID
// derived from the step's trigger and what.
func (s *Step[S]) command(aggregateID string, cmd any, what string) (storedCommand, error) {
	if cmd == nil {
		return storedCommand{}, errors.New("nil command")
	}
	name, ok := s.def.cmdNames[reflect.TypeOf(cmd)]
	if !ok {
		return storedCommand{}, fmt.Errorf("command type %T is not declared: declare it with saga.Command[%T](definition, name)", cmd, cmd)
	}
	if aggregateID == "" {
		return storedCommand{}, fmt.Errorf("%s: empty aggregate ID", name)
	}
	if len(aggregateID) > eventstore.MaxKeyBytes {
		return storedCommand{}, fmt.Errorf("%s: aggregate ID of %d bytes is longer than %d", name, len(aggregateID), eventstore.MaxKeyBytes)
	}
	payload, err := s.codec.Marshal(cmd)
	if err != nil {
		return storedCommand{}, fmt.Errorf("%s: encode: %w", name, err)
	}
	return storedCommand{
		ID:          commandID(s.def.name, s.key, s.trigger, what),
		Type:        name,
		AggregateID: aggregateID,
		Payload:     payload,
		Correlation: s.correlation,
		Causation:   s.trigger,
		Trace:       s.trace,
	}, nil
}
