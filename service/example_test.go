package service_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"

	"google.golang.org/grpc"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/service"
)

// A service's parts under one lifecycle: the bus (and, in a real service,
// projections, sagas, stream apps and relays) run while the server serves;
// when the context ends or any part fails, the server stops intake and
// finishes its calls, then the runners stop, then the store closes.
func ExampleGroup() {
	store, err := eventstore.OpenMem()
	if err != nil {
		log.Fatal(err)
	}
	bus, err := command.New(store)
	if err != nil {
		log.Fatal(err)
	}
	srv, err := service.New(service.WithGRPCAddr("127.0.0.1:0"), service.WithHTTPAddr("127.0.0.1:0"))
	if err != nil {
		log.Fatal(err)
	}
	srv.Register(func(g *grpc.Server) {
		// orderv1.RegisterOrderServiceServer(g, orders), ...
	})
	// srv.RegisterGateway(orderv1.RegisterOrderServiceHandler)
	// srv.Ready("orders", service.ProjectionReady(ordersProjection))

	ctx, stop := context.WithCancel(context.Background())
	var g service.Group
	g.Add("bus", bus)
	g.AddServer(srv)
	g.AddCloser("bus", bus)
	g.AddCloser("store", store)
	// A client, for the example: ask for /healthz once the server is up,
	// then stop the service (as SIGTERM would, with signal.NotifyContext).
	g.AddFunc("client", func(context.Context) error {
		defer stop()
		<-srv.Started()
		res, err := http.Get("http://" + srv.HTTPAddr() + "/healthz")
		if err != nil {
			return err
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		fmt.Printf("%d %s", res.StatusCode, body)
		return nil
	})
	fmt.Println("stopped:", g.Run(ctx))
	// Output:
	// 200 {"status":"ok"}
	// stopped: <nil>
}
