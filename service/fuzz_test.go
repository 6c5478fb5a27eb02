package service_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/muninn-es/muninn/service"
	testv1 "github.com/muninn-es/muninn/service/internal/testapi/test/v1"
)

// acceptAll answers every call; the fuzz target is the gateway's decoding.
type acceptAll struct {
	testv1.UnimplementedCounterServiceServer
}

func (acceptAll) Add(_ context.Context, req *testv1.AddRequest) (*testv1.AddResponse, error) {
	return &testv1.AddResponse{CounterId: req.GetCounterId()}, nil
}

// No request body makes the gateway answer a 5xx or anything but JSON.
func FuzzRequestBody(f *testing.F) {
	mux := service.NewGatewayMux()
	if err := testv1.RegisterCounterServiceHandlerServer(context.Background(), mux, acceptAll{}); err != nil {
		f.Fatal(err)
	}
	h := service.LimitBody(mux, 512)
	for _, s := range []string{`{"amount":1}`, `{"amount":`, `{"amount":"x"}`, `{"zz":1}`, `[]`, `null`, `{"note":"\u0000"}`,
		`{"amount":1e400}`, `{"amount":1} {}`, strings.Repeat("[", 600), ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", "/v1/counters/c:add", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 || w.Code != http.StatusOK && !strings.HasPrefix(w.Body.String(), `{"code":`) {
			t.Fatalf("body %q: HTTP %d %s", body, w.Code, w.Body)
		}
	})
}
