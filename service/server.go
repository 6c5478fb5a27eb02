package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/projection"
)

// GatewayFunc registers a service's REST handlers with the gateway mux,
// calling the gRPC server through conn: the signature of the
// Register<Service>Handler functions protoc-gen-grpc-gateway writes.
type GatewayFunc func(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error

// Server is a Muninn service on the network: a gRPC server with the
// interceptors (UnaryInterceptor, StreamInterceptor), the gRPC health
// service and server reflection, and an HTTP server with the REST gateway
// (NewGatewayMux, LimitBody), which calls the gRPC server over a loopback
// connection so that every interceptor applies to REST calls too, and
//
//	GET /healthz       200 while the process serves
//	GET /readyz        200 when every readiness check (Ready) passes, else
//	                   503 with the failing checks; 503 once shutting down
//	GET /openapi.json  the merged OpenAPI documents (WithOpenAPI)
//
// and the handlers given with WithHandler.
//
// Register services and readiness checks, then Start (or Run, or add the
// Server to a Group); Shutdown stops it gracefully.
type Server struct {
	o       options
	grpc    *grpc.Server
	health  *health.Server
	mux     *runtime.ServeMux
	http    *http.Server
	spec    []byte
	streams *streamSet

	mu struct {
		sync.Mutex
		registers []func(*grpc.Server)
		gateways  []GatewayFunc
		checks    []readyCheck
		started   bool // Start was called
		serving   bool // and succeeded
		stopping  bool
		grpcAddr  string
		httpAddr  string
		conn      *grpc.ClientConn
		cancel    context.CancelFunc
	}
	started  chan struct{} // closed once Start succeeded
	failed   chan struct{} // closed when a server stops serving on its own
	failOnce sync.Once
	failErr  error
	served   sync.WaitGroup
	stopOnce sync.Once
	stopErr  error
}

type readyCheck struct {
	name  string
	check func(context.Context) error
}

// New returns a Server, reporting every invalid option at once.
func New(opts ...Option) (*Server, error) {
	o, err := newOptions(opts)
	if err != nil {
		return nil, err
	}
	s := &Server{o: o, started: make(chan struct{}), failed: make(chan struct{})}
	if len(o.openapi) > 0 {
		if s.spec, err = mergeOpenAPI(o.title, o.openapi); err != nil {
			return nil, err
		}
	}
	s.streams = &streamSet{}
	s.grpc = grpc.NewServer(append(ServerOptions(append(opts[:len(opts):len(opts)], withStreams(s.streams))...), o.tracingServerOptions()...)...)
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpc, s.health)
	reflection.Register(s.grpc)
	s.mux = NewGatewayMux(opts...)
	hm := http.NewServeMux()
	hm.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	hm.HandleFunc("GET /readyz", s.serveReady)
	hm.HandleFunc("GET /openapi.json", func(w http.ResponseWriter, _ *http.Request) {
		if s.spec == nil {
			writeJSONError(w, http.StatusNotFound, codes.NotFound, "no OpenAPI document was given to the server", nil, nil)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(s.spec)
	})
	hm.Handle("/", LimitBody(s.mux, o.maxBody))
	for _, h := range o.handlers {
		if err := handle(hm, h.pattern, h.h); err != nil {
			return nil, err
		}
	}
	s.http = &http.Server{Handler: o.tracingHandler(hm), ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Register adds a function that registers gRPC services with the server,
// such as func(g *grpc.Server) { orderv1.RegisterOrderServiceServer(g, h) };
// it runs at Start and must not call the Server's methods. Call it
// before Start.
func (s *Server) Register(f func(*grpc.Server)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.registers = append(s.mu.registers, f)
}

// RegisterGateway adds a function that registers REST handlers with the
// gateway, such as orderv1.RegisterOrderServiceHandler; it runs at Start
// with the loopback connection to the gRPC server, and must not call the
// Server's methods. Call it before Start.
func (s *Server) RegisterGateway(f GatewayFunc) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.gateways = append(s.mu.gateways, f)
}

// Ready adds a readiness check called name: /readyz answers 200 only
// while every check returns nil (ProjectionReady is one for a read model).
// Checks run on each /readyz request with its context; keep them quick.
func (s *Server) Ready(name string, check func(ctx context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.checks = append(s.mu.checks, readyCheck{name, check})
}

func withStreams(ss *streamSet) Option { return func(o *options) { o.streams = ss } }

// ProjectionReady returns a readiness check that passes while p is live:
// running and caught up with its topics (not idle, catching up, stopped,
// failed or waiting for its topics).
func ProjectionReady(p *projection.Projection) func(context.Context) error {
	return func(ctx context.Context) error {
		st, err := p.Status(ctx)
		if err != nil {
			return err
		}
		if err := st.Err(); err != nil {
			return err
		}
		if len(st.MissingTopics) > 0 {
			return fmt.Errorf("projection %s: waiting for topics %v", p.Name(), st.MissingTopics)
		}
		if st.State != consume.StateLive {
			return fmt.Errorf("projection %s is %s", p.Name(), st.State)
		}
		return nil
	}
}

// Start binds the gRPC and HTTP addresses, registers the services and
// gateways, and serves in the background until Shutdown. ctx is given to
// the gateway functions; cancelling it later does not stop the server.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.started || s.mu.stopping {
		return errors.New("service: server already started or shut down")
	}
	s.mu.started = true
	for _, f := range s.mu.registers {
		f(s.grpc)
	}
	gl, err := net.Listen("tcp", s.o.grpcAddr)
	if err != nil {
		return fmt.Errorf("service: gRPC address: %w", err)
	}
	hl, err := net.Listen("tcp", s.o.httpAddr)
	if err != nil {
		gl.Close()
		return fmt.Errorf("service: HTTP address: %w", err)
	}
	s.mu.grpcAddr, s.mu.httpAddr = gl.Addr().String(), hl.Addr().String()
	conn, err := grpc.NewClient("passthrough:///"+s.mu.grpcAddr, append(s.o.tracingDialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		gl.Close()
		hl.Close()
		return fmt.Errorf("service: gateway connection: %w", err)
	}
	s.mu.conn = conn
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.mu.cancel = cancel
	for _, f := range s.mu.gateways {
		if err := f(gctx, s.mux, conn); err != nil {
			cancel()
			conn.Close()
			gl.Close()
			hl.Close()
			return fmt.Errorf("service: registering a gateway: %w", err)
		}
	}
	for name := range s.grpc.GetServiceInfo() {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.served.Add(2)
	go func() {
		defer s.served.Done()
		if err := s.grpc.Serve(gl); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			s.fail(fmt.Errorf("service: gRPC server: %w", err))
		}
	}()
	go func() {
		defer s.served.Done()
		if err := s.http.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.fail(fmt.Errorf("service: HTTP server: %w", err))
		}
	}()
	s.mu.serving = true
	close(s.started)
	return nil
}

// Started returns a channel closed once Start has succeeded: the
// addresses are bound and the servers serve.
func (s *Server) Started() <-chan struct{} { return s.started }

func (s *Server) fail(err error) {
	s.failOnce.Do(func() {
		s.o.logger.Error("service: server failed", "error", err)
		s.failErr = err
		close(s.failed)
	})
}

// GRPCAddr returns the address the gRPC server listens on, once started
// ("" before).
func (s *Server) GRPCAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.grpcAddr
}

