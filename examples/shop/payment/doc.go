// Package payment is the Payment context of the shop example: the Payment
// aggregate (topic Topic, keyed by order ID), the payment methods the
// simulated provider knows (its answers are the model's policies,
// generated into package policies: "card" is captured, "card_declined"
// declined with DeclineReason, "card_timeout" never answered) and the
// revenue per hour read model (Revenue, a tumbling-window stream processor
// over the captured payments).
package payment
