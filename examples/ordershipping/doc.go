// Package ordershipping is a two-process example of Muninn beyond one
// machine: an order service and a shipping service, each with its own store
// and main, that share nothing but a NATS JetStream server.
//
//	order service                                   shipping service
//	POST /orders -> append OrderPlaced (log "orders")
//	relay "orders" ------------> NATS "orders" -----> inbound: append
//	                                                  ShipmentScheduled
//	                                                  (log "shipments")
//	inbound: mark the order   <-- NATS "shipments" <- relay "shipments"
//	shipped, print it
//
// Run a JetStream server (nats-server -js), then
//
//	go run ./examples/ordershipping/cmd/shipping -dir /tmp/shipping -nats nats://127.0.0.1:4222
//	go run ./examples/ordershipping/cmd/order -dir /tmp/order -nats nats://127.0.0.1:4222 -http 127.0.0.1:8080 -place 3
//	curl -XPOST localhost:8080/orders -d '{"item":"raven"}'
//	curl localhost:8080/orders
//
// The test in this directory builds both binaries, starts an embedded
// nats-server and both processes, places orders and waits until each is
// shipped.
package ordershipping
