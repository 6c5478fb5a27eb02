package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	"github.com/muninn-es/muninn/examples/shop"
	orderv1 "github.com/muninn-es/muninn/examples/shop/api/order/v1"
	"github.com/muninn-es/muninn/saga"
	"github.com/muninn-es/muninn/service"
)

const (
	// apiClients is the concurrency of the service surface measurements.
	apiClients = 16
	// minQuerySamples is the fewest GetOrder latencies the query
	// measurement takes, however short the duration.
	minQuerySamples = 50
)

// serviceSurface measures the shop (examples/shop) end to end as `muninn
// serve` runs it, on the benchmark's store: shop.Run (the order details
// projection, the revenue stream processor, the checkout saga and the
// payment provider) runs throughout, behind a real service.Server with gRPC
// and the REST gateway on loopback ports.
//
// It returns, in this order, PlaceOrder commands/s from apiClients clients
// over gRPC (one shared connection, an idempotency key in each call's
// metadata), over REST (POST /v1/orders with an Idempotency-Key header,
// through a keep-alive client), and through the handler called in process
// (Shop.Server().PlaceOrder, the key in the call context: the same work
// without a transport), measured in alternating slices so that the disk's
// drift and the checkout saga's background work weigh on all three alike;
// then the p50 and p99 latency in ms of GetOrder over gRPC with the
// min_position of an order the same client has just placed over gRPC, from
// apiClients clients at once. Every order has a SKU of its own, so that
// no Stock aggregate grows with the run. Before it returns, it waits,
// untimed, until the checkout saga has completed every order placed
// (settle), so that the next round's shop on the same store starts with no
// backlog.
func (e *env) serviceSurface(ctx context.Context) (_ []float64, err error) {
	e.seq++
	run := e.seq
	logger := slog.New(slog.NewTextHandler(e.cfg.Progress, &slog.HandlerOptions{Level: slog.LevelWarn}))
	s, err := shop.New(e.store, shop.WithLogger(logger))
	if err != nil {
		return nil, err
	}
	defer func() {
		if cErr := s.Close(); cErr != nil && err == nil {
			err = cErr
		}
	}()
	// The shop runs until the measurement is over; if it fails first, the
	// measurement stops with its error.
	runCtx, stopRun := context.WithCancel(ctx)
	mctx, stopMeasuring := context.WithCancelCause(ctx)
	defer stopMeasuring(nil)
	done := make(chan error, 1)
	go func() {
		err := s.Run(runCtx)
		stopMeasuring(fmt.Errorf("shop Run returned early: %v", err))
		done <- err
	}()
	defer func() {
		stopRun()
		if rErr := <-done; rErr != nil && err == nil {
			err = rErr
		}
	}()

	srv, err := service.New(service.WithGRPCAddr("127.0.0.1:0"), service.WithHTTPAddr("127.0.0.1:0"),
		service.WithLogger(logger), service.WithTitle("Muninn shop"))
	if err != nil {
		return nil, err
	}
	srv.Register(func(g *grpc.Server) { s.RegisterGRPC(g) })
	srv.RegisterGateway(shop.RegisterGateway)
	if err := srv.Start(mctx); err != nil {
		return nil, err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if sErr := srv.Shutdown(sctx); sErr != nil && err == nil {
			err = fmt.Errorf("shut down the server: %w", sErr)
		}
	}()

	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	client := orderv1.NewOrderServiceClient(conn)
	transport := &http.Transport{MaxIdleConns: 2 * apiClients, MaxIdleConnsPerHost: 2 * apiClients,
		MaxConnsPerHost: 2 * apiClients, IdleConnTimeout: time.Minute}
	defer transport.CloseIdleConnections()
	web := &http.Client{Transport: transport, Timeout: time.Minute}
	ordersURL := "http://" + srv.HTTPAddr() + "/v1/orders"
	handler := s.Server()

	// Each order has its own idempotency key and SKU: run, transport,
	// client and sequence number.
	var seqs [3][apiClients]uint64
	next := func(transport, w int) (key string, req *orderv1.PlaceOrderRequest) {
		seqs[transport][w]++
		id := fmt.Sprintf("bench-%d-%d-%d-%d", run, transport, w, seqs[transport][w])
		return id, &orderv1.PlaceOrderRequest{
			CustomerId:    fmt.Sprintf("bench-customer-%d", w),
			Items:         []*orderv1.Item{{Sku: "sku-" + id, Quantity: 1, UnitPriceCents: 1250}},
			PaymentMethod: "card",
		}
	}
	placeGRPC := func(w int) (id, position string, err error) {
		key, req := next(0, w)
		var header metadata.MD
		resp, err := client.PlaceOrder(metadata.AppendToOutgoingContext(mctx, service.IdempotencyKey, key), req, grpc.Header(&header))
		if err != nil {
			return "", "", fmt.Errorf("gRPC PlaceOrder %s: %w", key, err)
		}
		if err := checkPlaced(resp); err != nil {
			return "", "", fmt.Errorf("gRPC PlaceOrder %s: %w", key, err)
		}
		pos := header.Get(service.PositionKey)
		if len(pos) != 1 || pos[0] != resp.GetPosition() {
			return "", "", fmt.Errorf("gRPC PlaceOrder %s: header %s = %q, want the response's position %q", key, service.PositionKey, pos, resp.GetPosition())
		}
		return resp.GetOrderId(), pos[0], nil
	}
	placeREST := func(w int) error {
		key, req := next(1, w)
		body, err := json.Marshal(map[string]any{
			"customer_id":    req.GetCustomerId(),
			"items":          []map[string]any{{"sku": req.GetItems()[0].GetSku(), "quantity": 1, "unit_price_cents": 1250}},
			"payment_method": req.GetPaymentMethod(),
		})
		if err != nil {
			return err
		}
		hreq, err := http.NewRequestWithContext(mctx, http.MethodPost, ordersURL, bytes.NewReader(body))
		if err != nil {
			return err
		}
		hreq.Header.Set("Content-Type", "application/json")
		hreq.Header.Set("Idempotency-Key", key)
		hresp, err := web.Do(hreq)
		if err != nil {
			return fmt.Errorf("POST /v1/orders %s: %w", key, err)
		}
		b, err := io.ReadAll(hresp.Body)
		_ = hresp.Body.Close()
		if err != nil {
			return fmt.Errorf("POST /v1/orders %s: %w", key, err)
		}
		if hresp.StatusCode != http.StatusOK {
			return fmt.Errorf("POST /v1/orders %s: %s: %s", key, hresp.Status, b)
		}
		var placed struct {
			OrderID  string `json:"order_id"`
			Version  string `json:"version"` // a uint64, which protojson writes as a string
			Position string `json:"position"`
		}
		if err := json.Unmarshal(b, &placed); err != nil {
			return fmt.Errorf("POST /v1/orders %s: %w: %s", key, err, b)
		}
		if placed.OrderID == "" || placed.Version == "" || placed.Version == "0" || placed.Position == "" {
			return fmt.Errorf("POST /v1/orders %s: response %s", key, b)
		}
		if got := hresp.Header.Get(service.PositionHeader); got != placed.Position {
			return fmt.Errorf("POST /v1/orders %s: header %s = %q, want the body's position %q", key, service.PositionHeader, got, placed.Position)
		}
		return nil
	}
	placeInProcess := func(w int) error {
		key, req := next(2, w)
		resp, err := handler.PlaceOrder(service.WithCall(mctx, service.Call{CommandID: key}), req)
		if err != nil {
			return fmt.Errorf("PlaceOrder %s: %w", key, err)
		}
		return checkPlaced(resp)
	}

	// placedSoFar counts the orders the sides have placed in this round.
	placedSoFar := func() int {
		placed := 0
		for _, side := range seqs {
			for _, n := range side {
				placed += int(n)
			}
		}
		return placed
	}
	e.progress("      the shop behind gRPC on %s and REST on %s; %d clients each, in alternating slices\n", srv.GRPCAddr(), srv.HTTPAddr(), apiClients)
	slice := max(e.cfg.Duration/slicesPerPair, 50*time.Millisecond)
	var grpcRate, restRate, localRate float64
	for i := range slicesPerPair {
		warmup := time.Duration(0)
		if i == 0 {
			warmup = e.cfg.Warmup
		}
		sides := []struct {
			rate *float64
			name string
			op   func(w int) error
		}{
			{&localRate, "in process", placeInProcess},
			{&grpcRate, "gRPC", func(w int) error { _, _, err := placeGRPC(w); return err }},
			{&restRate, "REST", placeREST},
		}
		// Each slice starts with another side, and with no backlog: the
		// checkouts a slice starts are settled (untimed) before the next
		// slice, or a fast side would leave the side after it the saga's
		// work to compete with.
		for j := range sides {
			m := sides[(i+j)%len(sides)]
			if err := e.store.Flush(mctx); err != nil {
				return nil, errors.Join(err, context.Cause(mctx))
			}
			r, err := e.closedLoopFor(mctx, apiClients, warmup, slice, func(w int) func() error {
				return func() error { return m.op(w) }
			})
			if err != nil {
				return nil, fmt.Errorf("%s: %w", m.name, errors.Join(err, causeIfDone(mctx)))
			}
			*m.rate += r / slicesPerPair
			if err := e.settle(mctx, s, placedSoFar(), false); err != nil {
				return nil, fmt.Errorf("after a %s slice: %w", m.name, errors.Join(err, causeIfDone(mctx)))
			}
		}
	}

	p50, p99, err := e.queryLatency(mctx, orderv1.NewOrderQueryServiceClient(conn), placeGRPC)
	if err != nil {
		return nil, errors.Join(err, causeIfDone(mctx))
	}
	if err := e.settle(mctx, s, placedSoFar(), true); err != nil {
		return nil, errors.Join(err, causeIfDone(mctx))
	}
	return []float64{grpcRate, restRate, localRate, p50, p99}, nil
}

