package consume

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/muninn-es/muninn/eventstore"
)

// State is what a Loop is doing.
type State int

const (
	// StateIdle: Run has not been called in this process.
	StateIdle State = iota
	// StateCatchingUp: Run is applying a backlog (its last poll was full).
	StateCatchingUp
	// StateLive: Run has applied everything its source had and follows it.
	StateLive
	// StateStopped: Run returned because its context ended.
	StateStopped
	// StateFailed: Run returned an error (Status.Error).
	StateFailed
)

var stateNames = [...]string{"idle", "catching_up", "live", "stopped", "failed"}

// String returns "idle", "catching_up", "live", "stopped" or "failed".
func (s State) String() string {
	if s >= 0 && int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// MarshalText returns the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a state's name.
func (s *State) UnmarshalText(b []byte) error {
	for i, n := range stateNames {
		if n == string(b) {
			*s = State(i)
			return nil
		}
	}
	return invalid("state", "unknown state %q", b)
}

// Counters count what a Loop did since it was created, in this process.
type Counters struct {
	// Applied counts records applied and committed.
	Applied int64 `json:"applied"`
	// Failures counts failed handler attempts, Retries the attempts after
	// the first.
	Failures int64 `json:"failures"`
	Retries  int64 `json:"retries"`
	// Parked counts records the ErrorPolicy took out of the way (parked
	// or dead-lettered), HandedOff those it gave to the batch's Fail.
	Parked    int64 `json:"parked"`
	HandedOff int64 `json:"handed_off"`
	// LastError is the last handler error, "" if none.
	LastError string `json:"last_error,omitempty"`
}

// PartitionStatus is a Loop's position on one partition.
type PartitionStatus struct {
	Topic     string `json:"topic"`
	Partition int    `json:"partition"`
	// Position is the next offset to apply: everything before it is
	// applied and committed.
	Position int64 `json:"position"`
	// End is the partition's end offset (where its next record goes).
	End int64 `json:"end"`
	// Lag is how many records lie between Position and End (present ones;
	// never negative).
	Lag int64 `json:"lag"`
	// LagSeconds is the age of the oldest unprocessed record (the one at
	// Position), 0 when there is none.
	LagSeconds float64 `json:"lag_seconds"`
}

// Status is a snapshot of a Loop. It marshals to readable JSON: states as
// names, errors as strings, lag in records and in seconds.
type Status struct {
	Name  string `json:"name"`
	Group string `json:"group,omitempty"`
	State State  `json:"state"`
	// Error is why Run failed, when State is failed.
	Error string `json:"error,omitempty"`
	// Policy is the ErrorPolicy, such as "park(orders.dlq)".
	Policy   string   `json:"policy"`
	Counters Counters `json:"counters"`
	// Partitions, Lag and LagSeconds are known for sources that read
	// partitions of the store (consumer groups); Lag sums the partitions'
	// lags and LagSeconds is the oldest of their ages.
	Partitions []PartitionStatus `json:"partitions,omitempty"`
	Lag        int64             `json:"lag"`
	LagSeconds float64           `json:"lag_seconds"`
}

// Err returns Error as an error, nil if it is empty.
func (s Status) Err() error {
	if s.Error == "" {
		return nil
	}
	return errors.New(s.Error)
}

func (l *Loop) setState(s State, err error) {
	l.st.Lock()
	defer l.st.Unlock()
	l.st.state, l.st.err = s, err
	l.signalLocked()
}

func (l *Loop) signalLocked() {
	close(l.st.changed)
	l.st.changed = make(chan struct{})
}

func (l *Loop) count(f func(*Counters)) {
	l.st.Lock()
	defer l.st.Unlock()
	f(&l.st.counters)
}

// advance records the positions a durable batch committed and wakes
// WaitFor.
func (l *Loop) advance(recs []eventstore.Record, live bool, f func(*Counters)) {
	l.st.Lock()
	defer l.st.Unlock()
	if live && l.st.state == StateCatchingUp {
		l.st.state = StateLive
	}
	for i := range recs {
		if recs[i].Topic == "" {
			continue
		}
		tp := eventstore.TopicPartition{Topic: recs[i].Topic, Partition: recs[i].Partition}
		if next := recs[i].Offset + 1; next > l.st.positions[tp] {
			l.st.positions[tp] = next
		}
	}
	if f != nil {
		f(&l.st.counters)
	}
	l.signalLocked()
}

// loadPositions sets the positions of the partitions of topics from the
// group's committed offsets, so that WaitFor knows what an earlier run
// committed.
func (l *Loop) loadPositions(ctx context.Context, group string, topics []string) error {
	found := map[eventstore.TopicPartition]int64{}
	for _, t := range topics {
		n, err := l.store.Partitions(t)
		if err != nil {
			return err
		}
		for p := range n {
			off, ok, err := l.store.CommittedOffset(ctx, group, t, p)
			if err != nil {
				return err
			}
			if ok {
				found[eventstore.TopicPartition{Topic: t, Partition: p}] = off
			}
		}
	}
	l.st.Lock()
	defer l.st.Unlock()
	for tp, off := range found {
		if off > l.st.positions[tp] {
			l.st.positions[tp] = off
		}
	}
	l.signalLocked()
	return nil
}

// Positions returns the next offset to apply on each partition the loop
// has committed on in this process.
func (l *Loop) Positions() map[eventstore.TopicPartition]int64 {
	l.st.Lock()
	defer l.st.Unlock()
	return maps.Clone(l.st.positions)
}

// Status returns the loop's state, counters and, for a consumer group
// source, its position and lag on every partition of its topics. It reads
// the group's committed offsets from the store, so it is right before the
// loop first commits too. It is safe to call at any time.
func (l *Loop) Status(ctx context.Context) (Status, error) {
	l.st.Lock()
	st := Status{Name: l.name, Group: l.st.group, State: l.st.state, Policy: l.opts.policy.String(), Counters: l.st.counters}
	if l.st.err != nil {
		st.Error = l.st.err.Error()
	}
	topics, group := slices.Clone(l.st.topics), l.st.group
	positions := maps.Clone(l.st.positions)
	l.st.Unlock()
	if group == "" {
		return st, nil
	}
	now := l.opts.clock.Now()
	for _, t := range topics {
		info, err := l.store.DescribeTopic(ctx, t)
		if err != nil {
			return Status{}, fmt.Errorf("%s: status: %w", l.name, err)
		}
		for _, pi := range info.Partitions {
			tp := eventstore.TopicPartition{Topic: t, Partition: pi.Partition}
			pos, ok := positions[tp]
			if !ok {
				off, found, err := l.store.CommittedOffset(ctx, group, t, pi.Partition)
				if err != nil {
					return Status{}, fmt.Errorf("%s: status: %w", l.name, err)
				}
				if found {
					pos = off
				}
			}
			ps := PartitionStatus{Topic: t, Partition: pi.Partition, Position: pos, End: pi.EndOffset}
			from := max(pos, pi.StartOffset)
			if pi.EndOffset > from {
				ps.Lag = pi.EndOffset - from
				for rec, err := range l.store.ReadPartition(ctx, t, pi.Partition, from) {
					if err == nil {
						ps.LagSeconds = max(now.Sub(rec.Timestamp).Seconds(), 0)
					}
					break
				}
			}
			st.Partitions = append(st.Partitions, ps)
			st.Lag += ps.Lag
			st.LagSeconds = max(st.LagSeconds, ps.LagSeconds)
		}
	}
	return st, nil
}

// ErrNotReached is wrapped by the error of WaitFor when its context ends
// before the loop has applied the positions waited for; the error also
// wraps the context's error.
var ErrNotReached = errors.New("muninn: position not reached")

// ErrFailed is wrapped by the error of WaitFor when the loop has stopped
// with an error: it will not reach the position by itself.
var ErrFailed = errors.New("muninn: consumer failed")

// WaitFor returns once the loop has applied and committed every position
// (the record at each Offset), or when ctx ends (an error wrapping
// ErrNotReached and ctx's error, naming the offset reached; give ctx a
// timeout), or at once with ErrFailed if Run has failed. It is woken by
// commits, never by polling.
func (l *Loop) WaitFor(ctx context.Context, positions ...eventstore.Position) error {
	for {
		l.st.Lock()
		var missing *eventstore.Position
		var reached int64
		for i, pos := range positions {
			if got := l.st.positions[pos.TopicPartition()]; got <= pos.Offset {
				missing, reached = &positions[i], got
				break
			}
		}
		state, serr, ch := l.st.state, l.st.err, l.st.changed
		l.st.Unlock()
		if missing == nil {
			return nil
		}
		if state == StateFailed {
			return fmt.Errorf("%s: waiting for %s: %w: %v", l.name, missing, ErrFailed, serr)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%s: waiting for %s (applied up to offset %d): %w: %w", l.name, missing, reached-1, ErrNotReached, ctx.Err())
		}
	}
}

// Changed returns a channel that is closed at the next change of the
// loop's state or positions: a way to wait for a condition of one's own
// without polling.
func (l *Loop) Changed() <-chan struct{} {
	l.st.Lock()
	defer l.st.Unlock()
	return l.st.changed
}

// State returns the loop's state.
func (l *Loop) State() State {
	l.st.Lock()
	defer l.st.Unlock()
	return l.st.state
}
