package shop_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/examples/shop"
	orderv1 "github.com/muninn-es/muninn/examples/shop/api/order/v1"
	paymentv1 "github.com/muninn-es/muninn/examples/shop/api/payment/v1"
	"github.com/muninn-es/muninn/examples/shop/order"
	"github.com/muninn-es/muninn/examples/shop/payment"
	"github.com/muninn-es/muninn/examples/shop/shipping"
	"github.com/muninn-es/muninn/saga"
	"github.com/muninn-es/muninn/service"
)

var t0 = time.Date(2026, 3, 1, 10, 30, 0, 0, time.UTC)

type fixture struct {
	store  eventstore.Store
	shop   *shop.Shop
	clock  *clock.Manual
	client orderv1.OrderServiceClient
	// queries and payments are the clients of the read models' services.
	queries  orderv1.OrderQueryServiceClient
	payments paymentv1.PaymentQueryServiceClient
	addr     string
}

// start runs a shop on the in-memory store with a manual clock, served by
// a plain gRPC server on a loopback port, and returns a client of it.
func start(t *testing.T) *fixture {
	t.Helper()
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	clk := clock.NewManual(t0)
	s, err := shop.New(store, shop.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	srv := grpc.NewServer()
	s.RegisterGRPC(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return &fixture{store: store, shop: s, clock: clk, client: orderv1.NewOrderServiceClient(conn),
		queries: orderv1.NewOrderQueryServiceClient(conn), payments: paymentv1.NewPaymentQueryServiceClient(conn), addr: lis.Addr().String()}
}

func (f *fixture) place(t *testing.T, customer, method string, items ...*orderv1.Item) *orderv1.PlaceOrderResponse {
	t.Helper()
	if len(items) == 0 {
		items = []*orderv1.Item{{Sku: "sku-1", Quantity: 2, UnitPriceCents: 1250}}
	}
	resp, err := f.client.PlaceOrder(t.Context(), &orderv1.PlaceOrderRequest{CustomerId: customer, Items: items, PaymentMethod: method})
	if err != nil {
		t.Fatalf("PlaceOrder: %v", err)
	}
	return resp
}

// settle waits until the order's checkout has status and has sent every
// command, then returns the order as GetOrder answers with the position of
// the order's last event as min_position.
func (f *fixture) settle(t *testing.T, id string, st saga.Status) *orderv1.OrderDetails {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if _, err := f.shop.Checkout().WaitFor(ctx, id, func(in saga.Instance[shop.Checkout]) bool {
		return in.Status == st && in.PendingCommands == 0
	}); err != nil {
		t.Fatalf("checkout of %s: %v", id, err)
	}
	return f.get(t, id)
}

// get returns GetOrder's answer after the read model applied the order's
// last event.
func (f *fixture) get(t *testing.T, id string) *orderv1.OrderDetails {
	t.Helper()
	var last eventstore.Record
	for rec, err := range f.store.ReadStream(t.Context(), order.Topic, id, 1) {
		if err != nil {
			t.Fatal(err)
		}
		last = rec
	}
	o, err := f.queries.GetOrderDetails(t.Context(), &orderv1.GetOrderDetailsRequest{OrderId: id, MinPosition: last.Position().String()})
	if err != nil {
		t.Fatalf("GetOrder %s: %v", id, err)
	}
	return o
}

func TestCheckoutCaptured(t *testing.T) {
	f := start(t)
	var header metadata.MD
	ctx := metadata.AppendToOutgoingContext(t.Context(), service.CorrelationKey, "corr-ada-1")
	resp, err := f.client.PlaceOrder(ctx, &orderv1.PlaceOrderRequest{
		CustomerId:    "ada",
		Items:         []*orderv1.Item{{Sku: "sku-1", Quantity: 2, UnitPriceCents: 1250}, {Sku: "sku-2", Quantity: 1, UnitPriceCents: 99}},
		PaymentMethod: payment.MethodCard,
	}, grpc.Header(&header))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Version != 1 || resp.Position == "" || !strings.HasPrefix(resp.OrderId, "ord-") {
		t.Errorf("PlaceOrder: %v", resp)
	}
	if got := header.Get(service.PositionKey); len(got) != 1 || got[0] != resp.Position {
		t.Errorf("header %s = %v, want [%s]", service.PositionKey, got, resp.Position)
	}
	// Read your write: the placed order, at once.
	o, err := f.queries.GetOrderDetails(t.Context(), &orderv1.GetOrderDetailsRequest{OrderId: resp.OrderId, MinPosition: resp.Position})
	if err != nil {
		t.Fatal(err)
	}
	if o.CustomerId != "ada" || o.TotalCents != 2599 || len(o.Items) != 2 || o.Status == "" {
		t.Errorf("GetOrder after PlaceOrder: %v", o)
	}
	o = f.settle(t, resp.OrderId, saga.StatusCompleted)
	if o.Status != string(order.StatusCompleted) || o.CancelReason != "" || o.Version != 4 {
		t.Errorf("order after checkout: %v, want COMPLETED at version 4", o)
	}
	// Every event of the checkout carries the request's correlation ID.
	for _, tk := range [][2]string{{order.Topic, resp.OrderId}, {payment.Topic, resp.OrderId}, {shipping.ShipmentTopic, resp.OrderId}, {shipping.StockTopic, "sku-2"}} {
		n := 0
		for rec, err := range f.store.ReadStream(t.Context(), tk[0], tk[1], 1) {
			if err != nil {
				t.Fatal(err)
			}
			n++
			if rec.CorrelationID != "corr-ada-1" {
				t.Errorf("%s %s: correlation ID %q, want corr-ada-1", tk[0], rec.Type, rec.CorrelationID)
			}
		}
		if n == 0 {
			t.Errorf("no events in %s/%s", tk[0], tk[1])
		}
	}
	// A completed (shipped) order can no longer be cancelled.
	_, err = f.client.CancelOrder(t.Context(), &orderv1.CancelOrderRequest{OrderId: resp.OrderId})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "shipped") {
		t.Errorf("CancelOrder of a completed order: %v, want FailedPrecondition", err)
	}
}

func TestCheckoutDeclined(t *testing.T) {
	f := start(t)
	resp := f.place(t, "bob", payment.MethodCardDeclined)
	o := f.settle(t, resp.OrderId, saga.StatusFailed)
	if o.Status != string(order.StatusCancelled) || o.CancelReason != "payment declined: "+payment.DeclineReason {
		t.Errorf("declined order: %v", o)
	}
}

func TestCheckoutTimeout(t *testing.T) {
	f := start(t)
	resp := f.place(t, "cy", payment.MethodCardTimeout)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	in, err := f.shop.Checkout().WaitFor(ctx, resp.OrderId, func(in saga.Instance[shop.Checkout]) bool {
		return len(in.Deadlines) == 1 && in.PendingCommands == 0
	})
	if err != nil {
		t.Fatal(err)
	}
	if in.Status != saga.StatusRunning {
		t.Fatalf("checkout before the deadline: %s", in.Status)
	}
	if o := f.get(t, resp.OrderId); o.Status != string(order.StatusPlaced) {
		t.Errorf("order before the deadline: %v, want PLACED", o)
	}
	f.clock.Advance(shop.DefaultPaymentTimeout)
	o := f.settle(t, resp.OrderId, saga.StatusFailed)
	if o.Status != string(order.StatusCancelled) || o.CancelReason != "payment not answered within 15m0s" {
		t.Errorf("timed-out order: %v", o)
	}
}

// TestCheckoutRejected places an order whose stock the checkout cannot
// reserve (two lines of one SKU: the second reservation is rejected): the
// checkout fails, releases what it reserved, and cancels the order with
// the rejection as its reason.
func TestCheckoutRejected(t *testing.T) {
	f := start(t)
	resp := f.place(t, "eve", payment.MethodCard,
		&orderv1.Item{Sku: "twice", Quantity: 1, UnitPriceCents: 100},
		&orderv1.Item{Sku: "twice", Quantity: 2, UnitPriceCents: 100})
	o := f.settle(t, resp.OrderId, saga.StatusFailed)
	if o.Status != string(order.StatusCancelled) || !strings.Contains(o.CancelReason, "reserved stock already") {
		t.Errorf("order whose reservation was rejected: %v", o)
	}
	var stock []string
	for rec, err := range f.store.ReadStream(t.Context(), shipping.StockTopic, "twice", 1) {
		if err != nil {
			t.Fatal(err)
		}
		stock = append(stock, rec.Type)
	}
	if got := strings.Join(stock, ","); got != "shop.stock.reserved,shop.stock.released" {
		t.Errorf("stock events of the rejected checkout: %v", stock)
	}
}

func TestCancelByCustomer(t *testing.T) {
	f := start(t)
	resp := f.place(t, "dee", payment.MethodCardTimeout)
	c, err := f.client.CancelOrder(t.Context(), &orderv1.CancelOrderRequest{OrderId: resp.OrderId, Reason: "changed my mind"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 2 || c.Position == "" {
		t.Errorf("CancelOrder: %v", c)
	}
	o := f.settle(t, resp.OrderId, saga.StatusFailed)
	if o.Status != string(order.StatusCancelled) || o.CancelReason != "changed my mind" {
		t.Errorf("cancelled order: %v", o)
	}
	// The checkout compensated: whatever stock it reserved is released (it
	// reserved none if the cancellation came before it sent the command).
	var stock []string
	for rec, err := range f.store.ReadStream(t.Context(), shipping.StockTopic, "sku-1", 1) {
		if err != nil {
			t.Fatal(err)
		}
		stock = append(stock, rec.Type)
	}
	if got := strings.Join(stock, ","); got != "" && got != "shop.stock.reserved,shop.stock.released" {
		t.Errorf("stock events of a cancelled order: %v", stock)
	}
	_, err = f.client.CancelOrder(t.Context(), &orderv1.CancelOrderRequest{OrderId: resp.OrderId})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("second CancelOrder: %v, want FailedPrecondition", err)
	}
}

func TestIdempotentPlaceOrder(t *testing.T) {
	f := start(t)
	ctx := metadata.AppendToOutgoingContext(t.Context(), service.IdempotencyKey, "req-42")
	req := &orderv1.PlaceOrderRequest{CustomerId: "eve", Items: []*orderv1.Item{{Sku: "s", Quantity: 1, UnitPriceCents: 700}}, PaymentMethod: "card"}
	first, err := f.client.PlaceOrder(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.client.PlaceOrder(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if again.OrderId != first.OrderId || again.Version != first.Version || again.Position != first.Position {
		t.Errorf("retried PlaceOrder: %v, first %v", again, first)
	}
	f.settle(t, first.OrderId, saga.StatusCompleted)
	list, err := f.queries.ListCustomerOrders(t.Context(), &orderv1.ListCustomerOrdersRequest{CustomerId: "eve"})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Orders) != 1 {
		t.Errorf("eve's orders after a retried PlaceOrder: %v", list.Orders)
	}
}

func TestConflict(t *testing.T) {
	f := start(t)
	resp := f.place(t, "fay", payment.MethodCardTimeout)
	// The caller saw version 0: the order has moved on.
	ctx := metadata.AppendToOutgoingContext(t.Context(), service.ExpectedVersionKey, "7")
	_, err := f.client.CancelOrder(ctx, &orderv1.CancelOrderRequest{OrderId: resp.OrderId})
	if status.Code(err) != codes.Aborted {
		t.Errorf("CancelOrder at a stale version: %v, want Aborted", err)
	}
}

func TestNotFound(t *testing.T) {
	f := start(t)
	if _, err := f.queries.GetOrderDetails(t.Context(), &orderv1.GetOrderDetailsRequest{OrderId: "ord-nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("GetOrder of an unknown order: %v, want NotFound", err)
	}
	if _, err := f.client.CancelOrder(t.Context(), &orderv1.CancelOrderRequest{OrderId: "ord-nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("CancelOrder of an unknown order: %v, want NotFound", err)
	}
}

func TestBadInput(t *testing.T) {
	f := start(t)
	item := func(sku string, q, p int64) []*orderv1.Item {
		return []*orderv1.Item{{Sku: sku, Quantity: q, UnitPriceCents: p}}
	}
	for _, tc := range []struct {
		name  string
		req   *orderv1.PlaceOrderRequest
		field string
	}{
		{"zero quantity", &orderv1.PlaceOrderRequest{CustomerId: "a", Items: item("s", 0, 1), PaymentMethod: "card"}, "items[0].quantity"},
		{"negative quantity", &orderv1.PlaceOrderRequest{CustomerId: "a", Items: item("s", -3, 1), PaymentMethod: "card"}, "items[0].quantity"},
		{"huge quantity", &orderv1.PlaceOrderRequest{CustomerId: "a", Items: item("s", 1<<62, 1), PaymentMethod: "card"}, "items[0].quantity"},
		{"overflowing total", &orderv1.PlaceOrderRequest{CustomerId: "a", Items: []*orderv1.Item{
			{Sku: "s", Quantity: order.MaxQuantity, UnitPriceCents: 5_000_000_000_000},
			{Sku: "t", Quantity: order.MaxQuantity, UnitPriceCents: 5_000_000_000_000},
		}, PaymentMethod: "card"}, "items"},
		{"negative price", &orderv1.PlaceOrderRequest{CustomerId: "a", Items: item("s", 1, -1), PaymentMethod: "card"}, "items[0].unit_price_cents"},
		{"empty cart", &orderv1.PlaceOrderRequest{CustomerId: "a", PaymentMethod: "card"}, "items"},
		{"unknown payment method", &orderv1.PlaceOrderRequest{CustomerId: "a", Items: item("s", 1, 1), PaymentMethod: "bitcoin"}, "payment_method"},
		{"no payment method", &orderv1.PlaceOrderRequest{CustomerId: "a", Items: item("s", 1, 1)}, "payment_method"},
		{"no customer", &orderv1.PlaceOrderRequest{Items: item("s", 1, 1), PaymentMethod: "card"}, "customer_id"},
		{"path traversal customer", &orderv1.PlaceOrderRequest{CustomerId: "../../etc/passwd", Items: item("s", 1, 1), PaymentMethod: "card"}, "customer_id"},
		{"control character customer", &orderv1.PlaceOrderRequest{CustomerId: "a\x00b", Items: item("s", 1, 1), PaymentMethod: "card"}, "customer_id"},
		{"long customer", &orderv1.PlaceOrderRequest{CustomerId: strings.Repeat("x", 129), Items: item("s", 1, 1), PaymentMethod: "card"}, "customer_id"},
		{"bad sku", &orderv1.PlaceOrderRequest{CustomerId: "a", Items: item("a/b", 1, 1), PaymentMethod: "card"}, "items[0].sku"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.client.PlaceOrder(t.Context(), tc.req)
			if got := violation(t, err); got != tc.field {
				t.Errorf("PlaceOrder: %v: field %q, want %q", err, got, tc.field)
			}
		})
	}
	if _, err := f.queries.GetOrderDetails(t.Context(), &orderv1.GetOrderDetailsRequest{OrderId: "../x"}); violation(t, err) != "order_id" {
		t.Errorf("GetOrder with a path-traversal ID: %v", err)
	}
	if _, err := f.queries.GetOrderDetails(t.Context(), &orderv1.GetOrderDetailsRequest{OrderId: "x", MinPosition: "nonsense"}); violation(t, err) != "min_position" {
		t.Errorf("GetOrder with a bad min_position: %v", err)
	}
	if _, err := f.payments.ListRevenue(t.Context(), &paymentv1.ListRevenueRequest{MinPosition: "shop.orders/0@0"}); violation(t, err) != "min_position" {
		t.Errorf("GetRevenue with a position of another topic: %v", err)
	}
	if _, err := f.queries.GetOrderDetails(t.Context(), &orderv1.GetOrderDetailsRequest{OrderId: "x", MinPosition: "shop.payments/0@0"}); violation(t, err) != "min_position" {
		t.Errorf("GetOrder with a position of another topic: %v", err)
	}
	if _, err := f.queries.ListCustomerOrders(t.Context(), &orderv1.ListCustomerOrdersRequest{CustomerId: "a", PageSize: -1}); violation(t, err) != "page_size" {
		t.Errorf("ListCustomerOrders with page_size -1: %v", err)
	}
	if _, err := f.queries.ListCustomerOrders(t.Context(), &orderv1.ListCustomerOrdersRequest{CustomerId: "a", PageToken: "%%%"}); violation(t, err) != "page_token" {
		t.Errorf("ListCustomerOrders with a bad page_token: %v", err)
	}
	// Unicode letters are welcome.
	resp := f.place(t, "Åsa-客户-ß", payment.MethodCard)
	if o := f.settle(t, resp.OrderId, saga.StatusCompleted); o.CustomerId != "Åsa-客户-ß" {
		t.Errorf("unicode customer: %v", o)
	}
}

// violation returns the field of err's BadRequest, failing t unless err is
// InvalidArgument with one.
func violation(t *testing.T, err error) string {
	t.Helper()
	st, _ := status.FromError(err)
	if st.Code() != codes.InvalidArgument {
		t.Errorf("%v: code %s, want InvalidArgument", err, st.Code())
		return ""
	}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) == 1 {
			return br.FieldViolations[0].Field
		}
	}
	t.Errorf("%v: no BadRequest field violation", err)
	return ""
}

func TestReadModels(t *testing.T) {
	f := start(t)
	var ids []string
	for _, m := range []string{"card", "card", "card_declined", "card", "card_timeout"} {
		ids = append(ids, f.place(t, "gus", m, &orderv1.Item{Sku: "sku-9", Quantity: 3, UnitPriceCents: 1000}).OrderId)
	}
	hal := f.place(t, "hal", "card").OrderId // another customer's
	for i, id := range ids[:4] {
		want := saga.StatusCompleted
		if i == 2 {
			want = saga.StatusFailed
		}
		f.settle(t, id, want)
	}

	// The customer's orders, two a page.
	var got []string
	token := ""
	for pages := 0; ; pages++ {
		if pages > 3 {
			t.Fatal("more pages than orders")
		}
		page, err := f.queries.ListCustomerOrders(t.Context(), &orderv1.ListCustomerOrdersRequest{CustomerId: "gus", PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		if len(page.Orders) > 2 {
			t.Fatalf("page of %d orders, size 2", len(page.Orders))
		}
		for _, o := range page.Orders {
			if o.CustomerId != "gus" {
				t.Errorf("gus's orders list %v", o)
			}
			got = append(got, o.OrderId)
		}
		if token = page.NextPageToken; token == "" {
			break
		}
	}
	if strings.Join(got, ",") != strings.Join(ids, ",") { // UUIDv7 order IDs sort by time
		t.Errorf("gus's orders: %v, want %v", got, ids)
	}

	// Revenue: the paid orders of this hour (gus's three and hal's), each
	// once, though the provider's answers are delivered at least once. The
	// query waits for the capture given as min_position.
	// Wait for the last capture: its payment's last event.
	var last eventstore.Record
	for rec, err := range f.store.ReadStream(t.Context(), payment.Topic, ids[3], 1) {
		if err != nil {
			t.Fatal(err)
		}
		last = rec
	}
	if _, err := f.shop.Settled(t.Context(), hal); err != nil {
		t.Fatal(err)
	}
	var halLast eventstore.Record
	for rec, err := range f.store.ReadStream(t.Context(), payment.Topic, hal, 1) {
		if err != nil {
			t.Fatal(err)
		}
		halLast = rec
	}
	if _, err := f.payments.ListRevenue(t.Context(), &paymentv1.ListRevenueRequest{MinPosition: halLast.Position().String()}); err != nil {
		t.Fatal(err)
	}
	rev, err := f.payments.ListRevenue(t.Context(), &paymentv1.ListRevenueRequest{MinPosition: last.Position().String()})
	if err != nil {
		t.Fatal(err)
	}
	var orders, cents int64
	for _, h := range rev.Hours {
		if err := h.GetHourStart().CheckValid(); err != nil || h.GetHourStart().AsTime().Truncate(time.Hour) != h.GetHourStart().AsTime() {
			t.Errorf("hour_start %v: %v, want the start of an hour", h.GetHourStart(), err)
		}
		orders, cents = orders+h.Orders, cents+h.RevenueCents
	}
	if orders != 4 || cents != 3*3000+2500 {
		t.Errorf("revenue %v: %d orders, %d cents, want 4 orders, %d cents", rev.Hours, orders, cents, 3*3000+2500)
	}
}

func TestNewOptions(t *testing.T) {
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, err = shop.New(store, shop.WithClock(nil), shop.WithPaymentTimeout(-time.Second))
	if err == nil || !strings.Contains(err.Error(), "WithClock") || !strings.Contains(err.Error(), "WithPaymentTimeout") {
		t.Errorf("New with two bad options: %v", err)
	}
	if _, err := shop.New(nil); err == nil {
		t.Error("New(nil) succeeded")
	}
}

func TestDuplicateKeysInParallel(t *testing.T) {
	f := start(t)
	ctx := metadata.AppendToOutgoingContext(t.Context(), service.IdempotencyKey, "same-key")
	req := &orderv1.PlaceOrderRequest{CustomerId: "ivy", Items: []*orderv1.Item{{Sku: "s", Quantity: 1, UnitPriceCents: 100}}, PaymentMethod: "card"}
	const n = 8
	results := make(chan *orderv1.PlaceOrderResponse, n)
	errs := make(chan error, n)
	for range n {
		go func() {
			resp, err := f.client.PlaceOrder(ctx, req)
			results <- resp
			errs <- err
		}()
	}
	ids := map[string]bool{}
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("PlaceOrder: %v", err)
		}
		if resp := <-results; resp != nil {
			ids[resp.OrderId] = true
			if resp.Version != 1 {
				t.Errorf("PlaceOrder with a duplicate key: version %d, want 1", resp.Version)
			}
		}
	}
	if len(ids) != 1 {
		t.Fatalf("%d order IDs for one idempotency key: %v", len(ids), ids)
	}
	for id := range ids {
		if v, err := f.shop.Settled(t.Context(), id); err != nil || v.Status != string(order.StatusCompleted) || v.Version != 4 {
			t.Errorf("Settled(%s) = %+v, %v", id, v, err)
		}
	}
}

// TestRestart stops the shop while checkouts are under way and starts it
// again on the same directory: every order still settles, and revenue
// counts each paid one once.
func TestRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	var ids []string
	methods := []string{"card", "card_declined", "card", "card", "card_declined", "card"}
	func() {
		store, err := eventstore.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		s, err := shop.New(store)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(runCtx) }()
		srv := s.Server()
		for _, m := range methods {
			resp, err := srv.PlaceOrder(ctx, &orderv1.PlaceOrderRequest{CustomerId: "jo", Items: []*orderv1.Item{{Sku: "s", Quantity: 1, UnitPriceCents: 500}}, PaymentMethod: m})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, resp.OrderId)
		}
		stop() // mid-flight
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}()

	store, err := eventstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	s, err := shop.New(store)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- s.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	for i, id := range ids {
		v, err := s.Settled(wctx, id)
		if err != nil {
			t.Fatal(err)
		}
		want := order.StatusCompleted
		if methods[i] == "card_declined" {
			want = order.StatusCancelled
		}
		if v.Status != string(want) {
			t.Errorf("order %d (%s): %s, want %s", i, methods[i], v.Status, want)
		}
	}
	if err := s.Revenue().App.WaitCaughtUp(wctx); err != nil {
		t.Fatal(err)
	}
	hours, err := s.Revenue().Hours(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var orders, cents int64
	for _, h := range hours {
		orders, cents = orders+h.Orders, cents+h.Cents
	}
	if orders != 4 || cents != 2000 {
		t.Errorf("revenue after a restart: %+v, want 4 orders, 2000 cents", hours)
	}
}