// settleTimeout bounds how long settle waits for the checkouts.
const settleTimeout = 10 * time.Minute

// settle waits, untimed, until the shop's checkout saga has taken every
// one of the placed orders (all paid by "card") to completion and sent
// every command, so that the next round's shop, on the same store, starts
// with no backlog; it fails if a checkout failed.
// It reports on the progress writer when report is set (the round's last
// settle), and is quiet between slices.
func (e *env) settle(ctx context.Context, s *shop.Shop, placed int, report bool) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	checkout := s.Checkout()
	// WaitFor is woken by every step and dispatch; the condition is on the
	// saga's counters, the key only names an instance to watch.
	_, err := checkout.WaitFor(ctx, "settle", func(saga.Instance[shop.Checkout]) bool {
		st := checkout.Stats()
		return st.Started >= placed && st.Completed+st.Failed >= st.Started && st.PendingCommands == 0
	})
	st := checkout.Stats()
	if err != nil {
		return fmt.Errorf("checkouts of %d orders not settled: %w; saga stats %+v", placed, err, st)
	}
	if st.Failed != 0 || st.Completed < placed {
		return fmt.Errorf("checkouts of %d orders: %d completed, %d failed, want all completed; last error %q", placed, st.Completed, st.Failed, st.LastError)
	}
	if !report {
		return nil
	}
	e.progress("      %s checkouts completed; the saga finished %s after the last measurement\n", thousands(float64(placed)), time.Since(start).Round(time.Millisecond))
	return nil
}

