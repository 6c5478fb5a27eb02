package service_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"

	"github.com/muninn-es/muninn/service"
	testv1 "github.com/muninn-es/muninn/service/internal/testapi/test/v1"
)

type errorBody struct {
	Code            string `json:"code"`
	Message         string `json:"message"`
	FieldViolations []struct {
		Field       string `json:"field"`
		Description string `json:"description"`
	} `json:"field_violations"`
	Details []json.RawMessage `json:"details"`
}

func decodeError(t *testing.T, body string) errorBody {
	t.Helper()
	var e errorBody
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e
}

// Every kind of error reaches a gRPC client as its code, and a REST client
// as its HTTP status with a JSON body; Internal hides its detail.
func TestErrorMapping(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, tc := range []struct {
		kind     string
		code     codes.Code
		name     string
		httpCode int
	}{
		{"invalid", codes.InvalidArgument, "INVALID_ARGUMENT", 400},
		{"field", codes.InvalidArgument, "INVALID_ARGUMENT", 400},
		{"rejected", codes.FailedPrecondition, "FAILED_PRECONDITION", 412},
		{"notfound", codes.NotFound, "NOT_FOUND", 404},
		{"topic", codes.NotFound, "NOT_FOUND", 404},
		{"conflict", codes.Aborted, "ABORTED", 409},
		{"exists", codes.AlreadyExists, "ALREADY_EXISTS", 409},
		{"denied", codes.PermissionDenied, "PERMISSION_DENIED", 403},
		{"closed", codes.Unavailable, "UNAVAILABLE", 503},
		{"deadline", codes.DeadlineExceeded, "DEADLINE_EXCEEDED", 504},
		{"canceled", codes.Canceled, "CANCELLED", 499},
		{"internal", codes.Internal, "INTERNAL", 500},
		{"panic", codes.Internal, "INTERNAL", 500},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			_, err := e.client.Fail(ctx, &testv1.FailRequest{Kind: tc.kind, Message: "m-" + tc.kind})
			st := status.Convert(err)
			if st.Code() != tc.code {
				t.Fatalf("gRPC: %v, want %v", err, tc.code)
			}
			if tc.code == codes.Internal {
				if st.Message() != "internal error" {
					t.Errorf("Internal leaks its detail: %q", st.Message())
				}
			} else if !strings.Contains(st.Message(), "m-"+tc.kind) && tc.kind != "field" {
				t.Errorf("message %q lost the handler's", st.Message())
			}

			res, body := e.do(t, "POST", "/v1/fail", `{"kind":"`+tc.kind+`","message":"m-`+tc.kind+`"}`)
			eb := decodeError(t, body)
			if res.StatusCode != tc.httpCode || eb.Code != tc.name {
				t.Fatalf("HTTP %d %s, want %d %s: %s", res.StatusCode, eb.Code, tc.httpCode, tc.name, body)
			}
			if tc.code == codes.Internal && strings.Contains(body, "secret") || strings.Contains(body, "handler bug") {
				t.Errorf("Internal leaks its detail: %s", body)
			}
		})
	}
	if !strings.Contains(e.logs.String(), "secret detail: m-internal") || !strings.Contains(e.logs.String(), "handler bug: m-panic") {
		t.Errorf("the detail of Internal errors is not logged:\n%s", e.logs.String())
	}
	// The server survived the panics.
	if _, err := e.client.Add(ctx, &testv1.AddRequest{CounterId: "c", Amount: 1}); err != nil {
		t.Fatal(err)
	}
}

