// Package shop is Muninn's example service, written the way users should
// write theirs: three bounded contexts, each a package with its aggregates,
// commands, events, read models and its part of the checkout,
//
//   - order: the Order aggregate and the order details read model (an
//     order by ID, a customer's orders);
//   - payment: the Payment aggregate and the revenue per hour read model (a
//     tumbling-window stream processor);
//   - policies: the model's policies, which simulate the payment provider
//     (deterministic: "card" is captured, "card_declined" declined,
//     "card_timeout" never answered);
//   - shipping: the Stock and Shipment aggregates;
//
// and this package, which wires them into one service: the checkout saga
// (CheckoutSaga) that carries an order from PLACED through PAID and SHIPPED
// to COMPLETED, or compensates and cancels it, and the services generated
// from eventmodel.yaml (api/order/v1, api/payment/v1; see service.go),
// served over gRPC and, through grpc-gateway, as REST:
//
//	POST /v1/orders                         OrderService.PlaceOrder
//	GET  /v1/orders/{order_id}              OrderQueryService.GetOrderDetails
//	POST /v1/orders/{order_id}:cancel       OrderService.CancelOrder
//	GET  /v1/customers/{customer_id}/orders OrderQueryService.ListCustomerOrders
//	GET  /v1/revenue                        PaymentQueryService.ListRevenue
//
// New wires the shop on an event store; Run runs its runners under one
// lifecycle; RegisterGRPC and RegisterGateway put the API on servers.
// Commands take their command ID (idempotency key) and expected version
// from the call (package service) and return the order's version and the
// position of their last event; every query takes a min_position and waits,
// bounded, until its read model has applied it.
package shop
