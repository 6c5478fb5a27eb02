// Package api holds the protobuf descriptions of Muninn's framework services
// (muninn/v1) and the Go code generated from them, which is committed so that
// building needs no protoc.
//
// Regenerate everything (these services and the service package's test
// service) with
//
//	go generate ./api
//
// which runs buf and the protoc-gen-go, protoc-gen-go-grpc,
// protoc-gen-grpc-gateway and protoc-gen-openapiv2 plugins as Go modules at
// the versions pinned in ../buf.gen.yaml: only Go is needed. The shop
// example's API is generated from its event model by muninn gen go, buf
// included: go generate ./examples/shop.
package api

//go:generate sh -c "cd .. && go run github.com/bufbuild/buf/cmd/buf@v1.75.0 generate api -o api && go run github.com/bufbuild/buf/cmd/buf@v1.75.0 generate service/internal/testapi -o service/internal/testapi"