// Field errors carry google.rpc.BadRequest over gRPC and field_violations
// over REST, one per field.
func TestFieldViolations(t *testing.T) {
	e := newEnv(t)
	_, err := e.client.Fail(context.Background(), &testv1.FailRequest{Kind: "field", Message: "cash"})
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if strings.Join(fields, ",") != "items[1].quantity,payment_method" {
		t.Fatalf("gRPC field violations %v (%v)", fields, err)
	}
	res, body := e.do(t, "POST", "/v1/fail", `{"kind":"field","message":"cash"}`)
	eb := decodeError(t, body)
	if res.StatusCode != 400 || len(eb.FieldViolations) != 2 || eb.FieldViolations[1].Field != "payment_method" ||
		!strings.Contains(eb.FieldViolations[1].Description, `"cash"`) {
		t.Fatalf("HTTP %d %s", res.StatusCode, body)
	}
	// A decide function's field error, through the bus.
	res, body = e.do(t, "POST", "/v1/counters/c:add", `{"amount":0}`)
	eb = decodeError(t, body)
	if res.StatusCode != 400 || len(eb.FieldViolations) != 1 || eb.FieldViolations[0].Field != "amount" {
		t.Fatalf("HTTP %d %s", res.StatusCode, body)
	}
}

// Bad request bodies are a clear 400 (413 when too large), never a 5xx.
func TestBadBodies(t *testing.T) {
	e := newEnv(t, service.WithMaxBodyBytes(1024))
	big := `{"amount":1,"note":"` + strings.Repeat("x", 4096) + `"}`
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"malformed", `{"amount":`, 400, "request body"},
		{"not JSON", `amount=1`, 400, "request body"},
		{"unknown field", `{"amount":1,"amountt":2}`, 400, "unknown field"},
		{"wrong type", `{"amount":"lots"}`, 400, "amount"},
		{"wrong type object", `{"amount":{"x":1}}`, 400, "amount"},
		{"too large", big, 413, "limit of 1024 bytes"},
		{"trailing data", `{"amount":1} {"amount":2}`, 400, "after the JSON value"},
		{"trailing garbage", `{"amount":1} x`, 400, "request body"},
		{"huge number", `{"amount":99999999999999999999}`, 400, "amount"},
		{"unicode", `{"amount":1,"note":"ünïcødé ✓"}`, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, body := e.do(t, "POST", "/v1/counters/b:add", tc.body)
			if res.StatusCode != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("HTTP %d %s, want %d with %q", res.StatusCode, body, tc.status, tc.want)
			}
			if tc.status != 200 {
				if eb := decodeError(t, body); eb.Code != "INVALID_ARGUMENT" {
					t.Errorf("code %q", eb.Code)
				}
			}
		})
	}
	t.Run("too large, chunked", func(t *testing.T) {
		req, err := http.NewRequest("POST", e.base+"/v1/counters/b:add", io.NopCloser(strings.NewReader(big)))
		if err != nil {
			t.Fatal(err)
		}
		res, body := send(t, req)
		if res.StatusCode != 413 || !strings.Contains(body, "limit of 1024 bytes") {
			t.Fatalf("HTTP %d %s", res.StatusCode, body)
		}
	})
	t.Run("no route", func(t *testing.T) {
		res, body := e.do(t, "GET", "/v1/nothing/here", "")
		if res.StatusCode != 404 || decodeError(t, body).Code != "NOT_FOUND" {
			t.Fatalf("HTTP %d %s", res.StatusCode, body)
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		res, body := e.do(t, "DELETE", "/v1/counters/b", "")
		if res.StatusCode >= 500 && res.StatusCode != 501 || res.StatusCode == 200 {
			t.Fatalf("HTTP %d %s", res.StatusCode, body)
		}
	})
}

type addJSON struct {
	CounterID string `json:"counter_id"`
	Version   string `json:"version"`
	Position  string `json:"position"`
	Duplicate bool   `json:"duplicate"`
}

