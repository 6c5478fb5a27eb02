// The rules of the read models: written by hand, and never overwritten
// by muninn gen go, which wrote these stubs once. Each applies an event
// to its table (Load, Put, Delete in tx).
//
// OrderDetails and CustomerOrders have the same row, one per order keyed by
// order ID (CustomerOrders is indexed by customer): an order's first event
// puts its row, each later one changes its status and version. An event of
// an order never placed changes nothing.

package readmodels

import (
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/projection"

	"github.com/muninn-es/muninn/examples/shop/order"
)

// placed returns the row of a placed order.
func placed(rec eventstore.Record, e order.Placed) OrderDetails {
	return OrderDetails{
		OrderID: rec.Key, CustomerID: e.CustomerID, Status: string(order.StatusPlaced), Items: e.Items,
		TotalCents: e.TotalCents, PaymentMethod: e.PaymentMethod, Version: int64(rec.Version),
	}
}

// update applies change to the row of rec's order in t, if it exists, and
// sets its version to rec's.
func update[V any](tx *projection.Tx, t *projection.Table[string, V], rec eventstore.Record, change func(*V), version func(*V) *int64) error {
	v, ok, err := t.Load(tx, rec.Key)
	if err != nil || !ok {
		return err // an event of an order never placed: nothing to show
	}
	change(&v)
	*version(&v) = int64(rec.Version)
	return t.Put(tx, rec.Key, v)
}

func detailsVersion(v *OrderDetails) *int64 { return &v.Version }

func customerVersion(v *CustomerOrders) *int64 { return &v.Version }

// detailsStatus returns the change of an OrderDetails row's status to st.
func detailsStatus(st order.Status) func(*OrderDetails) {
	return func(v *OrderDetails) { v.Status = string(st) }
}

// customerStatus returns the change of a CustomerOrders row's status to st.
func customerStatus(st order.Status) func(*CustomerOrders) {
	return func(v *CustomerOrders) { v.Status = string(st) }
}

// projectOrderDetailsOrderPlaced applies order.Placed to the OrderDetails table.
func projectOrderDetailsOrderPlaced(tx *projection.Tx, t *projection.Table[string, OrderDetails], rec eventstore.Record, e order.Placed) error {
	return t.Put(tx, rec.Key, placed(rec, e))
}

// projectOrderDetailsOrderPaid applies order.Paid to the OrderDetails table.
func projectOrderDetailsOrderPaid(tx *projection.Tx, t *projection.Table[string, OrderDetails], rec eventstore.Record, e order.Paid) error {
	return update(tx, t, rec, detailsStatus(order.StatusPaid), detailsVersion)
}

// projectOrderDetailsOrderShipped applies order.Shipped to the OrderDetails table.
func projectOrderDetailsOrderShipped(tx *projection.Tx, t *projection.Table[string, OrderDetails], rec eventstore.Record, e order.Shipped) error {
	return update(tx, t, rec, detailsStatus(order.StatusShipped), detailsVersion)
}

// projectOrderDetailsOrderCompleted applies order.Completed to the OrderDetails table.
func projectOrderDetailsOrderCompleted(tx *projection.Tx, t *projection.Table[string, OrderDetails], rec eventstore.Record, e order.Completed) error {
	return update(tx, t, rec, detailsStatus(order.StatusCompleted), detailsVersion)
}

// projectOrderDetailsOrderCancelled applies order.Cancelled to the OrderDetails table.
func projectOrderDetailsOrderCancelled(tx *projection.Tx, t *projection.Table[string, OrderDetails], rec eventstore.Record, e order.Cancelled) error {
	return update(tx, t, rec, func(v *OrderDetails) {
		v.Status, v.CancelReason = string(order.StatusCancelled), e.Reason
	}, detailsVersion)
}

// projectCustomerOrdersOrderPlaced applies order.Placed to the CustomerOrders table.
func projectCustomerOrdersOrderPlaced(tx *projection.Tx, t *projection.Table[string, CustomerOrders], rec eventstore.Record, e order.Placed) error {
	return t.Put(tx, rec.Key, CustomerOrders(placed(rec, e)))
}

// projectCustomerOrdersOrderPaid applies order.Paid to the CustomerOrders table.
func projectCustomerOrdersOrderPaid(tx *projection.Tx, t *projection.Table[string, CustomerOrders], rec eventstore.Record, e order.Paid) error {
	return update(tx, t, rec, customerStatus(order.StatusPaid), customerVersion)
}

// projectCustomerOrdersOrderShipped applies order.Shipped to the CustomerOrders table.
func projectCustomerOrdersOrderShipped(tx *projection.Tx, t *projection.Table[string, CustomerOrders], rec eventstore.Record, e order.Shipped) error {
	return update(tx, t, rec, customerStatus(order.StatusShipped), customerVersion)
}

// projectCustomerOrdersOrderCompleted applies order.Completed to the CustomerOrders table.
func projectCustomerOrdersOrderCompleted(tx *projection.Tx, t *projection.Table[string, CustomerOrders], rec eventstore.Record, e order.Completed) error {
	return update(tx, t, rec, customerStatus(order.StatusCompleted), customerVersion)
}

// projectCustomerOrdersOrderCancelled applies order.Cancelled to the CustomerOrders table.
func projectCustomerOrdersOrderCancelled(tx *projection.Tx, t *projection.Table[string, CustomerOrders], rec eventstore.Record, e order.Cancelled) error {
	return update(tx, t, rec, func(v *CustomerOrders) {
		v.Status, v.CancelReason = string(order.StatusCancelled), e.Reason
	}, customerVersion)
}
