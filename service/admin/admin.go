package admin

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	muninnv1 "github.com/muninn-es/muninn/api/muninn/v1"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/projection"
	"github.com/muninn-es/muninn/saga"
)

// Default and maximum sizes of a page or a read.
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
	// DefaultTraceScanLimit is how many records a Trace reads at most when
	// the request does not say.
	DefaultTraceScanLimit = 1_000_000
)

// Admin implements the muninn.v1 services on a store, for the projections
// and sagas registered with it.
type Admin struct {
	store       eventstore.Store
	projections map[string]*projection.Projection
	sagas       map[string]Saga

	mu struct {
		sync.Mutex
		// members are the consumer-group members of open Subscribe calls,
		// by group and member ID.
		members map[memberKey]*member
	}

	es    *eventStoreServer
	group *groupServer
	trace *traceServer
	proj  *projectionServer
	saga  *sagaServer
}

type memberKey struct{ group, member string }

// member is the consumer of an open Subscribe; done is closed when the
// Subscribe has ended and left the group.
type member struct {
	c       eventstore.Consumer
	done    chan struct{}
	evicted atomic.Bool
}

// Option configures an Admin.
type Option func(*options)

type options struct {
	projections []*projection.Projection
	sagas       []Saga
}

// WithProjections registers projections with the ProjectionService
// (default: none). Names must be unique.
func WithProjections(ps ...*projection.Projection) Option {
	return func(o *options) { o.projections = append(o.projections, ps...) }
}

// WithSagas registers sagas with the SagaService (default: none); wrap each
// *saga.Saga[S] with SagaOf. Names must be unique.
func WithSagas(ss ...Saga) Option {
	return func(o *options) { o.sagas = append(o.sagas, ss...) }
}

// New returns the services on store. It reports every problem with its
// arguments at once.
func New(store eventstore.Store, opts ...Option) (*Admin, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("admin: store is nil"))
	}
	a := &Admin{store: store, projections: map[string]*projection.Projection{}, sagas: map[string]Saga{}}
	for i, p := range o.projections {
		switch {
		case p == nil:
			errs = append(errs, fmt.Errorf("admin: projection %d is nil", i))
		case a.projections[p.Name()] != nil:
			errs = append(errs, fmt.Errorf("admin: projection %q registered twice", p.Name()))
		default:
			a.projections[p.Name()] = p
		}
	}
	for i, s := range o.sagas {
		switch {
		case s == nil:
			errs = append(errs, fmt.Errorf("admin: saga %d is nil", i))
		case a.sagas[s.Name()] != nil:
			errs = append(errs, fmt.Errorf("admin: saga %q registered twice", s.Name()))
		default:
			a.sagas[s.Name()] = s
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	a.mu.members = map[memberKey]*member{}
	a.es = &eventStoreServer{a: a}
	a.group = &groupServer{a: a}
	a.trace = &traceServer{a: a}
	a.proj = &projectionServer{a: a}
	a.saga = &sagaServer{a: a}
	return a, nil
}

// Register registers the five services with s.
func (a *Admin) Register(s grpc.ServiceRegistrar) {
	muninnv1.RegisterEventStoreServiceServer(s, a.es)
	muninnv1.RegisterGroupServiceServer(s, a.group)
	muninnv1.RegisterTraceServiceServer(s, a.trace)
	muninnv1.RegisterProjectionServiceServer(s, a.proj)
	muninnv1.RegisterSagaServiceServer(s, a.saga)
}

// RegisterGateway registers the REST routes of the five services with mux,
// forwarding to the gRPC server at the other end of conn.
//
// Stream keys and log positions ("orders/0@12") may hold a slash: a client
// escapes it in the path (%2F), and the mux must then be made with
// runtime.WithUnescapingMode(runtime.UnescapingModeAllExceptReserved) (or
// another mode but the legacy default), which matches escaped segments and
// unescapes the parameter; the legacy mode answers 404.
func (a *Admin) RegisterGateway(ctx context.Context, mux *runtime.ServeMux, conn *grpc.ClientConn) error {
	for _, reg := range []func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error{
		muninnv1.RegisterEventStoreServiceHandler,
		muninnv1.RegisterGroupServiceHandler,
		muninnv1.RegisterTraceServiceHandler,
		muninnv1.RegisterProjectionServiceHandler,
		muninnv1.RegisterSagaServiceHandler,
	} {
		if err := reg(ctx, mux, conn); err != nil {
			return fmt.Errorf("admin: register gateway: %w", err)
		}
	}
	return nil
}

// OpenAPI returns the OpenAPI (Swagger 2.0) descriptions of the services,
// one JSON document per service, sorted by file name.
func OpenAPI() [][]byte {
	names, err := fs.Glob(muninnv1.OpenAPI, "*.swagger.json")
	if err != nil {
		panic(err) // the pattern is constant and valid
	}
	sort.Strings(names)
	docs := make([][]byte, 0, len(names))
	for _, n := range names {
		b, err := muninnv1.OpenAPI.ReadFile(n)
		if err != nil {
			panic(err) // embedded: cannot fail
		}
		docs = append(docs, b)
	}
	return docs
}

// invalid returns an InvalidArgument status naming field, with a
// google.rpc.BadRequest field violation.
func invalid(field, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	st := status.New(codes.InvalidArgument, field+": "+msg)
	if d, err := st.WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: field, Description: msg}}}); err == nil {
		st = d
	}
	return st.Err()
}