// A command over REST: Idempotency-Key makes a retry return the first
// result; Muninn-Position read back as min_position reads the write;
// If-Match is the expected version.
func TestCommandOverREST(t *testing.T) {
	e := newEnv(t)
	res, body := e.do(t, "POST", "/v1/counters/c1:add", `{"amount":5}`, "Idempotency-Key", "key-1")
	var first addJSON
	if res.StatusCode != 200 || json.Unmarshal([]byte(body), &first) != nil || first.Version != "1" || first.Duplicate {
		t.Fatalf("HTTP %d %s", res.StatusCode, body)
	}
	pos := res.Header.Get("Muninn-Position")
	if pos == "" || pos != first.Position || res.Header.Get("Muninn-Version") != "1" || res.Header.Get("ETag") != `"1"` {
		t.Fatalf("headers %v, body %s", res.Header, body)
	}
	// Zero values show.
	if !strings.Contains(body, `"duplicate":false`) {
		t.Errorf("zero value hidden: %s", body)
	}

	res, body = e.do(t, "POST", "/v1/counters/c1:add", `{"amount":5}`, "Idempotency-Key", "key-1")
	var again addJSON
	if res.StatusCode != 200 || json.Unmarshal([]byte(body), &again) != nil || !again.Duplicate ||
		again.Version != "1" || again.Position != first.Position || res.Header.Get("Muninn-Position") != pos {
		t.Fatalf("retry: HTTP %d %s %v", res.StatusCode, body, res.Header)
	}

	res, body = e.do(t, "GET", "/v1/counters/c1?min_position="+pos, "")
	if res.StatusCode != 200 || !strings.Contains(body, `"value":"5"`) {
		t.Fatalf("read your write: HTTP %d %s", res.StatusCode, body)
	}

	// If-Match: the version seen.
	res, body = e.do(t, "POST", "/v1/counters/c1:add", `{"amount":1}`, "If-Match", `"1"`)
	if res.StatusCode != 200 || res.Header.Get("ETag") != `"2"` {
		t.Fatalf("If-Match current: HTTP %d %s", res.StatusCode, body)
	}
	res, body = e.do(t, "POST", "/v1/counters/c1:add", `{"amount":1}`, "If-Match", `"1"`)
	if res.StatusCode != 409 || decodeError(t, body).Code != "ABORTED" {
		t.Fatalf("If-Match stale: HTTP %d %s", res.StatusCode, body)
	}
	res, body = e.do(t, "POST", "/v1/counters/c1:add", `{"amount":1}`, "If-Match", `"one"`)
	eb := decodeError(t, body)
	if res.StatusCode != 400 || len(eb.FieldViolations) != 1 || eb.FieldViolations[0].Field != service.ExpectedVersionKey {
		t.Fatalf("If-Match malformed: HTTP %d %s", res.StatusCode, body)
	}

	res, body = e.do(t, "GET", "/v1/counters/nobody", "")
	if res.StatusCode != 404 {
		t.Fatalf("unknown counter: HTTP %d %s", res.StatusCode, body)
	}
	res, body = e.do(t, "POST", "/v1/counters/c1:add", `{"amount":-1}`)
	if res.StatusCode != 412 {
		t.Fatalf("rejected: HTTP %d %s", res.StatusCode, body)
	}
}

// Over gRPC: the headers carry the position and version; the idempotency
// key and expected version are metadata.
func TestCommandOverGRPC(t *testing.T) {
	e := newEnv(t)
	ctx := metadata.AppendToOutgoingContext(context.Background(), service.IdempotencyKey, "g-1")
	var hdr metadata.MD
	r1, err := e.client.Add(ctx, &testv1.AddRequest{CounterId: "g", Amount: 2}, grpcHeader(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get(service.PositionKey); len(got) != 1 || got[0] != r1.GetPosition() {
		t.Fatalf("position header %v, response %v", got, r1)
	}
	r2, err := e.client.Add(ctx, &testv1.AddRequest{CounterId: "g", Amount: 2})
	if err != nil || !r2.GetDuplicate() || r2.GetVersion() != 1 {
		t.Fatalf("retry: %v, %v", r2, err)
	}
	g, err := e.client.GetCounter(context.Background(), &testv1.GetCounterRequest{CounterId: "g", MinPosition: r1.GetPosition()})
	if err != nil || g.GetValue() != 2 {
		t.Fatalf("read: %v, %v", g, err)
	}
	stale := metadata.AppendToOutgoingContext(context.Background(), service.ExpectedVersionKey, "0")
	if _, err := e.client.Add(stale, &testv1.AddRequest{CounterId: "g", Amount: 1}); status.Code(err) != codes.Aborted {
		t.Fatalf("stale expected version: %v", err)
	}
	bad := metadata.AppendToOutgoingContext(context.Background(), service.ExpectedVersionKey, "-3")
	_, err = e.client.Add(bad, &testv1.AddRequest{CounterId: "g", Amount: 1})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), service.ExpectedVersionKey) {
		t.Fatalf("malformed expected version: %v", err)
	}
	if _, err := e.client.Add(context.Background(), &testv1.AddRequest{Amount: 1}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("no counter_id: %v", err)
	}
}

