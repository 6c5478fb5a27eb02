// Package shipping is the Shipping context of the shop example: the Stock
// aggregate (topic StockTopic, keyed by SKU: reservations per order) and
// the Shipment aggregate (topic ShipmentTopic, keyed by order ID). The
// checkout saga (package checkout) reserves each line's stock (compensated
// by its release) and ships the order (compensated by a recall).
package shipping
