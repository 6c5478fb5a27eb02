package shop_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/examples/shop"
)

// The shop wired as a service: its runners under one Run, OrderService on
// a gRPC server, and the REST gateway in front of it; then an order placed
// and read back over HTTP.
func Example() {
	store, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	defer store.Close()
	s, err := shop.New(store) // shop.WithClock(clock.Scaled(...)) speeds up the payment deadline
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			log.Fatal(err)
		}
	}()

	// gRPC on a loopback port.
	srv := grpc.NewServer()
	s.RegisterGRPC(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	// The REST gateway, forwarding to it, with the proto field names in JSON.
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	mux := runtime.NewServeMux(runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.JSONPb{
		MarshalOptions: protojson.MarshalOptions{UseProtoNames: true},
	}))
	if err := shop.RegisterGateway(ctx, mux, conn); err != nil {
		log.Fatal(err)
	}
	web := httptest.NewServer(mux)
	defer web.Close()

	call := func(method, path, body string) map[string]any {
		req, err := http.NewRequest(method, web.URL+path, strings.NewReader(body))
		if err != nil {
			log.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
			log.Fatal(err)
		}
		fmt.Println(method, strings.SplitN(path, "/", 4)[:3], resp.StatusCode)
		return m
	}
	placed := call("POST", "/v1/orders",
		`{"customer_id": "ada", "items": [{"sku": "sku-1", "quantity": 2, "unit_price_cents": 1250}], "payment_method": "card"}`)
	id := placed["order_id"].(string)

	// Wait for the checkout to finish (a client would poll, or pass the
	// position of a later write as min_position).
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := s.Settled(wctx, id); err != nil {
		log.Fatal(err)
	}
	got := call("GET", "/v1/orders/"+id, "")
	fmt.Println(got["customer_id"], got["status"], got["total_cents"], got["version"])
	bad := call("POST", "/v1/orders", `{"customer_id": "ada", "items": [], "payment_method": "card"}`)
	fmt.Println(bad["message"])
	// Output:
	// POST [ v1 orders] 200
	// GET [ v1 orders] 200
	// ada COMPLETED 2500 4
	// POST [ v1 orders] 400
	// command: invalid argument: items: the cart is empty: at least one item is required
}
