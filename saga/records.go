package saga

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/muninn-es/muninn/keyspace"
)

// The saga's keys, in the state space, are keyspace tuples under
// (keyspace.Saga, <name>); see the package documentation for the layout.
const (
	groupPrefix     = "saga."
	maxDeadlineName = 256
)

// sagaKeys builds the keys of one saga's state.
type sagaKeys struct{ base keyspace.Key }

func newKeys(name string) sagaKeys { return sagaKeys{base: keyspace.New(keyspace.Saga, name)} }

func (k sagaKeys) instances() keyspace.Key    { return k.base.String("i") }
func (k sagaKeys) instance(key string) []byte { return k.instances().String(key) }
func (k sagaKeys) outboxes() keyspace.Key     { return k.base.String("o") }
func (k sagaKeys) outboxOf(key string) keyspace.Key {
	return k.outboxes().String(key)
}
func (k sagaKeys) outbox(key string, seq uint64) []byte { return k.outboxOf(key).Uint(seq) }
func (k sagaKeys) deadlines() keyspace.Key              { return k.base.String("d") }
func (k sagaKeys) deadline(at time.Time, key, name string) []byte {
	return k.deadlines().Time(at).String(key).String(name)
}
func (k sagaKeys) endeds() keyspace.Key { return k.base.String("e") }
func (k sagaKeys) ended(at time.Time, key string) []byte {
	return k.endeds().Time(at).String(key)
}

// keyTime returns t in UTC, moved into the range of times keys hold.
func keyTime(t time.Time) time.Time { return keyspace.ClampTime(t) }

// parseInstanceKey reads the instance key of an instance record's key.
func (k sagaKeys) parseInstanceKey(b []byte) (string, error) {
	r, err := keyspace.Read(b, k.instances())
	if err != nil {
		return "", err
	}
	key, err := r.String()
	if err == nil && !r.Done() {
		err = fmt.Errorf("%w: instance key %s has more elements", keyspace.ErrMalformed, keyspace.Format(b))
	}
	return key, err
}

// parseOutboxKey reads an outbox key.
func (k sagaKeys) parseOutboxKey(b []byte) (key string, seq uint64, err error) {
	r, err := keyspace.Read(b, k.outboxes())
	if err != nil {
		return "", 0, err
	}
	if key, err = r.String(); err != nil {
		return "", 0, err
	}
	if seq, err = r.Uint(); err != nil {
		return "", 0, err
	}
	if !r.Done() {
		return "", 0, fmt.Errorf("%w: outbox key %s has more elements", keyspace.ErrMalformed, keyspace.Format(b))
	}
	return key, seq, nil
}

// parseDeadlineKey reads a deadline key.
func (k sagaKeys) parseDeadlineKey(b []byte) (at time.Time, key, name string, err error) {
	r, err := keyspace.Read(b, k.deadlines())
	if err != nil {
		return time.Time{}, "", "", err
	}
	if at, err = r.Time(); err != nil {
		return time.Time{}, "", "", err
	}
	if key, err = r.String(); err != nil {
		return time.Time{}, "", "", err
	}
	if name, err = r.String(); err != nil {
		return time.Time{}, "", "", err
	}
	if !r.Done() {
		return time.Time{}, "", "", fmt.Errorf("%w: deadline key %s has more elements", keyspace.ErrMalformed, keyspace.Format(b))
	}
	return at, key, name, nil
}

// parseEndedKey reads the key of an ended instance's index entry.
func (k sagaKeys) parseEndedKey(b []byte) (at time.Time, key string, err error) {
	r, err := keyspace.Read(b, k.endeds())
	if err != nil {
		return time.Time{}, "", err
	}
	if at, err = r.Time(); err != nil {
		return time.Time{}, "", err
	}
	if key, err = r.String(); err != nil {
		return time.Time{}, "", err
	}
	if !r.Done() {
		return time.Time{}, "", fmt.Errorf("%w: ended key %s has more elements", keyspace.ErrMalformed, keyspace.Format(b))
	}
	return at, key, nil
}

