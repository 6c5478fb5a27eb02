package saga

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"
)

// The saga's state space layout, under "saga/<name>/":
//
//	i/<key>                       the instance record (JSON)
//	o/<key> 0x00 <seq:8>          a command in the outbox (JSON)
//	d/<at:8> <key> 0x00 <name>    a pending deadline (value: its ID)
//	e/<at:8> <key>                an ended instance, by end time (for purging)
//
// Times are Unix nanoseconds with the sign bit flipped, big-endian, so
// that they sort; a time outside the range of int64 nanoseconds (before
// 1677-09-21 or after 2262-04-11) is stored as the nearest end of it.
// Instance keys may not contain 0x00.
const (
	groupPrefix     = "saga."
	maxDeadlineName = 256
)

type keyspace struct{ base []byte }

func newKeyspace(name string) keyspace { return keyspace{base: []byte("saga/" + name + "/")} }

func (k keyspace) with(kind byte, parts ...[]byte) []byte {
	n := len(k.base) + 2
	for _, p := range parts {
		n += len(p)
	}
	b := make([]byte, 0, n)
	b = append(append(b, k.base...), kind, '/')
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func (k keyspace) instance(key string) []byte { return k.with('i', []byte(key)) }
func (k keyspace) instances() []byte          { return k.with('i') }
func (k keyspace) outbox(key string, seq uint64) []byte {
	return k.with('o', []byte(key), []byte{0}, binary.BigEndian.AppendUint64(nil, seq))
}
func (k keyspace) outboxes() []byte { return k.with('o') }
func (k keyspace) deadline(at time.Time, key, name string) []byte {
	return k.with('d', timeKey(at), []byte(key), []byte{0}, []byte(name))
}
func (k keyspace) deadlines() []byte { return k.with('d') }
func (k keyspace) ended(at time.Time, key string) []byte {
	return k.with('e', timeKey(at), []byte(key))
}
func (k keyspace) endeds() []byte { return k.with('e') }

// The range of times that keys hold: that of int64 Unix nanoseconds.
var (
	minKeyTime = time.Unix(0, math.MinInt64).UTC()
	maxKeyTime = time.Unix(0, math.MaxInt64).UTC()
)

// keyTime returns t in UTC, moved into the range of times keys hold.
func keyTime(t time.Time) time.Time {
	switch {
	case t.Before(minKeyTime):
		return minKeyTime
	case t.After(maxKeyTime):
		return maxKeyTime
	}
	return t.UTC()
}

func timeKey(t time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(keyTime(t).UnixNano())^(1<<63))
}

func parseTimeKey(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63))).UTC()
}

// parseOutboxKey splits the part of an outbox key after its prefix.
func parseOutboxKey(rest []byte) (key string, seq uint64, err error) {
	i := bytes.IndexByte(rest, 0)
	if i < 0 || len(rest)-i-1 != 8 {
		return "", 0, errors.New("malformed outbox key")
	}
	return string(rest[:i]), binary.BigEndian.Uint64(rest[i+1:]), nil
}

// parseDeadlineKey splits the part of a deadline key after its prefix.
func parseDeadlineKey(rest []byte) (at time.Time, key, name string, err error) {
	if len(rest) < 9 {
		return time.Time{}, "", "", errors.New("malformed deadline key")
	}
	i := bytes.IndexByte(rest[8:], 0)
	if i < 0 {
		return time.Time{}, "", "", errors.New("malformed deadline key")
	}
	return parseTimeKey(rest[:8]), string(rest[8 : 8+i]), string(rest[8+i+1:]), nil
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
