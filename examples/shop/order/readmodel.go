package order

import (
	"context"
	"errors"

	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/projection"
)

// ProjectionName is the name of the order details projection.
const ProjectionName = "shop-order-details"

// View is an order as the order details read model has it.
type View struct {
	OrderID       string `json:"order_id"`
	CustomerID    string `json:"customer_id"`
	Status        Status `json:"status"`
	Items         []Item `json:"items"`
	TotalCents    int64  `json:"total_cents"`
	PaymentMethod string `json:"payment_method"`
	CancelReason  string `json:"cancel_reason,omitempty"`
	// Version is the order's version: the number of its events applied.
	Version uint64 `json:"version"`
}

// ReadModel is the order details read model: one row per order, keyed by
// order ID, and an index of the orders by customer.
type ReadModel struct {
	// Projection runs it: call Run, and pass it to queries' waits.
	Projection *projection.Projection
	orders     *projection.Table[string, View]
	byCustomer *projection.Index[string, View, string]
}

// NewReadModel returns the order details read model over store, fed by the
// Order aggregate's topic. opts are the projection's.
func NewReadModel(store eventstore.Store, opts ...projection.Option) (*ReadModel, error) {
	events, err := Events()
	if err != nil {
		return nil, err
	}
	orders, err := projection.NewTable("orders", projection.StringKey(), codec.JSON[View]())
	if err != nil {
		return nil, err
	}
	byCustomer, err := projection.NewIndex(orders, "by-customer", projection.StringKey(),
		func(_ string, v View) []string { return []string{v.CustomerID} })
	if err != nil {
		return nil, err
	}
	r := projection.NewRouter()
	// update applies a change to an order's row that exists.
	update := func(tx *projection.Tx, rec eventstore.Record, change func(*View)) error {
		v, ok, err := orders.Load(tx, rec.Key)
		if err != nil || !ok {
			return err // an event of an order never placed: nothing to show
		}
		change(&v)
		v.Version = rec.Version
		return orders.Put(tx, rec.Key, v)
	}
	err = errors.Join(
		projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, e Placed) error {
			return orders.Put(tx, rec.Key, View{
				OrderID: rec.Key, CustomerID: e.CustomerID, Status: StatusPlaced, Items: e.Items,
				TotalCents: e.TotalCents, PaymentMethod: e.PaymentMethod, Version: rec.Version,
			})
		}),
		projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, _ Paid) error {
			return update(tx, rec, func(v *View) { v.Status = StatusPaid })
		}),
		projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, _ Shipped) error {
			return update(tx, rec, func(v *View) { v.Status = StatusShipped })
		}),
		projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, _ Completed) error {
			return update(tx, rec, func(v *View) { v.Status = StatusCompleted })
		}),
		projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, e Cancelled) error {
			return update(tx, rec, func(v *View) { v.Status, v.CancelReason = StatusCancelled, e.Reason })
		}),
	)
	if err != nil {
		return nil, err
	}
	opts = append([]projection.Option{projection.WithTables(orders)}, opts...)
	p, err := projection.New(store, ProjectionName, []string{Topic}, r, opts...)
	if err != nil {
		return nil, err
	}
	return &ReadModel{Projection: p, orders: orders, byCustomer: byCustomer}, nil
}

// Get returns the order id, and false if the read model has none.
func (m *ReadModel) Get(ctx context.Context, id string) (View, bool, error) {
	return m.orders.Get(ctx, id)
}

// CustomerOrders returns a page of at most limit orders of a customer, in
// order of order ID, after the page whose next token is token ("" for the
// first page); the next token is "" after the last page.
func (m *ReadModel) CustomerOrders(ctx context.Context, customerID string, limit int, token string) ([]View, string, error) {
	opts := []projection.QueryOption{projection.Limit(limit)}
	if token != "" {
		opts = append(opts, projection.After(token))
	}
	page, err := m.byCustomer.Lookup(ctx, customerID, opts...)
	if err != nil {
		return nil, "", err
	}
	views := make([]View, len(page.Entries))
	for i, e := range page.Entries {
		views[i] = e.Value
	}
	return views, page.Next, nil
}