// TestCancelRace cancels orders while their checkout runs: whichever wins,
// an order ends COMPLETED (and the cancellation was refused) or CANCELLED
// with its payment voided or refunded and its stock released.
func TestCancelRace(t *testing.T) {
	f := start(t)
	types := func(topic, key string) []string {
		var ts []string
		for rec, err := range f.store.ReadStream(t.Context(), topic, key, 1) {
			if err != nil {
				t.Fatal(err)
			}
			ts = append(ts, strings.TrimPrefix(rec.Type, "shop."))
		}
		return ts
	}
	for i := range 6 {
		sku := "race-" + string(rune('a'+i))
		resp := f.place(t, "kim", payment.MethodCard, &orderv1.Item{Sku: sku, Quantity: 1, UnitPriceCents: 100})
		_, cancelErr := f.client.CancelOrder(t.Context(), &orderv1.CancelOrderRequest{OrderId: resp.OrderId})
		v, err := f.shop.Settled(t.Context(), resp.OrderId)
		if err != nil {
			t.Fatal(err)
		}
		pay, stock := types(payment.Topic, resp.OrderId), types(shipping.StockTopic, sku)
		switch {
		case cancelErr == nil:
			if v.Status != string(order.StatusCancelled) {
				t.Errorf("order %d: cancelled, then %s", i, v.Status)
			}
			if n := len(pay); n > 0 && pay[n-1] != "payment.voided" && pay[n-1] != "payment.refunded" {
				t.Errorf("order %d cancelled with payment %v", i, pay)
			}
			if r := strings.Count(strings.Join(stock, ","), "stock.reserved"); r != strings.Count(strings.Join(stock, ","), "stock.released") {
				t.Errorf("order %d cancelled with stock %v", i, stock)
			}
			if ship := strings.Join(types(shipping.ShipmentTopic, resp.OrderId), ","); ship != "" && ship != "shipment.shipped,shipment.recalled" {
				t.Errorf("order %d cancelled with shipment %s", i, ship)
			}
		case status.Code(cancelErr) == codes.FailedPrecondition:
			if v.Status != string(order.StatusCompleted) {
				t.Errorf("order %d: cancellation refused (%v), then %s", i, cancelErr, v.Status)
			}
		default:
			t.Errorf("order %d: CancelOrder: %v", i, cancelErr)
		}
	}
}
