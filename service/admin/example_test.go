package admin_test

import (
	"context"
	"fmt"
	"net"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	muninnv1 "github.com/muninn-es/muninn/api/muninn/v1"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/service/admin"
)

// The services on a gRPC server, and the generated client appending to a
// stream with an expected version and reading it back.
func Example() {
	ctx := context.Background()
	store, err := eventstore.OpenMem()
	if err != nil {
		panic(err)
	}
	defer store.Close()
	if err := store.CreateTopic(ctx, "notes", eventstore.TopicConfig{Partitions: 1}); err != nil {
		panic(err)
	}
	a, err := admin.New(store)
	if err != nil {
		panic(err)
	}
	srv := grpc.NewServer()
	a.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(lis)
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		panic(err)
	}
	defer conn.Close()
	es := muninnv1.NewEventStoreServiceClient(conn)
	noStream := uint64(0)
	res, err := es.Append(ctx, &muninnv1.AppendRequest{Topic: "notes", Key: "n1", ExpectedVersion: &noStream,
		Events: []*muninnv1.NewEvent{{Type: "note.written", Payload: []byte(`{"text":"hello"}`)}}})
	if err != nil {
		panic(err)
	}
	fmt.Println("appended at", res.Position, "version", res.LastVersion)
	_, err = es.Append(ctx, &muninnv1.AppendRequest{Topic: "notes", Key: "n1", ExpectedVersion: &noStream,
		Events: []*muninnv1.NewEvent{{Type: "note.written", Payload: []byte(`{}`)}}})
	fmt.Println("again:", err != nil)

	rs, err := es.ReadStream(ctx, &muninnv1.ReadStreamRequest{Topic: "notes", Key: "n1"})
	if err != nil {
		panic(err)
	}
	for _, e := range rs.Events {
		fmt.Println(e.Version, e.Type, e.Data.GetStructValue().GetFields()["text"].GetStringValue())
	}
	// Output:
	// appended at notes/0@0 version 1
	// again: true
	// 1 note.written hello
}
