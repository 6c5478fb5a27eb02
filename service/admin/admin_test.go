package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	muninnv1 "github.com/muninn-es/muninn/api/muninn/v1"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/internal/fulfillment"
	"github.com/muninn-es/muninn/projection"
	"github.com/muninn-es/muninn/saga"
	"github.com/muninn-es/muninn/service/admin"
)

// world is a store with the fulfillment domain, its saga, a projection that
// parks poisoned orders, and the admin services on a real gRPC server.
type world struct {
	store   *eventstore.PebbleStore
	h       *fulfillment.Handlers
	saga    *saga.Saga[fulfillment.Fulfillment]
	proj    *projection.Projection
	poison  atomic.Bool // the projection fails on keys starting "poison"
	conn    *grpc.ClientConn
	es      muninnv1.EventStoreServiceClient
	groups  muninnv1.GroupServiceClient
	trace   muninnv1.TraceServiceClient
	projs   muninnv1.ProjectionServiceClient
	sagas   muninnv1.SagaServiceClient
	applied atomic.Int64
}

func newWorld(t *testing.T, sagaOpts ...saga.Option) *world {
	t.Helper()
	return newWorldWith(t, false, sagaOpts...)
}

// newWorldWith is newWorld; with closedSagaBus the saga dispatches through
// a bus that is closed, so its commands stay in its outbox (retried on its
// clock).
func newWorldWith(t *testing.T, closedSagaBus bool, sagaOpts ...saga.Option) *world {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	w := &world{}
	w.poison.Store(true)
	s, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	w.store = s
	bus, err := command.New(s)
	if err != nil {
		t.Fatal(err)
	}
	if w.h, err = fulfillment.Register(ctx, bus); err != nil {
		t.Fatal(err)
	}
	var sagaBus saga.Dispatcher = bus
	if closedSagaBus {
		closed, err := command.New(s, command.WithName("closed"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fulfillment.Register(ctx, closed); err != nil {
			t.Fatal(err)
		}
		closed.Close()
		sagaBus = closed
	}
	if w.saga, err = saga.New(s, sagaBus, fulfillment.Saga(), sagaOpts...); err != nil {
		t.Fatal(err)
	}
	w.proj, err = projection.New(s, "orders-seen", []string{fulfillment.OrdersTopic},
		projection.HandlerFunc(func(_ *projection.Tx, rec eventstore.Record) error {
			if w.poison.Load() && strings.HasPrefix(rec.Key, "poison") {
				return consume.Permanent(errors.New("poisoned"))
			}
			w.applied.Add(1)
			return nil
		}),
		projection.WithRetries(0), projection.WithErrorPolicy(consume.Park("orders-seen.dlq")))
	if err != nil {
		t.Fatal(err)
	}
	a, err := admin.New(s, admin.WithProjections(w.proj), admin.WithSagas(admin.SagaOf(w.saga)))
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	a.Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(lis)
	runs := make(chan error, 3)
	go func() { runs <- w.saga.Run(ctx) }()
	go func() { runs <- w.proj.Run(ctx) }()
	go func() { runs <- bus.Run(ctx) }()
	w.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		w.conn.Close()
		srv.Stop()
		cancel()
		for range 3 {
			if err := <-runs; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("run: %v", err)
			}
		}
		bus.Close()
		s.Close()
	})
	w.es = muninnv1.NewEventStoreServiceClient(w.conn)
	w.groups = muninnv1.NewGroupServiceClient(w.conn)
	w.trace = muninnv1.NewTraceServiceClient(w.conn)
	w.projs = muninnv1.NewProjectionServiceClient(w.conn)
	w.sagas = muninnv1.NewSagaServiceClient(w.conn)
	return w
}

// place places an order that completes and waits until its workflow has.
func (w *world) place(t *testing.T, id string) command.Result {
	t.Helper()
	ctx := command.WithCorrelationID(context.Background(), "request-"+id)
	res, err := w.h.Orders.Dispatch(ctx, id, fulfillment.PlaceOrder{Customer: "c", Total: 1000, SKU: "sku-1", Qty: 1, Address: "1 Main St"}, command.WithCommandID("place-"+id))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.saga.WaitFor(context.Background(), id, func(in saga.Instance[fulfillment.Fulfillment]) bool {
		return in.Status == saga.StatusCompleted
	}); err != nil {
		t.Fatal(err)
	}
	return res
}

func wantCode(t *testing.T, what string, err error, code codes.Code, field string) {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != code {
		t.Errorf("%s: code %v (%v), want %v", what, st.Code(), err, code)
		return
	}
	if field != "" && !strings.Contains(st.Message(), field) {
		t.Errorf("%s: message %q does not name %q", what, st.Message(), field)
	}
}

