package payment_test

import (
	"testing"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/aggregate/aggregatetest"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/examples/shop/payment"
)

func TestPayment(t *testing.T) {
	agg, err := payment.New(aggregate.WithSnapshots(1))
	if err != nil {
		t.Fatal(err)
	}
	f := aggregatetest.For(t, agg)
	requested := payment.Requested{AmountCents: 2500, Method: payment.MethodCard}

	f.Given().When(payment.RequestPayment{AmountCents: 2500, Method: payment.MethodCard}).Then(requested).
		ThenState(payment.Payment{Status: payment.StatusRequested, AmountCents: 2500, Method: payment.MethodCard})
	f.Given(requested).When(payment.RequestPayment{AmountCents: 2500, Method: payment.MethodCard}).ThenError(command.ErrRejected)
	f.Given().When(payment.RequestPayment{AmountCents: -1, Method: payment.MethodCard}).ThenError(command.ErrInvalidArgument)
	f.Given().When(payment.RequestPayment{AmountCents: 1, Method: "cash"}).ThenError(command.ErrInvalidArgument)

	f.Given(requested).When(payment.Capture{}).Then(payment.Captured{AmountCents: 2500})
	f.Given(requested).When(payment.Decline{Reason: "no"}).Then(payment.Declined{Reason: "no"})
	f.Given().When(payment.Capture{}).ThenError(command.ErrNotFound)
	// The provider answers once: a second answer is refused.
	f.Given(requested, payment.Captured{AmountCents: 2500}).When(payment.Capture{}).ThenError(command.ErrRejected)
	f.Given(requested, payment.Declined{Reason: "no"}).When(payment.Capture{}).ThenError(command.ErrRejected)

	f.Given(requested, payment.Captured{AmountCents: 2500}).When(payment.Refund{Reason: "cancelled"}).
		Then(payment.Refunded{AmountCents: 2500, Reason: "cancelled"})
	f.Given(requested).When(payment.Refund{}).ThenError(command.ErrRejected)
	f.Given(requested, payment.Captured{AmountCents: 2500}, payment.Refunded{AmountCents: 2500}).When(payment.Refund{}).ThenError(command.ErrRejected)
}

func TestValidateMethod(t *testing.T) {
	for _, m := range []string{payment.MethodCard, payment.MethodCardDeclined, payment.MethodCardTimeout} {
		if err := payment.ValidateMethod(m); err != nil {
			t.Errorf("ValidateMethod(%q): %v", m, err)
		}
	}
	for _, m := range []string{"", "CARD", "card "} {
		if err := payment.ValidateMethod(m); err == nil {
			t.Errorf("ValidateMethod(%q) = nil", m)
		}
	}
}

func TestVoid(t *testing.T) {
	agg, err := payment.New(aggregate.WithSnapshots(1))
	if err != nil {
		t.Fatal(err)
	}
	f := aggregatetest.For(t, agg)
	requested := payment.Requested{AmountCents: 2500, Method: payment.MethodCard}
	f.Given(requested).When(payment.Void{Reason: "x"}).Then(payment.Voided{Reason: "x"})
	// The provider's late answer is refused.
	f.Given(requested, payment.Voided{Reason: "x"}).When(payment.Capture{}).ThenError(command.ErrRejected)
	f.Given(requested, payment.Captured{AmountCents: 2500}).When(payment.Void{Reason: "x"}).
		Then(payment.Refunded{AmountCents: 2500, Reason: "x"})
	f.Given(requested, payment.Declined{Reason: "no"}).When(payment.Void{}).ThenNothing()
	f.Given(requested, payment.Voided{}).When(payment.Void{}).ThenNothing()
	f.Given().When(payment.Void{}).ThenError(command.ErrNotFound)
}
