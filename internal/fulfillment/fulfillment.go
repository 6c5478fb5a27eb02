package fulfillment

import (
	"context"
	"errors"
	"fmt"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/command"
)

// Handlers are the typed handlers of the four aggregates on one bus, as
// Register returns them.
type Handlers struct {
	// Orders takes OrderCommands, keyed by order ID.
	Orders *command.Handler[Order, OrderCommand, OrderEvent]
	// Payments takes PaymentCommands, keyed by payment ID.
	Payments *command.Handler[Payment, PaymentCommand, PaymentEvent]
	// Shipments takes ShipmentCommands, keyed by order ID.
	Shipments *command.Handler[Shipment, ShipmentCommand, ShipmentEvent]
	// Stock takes StockCommands, keyed by SKU.
	Stock *command.Handler[Stock, StockCommand, StockEvent]
}

// Register defines the Order, Payment, Shipment and Stock aggregates and
// registers them with bus, which creates their topics if they are missing.
// opts apply to all four definitions (such as aggregate.WithPartitions,
// WithSnapshots or WithCache); aggregate.WithTopic must not be among them,
// or the four would share one topic. Problems with the definitions are
// reported all at once.
func Register(ctx context.Context, bus *command.Bus, opts ...aggregate.Option) (*Handlers, error) {
	orders, errO := NewOrders(opts...)
	payments, errP := NewPayments(opts...)
	shipments, errS := NewShipments(opts...)
	stock, errK := NewStock(opts...)
	if err := errors.Join(errO, errP, errS, errK); err != nil {
		return nil, fmt.Errorf("fulfillment: %w", err)
	}
	var h Handlers
	var err error
	if h.Orders, err = command.Register(ctx, bus, orders); err != nil {
		return nil, fmt.Errorf("fulfillment: register orders: %w", err)
	}
	if h.Payments, err = command.Register(ctx, bus, payments); err != nil {
		return nil, fmt.Errorf("fulfillment: register payments: %w", err)
	}
	if h.Shipments, err = command.Register(ctx, bus, shipments); err != nil {
		return nil, fmt.Errorf("fulfillment: register shipments: %w", err)
	}
	if h.Stock, err = command.Register(ctx, bus, stock); err != nil {
		return nil, fmt.Errorf("fulfillment: register stock: %w", err)
	}
	return &h, nil
}

// Order returns the current state of order id (the zero Order if it was
// never placed).
func (h *Handlers) Order(ctx context.Context, id string) (Order, error) {
	return load(ctx, h.Orders, id)
}

// Payment returns the current state of payment id (the zero Payment if
// nothing was captured or declined).
func (h *Handlers) Payment(ctx context.Context, id string) (Payment, error) {
	return load(ctx, h.Payments, id)
}

// Shipment returns the current state of the shipment of order id (the zero
// Shipment if none was scheduled).
func (h *Handlers) Shipment(ctx context.Context, id string) (Shipment, error) {
	return load(ctx, h.Shipments, id)
}

// StockOf returns the current stock of sku (InitialStock available and no
// reservations if it has none).
func (h *Handlers) StockOf(ctx context.Context, sku string) (Stock, error) {
	return load(ctx, h.Stock, sku)
}

func load[S, C, E any](ctx context.Context, h *command.Handler[S, C, E], id string) (S, error) {
	st, err := h.Load(ctx, id)
	if err != nil {
		var zero S
		return zero, err
	}
	return st.State, nil
}
