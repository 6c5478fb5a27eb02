// The rules of the Payment context, written by hand beside payment_gen.go,
// which muninn gen go generates from ../eventmodel.yaml and never lets
// touch this file.

package payment

import (
	"fmt"

	"github.com/muninn-es/muninn/command"
)

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

// initialPayment is a payment not requested yet.
func initialPayment() Payment { return Payment{} }

func decideRequestPayment(p Payment, cmd RequestPayment) ([]Event, error) {
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
}

func decideCapture(p Payment, _ Capture) ([]Event, error) {
	if err := need(p, StatusRequested); err != nil {
		return nil, err
	}
	return []Event{Captured{AmountCents: p.AmountCents}}, nil
}

func decideDecline(p Payment, cmd Decline) ([]Event, error) {
	if err := need(p, StatusRequested); err != nil {
		return nil, err
	}
	return []Event{Declined{Reason: cmd.Reason}}, nil
}

func decideVoid(p Payment, cmd Void) ([]Event, error) {
	switch p.Status {
	case StatusNone:
		return nil, command.NotFound("no payment requested")
	case StatusRequested:
		return []Event{Voided{Reason: cmd.Reason}}, nil
	case StatusCaptured:
		return []Event{Refunded{AmountCents: p.AmountCents, Reason: cmd.Reason}}, nil
	}
	return nil, nil
}

func decideRefund(p Payment, cmd Refund) ([]Event, error) {
	if err := need(p, StatusCaptured); err != nil {
		return nil, err
	}
	return []Event{Refunded{AmountCents: p.AmountCents, Reason: cmd.Reason}}, nil
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

func evolveRequested(p Payment, e Requested) Payment {
	p.Status, p.AmountCents, p.Method = StatusRequested, e.AmountCents, e.Method
	return p
}

func evolveCaptured(p Payment, _ Captured) Payment {
	p.Status = StatusCaptured
	return p
}

func evolveDeclined(p Payment, e Declined) Payment {
	p.Status, p.DeclineReason = StatusDeclined, e.Reason
	return p
}

func evolveRefunded(p Payment, _ Refunded) Payment {
	p.Status = StatusRefunded
	return p
}

func evolveVoided(p Payment, _ Voided) Payment {
	p.Status = StatusVoided
	return p
}