// storedCommand is a command as the outbox, a deadline or a compensation
// keeps it until it is dispatched.
type storedCommand struct {
	ID          string `json:"id"`
	Type        string `json:"type"`
	AggregateID string `json:"aggregate_id"`
	Payload     []byte `json:"payload"`
	Correlation string `json:"correlation,omitempty"`
	Causation   string `json:"causation,omitempty"`
	// Compensation marks a compensating command, or one of the OnFailure
	// handler's: its rejection is recorded, not compensated.
	Compensation bool `json:"compensation,omitempty"`
	// Trace is the trace context (traceparent, tracestate) of the step
	// that sent the command: its dispatch continues that trace.
	Trace map[string]string `json:"trace,omitempty"`
}

// compensation is the compensating command of the command sent at ForSeq,
// or, with Done, of work the instance saw done (RegisterCompensation).
type compensation struct {
	ForSeq uint64        `json:"for_seq,omitempty"`
	Done   bool          `json:"done,omitempty"`
	Cmd    storedCommand `json:"cmd"`
}

// deadlineRecord is a pending deadline: a timeout message (Message) or a
// command (Command) due at At.
type deadlineRecord struct {
	Name    string         `json:"name"`
	ID      string         `json:"id"`
	At      time.Time      `json:"at"`
	Message []byte         `json:"message,omitempty"`
	Command *storedCommand `json:"command,omitempty"`
	// Trace is the trace context of the step that scheduled a timeout
	// message: the step that handles it continues that trace. (A command
	// carries its own, in Command.)
	Trace map[string]string `json:"trace,omitempty"`
}

// instanceRecord is an instance as stored.
type instanceRecord struct {
	Status        Status           `json:"status"`
	State         []byte           `json:"state"`
	Correlation   string           `json:"correlation,omitempty"`
	Started       time.Time        `json:"started"`
	Updated       time.Time        `json:"updated"`
	Ended         time.Time        `json:"ended,omitzero"`
	Steps         uint64           `json:"steps"`
	NextSeq       uint64           `json:"next_seq"`
	Compensations []compensation   `json:"compensations,omitempty"`
	Deadlines     []deadlineRecord `json:"deadlines,omitempty"`
	LastError     string           `json:"last_error,omitempty"`
	Failure       *Failure         `json:"failure,omitempty"`
	CompErrors    []string         `json:"compensation_errors,omitempty"`
}

func (r *instanceRecord) deadline(name string) (deadlineRecord, bool) {
	for _, d := range r.Deadlines {
		if d.Name == name {
			return d, true
		}
	}
	return deadlineRecord{}, false
}

func (r *instanceRecord) removeDeadline(name string) {
	r.Deadlines = slices.DeleteFunc(r.Deadlines, func(d deadlineRecord) bool { return d.Name == name })
}

func decodeInstance(b []byte) (*instanceRecord, error) {
	var r instanceRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("decode instance record: %w", err)
	}
	if !r.Status.valid() {
		return nil, fmt.Errorf("decode instance record: unknown status %q", r.Status)
	}
	return &r, nil
}

func decodeCommand(b []byte) (storedCommand, error) {
	var c storedCommand
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("decode outbox command: %w", err)
	}
	if c.ID == "" || c.Type == "" || c.AggregateID == "" {
		return c, errors.New("decode outbox command: missing ID, type or aggregate ID")
	}
	return c, nil
}

// ids are name-based (SHA-1) UUIDs in Muninn's saga namespace, so the same
// saga, instance and trigger always give the same ID.
var idSpace = uuid.MustParse("6d756e69-6e6e-5361-6761-000000000000")

func derivedID(parts ...string) string {
	var b []byte
	for _, p := range parts {
		b = binary.AppendUvarint(b, uint64(len(p)))
		b = append(b, p...)
	}
	return uuid.NewSHA1(idSpace, b).String()
}

// commandID is the ID of a command that saga's instance key sends in the
// step triggered by trigger; what tells the step's commands apart.
func commandID(saga, key, trigger, what string) string {
	return derivedID("command", saga, key, trigger, what)
}

// deadlineID is the ID of the deadline name that trigger's step schedules.
func deadlineID(saga, key, name, trigger string) string {
	return derivedID("deadline", saga, key, name, trigger)
}
