// Package muninnv1 is the Go code generated from the muninn.v1 protos: the
// framework's own services (event store, consumer groups, trace, projections,
// sagas), their gRPC clients and servers and their grpc-gateway handlers.
// Package service/admin implements the services.
package muninnv1

import "embed"

// OpenAPI holds the OpenAPI (Swagger 2.0) descriptions generated from the
// protos, one *.swagger.json file per service.
//
//go:embed *.swagger.json
var OpenAPI embed.FS