// notFound returns a NotFound status.
func notFound(format string, args ...any) error {
	return status.Errorf(codes.NotFound, format, args...)
}

// toStatus maps err to a gRPC status error: status errors as they are,
// store and saga sentinels and command kinds to their codes.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	var code codes.Code
	switch {
	case errors.Is(err, eventstore.ErrTopicNotFound), errors.Is(err, eventstore.ErrGroupNotFound), errors.Is(err, saga.ErrNotFound):
		code = codes.NotFound
	case errors.Is(err, eventstore.ErrNotAssigned), errors.Is(err, consume.ErrRunning):
		code = codes.FailedPrecondition
	case errors.Is(err, eventstore.ErrTopicExists):
		code = codes.AlreadyExists
	default:
		switch command.KindOf(err) {
		case command.KindInvalidArgument:
			code = codes.InvalidArgument
		case command.KindFailedPrecondition:
			code = codes.FailedPrecondition
		case command.KindNotFound:
			code = codes.NotFound
		case command.KindAborted:
			code = codes.Aborted
		case command.KindPermissionDenied:
			code = codes.PermissionDenied
		case command.KindCanceled:
			code = codes.Canceled
		case command.KindDeadlineExceeded:
			code = codes.DeadlineExceeded
		case command.KindUnavailable:
			code = codes.Unavailable
		default:
			code = codes.Internal
		}
	}
	return status.Error(code, err.Error())
}

// pageSize checks a request's page size (or limit) and applies the default.
// readPage reads a list request's page_size and page_token: the page's size
// and the key the page starts after.
func readPage(size int32, token string) (int, string, error) {
	n, err := pageSize("page_size", size)
	if err != nil {
		return 0, "", err
	}
	after, err := decodeToken(token)
	if err != nil {
		return 0, "", err
	}
	return n, after, nil
}

func pageSize(field string, n int32) (int, error) {
	switch {
	case n < 0:
		return 0, invalid(field, "must not be negative, got %d", n)
	case n == 0:
		return DefaultPageSize, nil
	case n > MaxPageSize:
		return 0, invalid(field, "must be at most %d, got %d", MaxPageSize, n)
	}
	return int(n), nil
}

// Page tokens are the last item's key, opaque to clients.
func encodeToken(s string) string { return base64.RawURLEncoding.EncodeToString([]byte("k:" + s)) }

func decodeToken(tok string) (string, error) {
	if tok == "" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || !strings.HasPrefix(string(b), "k:") {
		return "", invalid("page_token", "not a token this server gave")
	}
	return string(b[2:]), nil
}

// pageOf returns the page of sorted names after token.
func pageOf(names []string, token string, size int) (page []string, next string) {
	i := sort.SearchStrings(names, token)
	if token != "" && i < len(names) && names[i] == token {
		i++
	}
	names = names[i:]
	if len(names) > size {
		return names[:size], encodeToken(names[size-1])
	}
	return names, ""
}
