package service

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// Defaults of a Server's options.
const (
	// DefaultGRPCAddr is where the gRPC server listens (loopback only).
	DefaultGRPCAddr = "127.0.0.1:7070"
	// DefaultHTTPAddr is where the REST gateway and the health, readiness
	// and OpenAPI endpoints listen (loopback only).
	DefaultHTTPAddr = "127.0.0.1:8080"
	// DefaultMaxBodyBytes is the largest REST request body accepted.
	DefaultMaxBodyBytes = 1 << 20
	// DefaultShutdownTimeout bounds a graceful shutdown: in-flight calls
	// that have not finished by then are cut off.
	DefaultShutdownTimeout = 10 * time.Second
)

// Option configures a Server (New), the interceptors (UnaryInterceptor,
// StreamInterceptor) and the gateway mux (NewGatewayMux); each says which
// it applies to.
type Option func(*options)

type options struct {
	grpcAddr, httpAddr string
	maxBody            int64
	awaitTimeout       time.Duration
	shutdownTimeout    time.Duration
	drainDelay         time.Duration
	logger             *slog.Logger
	openapi            [][]byte
	title              string
	handlers           []handler
	errs               []error
	streams            *streamSet // a Server's, to cancel at shutdown
	tracerProvider     trace.TracerProvider
}

func newOptions(opts []Option) (options, error) {
	o := options{
		grpcAddr:        DefaultGRPCAddr,
		httpAddr:        DefaultHTTPAddr,
		maxBody:         DefaultMaxBodyBytes,
		awaitTimeout:    DefaultAwaitTimeout,
		shutdownTimeout: DefaultShutdownTimeout,
		logger:          slog.Default(),
		title:           "Muninn service",
	}
	for _, opt := range opts {
		opt(&o)
	}
	return o, errors.Join(o.errs...)
}

func (o *options) fail(format string, args ...any) {
	o.errs = append(o.errs, fmt.Errorf("service: "+format, args...))
}

// WithGRPCAddr sets the gRPC server's listen address (Server; default
// DefaultGRPCAddr). Port 0 picks a free port: Server.GRPCAddr tells
// which, once started.
func WithGRPCAddr(addr string) Option {
	return func(o *options) {
		if addr == "" {
			o.fail("gRPC address is empty")
		}
		o.grpcAddr = addr
	}
}

// WithHTTPAddr sets the HTTP server's listen address (Server; default
// DefaultHTTPAddr). Port 0 picks a free port: Server.HTTPAddr tells which,
// once started.
func WithHTTPAddr(addr string) Option {
	return func(o *options) {
		if addr == "" {
			o.fail("HTTP address is empty")
		}
		o.httpAddr = addr
	}
}

// WithMaxBodyBytes sets the largest REST request body (Server, gateway;
// default DefaultMaxBodyBytes): a larger one is refused with HTTP 413 and
// a JSON error naming the limit.
func WithMaxBodyBytes(n int64) Option {
	return func(o *options) {
		if n <= 0 {
			o.fail("max body bytes must be positive, got %d", n)
		}
		o.maxBody = n
	}
}

// WithAwaitTimeout bounds Await in the calls the interceptors serve
// (Server, interceptors; default DefaultAwaitTimeout).
func WithAwaitTimeout(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.fail("await timeout must be positive, got %v", d)
		}
		o.awaitTimeout = d
	}
}

// WithShutdownTimeout bounds a graceful shutdown (Server; default
// DefaultShutdownTimeout): the calls still in flight when it passes are
// cut off.
func WithShutdownTimeout(d time.Duration) Option {
	return func(o *options) {
		if d <= 0 {
			o.fail("shutdown timeout must be positive, got %v", d)
		}
		o.shutdownTimeout = d
	}
}

// WithLogger sets where internal errors, recovered panics and server
// failures are logged (all; default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *options) {
		if l == nil {
			o.fail("logger is nil")
			return
		}
		o.logger = l
	}
}

// WithOpenAPI adds OpenAPI (swagger v2) documents, such as the
// *.swagger.json that protoc-gen-openapiv2 writes per proto file (embed
// them with go:embed in the package that owns them), to the one the
// server serves at /openapi.json: their paths and definitions are merged
// (Server). A document that is not a swagger v2 JSON object, or that
// defines a path or definition differently from another, makes New fail.
func WithOpenAPI(docs ...[]byte) Option {
	return func(o *options) { o.openapi = append(o.openapi, docs...) }
}

// WithTitle sets the title of the merged OpenAPI document (Server; default
// "Muninn service").
func WithTitle(title string) Option {
	return func(o *options) { o.title = title }
}

// WithDrainDelay makes a shutdown wait d after it stopped intake (health
// NOT_SERVING, /readyz 503) before it closes the listeners (Server;
// default 0), so that load balancers polling them stop sending calls
// first. The shutdown context (and the shutdown timeout, which the delay
// counts against) ends the wait early.
func WithDrainDelay(d time.Duration) Option {
	return func(o *options) {
		if d < 0 {
			o.fail("drain delay must not be negative, got %v", d)
		}
		o.drainDelay = d
	}
}

// handler is one WithHandler route.
type handler struct {
	pattern string
	h       http.Handler
}

// WithHandler serves h at pattern on the server's HTTP listener beside the
// REST gateway, /healthz, /readyz and /openapi.json (Server), with
// net/http.ServeMux's pattern syntax ("GET /metrics", "/ui/"): for a metrics
// endpoint, a web UI or a debug page. A pattern that ServeMux refuses, that is
// taken by the server's own routes or given twice, or a nil handler makes New
// fail, naming the pattern.
func WithHandler(pattern string, h http.Handler) Option {
	return func(o *options) {
		if pattern == "" {
			o.fail("handler pattern is empty")
			return
		}
		if h == nil {
			o.fail("handler for %q is nil", pattern)
			return
		}
		o.handlers = append(o.handlers, handler{pattern, h})
	}
}
