package fulfillment

import (
	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
)

// PaymentsTopic is the name of the Payment aggregate and the topic of its
// events.
const PaymentsTopic = "payments"

// Amounts with a special outcome in CapturePayment.
const (
	// DeclineAbove is the largest amount a capture accepts: a larger one is
	// declined with PaymentDeclined, a business outcome and not an error.
	DeclineAbove int64 = 1_000_00
	// NeverAnswer is the amount of a capture that records nothing and
	// returns no error, like a payment provider that never answers; a saga
	// waiting for the payment's outcome waits until its timeout.
	NeverAnswer int64 = 666
)

// DeclineReason is the reason PaymentDeclined gives for an amount over
// DeclineAbove.
const DeclineReason = "amount over limit"

// Payment is the state of one payment.
type Payment struct {
	// OrderID and Amount are as captured (or declined).
	OrderID string
	Amount  int64
	// Captured is true once the amount was captured, Declined once the
	// capture was declined; at most one of them is true.
	Captured, Declined bool
	// DeclineReason says why the capture was declined.
	DeclineReason string
	// Refunded is true once a captured payment was refunded.
	Refunded bool
}

// PaymentCommand is a command to the Payment aggregate: CapturePayment or
// RefundPayment.
type PaymentCommand interface{ isPaymentCommand() }

// CapturePayment captures Amount for OrderID. A non-positive Amount is
// invalid; a payment already captured or declined rejects it. An Amount
// over DeclineAbove yields PaymentDeclined, and exactly NeverAnswer yields
// no event at all.
type CapturePayment struct {
	OrderID string
	// Amount is in cents.
	Amount int64
}

// RefundPayment refunds a captured payment. It is rejected unless the
// payment is captured and not yet refunded, or if OrderID is set and is
// not the order the payment was captured for.
type RefundPayment struct {
	OrderID string
	// Reason says why; PaymentRefunded does not record it.
	Reason string
}

func (CapturePayment) isPaymentCommand() {}
func (RefundPayment) isPaymentCommand()  {}

// PaymentEvent is an event of the Payment aggregate: PaymentCaptured,
// PaymentDeclined or PaymentRefunded.
type PaymentEvent interface{ isPaymentEvent() }

// PaymentCaptured records a captured payment ("payment.captured").
type PaymentCaptured struct {
	OrderID string `json:"order_id"`
	Amount  int64  `json:"amount"`
}

// PaymentDeclined records a declined capture ("payment.declined").
type PaymentDeclined struct {
	OrderID string `json:"order_id"`
	Amount  int64  `json:"amount"`
	Reason  string `json:"reason"`
}

// PaymentRefunded records the refund of a captured payment
// ("payment.refunded"), of its whole amount.
type PaymentRefunded struct {
	OrderID string `json:"order_id"`
	Amount  int64  `json:"amount"`
}

func (PaymentCaptured) isPaymentEvent() {}
func (PaymentDeclined) isPaymentEvent() {}
func (PaymentRefunded) isPaymentEvent() {}

// PaymentEvents returns the registry of the Payment aggregate's event types.
func PaymentEvents() (*aggregate.Events[PaymentEvent], error) {
	return aggregate.NewEvents[PaymentEvent](
		aggregate.Type[PaymentCaptured]("payment.captured"),
		aggregate.Type[PaymentDeclined]("payment.declined"),
		aggregate.Type[PaymentRefunded]("payment.refunded"),
	)
}

// PaymentDecider returns the Payment aggregate's behaviour.
func PaymentDecider() aggregate.Decider[Payment, PaymentCommand, PaymentEvent] {
	return aggregate.Decider[Payment, PaymentCommand, PaymentEvent]{Decide: decidePayment, Evolve: evolvePayment}
}

// NewPayments defines the Payment aggregate, named and on topic
// PaymentsTopic unless opts say otherwise.
func NewPayments(opts ...aggregate.Option) (*aggregate.Aggregate[Payment, PaymentCommand, PaymentEvent], error) {
	events, err := PaymentEvents()
	if err != nil {
		return nil, err
	}
	return aggregate.New(PaymentsTopic, PaymentDecider(), events, opts...)
}

func decidePayment(p Payment, cmd PaymentCommand) ([]PaymentEvent, error) {
	switch cmd := cmd.(type) {
	case CapturePayment:
		switch {
		case cmd.Amount <= 0:
			return nil, command.Invalid("amount must be positive, got %d", cmd.Amount)
		case p.Captured:
			return nil, command.Rejected("payment is already captured")
		case p.Declined:
			return nil, command.Rejected("payment was declined")
		case cmd.Amount == NeverAnswer:
			return nil, nil
		case cmd.Amount > DeclineAbove:
			return []PaymentEvent{PaymentDeclined{OrderID: cmd.OrderID, Amount: cmd.Amount, Reason: DeclineReason}}, nil
		}
		return []PaymentEvent{PaymentCaptured{OrderID: cmd.OrderID, Amount: cmd.Amount}}, nil
	case RefundPayment:
		switch {
		case !p.Captured:
			return nil, command.Rejected("payment is not captured")
		case p.Refunded:
			return nil, command.Rejected("payment is already refunded")
		case cmd.OrderID != "" && cmd.OrderID != p.OrderID:
			return nil, command.Rejected("payment is for order %q, not %q", p.OrderID, cmd.OrderID)
		}
		return []PaymentEvent{PaymentRefunded{OrderID: p.OrderID, Amount: p.Amount}}, nil
	}
	return nil, command.Invalid("unknown payment command %T", cmd)
}

func evolvePayment(p Payment, e PaymentEvent) Payment {
	switch e := e.(type) {
	case PaymentCaptured:
		p.OrderID, p.Amount, p.Captured = e.OrderID, e.Amount, true
	case PaymentDeclined:
		p.OrderID, p.Amount, p.Declined, p.DeclineReason = e.OrderID, e.Amount, true, e.Reason
	case PaymentRefunded:
		p.Refunded = true
	}
	return p
}