func TestEventStore(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.place(t, "o1")

	topics, err := w.es.ListTopics(ctx, &muninnv1.ListTopicsRequest{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(topics.Topics) != 2 || topics.NextPageToken == "" {
		t.Fatalf("first page: %v", topics)
	}
	all := map[string]*muninnv1.Topic{}
	for tok := ""; ; {
		page, err := w.es.ListTopics(ctx, &muninnv1.ListTopicsRequest{PageSize: 2, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, tp := range page.Topics {
			if all[tp.Name] != nil {
				t.Fatalf("topic %s listed twice", tp.Name)
			}
			all[tp.Name] = tp
		}
		if tok = page.NextPageToken; tok == "" {
			break
		}
	}
	if o := all[fulfillment.OrdersTopic]; o == nil || o.Records < 2 || len(o.Partitions) == 0 {
		t.Fatalf("orders topic: %v", o)
	}
	d, err := w.es.DescribeTopic(ctx, &muninnv1.DescribeTopicRequest{Topic: fulfillment.OrdersTopic})
	if err != nil || d.CleanupPolicy == "" || d.EndOffsetsTotal < 2 {
		t.Fatalf("describe: %v, %v", d, err)
	}

	// The order's stream: placed, then completed.
	rs, err := w.es.ReadStream(ctx, &muninnv1.ReadStreamRequest{Topic: fulfillment.OrdersTopic, Key: "o1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rs.Events) != 2 || rs.HeadVersion != 2 || rs.Events[0].Type != "order.placed" || rs.Events[1].Type != "order.completed" {
		t.Fatalf("stream: %v", rs)
	}
	if rs.Events[0].Data == nil || rs.Events[0].CausationId != "place-o1" || rs.Events[0].CorrelationId != "request-o1" {
		t.Errorf("event lacks JSON data or lineage: %v", rs.Events[0])
	}
	back, err := w.es.ReadStream(ctx, &muninnv1.ReadStreamRequest{Topic: fulfillment.OrdersTopic, Key: "o1", Direction: muninnv1.Direction_DIRECTION_BACKWARD, Limit: 1})
	if err != nil || len(back.Events) != 1 || back.Events[0].Version != 2 || back.NextVersion != 1 {
		t.Fatalf("backward: %v, %v", back, err)
	}
	first := rs.Events[0]
	rp, err := w.es.ReadPartition(ctx, &muninnv1.ReadPartitionRequest{Topic: first.Topic, Partition: first.Partition, FromOffset: first.Offset, Limit: 1})
	if err != nil || len(rp.Events) != 1 || rp.Events[0].Id != first.Id || rp.NextOffset != first.Offset+1 {
		t.Fatalf("partition: %v, %v", rp, err)
	}

	// Bad input.
	_, err = w.es.DescribeTopic(ctx, &muninnv1.DescribeTopicRequest{Topic: "nope"})
	wantCode(t, "unknown topic", err, codes.NotFound, "nope")
	_, err = w.es.ListTopics(ctx, &muninnv1.ListTopicsRequest{PageSize: -1})
	wantCode(t, "negative page size", err, codes.InvalidArgument, "page_size")
	_, err = w.es.ListTopics(ctx, &muninnv1.ListTopicsRequest{PageToken: "%%%"})
	wantCode(t, "bad token", err, codes.InvalidArgument, "page_token")
	_, err = w.es.ReadStream(ctx, &muninnv1.ReadStreamRequest{Topic: fulfillment.OrdersTopic})
	wantCode(t, "no key", err, codes.InvalidArgument, "key")
	_, err = w.es.ReadPartition(ctx, &muninnv1.ReadPartitionRequest{Topic: fulfillment.OrdersTopic, Partition: 10000})
	wantCode(t, "bad partition", err, codes.InvalidArgument, "partition")
	_, err = w.es.ReadPartition(ctx, &muninnv1.ReadPartitionRequest{Topic: fulfillment.OrdersTopic, FromOffset: -1})
	wantCode(t, "negative offset", err, codes.InvalidArgument, "from_offset")
	_, err = w.es.ReadPartition(ctx, &muninnv1.ReadPartitionRequest{Topic: "nope"})
	wantCode(t, "unknown topic", err, codes.NotFound, "nope")
}

func TestAppend(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.store.CreateTopic(ctx, "ext", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	data, _ := structpb.NewValue(map[string]any{"n": 1.0})
	zero := uint64(0)
	res, err := w.es.Append(ctx, &muninnv1.AppendRequest{Topic: "ext", Key: "k", ExpectedVersion: &zero,
		Events: []*muninnv1.NewEvent{{Type: "thing.made", Data: data}, {Type: "thing.moved", Payload: []byte("raw")}}})
	if err != nil || res.LastVersion != 2 || len(res.EventIds) != 2 || res.Position != "ext/0@1" {
		t.Fatalf("append: %v, %v", res, err)
	}
	_, err = w.es.Append(ctx, &muninnv1.AppendRequest{Topic: "ext", Key: "k", ExpectedVersion: &zero, Events: []*muninnv1.NewEvent{{Type: "x"}}})
	wantCode(t, "conflict", err, codes.Aborted, "")
	rs, err := w.es.ReadStream(ctx, &muninnv1.ReadStreamRequest{Topic: "ext", Key: "k"})
	if err != nil || len(rs.Events) != 2 {
		t.Fatalf("read: %v, %v", rs, err)
	}
	if got := rs.Events[0].Data.GetStructValue().GetFields()["n"].GetNumberValue(); got != 1 {
		t.Errorf("data read back: %v", rs.Events[0].Data)
	}
	if rs.Events[1].Data != nil || string(rs.Events[1].Payload) != "raw" {
		t.Errorf("raw payload read back: %v", rs.Events[1])
	}
	for _, c := range []struct {
		name, field string
		req         *muninnv1.AppendRequest
		code        codes.Code
	}{
		{"no events", "events", &muninnv1.AppendRequest{Topic: "ext", Key: "k"}, codes.InvalidArgument},
		{"no type", "events[0].type", &muninnv1.AppendRequest{Topic: "ext", Key: "k", Events: []*muninnv1.NewEvent{{}}}, codes.InvalidArgument},
		{"bad id", "events[0].id", &muninnv1.AppendRequest{Topic: "ext", Key: "k", Events: []*muninnv1.NewEvent{{Type: "x", Id: "nope"}}}, codes.InvalidArgument},
		{"both", "events[0].data", &muninnv1.AppendRequest{Topic: "ext", Key: "k", Events: []*muninnv1.NewEvent{{Type: "x", Payload: []byte("a"), Data: data}}}, codes.InvalidArgument},
		{"no key", "key", &muninnv1.AppendRequest{Topic: "ext", Events: []*muninnv1.NewEvent{{Type: "x"}}}, codes.InvalidArgument},
		{"unknown topic", "nope", &muninnv1.AppendRequest{Topic: "nope", Key: "k", Events: []*muninnv1.NewEvent{{Type: "x"}}}, codes.NotFound},
	} {
		_, err := w.es.Append(ctx, c.req)
		wantCode(t, c.name, err, c.code, c.field)
	}
}

// TestNonUTF8Key reads records whose key is not valid UTF-8 (as a stream
// app's changelog may hold): the key comes as key_bytes, not as a string
// that would fail the response.
func TestNonUTF8Key(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.store.CreateTopic(ctx, "bin", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	bad := "k\xff\x00\xc3"
	for _, key := range []string{bad, "fine"} {
		if _, err := w.store.Append(ctx, "bin", key, eventstore.Any, []eventstore.Event{{Type: "t", Payload: []byte("{}")}}); err != nil {
			t.Fatal(err)
		}
	}
	rp, err := w.es.ReadPartition(ctx, &muninnv1.ReadPartitionRequest{Topic: "bin", Limit: 10})
	if err != nil {
		t.Fatalf("read partition with a non-UTF-8 key: %v", err)
	}
	if len(rp.Events) != 2 {
		t.Fatalf("%d events", len(rp.Events))
	}
	if e := rp.Events[0]; e.Key != "" || string(e.KeyBytes) != bad {
		t.Errorf("non-UTF-8 key: key %q, key_bytes %q", e.Key, e.KeyBytes)
	}
	if e := rp.Events[1]; e.Key != "fine" || e.KeyBytes != nil {
		t.Errorf("UTF-8 key: key %q, key_bytes %q", e.Key, e.KeyBytes)
	}
}

// recv reads the next message of a subscription.
func recv(t *testing.T, sub muninnv1.EventStoreService_SubscribeClient) *muninnv1.SubscribeResponse {
	t.Helper()
	m, err := sub.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// nextEvent reads messages until an event, skipping assignments.
func nextEvent(t *testing.T, sub muninnv1.EventStoreService_SubscribeClient) *muninnv1.Event {
	t.Helper()
	for {
		if e := recv(t, sub).GetEvent(); e != nil {
			return e
		}
	}
}

func TestSubscribe(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.store.CreateTopic(ctx, "ext", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := w.store.Append(ctx, "ext", k, eventstore.Any, []eventstore.Event{{Type: "t", Payload: []byte(`{}`)}}); err != nil {
			t.Fatal(err)
		}
	}

	// Without a group, from an offset, then live.
	sctx, cancel := context.WithCancel(ctx)
	sub, err := w.es.Subscribe(sctx, &muninnv1.SubscribeRequest{Topic: "ext", FromOffsets: []*muninnv1.PartitionOffset{{Partition: 0, Offset: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, sub); e.Key != "b" {
		t.Fatalf("from offset 1: %v", e)
	}
	nextEvent(t, sub)
	if _, err := w.store.Append(ctx, "ext", "d", eventstore.Any, []eventstore.Event{{Type: "t", Payload: []byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, sub); e.Key != "d" {
		t.Fatalf("live: %v", e)
	}
	cancel()

	// As a group member: commit after the first two records, reconnect,
	// and resume at the third.
	sctx, cancel = context.WithCancel(ctx)
	sub, err = w.es.Subscribe(sctx, &muninnv1.SubscribeRequest{Topic: "ext", Group: "g1", MemberId: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	asg := recv(t, sub).GetAssignment()
	if asg == nil || asg.MemberId != "m1" || len(asg.Partitions) != 1 {
		t.Fatalf("first message is not the assignment: %v", asg)
	}
	nextEvent(t, sub)
	e := nextEvent(t, sub)
	if e.Key != "b" {
		t.Fatalf("second record: %v", e)
	}
	if _, err := w.es.Commit(ctx, &muninnv1.CommitRequest{Group: "g1", MemberId: "m1",
		Offsets: []*muninnv1.PartitionOffset{{Topic: "ext", Partition: 0, Offset: e.Offset + 1}}}); err != nil {
		t.Fatal(err)
	}
	g, err := w.groups.DescribeGroup(ctx, &muninnv1.DescribeGroupRequest{Group: "g1"})
	if err != nil || len(g.Partitions) != 1 || g.Partitions[0].Committed != 2 || g.Lag != 2 || len(g.Members) != 1 {
		t.Fatalf("group after commit: %v, %v", g, err)
	}
	_, err = w.es.Commit(ctx, &muninnv1.CommitRequest{Group: "g1", MemberId: "ghost", Offsets: []*muninnv1.PartitionOffset{{Topic: "ext", Offset: 1}}})
	wantCode(t, "unknown member", err, codes.NotFound, "ghost")
	_, err = w.es.Commit(ctx, &muninnv1.CommitRequest{Group: "g1", MemberId: "m1", Offsets: []*muninnv1.PartitionOffset{{Topic: "ext", Offset: -1}}})
	wantCode(t, "negative offset", err, codes.InvalidArgument, "offsets[0].offset")
	cancel()

	// The member reconnects at once, with its ID (the server may not have
	// seen the old call end: the new one takes the ID over), and resumes
	// from its commit.
	sctx, cancel = context.WithCancel(ctx)
	sub, err = w.es.Subscribe(sctx, &muninnv1.SubscribeRequest{Topic: "ext", Group: "g1", MemberId: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, sub); e.Key != "c" || e.Offset != 2 {
		t.Fatalf("resumed at %v, want the third record", e)
	}

	// A second call with the same ID takes it over: the first one ends
	// with Aborted, the second reads on from the commit.
	sub2, err := w.es.Subscribe(ctx, &muninnv1.SubscribeRequest{Topic: "ext", Group: "g1", MemberId: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, sub2); e.Key != "c" {
		t.Fatalf("taken over at %v, want the third record", e)
	}
	for {
		if _, err = sub.Recv(); err != nil {
			break
		}
	}
	wantCode(t, "the old call", err, codes.Aborted, "taken over")
	cancel()

	for _, c := range []struct {
		name, field string
		req         *muninnv1.SubscribeRequest
		code        codes.Code
	}{
		{"offsets with group", "from_offsets", &muninnv1.SubscribeRequest{Topic: "ext", Group: "g1", FromOffsets: []*muninnv1.PartitionOffset{{}}}, codes.InvalidArgument},
		{"bad partition", "from_offsets[0].partition", &muninnv1.SubscribeRequest{Topic: "ext", FromOffsets: []*muninnv1.PartitionOffset{{Partition: 5}}}, codes.InvalidArgument},
		{"negative offset", "from_offsets[0].offset", &muninnv1.SubscribeRequest{Topic: "ext", FromOffsets: []*muninnv1.PartitionOffset{{Offset: -1}}}, codes.InvalidArgument},
		{"unknown topic", "nope", &muninnv1.SubscribeRequest{Topic: "nope"}, codes.NotFound},
		{"negative from_offset", "from_offset", &muninnv1.SubscribeRequest{Topic: "ext", FromOffset: -1}, codes.InvalidArgument},
		{"from_offset with group", "from_offset", &muninnv1.SubscribeRequest{Topic: "ext", Group: "g1", FromOffset: 1}, codes.InvalidArgument},
		{"bad group", "group", &muninnv1.SubscribeRequest{Topic: "ext", Group: "bad group\x00"}, codes.InvalidArgument},
	} {
		s, err := w.es.Subscribe(ctx, c.req)
		if err == nil {
			_, err = s.Recv()
		}
		wantCode(t, c.name, err, c.code, c.field)
	}
}

func TestGroups(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.place(t, "o1")
	resp, err := w.groups.ListGroups(ctx, &muninnv1.ListGroupsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, g := range resp.Groups {
		if g.Name == w.saga.Group() {
			found = len(g.Members) == 1 && len(g.Partitions) > 0
		}
	}
	if !found {
		t.Errorf("saga group missing or without members: %v", resp)
	}
	_, err = w.groups.DescribeGroup(ctx, &muninnv1.DescribeGroupRequest{Group: "nope"})
	wantCode(t, "unknown group", err, codes.NotFound, "nope")
}

// find returns the first node of the tree of roots for which ok holds.
func find(roots []*muninnv1.TraceNode, ok func(*muninnv1.TraceNode) bool) *muninnv1.TraceNode {
	for _, n := range roots {
		if ok(n) {
			return n
		}
		if m := find(n.Children, ok); m != nil {
			return m
		}
	}
	return nil
}

func eventOf(typ string) func(*muninnv1.TraceNode) bool {
	return func(n *muninnv1.TraceNode) bool { return n.Event.GetType() == typ }
}

func TestTrace(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.place(t, "o1")
	w.place(t, "o2")
	tr, err := w.trace.Trace(ctx, &muninnv1.TraceRequest{CorrelationId: "request-o1"})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Truncated || tr.Events < 5 {
		t.Fatalf("trace: %d events, truncated %v", tr.Events, tr.Truncated)
	}
	if len(tr.Roots) != 1 || tr.Roots[0].Kind != muninnv1.TraceNode_KIND_COMMAND || tr.Roots[0].Id != "place-o1" {
		t.Fatalf("root is not the placing command: %v", tr.Roots)
	}
	if got := tr.Roots[0].CommandType; got != "fulfillment.PlaceOrder" {
		t.Errorf("the placing command's node is named %q, not by its type", got)
	}
	// order.placed → (saga) capture command → payment.captured → shipment
	// command → shipment.scheduled → complete command → order.completed.
	placed := find(tr.Roots, eventOf("order.placed"))
	captured := find([]*muninnv1.TraceNode{placed}, eventOf("payment.captured"))
	shipped := find([]*muninnv1.TraceNode{captured}, eventOf("shipment.scheduled"))
	completed := find([]*muninnv1.TraceNode{shipped}, eventOf("order.completed"))
	if placed == nil || captured == nil || shipped == nil || completed == nil {
		b, _ := json.MarshalIndent(tr.Roots, "", "  ")
		t.Fatalf("the workflow is not a chain by causation:\n%s", b)
	}
	if find(tr.Roots, func(n *muninnv1.TraceNode) bool { return n.Event.GetKey() == "o2" }) != nil {
		t.Error("the trace holds another order's events")
	}
	if got := find(placed.Children, func(n *muninnv1.TraceNode) bool { return n.Kind == muninnv1.TraceNode_KIND_COMMAND }); got == nil || got.CausedBy != placed.Id {
		t.Errorf("the saga's command under order.placed: %v", got)
	} else if got.CommandType == "" || strings.Contains(got.CommandType, "/") {
		t.Errorf("the saga's command under order.placed is named %q, not by its type", got.CommandType)
	}
	// Command nodes are named by their type.
	var sent []string
	for _, c := range placed.Children {
		if c.Kind == muninnv1.TraceNode_KIND_COMMAND {
			sent = append(sent, c.CommandType)
		}
	}
	sort.Strings(sent)
	if want := []string{"fulfillment.CapturePayment", "fulfillment.ReserveStock"}; !slices.Equal(sent, want) {
		t.Errorf("the commands order.placed caused are %q, want %q", sent, want)
	}
	if got := tr.Roots[0].CommandType; got != "fulfillment.PlaceOrder" {
		t.Errorf("the root command's type is %q, want fulfillment.PlaceOrder", got)
	}

	short, err := w.trace.Trace(ctx, &muninnv1.TraceRequest{CorrelationId: "request-o1", ScanLimit: 1})
	if err != nil || !short.Truncated || short.Scanned != 1 {
		t.Errorf("bounded scan: %v, %v", short, err)
	}
	_, err = w.trace.Trace(ctx, &muninnv1.TraceRequest{})
	wantCode(t, "no correlation", err, codes.InvalidArgument, "correlation_id")
	_, err = w.trace.Trace(ctx, &muninnv1.TraceRequest{CorrelationId: "x", Topics: []string{"nope"}})
	wantCode(t, "unknown topic", err, codes.InvalidArgument, "topics[0]")
}

func TestProjections(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.place(t, "o1")
	w.place(t, "poison1")
	res := w.place(t, "poison2")
	if err := w.proj.WaitFor(ctx, eventstore.Position{Topic: res.Topic, Partition: res.Partition, Offset: res.LastOffset}); err != nil {
		t.Fatal(err)
	}
	list, err := w.projs.ListProjections(ctx, &muninnv1.ListProjectionsRequest{})
	if err != nil || len(list.Projections) != 1 || list.Projections[0].Name != "orders-seen" || list.Projections[0].DeadLetterTopic != "orders-seen.dlq" {
		t.Fatalf("list: %v, %v", list, err)
	}
	// Each poisoned order parked its placed event (the completed one too).
	dl, err := w.projs.ListDeadLetters(ctx, &muninnv1.ListDeadLettersRequest{Projection: "orders-seen", PageSize: 1})
	if err != nil || len(dl.DeadLetters) != 1 || dl.NextPageToken == "" || dl.DeadLetters[0].Error == "" {
		t.Fatalf("dead letters: %v, %v", dl, err)
	}
	var all []*muninnv1.DeadLetter
	for tok := ""; ; {
		page, err := w.projs.ListDeadLetters(ctx, &muninnv1.ListDeadLettersRequest{Projection: "orders-seen", PageSize: 1, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page.DeadLetters...)
		if tok = page.NextPageToken; tok == "" {
			break
		}
	}
	if len(all) != 4 {
		t.Fatalf("%d dead letters, want 4", len(all))
	}
	w.poison.Store(false)
	before := w.applied.Load()
	if _, err := w.projs.ReplayDeadLetter(ctx, &muninnv1.DeadLetterRequest{Projection: "orders-seen", Position: all[0].Event.Position}); err != nil {
		t.Fatal(err)
	}
	if w.applied.Load() != before+1 {
		t.Errorf("replay applied %d records", w.applied.Load()-before)
	}
	if _, err := w.projs.DiscardDeadLetter(ctx, &muninnv1.DeadLetterRequest{Projection: "orders-seen", Position: all[1].Event.Position}); err != nil {
		t.Fatal(err)
	}
	after, err := w.projs.ListDeadLetters(ctx, &muninnv1.ListDeadLettersRequest{Projection: "orders-seen"})
	if err != nil || len(after.DeadLetters) != 3 || after.DeadLetters[0].ReplayedAt == nil {
		t.Fatalf("after replay and discard: %v, %v", after, err)
	}
	_, err = w.projs.DiscardDeadLetter(ctx, &muninnv1.DeadLetterRequest{Projection: "orders-seen", Position: all[1].Event.Position})
	wantCode(t, "discarded twice", err, codes.NotFound, "")
	_, err = w.projs.ReplayDeadLetter(ctx, &muninnv1.DeadLetterRequest{Projection: "orders-seen", Position: "garbage"})
	wantCode(t, "bad position", err, codes.InvalidArgument, "position")
	_, err = w.projs.ListDeadLetters(ctx, &muninnv1.ListDeadLettersRequest{Projection: "nope"})
	wantCode(t, "unknown projection", err, codes.NotFound, "nope")

	// Rebuild streams progress to the end.
	rb, err := w.projs.Rebuild(ctx, &muninnv1.RebuildRequest{Projection: "orders-seen"})
	if err != nil {
		t.Fatal(err)
	}
	var last *muninnv1.RebuildProgress
	for {
		p, err := rb.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		last = p
	}
	if last == nil || !last.Finished || last.Generation != 2 {
		t.Fatalf("last progress: %v", last)
	}
	rb, err = w.projs.Rebuild(ctx, &muninnv1.RebuildRequest{Projection: "nope"})
	if err == nil {
		_, err = rb.Recv()
	}
	wantCode(t, "rebuild unknown", err, codes.NotFound, "nope")
}

func TestSagas(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.place(t, "o1")
	w.place(t, "o2")
	w.place(t, "o3")
	ls, err := w.sagas.ListSagas(ctx, &muninnv1.ListSagasRequest{})
	if err != nil || len(ls.Sagas) != 1 || ls.Sagas[0].Name != fulfillment.SagaName {
		t.Fatalf("sagas: %v, %v", ls, err)
	}
	var keys []string
	for tok := ""; ; {
		page, err := w.sagas.ListInstances(ctx, &muninnv1.ListInstancesRequest{Saga: fulfillment.SagaName, Statuses: []string{"completed"}, PageSize: 2, PageToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range page.Instances {
			keys = append(keys, in.Key)
		}
		if tok = page.NextPageToken; tok == "" {
			break
		}
	}
	if strings.Join(keys, ",") != "o1,o2,o3" {
		t.Fatalf("completed instances: %v", keys)
	}
	running, err := w.sagas.ListInstances(ctx, &muninnv1.ListInstancesRequest{Saga: fulfillment.SagaName, Statuses: []string{"running"}})
	if err != nil || len(running.Instances) != 0 {
		t.Fatalf("running: %v, %v", running, err)
	}
	in, err := w.sagas.GetInstance(ctx, &muninnv1.GetInstanceRequest{Saga: fulfillment.SagaName, Key: "o2"})
	if err != nil {
		t.Fatal(err)
	}
	if in.Status != "completed" || in.CorrelationId != "request-o2" || in.Ended == nil ||
		in.State.GetStructValue().GetFields()["order_id"].GetStringValue() != "o2" {
		t.Fatalf("instance: %v", in)
	}
	_, err = w.sagas.GetInstance(ctx, &muninnv1.GetInstanceRequest{Saga: fulfillment.SagaName, Key: "nope"})
	wantCode(t, "unknown instance", err, codes.NotFound, "")
	_, err = w.sagas.GetInstance(ctx, &muninnv1.GetInstanceRequest{Saga: "nope", Key: "o1"})
	wantCode(t, "unknown saga", err, codes.NotFound, "nope")
	_, err = w.sagas.ListInstances(ctx, &muninnv1.ListInstancesRequest{Saga: fulfillment.SagaName, Statuses: []string{"done"}})
	wantCode(t, "bad status", err, codes.InvalidArgument, "statuses[0]")
}

func TestGateway(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	w.place(t, "o1")
	a, err := admin.New(w.store)
	if err != nil {
		t.Fatal(err)
	}
	mux := runtime.NewServeMux()
	if err := a.RegisterGateway(ctx, mux, w.conn); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(path string) (int, map[string]any) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	code, body := get("/v1/streams/orders/o1")
	events, _ := body["events"].([]any)
	if code != 200 || len(events) != 2 {
		t.Fatalf("GET stream: %d %v", code, body)
	}
	if data, _ := events[0].(map[string]any)["data"].(map[string]any); data == nil {
		t.Errorf("a REST client gets no JSON data: %v", events[0])
	}
	if code, body := get("/v1/topics/nope"); code != 404 {
		t.Errorf("unknown topic: %d %v", code, body)
	}
	if code, body := get("/v1/topics?page_size=-1"); code != 400 {
		t.Errorf("bad page size: %d %v", code, body)
	}
	if code, body := get("/v1/groups"); code != 200 || body["groups"] == nil {
		t.Errorf("groups: %d %v", code, body)
	}
}

func TestOpenAPI(t *testing.T) {
	docs := admin.OpenAPI()
	if len(docs) != 5 {
		t.Fatalf("%d documents, want 5", len(docs))
	}
	for _, d := range docs {
		var v struct {
			Swagger string         `json:"swagger"`
			Paths   map[string]any `json:"paths"`
		}
		if err := json.Unmarshal(d, &v); err != nil || v.Swagger != "2.0" || len(v.Paths) == 0 {
			t.Errorf("not an OpenAPI document with paths: %v %s", err, d[:min(len(d), 200)])
		}
	}
}

func TestNewRefusesDuplicates(t *testing.T) {
	s, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	p, err := projection.New(s, "p", []string{"t"}, projection.HandlerFunc(func(*projection.Tx, eventstore.Record) error { return nil }))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.New(s, admin.WithProjections(p, p, nil)); err == nil || !strings.Contains(err.Error(), `"p" registered twice`) || !strings.Contains(err.Error(), "projection 2 is nil") {
		t.Errorf("New: %v", err)
	}
	if _, err := admin.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

func TestGatewayEscapedPath(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.store.CreateTopic(ctx, "ext", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	a, err := admin.New(w.store, admin.WithProjections(w.proj))
	if err != nil {
		t.Fatal(err)
	}
	mux := runtime.NewServeMux(runtime.WithUnescapingMode(runtime.UnescapingModeAllExceptReserved))
	if err := a.RegisterGateway(ctx, mux, w.conn); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	// A key with a slash and unicode, escaped in the path.
	resp, err := http.Post(srv.URL+"/v1/streams/ext/a%2Fb%C3%A9", "application/json",
		strings.NewReader(`{"events":[{"type":"t","data":{"x":1}}],"expected_version":"0"}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("append: %d %s", resp.StatusCode, b)
	}
	rs, err := w.es.ReadStream(ctx, &muninnv1.ReadStreamRequest{Topic: "ext", Key: "a/bé"})
	if err != nil || len(rs.Events) != 1 {
		t.Fatalf("the key did not arrive unescaped: %v, %v (%s)", rs, err, b)
	}
	resp, err = http.Post(srv.URL+"/v1/streams/ext/a%2Fb%C3%A9", "application/json",
		strings.NewReader(`{"events":[{"type":"t"}],"expected_version":"0"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusConflict {
		t.Errorf("conflicting append: %d, want 409", resp.StatusCode)
	}
	// A position (with its slash) escaped in the path: not parked, 404.
	resp, err = http.Post(srv.URL+"/v1/projections/orders-seen/dead-letters/orders%2F0%4099:discard", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("discard of an escaped position: %d %s, want 404", resp.StatusCode, b)
	}
}

// A payment that never answers: the saga's deadline fires and cancels the
// order; the commands it sends hang under a deadline node.
func TestTraceDeadline(t *testing.T) {
	m := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	w := newWorld(t, saga.WithClock(m))
	ctx := context.Background()
	cctx := command.WithCorrelationID(ctx, "request-late")
	if _, err := w.h.Orders.Dispatch(cctx, "late", fulfillment.PlaceOrder{Customer: "c", Total: fulfillment.NeverAnswer, SKU: "sku-1", Qty: 1, Address: "x"}); err != nil {
		t.Fatal(err)
	}
	if _, err := w.saga.WaitFor(ctx, "late", func(in saga.Instance[fulfillment.Fulfillment]) bool { return len(in.Deadlines) > 0 }); err != nil {
		t.Fatal(err)
	}
	in, err := w.sagas.GetInstance(ctx, &muninnv1.GetInstanceRequest{Saga: fulfillment.SagaName, Key: "late"})
	if err != nil || in.Status != "running" || len(in.Deadlines) != 1 || in.Deadlines[0].Id == "" || in.Deadlines[0].At == nil {
		t.Fatalf("instance waiting for its deadline: %v, %v", in, err)
	}
	m.Advance(fulfillment.PaymentTimeout + time.Second)
	if _, err := w.saga.WaitFor(ctx, "late", func(in saga.Instance[fulfillment.Fulfillment]) bool {
		return in.Status == saga.StatusFailed && in.PendingCommands == 0
	}); err != nil {
		t.Fatal(err)
	}
	in, err = w.sagas.GetInstance(ctx, &muninnv1.GetInstanceRequest{Saga: fulfillment.SagaName, Key: "late"})
	if err != nil || in.FailureReason == "" || len(in.Deadlines) != 0 {
		t.Fatalf("failed instance: %v, %v", in, err)
	}
	tr, err := w.trace.Trace(ctx, &muninnv1.TraceRequest{CorrelationId: "request-late"})
	if err != nil {
		t.Fatal(err)
	}
	dl := find(tr.Roots, func(n *muninnv1.TraceNode) bool { return n.Kind == muninnv1.TraceNode_KIND_DEADLINE })
	if dl == nil || find(dl.Children, eventOf("order.cancelled")) == nil {
		b, _ := json.MarshalIndent(tr.Roots, "", "  ")
		t.Fatalf("no deadline node leading to the cancellation:\n%s", b)
	}
}

// A REST client tails a topic from an offset: the gateway streams
// newline-delimited JSON.
func TestGatewaySubscribe(t *testing.T) {
	w := newWorld(t)
	ctx := context.Background()
	if err := w.store.CreateTopic(ctx, "ext", eventstore.TopicConfig{Partitions: 1}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b"} {
		if _, err := w.store.Append(ctx, "ext", k, eventstore.Any, []eventstore.Event{{Type: "t", Payload: []byte(`{"k":"` + k + `"}`)}}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := admin.New(w.store)
	if err != nil {
		t.Fatal(err)
	}
	mux := runtime.NewServeMux()
	if err := a.RegisterGateway(ctx, mux, w.conn); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(mux)
	defer srv.Close()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, _ := http.NewRequestWithContext(rctx, http.MethodGet, srv.URL+"/v1/topics/ext:subscribe?from_offset=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var msg struct {
		Result struct {
			Event struct {
				Key  string         `json:"key"`
				Data map[string]any `json:"data"`
			} `json:"event"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&msg); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || msg.Result.Event.Key != "b" || msg.Result.Event.Data["k"] != "b" {
		t.Fatalf("first message: %d %+v", resp.StatusCode, msg)
	}
}

// A saga whose commands cannot be sent (its bus is closed: a transient
// error, retried on its clock) shows them as pending.
func TestSagaPendingCommands(t *testing.T) {
	m := clock.NewManual(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	w := newWorldWith(t, true, saga.WithClock(m))
	ctx := context.Background()
	placed, err := w.h.Orders.Dispatch(ctx, "stuck", fulfillment.PlaceOrder{Customer: "c", Total: 1000, SKU: "sku-1", Qty: 1, Address: "x"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.saga.WaitFor(ctx, "stuck", func(in saga.Instance[fulfillment.Fulfillment]) bool { return in.PendingCommands > 0 }); err != nil {
		t.Fatal(err)
	}
	in, err := w.sagas.GetInstance(ctx, &muninnv1.GetInstanceRequest{Saga: fulfillment.SagaName, Key: "stuck"})
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Pending) == 0 || int64(len(in.Pending)) != in.PendingCommands {
		t.Fatalf("pending: %d listed, %d counted", len(in.Pending), in.PendingCommands)
	}
	for _, c := range in.Pending {
		if c.Id == "" || c.Type == "" || c.AggregateId == "" || c.CausationId != placed.EventIDs[0].String() {
			t.Errorf("pending command: %v (want causation %s)", c, placed.EventIDs[0])
		}
	}
}
