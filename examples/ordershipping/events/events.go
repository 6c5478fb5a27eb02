// Package events holds what the order and shipping services of the
// ordershipping example agree on: topic names, event types and payloads.
package events

// Topics: each service appends to its own log topic, and its relay
// publishes that topic to NATS under the same name.
const (
	TopicOrders    = "orders"
	TopicShipments = "shipments"
)

// Event type names.
const (
	TypeOrderPlaced       = "order.placed"
	TypeShipmentScheduled = "shipment.scheduled"
)

// OrderPlaced is appended by the order service when an order is placed.
type OrderPlaced struct {
	OrderID string `json:"order_id"`
	Item    string `json:"item"`
}

// ShipmentScheduled is appended by the shipping service for each order
// placed.
type ShipmentScheduled struct {
	ShipmentID string `json:"shipment_id"`
	OrderID    string `json:"order_id"`
}
