// Package saga carries workflows across bounded contexts: sagas (process
// managers) that correlate events from several topics to one workflow
// instance, keep its state durable, send commands, schedule deadlines and
// compensate on failure; and policies, the stateless case, "whenever this
// event, send that command".
//
// # Defining a saga
//
// A Definition is built from typed handlers, with no reflection in user
// code beyond naming the command types it sends:
//
//	d := saga.Define[Fulfillment]("order-fulfillment", "orders", "payments", "shipments")
//	saga.Command[CapturePayment](d, "payment.capture")
//	saga.StartOn(d, "order.placed", saga.RecordKey[OrderPlaced], func(s *saga.Step[Fulfillment], e OrderPlaced) error {
//		s.State.Total = e.Total
//		s.Send(s.Key(), CapturePayment{OrderID: s.Key(), Amount: e.Total})
//		s.Schedule("payment-timeout", s.Now().Add(15*time.Minute), PaymentTimedOut{})
//		return nil
//	})
//	saga.On(d, "payment.captured", func(_ eventstore.Record, e PaymentCaptured) string { return e.OrderID }, ...)
//	saga.OnTimeout(d, "payment-timeout", func(s *saga.Step[Fulfillment], _ PaymentTimedOut) error { s.Fail("no payment"); return nil })
//	s, err := saga.New(store, bus, d)
//	go s.Run(ctx)
//
// The event types of an aggregate registry given to UseEvents decode as
// the aggregate decodes them, as projections and stream processors do:
// upcast from old schema versions, old names followed to the types they
// became. With a registry, a handler's event type name must be the one its
// Go type is registered under: New reports a mismatch. Payloads of types
// no registry reads decode with the saga's format (WithCodec) as stored.
// StartOn events start an
// instance; On events reach the running instance
// their key function names (a payment event's key is the order ID it
// carries), and are ignored when there is none. A step changes Step.State,
// and sends commands (Send), schedules and cancels deadlines (Schedule,
// ScheduleCommand, Cancel), completes the instance (Complete) or fails it
// (Fail). See internal/fulfillment for a whole workflow over four contexts.
//
// # Exactly once
//
// Each batch of events is handled in one durable write (eventstore Update)
// that moves the instances' state, writes the commands their steps send to
// an outbox and their deadlines, and commits the consumer group's offsets.
// A crash therefore neither repeats nor loses a step. The commands are then
// dispatched from the outbox in the background while the saga reads on
// (each instance's in order; a batch waits for the commands in flight of
// the instances it touches), each with an ID derived from the saga, the
// instance, the trigger (the event, or the deadline) and its place in the
// step, so a command dispatched again after a crash is one the command
// bus has seen, and it returns the first result instead of applying it
// twice (within the bus's idempotency window, 24 h by default). Every
// command carries the workflow's correlation ID (that of the event that
// started the instance) and, as causation ID (command.WithCausationID),
// the ID of what triggered its step: the event, or the deadline.
//
// # Deadlines
//
// A deadline is stored with its instance and in a time index, and fires at
// its time by the saga's clock (WithClock): a timeout message handled by
// OnTimeout's handler as a step, or a command (ScheduleCommand). Firing
// removes it in the same write as the step it runs, so it fires once,
// across restarts. Cancel, Complete and failure cancel deadlines. Every
// wait of the saga is on its one clock: for the next deadline, for the
// next purge, and the back-offs before a handler or a command is retried.
// Tests pass a *clock.Manual and move time with Advance (after BlockUntil,
// to know the saga waits) instead of sleeping.
//
// # Failure and compensation
//
// A step fails when its handler calls Fail, keeps returning an error
// (WithRetries; a consume.PermanentError or a panic at once) or misuses its Step
// (sends a command type not declared with Command, schedules a timeout
// without an OnTimeout handler), or when a command it sent is rejected (an
// InvalidArgument, FailedPrecondition, NotFound or PermissionDenied error
// from the bus). The instance's commands not yet sent are then dropped,
// its deadlines cancelled, the OnFailure handler runs, and the
// compensations of what was done (CompensateWith on a Send, or
// RegisterCompensation) are dispatched newest first, then OnFailure's
// commands. A command that may have been applied (one a crashed run left
// in the outbox, or one whose dispatch failed with a transient error) is
// never dropped: it is sent, and compensated, like a sent one. Dispatch
// errors other than rejections (the store closing, a remote dispatcher
// that is down) are retried with backoff, the instance waiting meanwhile
// without holding up the others, and never compensate. Errors that
// concern no instance (a payload that does not decode, a key function
// that panics or returns a key the saga cannot store) stop Run, with the
// checkpoint before the record at fault.
//
// # Built on package consume
//
// Run is a consume.Loop over the consumer group "saga.<name>": the loop
// polls, applies each batch in one Update with the group's offsets, splits
// a batch at a failing record, retries it (WithRetries, WithBackoff, on
// the saga's clock) and then hands it to the saga, which fails its
// instance (the consume.HandOff policy). The saga's source adds the due
// deadlines to the group's records, as records without a topic, and
// rewinds both after a rebalance voids a batch.
//
// # State space
//
// A saga keeps its state under the keyspace tuple (keyspace.Saga, name):
//
//	("saga", name, "i", key)                 the instance record (JSON)
//	("saga", name, "o", key, seq:uint)       a command in the outbox (JSON)
//	("saga", name, "d", at:time, key, dname) a pending deadline (value: its ID)
//	("saga", name, "e", at:time, key)        an ended instance, by end time (for purging)
//
// Times are keyspace Time elements: UTC, clamped to the years 1678 to 2262,
// sorting as times. The consume loop keeps nothing of its own (the
// HandOff policy parks nothing).
//
// # Inspection
//
// Get, Instances (filtered with WithStatus, paged with After), Deadlines,
// Stats and Status (JSON-ready, with the loop's lag) show the running sagas with their state, pending commands and
// deadlines, and last error; WaitFor waits, without polling, until an
// instance reaches a condition. Ended instances are kept for
// WithRetention, so late events for them are recognized and ignored.
package saga
