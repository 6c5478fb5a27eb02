package testv1

import _ "embed"

// OpenAPI is the OpenAPI (swagger v2) description of test.proto.
//
//go:embed test.swagger.json
var OpenAPI []byte
