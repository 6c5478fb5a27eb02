package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"strconv"
	"sync/atomic"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// HTTP response headers the gateway sets from a command's result.
const (
	// PositionHeader carries PositionKey: pass it as min_position.
	PositionHeader = "Muninn-Position"
	// VersionHeader carries VersionKey; the ETag header carries it too,
	// quoted, so that it can be sent back as If-Match.
	VersionHeader = "Muninn-Version"
)

// NewGatewayMux returns a grpc-gateway mux configured for Muninn:
//
//   - the request headers Idempotency-Key, X-Correlation-ID, traceparent
//     and If-Match (as expected-version) go to the gRPC call's metadata
//     (see the keys in call.go), besides the gateway's defaults;
//   - the response headers muninn-position and muninn-version become
//     Muninn-Position, Muninn-Version and ETag;
//   - JSON uses the proto field names and shows zero values; an unknown
//     field, malformed JSON or a value of the wrong type is 400 with a
//     message saying what is wrong;
//   - errors are a JSON body {"code": "NOT_FOUND", "message": "...",
//     "field_violations": [{"field": ..., "description": ...}],
//     "details": [...]} with the HTTP status of the code (HTTPStatus).
//
// Serve it behind LimitBody (a Server does), so that an oversized body is
// 413. Of the options it uses WithLogger; it panics on an invalid one.
func NewGatewayMux(opts ...Option) *runtime.ServeMux {
	o := mustOptions(opts)
	m := &runtime.HTTPBodyMarshaler{Marshaler: &jsonMarshaler{JSONPb: runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true, UseProtoNames: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}}
	return runtime.NewServeMux(
		runtime.WithMarshalerOption(runtime.MIMEWildcard, m),
		// Path parameters may hold an escaped slash (stream keys, positions
		// "orders/0@12"): match escaped segments and unescape the value.
		runtime.WithUnescapingMode(runtime.UnescapingModeAllExceptReserved),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithForwardResponseOption(setETag),
		runtime.WithErrorHandler(func(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
			writeError(ctx, o.logger, w, r, err)
		}),
		runtime.WithRoutingErrorHandler(func(_ context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, code int) {
			switch code {
			case http.StatusMethodNotAllowed:
				writeJSONError(w, code, codes.Unimplemented, fmt.Sprintf("method %s is not allowed on %s", r.Method, r.URL.Path), nil, nil)
			case http.StatusNotFound:
				writeJSONError(w, code, codes.NotFound, "no route for "+r.URL.Path, nil, nil)
			default:
				writeJSONError(w, code, codes.InvalidArgument, http.StatusText(code), nil, nil)
			}
		}),
	)
}

// HTTPStatus returns the HTTP status of a gRPC code, as the gateway
// writes it: InvalidArgument and OutOfRange 400, FailedPrecondition 412,
// NotFound 404, Aborted and AlreadyExists 409, PermissionDenied 403,
// Unauthenticated 401, ResourceExhausted 429, Canceled 499, Unavailable
// 503, DeadlineExceeded 504, Unimplemented 501, and the rest 500.
func HTTPStatus(c codes.Code) int {
	switch c {
	case codes.OK:
		return http.StatusOK
	case codes.InvalidArgument, codes.OutOfRange:
		return http.StatusBadRequest
	case codes.FailedPrecondition:
		return http.StatusPreconditionFailed
	case codes.NotFound:
		return http.StatusNotFound
	case codes.Aborted, codes.AlreadyExists:
		return http.StatusConflict
	case codes.PermissionDenied:
		return http.StatusForbidden
	case codes.Unauthenticated:
		return http.StatusUnauthorized
	case codes.ResourceExhausted:
		return http.StatusTooManyRequests
	case codes.Canceled:
		return 499
	case codes.Unavailable:
		return http.StatusServiceUnavailable
	case codes.DeadlineExceeded:
		return http.StatusGatewayTimeout
	case codes.Unimplemented:
		return http.StatusNotImplemented
	default:
		return http.StatusInternalServerError
	}
}

func incomingHeader(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case "Idempotency-Key":
		return IdempotencyKey, true
	case "X-Correlation-Id":
		return CorrelationKey, true
	case "Traceparent":
		return TraceparentKey, true
	case "If-Match":
		return ExpectedVersionKey, true
	}
	return runtime.DefaultHeaderMatcher(key)
}

func outgoingHeader(key string) (string, bool) {
	switch key {
	case PositionKey:
		return PositionHeader, true
	case VersionKey:
		return VersionHeader, true
	case "content-type":
		return "", false
	}
	return runtime.MetadataHeaderPrefix + key, true
}

