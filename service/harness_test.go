package service_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/codec"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/projection"
	"github.com/muninn-es/muninn/service"
	testv1 "github.com/muninn-es/muninn/service/internal/testapi/test/v1"
)

// The counter aggregate the test service commands.
type counter struct{ Value int64 }

type addAmount struct{ Amount int64 }

type added struct{ Amount int64 }

func decideCounter(_ counter, c addAmount) ([]added, error) {
	if c.Amount == 0 {
		return nil, service.FieldError("amount", "must not be zero")
	}
	if c.Amount < 0 {
		return nil, command.Rejected("a counter only grows; amount %d", c.Amount)
	}
	return []added{{c.Amount}}, nil
}

func evolveCounter(s counter, e added) counter { s.Value += e.Amount; return s }

// counterService implements testv1.CounterService on a real bus and
// projection.
type counterService struct {
	testv1.UnimplementedCounterServiceServer
	counters *command.Handler[counter, addAmount, added]
	values   *projection.Table[string, int64]
	proj     *projection.Projection
	entered  chan string   // Block says it has started
	release  chan struct{} // and waits for this
}

func (s *counterService) Add(ctx context.Context, req *testv1.AddRequest) (*testv1.AddResponse, error) {
	if req.GetCounterId() == "" {
		return nil, service.FieldError("counter_id", "is required")
	}
	res, err := s.counters.Dispatch(ctx, req.GetCounterId(), addAmount{req.GetAmount()}, service.DispatchOptions(ctx)...)
	if err != nil {
		return nil, err
	}
	if err := service.SetResult(ctx, res); err != nil {
		return nil, err
	}
	return &testv1.AddResponse{CounterId: req.GetCounterId(), Version: res.Version,
		Position: service.PositionString(res.Position()), Duplicate: res.Duplicate}, nil
}

func (s *counterService) GetCounter(ctx context.Context, req *testv1.GetCounterRequest) (*testv1.GetCounterResponse, error) {
	if err := service.Await(ctx, s.proj, req.GetMinPosition()); err != nil {
		return nil, err
	}
	v, ok, err := s.values.Get(ctx, req.GetCounterId())
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, command.NotFound("no counter %q", req.GetCounterId())
	}
	return &testv1.GetCounterResponse{CounterId: req.GetCounterId(), Value: v}, nil
}

func (s *counterService) Fail(ctx context.Context, req *testv1.FailRequest) (*testv1.FailResponse, error) {
	return nil, failure(req.GetKind(), req.GetMessage())
}

func failure(kind, msg string) error {
	switch kind {
	case "invalid":
		return command.Invalid("%s", msg)
	case "rejected":
		return command.Rejected("%s", msg)
	case "notfound":
		return command.NotFound("%s", msg)
	case "denied":
		return command.Denied("%s", msg)
	case "conflict":
		return fmt.Errorf("%s: %w", msg, eventstore.ErrVersionConflict)
	case "topic":
		return fmt.Errorf("%s: %w", msg, eventstore.ErrTopicNotFound)
	case "exists":
		return fmt.Errorf("%s: %w", msg, eventstore.ErrTopicExists)
	case "closed":
		return fmt.Errorf("%s: %w", msg, eventstore.ErrClosed)
	case "deadline":
		return fmt.Errorf("%s: %w", msg, context.DeadlineExceeded)
	case "canceled":
		return fmt.Errorf("%s: %w", msg, context.Canceled)
	case "field":
		return errors.Join(service.FieldError("items[1].quantity", "must be positive, got %d", -2),
			service.FieldError("payment_method", "unknown method %q", msg))
	case "panic":
		panic("handler bug: " + msg)
	default:
		return errors.New("secret detail: " + msg)
	}
}

func (s *counterService) Block(ctx context.Context, req *testv1.BlockRequest) (*testv1.BlockResponse, error) {
	s.entered <- req.GetId()
	<-s.release
	return &testv1.BlockResponse{Id: req.GetId()}, nil
}