// causeIfDone returns ctx's cause once it has ended, else nil.
func causeIfDone(ctx context.Context) error {
	if ctx.Err() == nil {
		return nil
	}
	return context.Cause(ctx)
}

// checkPlaced checks a PlaceOrder response of a new order.
func checkPlaced(resp *orderv1.PlaceOrderResponse) error {
	if resp.GetOrderId() == "" || resp.GetVersion() == 0 || resp.GetPosition() == "" {
		return fmt.Errorf("response %v lacks the order ID, version or position", resp)
	}
	return nil
}

// queryLatency measures read-your-writes over gRPC: apiClients clients,
// each placing an order (place, over gRPC), taking the muninn-position
// response header, and timing GetOrder with that min_position from sending
// it to its answer, which the server gives once the order details
// projection has applied the position. It runs for the configured
// duration, and on until it has minQuerySamples latencies, and returns
// their p50 and p99 in milliseconds.
func (e *env) queryLatency(ctx context.Context, client orderv1.OrderQueryServiceClient, place func(w int) (id, position string, err error)) (p50, p99 float64, err error) {
	lctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	var (
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	deadline := time.Now().Add(e.cfg.Duration)
	enough := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(latencies) >= minQuerySamples && !time.Now().Before(deadline)
	}
	for w := range apiClients {
		wg.Go(func() {
			for lctx.Err() == nil && !enough() {
				id, pos, err := place(w)
				if err != nil {
					stop(err)
					return
				}
				t0 := time.Now()
				o, err := client.GetOrderDetails(lctx, &orderv1.GetOrderDetailsRequest{OrderId: id, MinPosition: pos})
				d := time.Since(t0)
				if err != nil {
					stop(fmt.Errorf("GetOrder %s at %s: %w", id, pos, err))
					return
				}
				if o.GetOrderId() != id || o.GetStatus() == "" || o.GetTotalCents() != 1250 {
					stop(fmt.Errorf("GetOrder %s at %s: %v, want the order placed (total 1250)", id, pos, o))
					return
				}
				mu.Lock()
				latencies = append(latencies, d)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if err := context.Cause(lctx); err != nil {
		return 0, 0, fmt.Errorf("GetOrder with min_position: %w", err)
	}
	slices.Sort(latencies)
	ms := func(q float64) float64 {
		i := min(int(q*float64(len(latencies))), len(latencies)-1)
		return float64(latencies[i].Nanoseconds()) / 1e6
	}
	e.progress("      %d GetOrder calls with min_position, %d clients\n", len(latencies), apiClients)
	return ms(0.50), ms(0.99), nil
}
