// Package service puts a Muninn service on the network: a gRPC server and a
// grpc-gateway REST mux configured for Muninn (error mapping, idempotency
// keys, correlation IDs, expected versions, read-your-writes positions,
// health, reflection, OpenAPI), and one lifecycle that runs them together
// with the service's bus, projections, sagas, stream apps and relays.
//
// # A service
//
//	srv, err := service.New(service.WithOpenAPI(orderv1.OpenAPI))
//	srv.Register(func(g *grpc.Server) { orderv1.RegisterOrderServiceServer(g, orders) })
//	srv.RegisterGateway(orderv1.RegisterOrderServiceHandler)
//	srv.Ready("orders", service.ProjectionReady(ordersProjection))
//
//	var g service.Group
//	g.Add("bus", bus)
//	g.Add("projection orders", ordersProjection)
//	g.AddServer(srv)
//	g.AddCloser("store", store)
//	err = g.Run(ctx) // until ctx ends (signal.NotifyContext) or a part fails
//
// The gateway calls the gRPC server over a loopback connection, so a REST
// call passes through the same interceptors as a gRPC one.
//
// # Handlers
//
// A gRPC handler dispatches with the call's options and reports the
// result in response headers:
//
//	res, err := h.Dispatch(ctx, req.GetOrderId(), PlaceOrder{...}, service.DispatchOptions(ctx)...)
//	if err != nil {
//		return nil, err // a plain error: the interceptor maps it
//	}
//	service.SetResult(ctx, res) // muninn-position, muninn-version
//
// and a query reads its writes with Await before it reads:
//
//	if err := service.Await(ctx, ordersProjection, req.GetMinPosition()); err != nil {
//		return nil, err
//	}
//
// Handlers return plain Go errors. Status maps them: command.Kind to the
// gRPC code (InvalidArgument, FailedPrecondition, NotFound, Aborted for a
// version conflict, PermissionDenied, Unavailable, DeadlineExceeded,
// Canceled), FieldError to InvalidArgument with google.rpc.BadRequest
// field violations, eventstore.ErrTopicExists to AlreadyExists, anything
// unclassified to Internal, whose detail is logged and not sent. A panic
// in a handler is Internal too, never a crash.
//
// # Over HTTP
//
// Request headers: Idempotency-Key (the command ID: a retry returns the
// first result), X-Correlation-ID or traceparent (the correlation ID),
// If-Match (the expected version; a stale one is 409). Response headers:
// Muninn-Position (pass it as min_position), Muninn-Version and ETag.
// Errors are JSON, {"code": "FAILED_PRECONDITION", "message": ...,
// "field_violations": [...], "details": [...]}, with the HTTP status of
// the code (HTTPStatus): 400, 412, 404, 409, 403, 503, 504, 500. Malformed
// JSON, unknown fields and values of the wrong type are 400; a body over
// the limit (WithMaxBodyBytes, 1 MiB by default) is 413.
package service
