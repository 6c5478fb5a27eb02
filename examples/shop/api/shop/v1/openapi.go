package shopv1

import _ "embed"

// OpenAPI is the OpenAPI (swagger v2) description of shop.v1, generated
// from shop.proto by protoc-gen-openapiv2 (go generate ./api), for
// service.WithOpenAPI.
//
//go:embed shop.swagger.json
var OpenAPI []byte
