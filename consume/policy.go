package consume

import (
	"context"

	"github.com/muninn-es/muninn/eventstore"
)

// ErrorPolicy says what a Loop does with a record whose handler still
// fails after its retries. Build one with Stop, Park, DeadLetter or
// HandOff; the zero ErrorPolicy is Stop.
type ErrorPolicy struct {
	kind    policyKind
	topic   string
	publish func(ctx context.Context, rec eventstore.Record, herr *HandlerError) error
}

type policyKind int

const (
	policyStop policyKind = iota
	policyPark
	policyDeadLetter
	policyHandOff
)

// Stop fails the loop: Run returns the *HandlerError, and the record is
// applied again when Run starts again. The default.
func Stop() ErrorPolicy { return ErrorPolicy{kind: policyStop} }

// Park appends the record, with its error, to the dead-letter topic topic
// in the store (created with one partition if it does not exist) and goes
// on with the next record. A record is parked exactly once, across crashes;
// Loop.Parked lists parked records, Replay applies one again and Discard
// forgets it.
func Park(topic string) ErrorPolicy { return ErrorPolicy{kind: policyPark, topic: topic} }

// DeadLetter hands the record to publish (say, a watermill publisher's
// dead-letter topic) and goes on once publish returns nil; a failed publish
// is retried with the loop's back-off until it succeeds or the loop stops.
// A crash between publish and the commit past the record publishes it
// again: publish must tolerate duplicates.
func DeadLetter(publish func(ctx context.Context, rec eventstore.Record, herr *HandlerError) error) ErrorPolicy {
	return ErrorPolicy{kind: policyDeadLetter, publish: publish}
}

// HandOff gives the record to the batch's Fail method (the Batch must
// implement Failer), in a batch of its own committed past the record: the
// handler decides what a failure means, as a saga fails the instance.
func HandOff() ErrorPolicy { return ErrorPolicy{kind: policyHandOff} }

// String returns "stop", "park(<topic>)", "dead-letter" or "hand-off".
func (p ErrorPolicy) String() string {
	switch p.kind {
	case policyPark:
		return "park(" + p.topic + ")"
	case policyDeadLetter:
		return "dead-letter"
	case policyHandOff:
		return "hand-off"
	}
	return "stop"
}

// DeadLetterTopic returns the topic of a Park policy, "" for the others.
func (p ErrorPolicy) DeadLetterTopic() string { return p.topic }
