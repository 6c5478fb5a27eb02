package consume

import (
	"context"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/telemetry"
)

// Handler turns records into state. For each batch it applies, the loop
// opens one Store.Update, calls Begin with its transaction, hands the batch
// the records one at a time, calls Flush, stages the source's progress, and
// commits it all at once; Committed follows once that is durable.
//
// The calls of one Loop come from one goroutine, one batch at a time. A
// batch the loop aborts (a record failed, the Update failed) is dropped
// without Flush or Committed: keep what a batch buffers in the Batch, never
// in the Handler, or undo it when Begin is called next.
type Handler interface {
	// Begin opens a batch in tx. An error stops the loop.
	Begin(ctx context.Context, tx eventstore.Txn) (Batch, error)
}

// Batch is one Update's worth of a Handler's work.
type Batch interface {
	// Handle applies one record, through the transaction Begin got. An
	// error fails the record: the loop aborts this batch, applies the
	// records before it on their own, retries the record alone and then
	// applies its ErrorPolicy. Wrap the error with Permanent when a retry
	// cannot help. Handle must not keep rec beyond the batch.
	Handle(rec *eventstore.Record) error
	// Flush stages what the batch has buffered into the transaction,
	// before the source's progress is staged. An error stops the loop.
	Flush() error
	// Committed is called once the batch's Update is durable.
	Committed()
}

// Preparer is the optional ability of a Handler to see every polled batch
// of records before any of them is applied, outside any transaction: to
// decode them, to compute what they concern, or to do work that must not
// run while the store serializes Updates. It runs once per poll, before the
// batches that apply those records; release, if not nil, runs after the
// last of them. An error stops the loop.
type Preparer interface {
	Prepare(ctx context.Context, recs []eventstore.Record) (release func(), err error)
}

// Failer is the optional ability of a Batch to take a record that kept
// failing itself, under the HandOff policy (a saga fails the record's
// instance and compensates). Fail runs in a batch of its own, with only
// that record, and the batch commits past the record. An error stops the
// loop.
type Failer interface {
	Fail(rec *eventstore.Record, herr *HandlerError) error
}

// Func adapts a function to a Handler: a consumer whose every record is one
// call of fn, inside the batch's transaction. What fn writes through tx
// commits with the source's progress, so it happens exactly once; anything
// else it does (a network call) happens at least once, and may happen again
// when a batch is retried.
type Func func(ctx context.Context, tx eventstore.Txn, rec eventstore.Record) error

// Begin opens a batch that calls f for each record.
func (f Func) Begin(ctx context.Context, tx eventstore.Txn) (Batch, error) {
	return funcBatch{ctx: ctx, tx: tx, f: f}, nil
}

type funcBatch struct {
	ctx context.Context
	tx  eventstore.Txn
	f   Func
}

func (b funcBatch) Handle(rec *eventstore.Record) error {
	ctx, span := telemetry.StartRecord(b.ctx, rec, "muninn.handle "+rec.Type)
	err := b.f(ctx, b.tx, *rec)
	endRecord(span, err)
	return err
}
func (b funcBatch) Flush() error { return nil }
func (b funcBatch) Committed()   {}
