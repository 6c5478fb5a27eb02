package shop

import (
	"context"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	orderv1 "github.com/muninn-es/muninn/examples/shop/api/order/v1"
	paymentv1 "github.com/muninn-es/muninn/examples/shop/api/payment/v1"
	"github.com/muninn-es/muninn/examples/shop/order"
	"github.com/muninn-es/muninn/examples/shop/payment"
	"github.com/muninn-es/muninn/examples/shop/readmodels"
	"github.com/muninn-es/muninn/service"
)

// The shop's API is the service surface generated from eventmodel.yaml
// (go generate ./examples/shop): shop.order.v1.OrderService (PlaceOrder,
// CancelOrder: order.Server, server_gen.go, with its hooks in
// order/server.go), shop.order.v1.OrderQueryService (GetOrderDetails,
// ListCustomerOrders) and shop.payment.v1.PaymentQueryService
// (ListRevenue), both readmodels/queries_gen.go with their hooks in
// readmodels/queries.go. This file wires them to the shop's runners, and
// answers the revenue, a custom read model, from the revenue stream app.

// Server returns the shop.order.v1.OrderService implementation, for
// in-process callers (the key of an idempotent call in its context, as
// service.WithCall puts it).
func (s *Shop) Server() *order.Server { return s.orderSrv }

// OrderQueries returns the shop.order.v1.OrderQueryService implementation.
func (s *Shop) OrderQueries() *readmodels.OrderQueries { return s.rm.OrderQueries() }

// PaymentQueries returns the shop.payment.v1.PaymentQueryService
// implementation.
func (s *Shop) PaymentQueries() *readmodels.PaymentQueries { return s.rm.PaymentQueries() }

// RegisterGRPC registers the shop's services (OrderService,
// OrderQueryService, PaymentQueryService) with a gRPC server.
func (s *Shop) RegisterGRPC(r grpc.ServiceRegistrar) {
	s.orderSrv.Register(r)
	s.OrderQueries().Register(r)
	s.PaymentQueries().Register(r)
}

// RegisterGateway registers the REST routes of the shop's services with a
// grpc-gateway mux, forwarding to the gRPC server at conn (so that
// interceptors and response headers apply to REST calls too):
//
//	POST /v1/orders                         OrderService.PlaceOrder
//	POST /v1/orders/{order_id}:cancel       OrderService.CancelOrder
//	GET  /v1/orders/{order_id}              OrderQueryService.GetOrderDetails
//	GET  /v1/customers/{customer_id}/orders OrderQueryService.ListCustomerOrders
//	GET  /v1/revenue                        PaymentQueryService.ListRevenue
func RegisterGateway(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
	if err := order.RegisterGateway(ctx, mux, conn); err != nil {
		return err
	}
	if err := orderv1.RegisterOrderQueryServiceHandler(ctx, mux, conn); err != nil {
		return err
	}
	return paymentv1.RegisterPaymentQueryServiceHandler(ctx, mux, conn)
}

// OpenAPI returns the OpenAPI (swagger v2) documents of the shop's
// services, for service.WithOpenAPI.
func OpenAPI() [][]byte { return [][]byte{orderv1.OpenAPI, paymentv1.OpenAPI} }

// revenueSource answers ListRevenue from the revenue stream app
// (readmodels.RevenueSource): every hour with revenue, oldest first, on
// one page (page_size and page_token are not used: a day has 24 hours).
type revenueSource struct{ revenue *payment.Revenue }

// ListRevenue waits for min_position (a payment's: the stream app is not a
// projection, so waitPosition, not service.Await) and lists the hours.
func (r revenueSource) ListRevenue(ctx context.Context, req *paymentv1.ListRevenueRequest) (*paymentv1.ListRevenueResponse, error) {
	if err := waitPosition(ctx, DefaultQueryTimeout, req.GetMinPosition(), r.revenue.WaitFor); err != nil {
		return nil, service.Status(err).Err()
	}
	hours, err := r.revenue.Hours(ctx)
	if err != nil {
		return nil, service.Status(err).Err()
	}
	resp := &paymentv1.ListRevenueResponse{}
	for _, h := range hours {
		resp.Hours = append(resp.Hours, &paymentv1.Revenue{HourStart: timestamppb.New(h.Start), Orders: h.Orders, RevenueCents: h.Cents})
	}
	return resp, nil
}
