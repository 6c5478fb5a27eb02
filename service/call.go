package service

import (
	"context"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
)

// Metadata keys the server reads from a call (gRPC metadata keys are lower
// case; the gateway forwards the HTTP headers of the same name, and maps
// If-Match to ExpectedVersionKey).
const (
	// IdempotencyKey carries the command ID: a retried command with the
	// same key returns its first result (HTTP header Idempotency-Key).
	IdempotencyKey = "idempotency-key"
	// CorrelationKey carries the correlation ID (HTTP header
	// X-Correlation-ID). Without it, the trace ID of a W3C traceparent is
	// used, and without that the command ID.
	CorrelationKey = "x-correlation-id"
	// TraceparentKey is the W3C trace context header.
	TraceparentKey = "traceparent"
	// ExpectedVersionKey carries the aggregate version the caller saw (HTTP
	// If-Match): the command fails with Aborted if the aggregate moved on.
	ExpectedVersionKey = "expected-version"
	// PositionKey is the response header (gRPC header metadata and HTTP
	// header Muninn-Position) with the log position of a command's last
	// event, "topic/partition@offset": pass it as a query's min_position to
	// read your writes.
	PositionKey = "muninn-position"
	// VersionKey is the response header with the aggregate's version after
	// a command (HTTP header Muninn-Version; use it as the next If-Match).
	VersionKey = "muninn-version"
)

// Call is what the server's interceptors read from a call's metadata.
type Call struct {
	// CommandID is the idempotency key, or "".
	CommandID string
	// CorrelationID is the correlation ID, or "".
	CorrelationID string
	// ExpectedVersion is the expected version when HasExpectedVersion.
	ExpectedVersion    uint64
	HasExpectedVersion bool
}

type callKey struct{}

// WithCall returns ctx carrying c; the server's interceptors call it, tests
// and in-process callers may too. It also sets the command correlation ID
// (command.WithCorrelationID) when c has one.
func WithCall(ctx context.Context, c Call) context.Context {
	if c.CorrelationID != "" {
		ctx = command.WithCorrelationID(ctx, c.CorrelationID)
	}
	return context.WithValue(ctx, callKey{}, c)
}

// CallFrom returns the Call of ctx: what WithCall put there, else what the
// incoming gRPC metadata of ctx says (parsed afresh), else the zero Call.
func CallFrom(ctx context.Context) Call {
	if c, ok := ctx.Value(callKey{}).(Call); ok {
		return c
	}
	c, _ := parseCall(ctx)
	return c
}

// DispatchOptions returns the command options of the call in ctx: its
// idempotency key as the command ID and its expected version. Pass them to
// a command.Handler's Dispatch, before options of your own.
func DispatchOptions(ctx context.Context) []command.DispatchOption {
	c := CallFrom(ctx)
	var opts []command.DispatchOption
	if c.CommandID != "" {
		opts = append(opts, command.WithCommandID(c.CommandID))
	}
	if c.HasExpectedVersion {
		opts = append(opts, command.WithExpectedVersion(c.ExpectedVersion))
	}
	return opts
}

// SetResult sends a command's outcome as response headers: PositionKey
// (when the command appended, or a duplicate's first append) and
// VersionKey. Call it from a gRPC handler before returning its response.
func SetResult(ctx context.Context, r command.Result) error {
	md := metadata.Pairs(VersionKey, strconv.FormatUint(r.Version, 10))
	if p := r.Position(); p.Offset >= 0 {
		md.Append(PositionKey, p.String())
	}
	return grpc.SetHeader(ctx, md)
}

// PositionString returns the text form of p, or "" for a position with no
// offset (Offset -1: nothing was appended).
func PositionString(p eventstore.Position) string {
	if p.Offset < 0 {
		return ""
	}
	return p.String()
}

// parseCall reads the Call from incoming gRPC metadata. The error is a
// *FieldViolation naming the malformed key.
func parseCall(ctx context.Context) (Call, error) {
	var c Call
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return c, nil
	}
	first := func(k string) string {
		if v := md.Get(k); len(v) > 0 {
			return v[0]
		}
		return ""
	}
	c.CommandID = first(IdempotencyKey)
	c.CorrelationID = first(CorrelationKey)
	if c.CorrelationID == "" {
		c.CorrelationID = traceID(first(TraceparentKey))
	}
	if v := first(ExpectedVersionKey); v != "" {
		n, err := strconv.ParseUint(trimETag(v), 10, 64)
		if err != nil {
			return c, FieldError(ExpectedVersionKey, "%q is not a version (a non-negative integer; HTTP If-Match)", v)
		}
		c.ExpectedVersion, c.HasExpectedVersion = n, true
	}
	return c, nil
}

// traceID returns the trace ID of a W3C traceparent
// ("00-<32 hex>-<16 hex>-<2 hex>"), or "" if tp is not one.
func traceID(tp string) string {
	if len(tp) < 55 || tp[2] != '-' || tp[35] != '-' {
		return ""
	}
	id := tp[3:35]
	for _, r := range id {
		if !('0' <= r && r <= '9' || 'a' <= r && r <= 'f') {
			return ""
		}
	}
	if id == "00000000000000000000000000000000" {
		return ""
	}
	return id
}

// trimETag strips the quotes and weak prefix of an HTTP entity tag, so that
// If-Match: "3" and W/"3" read as version 3.
func trimETag(v string) string {
	if len(v) > 2 && v[:2] == "W/" {
		v = v[2:]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v
}
