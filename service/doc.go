// Package service puts a Muninn service on the network: a gRPC server and a
// grpc-gateway REST mux configured for Muninn (error mapping, idempotency
// keys, correlation IDs, expected versions, read-your-writes positions,
// health, reflection, OpenAPI), and one lifecycle that runs them together
// with the service's bus, projections, sagas, stream apps and relays.
package service
