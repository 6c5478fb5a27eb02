package payment

import (
	"github.com/muninn-es/muninn/saga"
)

// ProviderName is the name of the payment provider's policy.
const ProviderName = "shop-payment-provider"

// Provider returns the simulated payment provider: an external system,
// here in-process and deterministic, that answers every payment request
// by its method. MethodCard is captured (Capture), MethodCardDeclined is
// declined (Decline, DeclineReason), and MethodCardTimeout is never
// answered, so the checkout waits for its deadline. It is a policy (package
// saga): whenever a payment is requested, it sends the answer as a command
// to the Payment aggregate, once, however often the request is delivered.
// Run it with saga.New(store, bus, payment.Provider()).
func Provider() *saga.Policy {
	p := saga.DefinePolicy(ProviderName, Topic)
	saga.Command[Capture](p, "shop.payment.capture")
	saga.Command[Decline](p, "shop.payment.decline")
	// The registry fails only if its type list is wrong, and then so does
	// the aggregate's definition, which the service builds first.
	if events, err := Events(); err == nil {
		saga.UseEvents(p, events)
	}
	saga.Whenever(p, "shop.payment.requested", func(s *saga.Step[struct{}], e Requested) error {
		rec, _ := s.Event()
		switch e.Method {
		case MethodCard:
			s.Send(rec.Key, Capture{})
		case MethodCardDeclined:
			s.Send(rec.Key, Decline{Reason: DeclineReason})
		}
		// MethodCardTimeout: the provider never answers.
		return nil
	})
	return p
}
