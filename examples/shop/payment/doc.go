// Package payment is the Payment context of the shop example: the Payment
// aggregate (topic Topic, keyed by order ID), the simulated payment
// provider (Provider, a policy that answers requests by payment method,
// deterministically) and the revenue per hour read model
// (Revenue, a tumbling-window stream processor over the captured
// payments).
package payment
