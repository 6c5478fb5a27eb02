// Package shipping is the Shipping context of the shop example: the Stock
// aggregate (topic StockTopic, keyed by SKU: reservations per order) and
// the Shipment aggregate (topic ShipmentTopic, keyed by order ID), and
// their part of the checkout: ReserveLines (each reservation compensated by
// its release), ShipFrom (compensated by a recall) and CheckoutCommands.
package shipping
