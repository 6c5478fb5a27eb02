package shop

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/muninn-es/muninn/command"
	shopv1 "github.com/muninn-es/muninn/examples/shop/api/shop/v1"
	"github.com/muninn-es/muninn/examples/shop/order"
	"github.com/muninn-es/muninn/service"
)

// Page sizes of ListCustomerOrders.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// orderServer implements shop.v1.OrderService on a Shop.
type orderServer struct {
	shopv1.UnimplementedOrderServiceServer
	shop *Shop
}

// orderID returns the ID of the order a PlaceOrder call creates: derived
// from its idempotency key when it has one, so that a retry addresses the
// same order (and the bus returns its first result), else a new UUIDv7.
func orderID(ctx context.Context) (string, error) {
	if key := service.CallFrom(ctx).CommandID; key != "" {
		sum := sha256.Sum256([]byte(key))
		return "ord-" + hex.EncodeToString(sum[:12]), nil
	}
	id, err := uuid.NewV7()
	if err != nil {
		return "", status.Error(codes.Unavailable, err.Error())
	}
	return "ord-" + id.String(), nil
}

// setResult sends a command's result as response headers; outside a gRPC
// call (an in-process caller of Server) there is nowhere to send them.
func setResult(ctx context.Context, res command.Result) {
	_ = service.SetResult(ctx, res)
}

// withCall returns ctx carrying its call's metadata (service.WithCall), so
// that the command takes the call's correlation ID on a server without the
// service package's interceptor too; with it, it changes nothing.
func withCall(ctx context.Context) context.Context {
	return service.WithCall(ctx, service.CallFrom(ctx))
}

func (s *orderServer) PlaceOrder(ctx context.Context, req *shopv1.PlaceOrderRequest) (*shopv1.PlaceOrderResponse, error) {
	ctx = withCall(ctx)
	id, err := orderID(ctx)
	if err != nil {
		return nil, err
	}
	cmd := order.PlaceOrder{CustomerID: req.GetCustomerId(), PaymentMethod: req.GetPaymentMethod()}
	for _, it := range req.GetItems() {
		cmd.Items = append(cmd.Items, order.Item{SKU: it.GetSku(), Quantity: it.GetQuantity(), UnitPriceCents: it.GetUnitPriceCents()})
	}
	// Validate before dispatching, so that bad input costs no load of the
	// aggregate; the aggregate validates again.
	if _, err := cmd.Validate(); err != nil {
		return nil, grpcError(err)
	}
	res, err := s.shop.orders.Dispatch(ctx, id, cmd, service.DispatchOptions(ctx)...)
	if err != nil {
		return nil, grpcError(err)
	}
	setResult(ctx, res)
	return &shopv1.PlaceOrderResponse{OrderId: id, Version: res.Version, Position: service.PositionString(res.Position())}, nil
}

func (s *orderServer) GetOrder(ctx context.Context, req *shopv1.GetOrderRequest) (*shopv1.Order, error) {
	if err := order.ValidateID("order_id", req.GetOrderId()); err != nil {
		return nil, grpcError(err)
	}
	if err := service.Await(ctx, s.shop.details.Projection, req.GetMinPosition()); err != nil {
		return nil, grpcError(err)
	}
	v, ok, err := s.shop.details.Get(ctx, req.GetOrderId())
	if err != nil {
		return nil, grpcError(err)
	}
	if !ok {
		return nil, status.Errorf(codes.NotFound, "order %q not found", req.GetOrderId())
	}
	return toProto(v), nil
}

func (s *orderServer) CancelOrder(ctx context.Context, req *shopv1.CancelOrderRequest) (*shopv1.CancelOrderResponse, error) {
	ctx = withCall(ctx)
	if err := order.ValidateID("order_id", req.GetOrderId()); err != nil {
		return nil, grpcError(err)
	}
	reason := req.GetReason()
	if reason == "" {
		reason = "cancelled by customer"
	}
	if len(reason) > 500 {
		return nil, fieldViolation("reason", fmt.Sprintf("reason: %d bytes long, at most 500 allowed", len(reason)))
	}
	res, err := s.shop.orders.Dispatch(ctx, req.GetOrderId(), order.CancelOrder{Reason: reason}, service.DispatchOptions(ctx)...)
	if err != nil {
		return nil, grpcError(err)
	}
	setResult(ctx, res)
	return &shopv1.CancelOrderResponse{Version: res.Version, Position: service.PositionString(res.Position())}, nil
}

func (s *orderServer) ListCustomerOrders(ctx context.Context, req *shopv1.ListCustomerOrdersRequest) (*shopv1.ListCustomerOrdersResponse, error) {
	if err := order.ValidateID("customer_id", req.GetCustomerId()); err != nil {
		return nil, grpcError(err)
	}
	size := int(req.GetPageSize())
	switch {
	case size == 0:
		size = DefaultPageSize
	case size < 0 || size > MaxPageSize:
		return nil, fieldViolation("page_size", fmt.Sprintf("page_size: must be 1 to %d, got %d", MaxPageSize, size))
	}
	if err := service.Await(ctx, s.shop.details.Projection, req.GetMinPosition()); err != nil {
		return nil, grpcError(err)
	}
	views, next, err := s.shop.details.CustomerOrders(ctx, req.GetCustomerId(), size, req.GetPageToken())
	if err != nil {
		if req.GetPageToken() != "" && command.KindOf(err) == command.KindInvalidArgument {
			return nil, fieldViolation("page_token", "page_token: "+err.Error())
		}
		return nil, grpcError(err)
	}
	resp := &shopv1.ListCustomerOrdersResponse{NextPageToken: next}
	for _, v := range views {
		resp.Orders = append(resp.Orders, toProto(v))
	}
	return resp, nil
}

func (s *orderServer) GetRevenue(ctx context.Context, req *shopv1.GetRevenueRequest) (*shopv1.GetRevenueResponse, error) {
	err := waitPosition(ctx, DefaultQueryTimeout, req.GetMinPosition(), s.shop.revenue.WaitFor)
	if err != nil {
		return nil, grpcError(err)
	}
	hours, err := s.shop.revenue.Hours(ctx)
	if err != nil {
		return nil, grpcError(err)
	}
	resp := &shopv1.GetRevenueResponse{}
	for _, h := range hours {
		resp.Hours = append(resp.Hours, &shopv1.HourRevenue{HourStart: h.Start.Format(time.RFC3339), Orders: h.Orders, RevenueCents: h.Cents})
	}
	return resp, nil
}

func toProto(v order.View) *shopv1.Order {
	o := &shopv1.Order{
		OrderId: v.OrderID, CustomerId: v.CustomerID, Status: string(v.Status), TotalCents: v.TotalCents,
		PaymentMethod: v.PaymentMethod, CancelReason: v.CancelReason, Version: v.Version,
	}
	for _, it := range v.Items {
		o.Items = append(o.Items, &shopv1.Item{Sku: it.SKU, Quantity: it.Quantity, UnitPriceCents: it.UnitPriceCents})
	}
	return o
}