// env is a running test service: a store, bus, projection and Server in
// a Group.
type env struct {
	store   eventstore.Store
	srv     *service.Server
	svc     *counterService
	conn    *grpc.ClientConn
	client  testv1.CounterServiceClient
	base    string // http://host:port
	ready   atomic.Bool
	stop    context.CancelFunc
	stopped chan error
	logs    *syncBuffer
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t *testing.T, opts ...service.Option) *env {
	t.Helper()
	ctx := context.Background()
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	events, err := aggregate.NewEvents[added](aggregate.Type[added]("counter.added"))
	if err != nil {
		t.Fatal(err)
	}
	agg, err := aggregate.New("counter", aggregate.Decider[counter, addAmount, added]{
		Decide: decideCounter, Evolve: evolveCounter,
	}, events)
	if err != nil {
		t.Fatal(err)
	}
	bus, err := command.New(store)
	if err != nil {
		t.Fatal(err)
	}
	counters, err := command.Register(ctx, bus, agg)
	if err != nil {
		t.Fatal(err)
	}
	values, err := projection.NewTable("values", projection.StringKey(), codec.Int64())
	if err != nil {
		t.Fatal(err)
	}
	r := projection.NewRouter()
	if err := projection.On(r, events, func(tx *projection.Tx, rec eventstore.Record, e added) error {
		v, _, err := values.Load(tx, rec.Key)
		if err != nil {
			return err
		}
		return values.Put(tx, rec.Key, v+e.Amount)
	}); err != nil {
		t.Fatal(err)
	}
	proj, err := projection.New(store, "counters", []string{"counter"}, r, projection.WithTables(values))
	if err != nil {
		t.Fatal(err)
	}
	svc := &counterService{counters: counters, values: values, proj: proj,
		entered: make(chan string, 1), release: make(chan struct{})}
	logs := &syncBuffer{}
	opts = append([]service.Option{service.WithLogger(slog.New(slog.NewTextHandler(logs, nil))), service.WithGRPCAddr("127.0.0.1:0"), service.WithHTTPAddr("127.0.0.1:0"),
		service.WithOpenAPI(testv1.OpenAPI)}, opts...)
	srv, err := service.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(func(g *grpc.Server) { testv1.RegisterCounterServiceServer(g, svc) })
	srv.RegisterGateway(testv1.RegisterCounterServiceHandler)
	e := &env{store: store, srv: srv, svc: svc, stopped: make(chan error, 1), logs: logs}
	e.ready.Store(true)
	srv.Ready("counters", service.ProjectionReady(proj))
	srv.Ready("switch", func(context.Context) error {
		if !e.ready.Load() {
			return errors.New("switched off")
		}
		return nil
	})

	var g service.Group
	g.Add("bus", bus)
	g.Add("projection counters", proj)
	g.AddServer(srv)
	g.AddCloser("bus", bus)
	g.AddCloser("store", store)
	runCtx, stop := context.WithCancel(ctx)
	e.stop = stop
	go func() { e.stopped <- g.Run(runCtx) }()
	select {
	case <-srv.Started():
	case err := <-e.stopped:
		t.Fatalf("group stopped at start: %v", err)
	}
	e.base = "http://" + srv.HTTPAddr()
	e.conn, err = grpc.NewClient("passthrough:///"+srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	e.client = testv1.NewCounterServiceClient(e.conn)
	t.Cleanup(func() {
		e.conn.Close()
		stop()
		if err := <-e.stopped; err != nil {
			t.Errorf("group: %v", err)
		}
	})
	return e
}

// do sends an HTTP request with a JSON body and headers (name, value
// pairs), returning the response and its body.
func (e *env) do(t *testing.T, method, path, body string, headers ...string) (*http.Response, string) {
	t.Helper()
	var req *http.Request
	var err error
	if body == "" {
		req, err = http.NewRequest(method, e.base+path, nil)
	} else {
		req, err = http.NewRequest(method, e.base+path, strings.NewReader(body))
	}
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	return send(t, req)
}

func send(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	if req.Body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res, string(b)
}

func grpcHeader(md *metadata.MD) grpc.CallOption { return grpc.Header(md) }
