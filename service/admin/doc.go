// Package admin implements the framework's services for operators, the
// muninn.v1 protos (package api/muninn/v1): the event store (topics, streams,
// partitions, subscriptions alone or as a consumer-group member, appends with
// an expected version), consumer groups, traces by correlation ID, and the
// projections and sagas a service registers. They know no domain: any
// service built on Muninn serves them, and the muninn CLI is their client.
//
//	a, err := admin.New(store, admin.WithProjections(orders), admin.WithSagas(admin.SagaOf(fulfillment)))
//	a.Register(grpcServer)
//	err = a.RegisterGateway(ctx, mux, conn) // REST under /v1/...
//
// Handlers return plain errors where package service's interceptor maps them,
// but every error they return is already a gRPC status (NotFound for an
// unknown topic, group, projection, saga or instance; InvalidArgument naming
// the field for bad input, with google.rpc.BadRequest details; Aborted for a
// version conflict), so the services behave the same on a bare grpc.Server.
//
// # Subscriptions and commits
//
// A Subscribe with a group joins the group as a member for as long as the call
// lasts. Its first message is the member's Assignment (sent again after each
// rebalance), then records follow. A server stream cannot carry the client's
// acknowledgements, so the client commits with the unary Commit RPC naming the
// member: the server commits through the member's own consumer, fenced by its
// assignment, so a member that lost a partition cannot commit it. A member
// that reconnects resumes from what it committed; what it read and did not
// commit is delivered again (at least once). A Subscribe naming the member ID
// of a call still open (a client reconnecting before the server has seen its
// old call end) takes the ID over: the old call leaves the group and ends
// with Aborted. Commits go to the server that holds the member's call.
//
// # Traces
//
// There is no index by correlation ID yet: Trace scans the log (every topic,
// or those asked for) up to a bound on the records read, and says when it
// stopped short. The tree is rebuilt from the records alone: an event's
// causation ID is the command that produced it, and the command's own cause
// (the event or deadline a saga step reacted to) is the event header
// command.CausationHeader.
package admin