// A min_position the read model does not reach in time is 412 naming the
// position asked and the one reached; a malformed one is 400 naming
// min_position.
func TestAwait(t *testing.T) {
	e := newEnv(t, service.WithAwaitTimeout(50*time.Millisecond))
	res, body := e.do(t, "POST", "/v1/counters/a:add", `{"amount":1}`)
	pos := res.Header.Get("Muninn-Position")
	if res.StatusCode != 200 || pos == "" {
		t.Fatalf("HTTP %d %s", res.StatusCode, body)
	}
	if res, body = e.do(t, "GET", "/v1/counters/a?min_position="+pos, ""); res.StatusCode != 200 {
		t.Fatalf("HTTP %d %s", res.StatusCode, body)
	}
	far := strings.Split(pos, "@")[0] + "@1000"
	res, body = e.do(t, "GET", "/v1/counters/a?min_position="+far, "")
	eb := decodeError(t, body)
	if res.StatusCode != 412 || eb.Code != "FAILED_PRECONDITION" || !strings.Contains(eb.Message, far) ||
		!strings.Contains(eb.Message, "it is at "+pos) || !strings.Contains(eb.Message, "within 50ms") {
		t.Fatalf("HTTP %d %s (wrote %s)", res.StatusCode, body, pos)
	}
	// Several positions, comma-separated.
	if res, body = e.do(t, "GET", "/v1/counters/a?min_position="+pos+","+pos, ""); res.StatusCode != 200 {
		t.Fatalf("two positions: HTTP %d %s", res.StatusCode, body)
	}
	for _, bad := range []string{"garbage", "counter/0@x", "nosuchtopic/0@1"} {
		res, body = e.do(t, "GET", "/v1/counters/a?min_position="+bad, "")
		eb = decodeError(t, body)
		if res.StatusCode != 400 || len(eb.FieldViolations) != 1 || eb.FieldViolations[0].Field != "min_position" {
			t.Fatalf("%s: HTTP %d %s", bad, res.StatusCode, body)
		}
	}
	_, err := e.client.GetCounter(context.Background(), &testv1.GetCounterRequest{CounterId: "a", MinPosition: far})
	if status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("gRPC: %v", err)
	}
}

// /healthz, /readyz (checks), /openapi.json (merged), gRPC health and
// reflection.
func TestHealthReadyOpenAPI(t *testing.T) {
	trace, err := os.ReadFile("../api/muninn/v1/trace.swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, service.WithOpenAPI(trace), service.WithTitle("counters"))
	if res, body := e.do(t, "GET", "/healthz", ""); res.StatusCode != 200 {
		t.Fatalf("healthz %d %s", res.StatusCode, body)
	}
	// The projection goes live once it has read its (empty) topic.
	waitReady(t, e, 200)
	e.ready.Store(false)
	res, body := e.do(t, "GET", "/readyz", "")
	if res.StatusCode != 503 || !strings.Contains(body, "switched off") {
		t.Fatalf("readyz with a failing check: %d %s", res.StatusCode, body)
	}
	e.ready.Store(true)
	waitReady(t, e, 200)

	res, body = e.do(t, "GET", "/openapi.json", "")
	var doc struct {
		Swagger     string                     `json:"swagger"`
		Info        map[string]string          `json:"info"`
		Paths       map[string]json.RawMessage `json:"paths"`
		Definitions map[string]json.RawMessage `json:"definitions"`
	}
	if res.StatusCode != 200 || json.Unmarshal([]byte(body), &doc) != nil {
		t.Fatalf("openapi %d %s", res.StatusCode, body)
	}
	for _, p := range []string{"/v1/counters/{counter_id}:add", "/v1/counters/{counter_id}", "/v1/traces/{correlation_id}"} {
		if doc.Paths[p] == nil {
			t.Errorf("path %s missing from %v", p, doc.Paths)
		}
	}
	if doc.Definitions["v1AddRequest"] == nil && doc.Definitions["CounterServiceAddBody"] == nil || doc.Info["title"] != "counters" {
		t.Errorf("definitions %v, info %v", doc.Definitions, doc.Info)
	}

	h, err := healthpb.NewHealthClient(e.conn).Check(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health: %v, %v", h, err)
	}
	h, err = healthpb.NewHealthClient(e.conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: "muninntest.v1.CounterService"})
	if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health of the service: %v, %v", h, err)
	}
	rs, err := reflectionpb.NewServerReflectionClient(e.conn).ServerReflectionInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := rs.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	lr, err := rs.Recv()
	if err != nil || !strings.Contains(lr.String(), "muninntest.v1.CounterService") {
		t.Fatalf("reflection: %v, %v", lr, err)
	}
	rs.CloseSend()
}