// HTTPAddr returns the address the HTTP server listens on, once started
// ("" before).
func (s *Server) HTTPAddr() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.httpAddr
}

// Run starts the server (Start) and serves until ctx ends or a server
// fails, then shuts down gracefully (Shutdown). It returns nil after a
// clean shutdown, else the first error.
func (s *Server) Run(ctx context.Context) error {
	if err := s.Start(ctx); err != nil {
		return err
	}
	var err error
	select {
	case <-ctx.Done():
	case <-s.failed:
		err = s.failErr
	}
	return errors.Join(err, s.Shutdown(context.WithoutCancel(ctx)))
}

// Shutdown stops the server gracefully: it stops intake (the gRPC health
// service says NOT_SERVING and /readyz 503; see WithDrainDelay), lets the HTTP server finish
// its requests, then cancels the streaming calls (subscriptions do not
// end on their own) and lets the gRPC server finish its calls, all within the shutdown
// timeout (WithShutdownTimeout) or ctx, whichever ends first, and cuts off
// what is left. It is idempotent; a server never started is only marked
// stopped.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopOnce.Do(func() { s.stopErr = s.shutdown(ctx) })
	return s.stopErr
}

func (s *Server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.mu.stopping = true
	serving, conn, cancel := s.mu.serving, s.mu.conn, s.mu.cancel
	s.mu.Unlock()
	s.health.Shutdown()
	if !serving {
		s.grpc.Stop()
		return nil
	}
	ctx, stop := context.WithTimeout(ctx, s.o.shutdownTimeout)
	defer stop()
	var errs []error
	if s.o.drainDelay > 0 {
		t := time.NewTimer(s.o.drainDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	if err := s.http.Shutdown(ctx); err != nil {
		errs = append(errs, fmt.Errorf("service: HTTP shutdown: %w", err))
		s.http.Close()
	}
	s.streams.cancelAll()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
		errs = append(errs, fmt.Errorf("service: gRPC shutdown: calls cut off: %w", ctx.Err()))
	}
	cancel()
	if err := conn.Close(); err != nil {
		errs = append(errs, fmt.Errorf("service: gateway connection: %w", err))
	}
	s.served.Wait()
	return errors.Join(errs...)
}

type readyJSON struct {
	Ready  bool              `json:"ready"`
	Checks map[string]string `json:"checks,omitempty"`
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	stopping, checks := s.mu.stopping, s.mu.checks
	s.mu.Unlock()
	res := readyJSON{Ready: !stopping, Checks: map[string]string{}}
	if stopping {
		res.Checks["server"] = "shutting down"
	}
	for _, c := range checks {
		if err := c.check(r.Context()); err != nil {
			res.Ready = false
			res.Checks[c.name] = err.Error()
		} else {
			res.Checks[c.name] = "ok"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if !res.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	b, _ := json.Marshal(res)
	_, _ = w.Write(append(b, '\n'))
}

// handle registers h at pattern on mux, turning ServeMux's panic for a bad
// or conflicting pattern into an error that names it.
func handle(mux *http.ServeMux, pattern string, h http.Handler) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("service: handler pattern %q: %v", pattern, r)
		}
	}()
	mux.Handle(pattern, h)
	return nil
}
