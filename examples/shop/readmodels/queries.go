// The hooks of the generated queries (queries_gen.go): written by hand,
// and never overwritten by muninn gen go, which wrote these defaults once.

package readmodels

import (
	"context"

	orderv1 "github.com/muninn-es/muninn/examples/shop/api/order/v1"
	paymentv1 "github.com/muninn-es/muninn/examples/shop/api/payment/v1"
	"github.com/muninn-es/muninn/examples/shop/order"
)

// checkGetOrderDetails checks the order ID (order.ValidateID: a bad one is
// InvalidArgument naming order_id, not NotFound).
func checkGetOrderDetails(_ context.Context, req *orderv1.GetOrderDetailsRequest) error {
	return order.ValidateID("order_id", req.GetOrderId())
}

// checkListCustomerOrders checks the customer ID (order.ValidateID).
func checkListCustomerOrders(_ context.Context, req *orderv1.ListCustomerOrdersRequest) error {
	return order.ValidateID("customer_id", req.GetCustomerId())
}

// checkListRevenue lets every call through: the revenue's source (the
// shop's stream app) checks min_position.
func checkListRevenue(_ context.Context, _ *paymentv1.ListRevenueRequest) error {
	return nil
}
