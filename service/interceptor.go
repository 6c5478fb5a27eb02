package service

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// UnaryInterceptor returns the server interceptor for unary calls that a
// Server installs (use it directly for a grpc.Server of your own). For
// each call it
//
//   - reads the Call from the incoming metadata (idempotency key,
//     correlation ID or traceparent, expected version) into the context
//     (WithCall), refusing a malformed expected-version with
//     InvalidArgument naming it;
//   - puts the await timeout in the context (WithAwaitTimeout, for Await);
//   - maps the handler's error to a gRPC status (Status), logging the
//     detail of Internal errors;
//   - turns a panic of the handler into Internal, logged with its stack,
//     instead of a crash.
//
// Of the options it uses WithAwaitTimeout and WithLogger; it panics on an
// invalid one (New reports them as errors).
func UnaryInterceptor(opts ...Option) grpc.UnaryServerInterceptor {
	o := mustOptions(opts)
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
		defer func() {
			if r := recover(); r != nil {
				resp, err = nil, recovered(ctx, o.logger, info.FullMethod, r)
			}
		}()
		ctx, err = o.callContext(ctx)
		if err != nil {
			return nil, toStatusError(ctx, o.logger, info.FullMethod, err)
		}
		resp, err = handler(ctx, req)
		if err != nil {
			return nil, toStatusError(ctx, o.logger, info.FullMethod, err)
		}
		return resp, nil
	}
}

// StreamInterceptor is UnaryInterceptor for streaming calls: the stream's
// context carries the Call and the await timeout, and the handler's
// error and panics are mapped the same way. In a Server, the streams'
// contexts are cancelled when its shutdown reaches the gRPC server, since
// subscriptions and watches do not end on their own.
func StreamInterceptor(opts ...Option) grpc.StreamServerInterceptor {
	o := mustOptions(opts)
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
		ctx := ss.Context()
		defer func() {
			if r := recover(); r != nil {
				err = recovered(ctx, o.logger, info.FullMethod, r)
			}
		}()
		ctx, err = o.callContext(ctx)
		if err != nil {
			return toStatusError(ctx, o.logger, info.FullMethod, err)
		}
		if o.streams != nil {
			var done func()
			ctx, done = o.streams.add(ctx)
			defer done()
		}
		if err := handler(srv, &contextStream{ServerStream: ss, ctx: ctx}); err != nil {
			return toStatusError(ctx, o.logger, info.FullMethod, err)
		}
		return nil
	}
}

// ServerOptions returns the grpc.ServerOptions that install
// UnaryInterceptor and StreamInterceptor, for a grpc.Server of your own.
func ServerOptions(opts ...Option) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(UnaryInterceptor(opts...)),
		grpc.ChainStreamInterceptor(StreamInterceptor(opts...)),
	}
}

func mustOptions(opts []Option) options {
	o, err := newOptions(opts)
	if err != nil {
		panic(err)
	}
	return o
}

func (o *options) callContext(ctx context.Context) (context.Context, error) {
	c, err := parseCall(ctx)
	if err != nil {
		return ctx, err
	}
	return withAwaitTimeout(WithCall(ctx, c), o.awaitTimeout), nil
}

func recovered(ctx context.Context, log *slog.Logger, method string, r any) error {
	log.ErrorContext(ctx, "service: handler panicked", "method", method,
		"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
	return status.Error(codes.Internal, internalMessage)
}

// contextStream is a grpc.ServerStream with another context.
type contextStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *contextStream) Context() context.Context { return s.ctx }

// streamSet cancels a Server's streaming calls when it shuts down:
// subscriptions and watches do not end on their own, so a graceful stop
// would otherwise wait for them until its bound.
type streamSet struct {
	mu      sync.Mutex
	next    int
	cancels map[int]context.CancelFunc
	closed  bool
}

func (s *streamSet) add(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		cancel()
		return ctx, func() {}
	}
	if s.cancels == nil {
		s.cancels = map[int]context.CancelFunc{}
	}
	id := s.next
	s.next++
	s.cancels[id] = cancel
	return ctx, func() {
		s.mu.Lock()
		delete(s.cancels, id)
		s.mu.Unlock()
		cancel()
	}
}

func (s *streamSet) cancelAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, c := range s.cancels {
		c()
	}
}