func setETag(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
	md, ok := runtime.ServerMetadataFromContext(ctx)
	if !ok {
		return nil
	}
	if v := md.HeaderMD.Get(VersionKey); len(v) > 0 {
		w.Header().Set("ETag", strconv.Quote(v[0]))
	}
	return nil
}

// jsonMarshaler is runtime.JSONPb whose decoding errors say they are the
// request body's, and which refuses anything after the body's one JSON
// value (so REST bodies are one message each: client streaming through
// the gateway is not supported).
type jsonMarshaler struct{ runtime.JSONPb }

func (m *jsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return runtime.DecoderFunc(func(v any) error {
		dec := json.NewDecoder(r)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return err // no body
			}
			return fmt.Errorf("request body: %w", err)
		}
		if _, err := dec.Token(); !errors.Is(err, io.EOF) {
			return errors.New("request body: unexpected data after the JSON value")
		}
		if err := m.JSONPb.Unmarshal(raw, v); err != nil {
			return fmt.Errorf("request body: %w", err)
		}
		return nil
	})
}

type bodyLimitKey struct{}

// bodyLimit records that a request's body went over the limit.
type bodyLimit struct {
	n        int64
	exceeded atomic.Bool
}

type limitedBody struct {
	io.ReadCloser
	lim *bodyLimit
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		b.lim.exceeded.Store(true)
	}
	return n, err
}

// LimitBody returns h refusing request bodies of more than n bytes with
// HTTP 413 and a JSON error naming the limit (a Server wraps its gateway
// in it, with WithMaxBodyBytes).
func LimitBody(h http.Handler, n int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > n {
			writeJSONError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, tooLarge(n), nil, nil)
			return
		}
		lim := &bodyLimit{n: n}
		r = r.WithContext(context.WithValue(r.Context(), bodyLimitKey{}, lim))
		r.Body = &limitedBody{ReadCloser: http.MaxBytesReader(w, r.Body, n), lim: lim}
		h.ServeHTTP(w, r)
	})
}

func tooLarge(n int64) string {
	return fmt.Sprintf("request body exceeds the limit of %d bytes", n)
}

type fieldViolationJSON struct {
	Field       string `json:"field"`
	Description string `json:"description"`
}

type errorJSON struct {
	Code            string               `json:"code"`
	Message         string               `json:"message"`
	FieldViolations []fieldViolationJSON `json:"field_violations,omitempty"`
	Details         []json.RawMessage    `json:"details,omitempty"`
}

// writeError writes err as the gateway's JSON error.
func writeError(ctx context.Context, log *slog.Logger, w http.ResponseWriter, r *http.Request, err error) {
	if lim, ok := r.Context().Value(bodyLimitKey{}).(*bodyLimit); ok && lim.exceeded.Load() {
		writeJSONError(w, http.StatusRequestEntityTooLarge, codes.InvalidArgument, tooLarge(lim.n), nil, nil)
		return
	}
	s := Status(err)
	if _, fromServer := status.FromError(err); !fromServer && s.Code() == codes.Internal {
		// The gRPC server logged its own; this one is the gateway's.
		log.ErrorContext(ctx, "service: gateway error", "path", r.URL.Path, "error", err)
	}
	var fvs []fieldViolationJSON
	var details []json.RawMessage
	for _, a := range s.Proto().GetDetails() {
		var br errdetails.BadRequest
		if a.MessageIs(&br) && a.UnmarshalTo(&br) == nil {
			for _, v := range br.GetFieldViolations() {
				fvs = append(fvs, fieldViolationJSON{Field: v.GetField(), Description: v.GetDescription()})
			}
			continue
		}
		if b, err := protojson.Marshal(a); err == nil {
			details = append(details, b)
		}
	}
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		for k, vs := range md.HeaderMD {
			if h, ok := outgoingHeader(k); ok {
				for _, v := range vs {
					w.Header().Add(h, v)
				}
			}
		}
	}
	writeJSONError(w, HTTPStatus(s.Code()), s.Code(), s.Message(), fvs, details)
}

func writeJSONError(w http.ResponseWriter, httpStatus int, c codes.Code, msg string, fvs []fieldViolationJSON, details []json.RawMessage) {
	b, err := json.Marshal(errorJSON{Code: describeCode(c), Message: msg, FieldViolations: fvs, Details: details})
	if err != nil {
		b = []byte(`{"code":"INTERNAL","message":"internal error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(httpStatus)
	_, _ = w.Write(append(b, '\n'))
}
