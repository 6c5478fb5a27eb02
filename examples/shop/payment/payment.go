package payment

import (
	"fmt"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
)

// Topic is the name of the Payment aggregate and the topic of its events,
// keyed by order ID (one payment per order).
const Topic = "shop.payments"

// The payment methods the simulated provider knows.
const (
	// MethodCard is captured.
	MethodCard = "card"
	// MethodCardDeclined is declined, with DeclineReason.
	MethodCardDeclined = "card_declined"
	// MethodCardTimeout is never answered.
	MethodCardTimeout = "card_timeout"
)

// DeclineReason is the reason the provider gives for MethodCardDeclined.
const DeclineReason = "card declined by issuer"

// ValidateMethod returns an error unless m is a known payment method.
func ValidateMethod(m string) error {
	switch m {
	case MethodCard, MethodCardDeclined, MethodCardTimeout:
		return nil
	case "":
		return fmt.Errorf("is required (one of %q, %q, %q)", MethodCard, MethodCardDeclined, MethodCardTimeout)
	}
	return fmt.Errorf("unknown payment method %q (want %q, %q or %q)", m, MethodCard, MethodCardDeclined, MethodCardTimeout)
}

// Status is where a payment is.
type Status string

// The statuses of a payment.
const (
	StatusNone      Status = ""
	StatusRequested Status = "REQUESTED"
	StatusCaptured  Status = "CAPTURED"
	StatusDeclined  Status = "DECLINED"
	StatusRefunded  Status = "REFUNDED"
	StatusVoided    Status = "VOIDED"
)

// Payment is the state of one order's payment.
type Payment struct {
	Status        Status
	AmountCents   int64
	Method        string
	DeclineReason string
}

// Command is a command to the Payment aggregate: RequestPayment (the
// checkout asks), Capture or Decline (the provider answers), Void (the
// checkout compensates) or Refund.
type Command interface{ isPaymentCommand() }

// RequestPayment asks the provider to capture AmountCents with Method. It
// is invalid with a negative amount or an unknown method, and rejected if
// the payment was requested before.
type RequestPayment struct {
	AmountCents int64
	Method      string
}

// Capture is the provider's answer that the requested payment was captured.
type Capture struct{}

// Decline is the provider's answer that the requested payment was declined.
type Decline struct{ Reason string }

// Refund refunds a captured payment; it is rejected unless the payment is
// captured.
type Refund struct{ Reason string }

// Void undoes a payment, whatever the provider did or will do: a request
// not yet answered is voided (the provider's late answer is then refused),
// a captured payment is refunded, and a declined, voided or refunded one
// needs nothing. It is the checkout's compensation of RequestPayment.
type Void struct{ Reason string }

func (RequestPayment) isPaymentCommand() {}
func (Void) isPaymentCommand()           {}
func (Capture) isPaymentCommand()        {}
func (Decline) isPaymentCommand()        {}
func (Refund) isPaymentCommand()         {}

// Event is an event of the Payment aggregate.
type Event interface{ isPaymentEvent() }

// Requested records a payment request ("shop.payment.requested").
type Requested struct {
	AmountCents int64  `json:"amount_cents"`
	Method      string `json:"method"`
}

// Captured records a captured payment ("shop.payment.captured").
type Captured struct {
	AmountCents int64 `json:"amount_cents"`
}

// Declined records a declined payment ("shop.payment.declined").
type Declined struct {
	Reason string `json:"reason"`
}

// Refunded records the refund of a captured payment ("shop.payment.refunded").
type Refunded struct {
	AmountCents int64  `json:"amount_cents"`
	Reason      string `json:"reason"`
}

// Voided records that a payment request was voided before the provider
// answered ("shop.payment.voided").
type Voided struct {
	Reason string `json:"reason"`
}

func (Voided) isPaymentEvent()    {}
func (Requested) isPaymentEvent() {}
func (Captured) isPaymentEvent()  {}
func (Declined) isPaymentEvent()  {}
func (Refunded) isPaymentEvent()  {}

// Events returns the registry of the Payment aggregate's event types.
func Events() (*aggregate.Events[Event], error) {
	return aggregate.NewEvents[Event](
		aggregate.Type[Requested]("shop.payment.requested"),
		aggregate.Type[Captured]("shop.payment.captured"),
		aggregate.Type[Declined]("shop.payment.declined"),
		aggregate.Type[Refunded]("shop.payment.refunded"),
		aggregate.Type[Voided]("shop.payment.voided"),
	)
}

// Decider returns the Payment aggregate's behaviour.
func Decider() aggregate.Decider[Payment, Command, Event] {
	return aggregate.Decider[Payment, Command, Event]{Decide: decide, Evolve: evolve}
}

// New defines the Payment aggregate, on Topic unless opts say otherwise.
func New(opts ...aggregate.Option) (*aggregate.Aggregate[Payment, Command, Event], error) {
	events, err := Events()
	if err != nil {
		return nil, err
	}
	return aggregate.New(Topic, Decider(), events, opts...)
}

func decide(p Payment, cmd Command) ([]Event, error) {
	switch cmd := cmd.(type) {
	case RequestPayment:
		if cmd.AmountCents < 0 {
			return nil, command.Invalid("amount_cents: must not be negative, got %d", cmd.AmountCents)
		}
		if err := ValidateMethod(cmd.Method); err != nil {
			return nil, command.Invalid("method: %v", err)
		}
		if p.Status != StatusNone {
			return nil, command.Rejected("payment was requested already")
		}
		return []Event{Requested{AmountCents: cmd.AmountCents, Method: cmd.Method}}, nil
	case Capture:
		if err := need(p, StatusRequested); err != nil {
			return nil, err
		}
		return []Event{Captured{AmountCents: p.AmountCents}}, nil
	case Decline:
		if err := need(p, StatusRequested); err != nil {
			return nil, err
		}
		return []Event{Declined{Reason: cmd.Reason}}, nil
	case Void:
		switch p.Status {
		case StatusNone:
			return nil, command.NotFound("no payment requested")
		case StatusRequested:
			return []Event{Voided{Reason: cmd.Reason}}, nil
		case StatusCaptured:
			return []Event{Refunded{AmountCents: p.AmountCents, Reason: cmd.Reason}}, nil
		}
		return nil, nil
	case Refund:
		if err := need(p, StatusCaptured); err != nil {
			return nil, err
		}
		return []Event{Refunded{AmountCents: p.AmountCents, Reason: cmd.Reason}}, nil
	}
	return nil, command.Invalid("unknown payment command %T", cmd)
}

func need(p Payment, want Status) error {
	switch p.Status {
	case StatusNone:
		return command.NotFound("no payment requested")
	case want:
		return nil
	}
	return command.Rejected("payment is %s, not %s", p.Status, want)
}

func evolve(p Payment, e Event) Payment {
	switch e := e.(type) {
	case Requested:
		p.Status, p.AmountCents, p.Method = StatusRequested, e.AmountCents, e.Method
	case Captured:
		p.Status = StatusCaptured
	case Declined:
		p.Status, p.DeclineReason = StatusDeclined, e.Reason
	case Refunded:
		p.Status = StatusRefunded
	case Voided:
		p.Status = StatusVoided
	}
	return p
}