// Conflicting OpenAPI documents and bad options are refused by New, all
// at once.
func TestNewRefuses(t *testing.T) {
	a := []byte(`{"swagger":"2.0","paths":{},"definitions":{"X":{"type":"object"}}}`)
	b := []byte(`{"swagger":"2.0","paths":{},"definitions":{"X":{"type":"string"}}}`)
	if _, err := service.New(service.WithOpenAPI(a, b)); err == nil || !strings.Contains(err.Error(), `"X"`) {
		t.Errorf("conflicting definitions: %v", err)
	}
	if _, err := service.New(service.WithOpenAPI([]byte(`[1]`))); err == nil {
		t.Error("a non-object document is accepted")
	}
	_, err := service.New(service.WithMaxBodyBytes(0), service.WithAwaitTimeout(-1), service.WithGRPCAddr(""))
	if err == nil || !strings.Contains(err.Error(), "max body") || !strings.Contains(err.Error(), "await timeout") ||
		!strings.Contains(err.Error(), "gRPC address") {
		t.Errorf("bad options: %v", err)
	}
}

// Shutdown stops intake (health NOT_SERVING, readyz 503) and lets an
// in-flight REST call finish.
func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t)
	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("POST", e.base+"/v1/block", strings.NewReader(`{"id":"b-1"}`))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{0, err.Error()}
			return
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		done <- result{res.StatusCode, string(b)}
	}()
	var once sync.Once
	release := func() { once.Do(func() { close(e.svc.release) }) }
	t.Cleanup(release) // runs before the env's cleanup: a failure does not hang the shutdown
	if id := <-e.svc.entered; id != "b-1" {
		t.Fatalf("entered %q", id)
	}
	health := healthpb.NewHealthClient(e.conn)
	shut := make(chan error, 1)
	go func() { shut <- e.srv.Shutdown(context.Background()) }()
	// Wait until intake stopped: the health service says so, and so does
	// a watch, which the shutdown then ends.
	w, err := health.Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		r, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{})
		if err != nil {
			t.Fatalf("health: %v", err)
		}
		if r.GetStatus() == healthpb.HealthCheckResponse_NOT_SERVING {
			break
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("health still SERVING during shutdown")
		}
	}
	select {
	case err := <-shut:
		t.Fatalf("shutdown returned with a call in flight: %v", err)
	default:
	}
	release()
	if r := <-done; r.status != 200 || !strings.Contains(r.body, "b-1") {
		t.Fatalf("in-flight call: %d %s", r.status, r.body)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(e.base + "/healthz"); err == nil {
		t.Error("HTTP still serves after shutdown")
	}
	for {
		if _, err := w.Recv(); err != nil {
			break // the watch ended with the server
		}
	}
}

func waitReady(t *testing.T, e *env, want int) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for {
		res, body := e.do(t, "GET", "/readyz", "")
		if res.StatusCode == want {
			return
		}
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("readyz stays %d: %s", res.StatusCode, body)
		}
	}
}
