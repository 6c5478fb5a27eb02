package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"google.golang.org/grpc"

	"github.com/muninn-es/muninn/consume"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/examples/shop/checkout"
	"github.com/muninn-es/muninn/projection"
	"github.com/muninn-es/muninn/service"
	"github.com/muninn-es/muninn/service/admin"
)

// chromiumPath is the browser the UI test drives: $MUNINN_CHROMIUM, else
// /usr/bin/chromium. Outside CI (MUNINN_CI unset) the test skips when there
// is none; in CI it fails, since .ci/chromium.sh installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	p := os.Getenv("MUNINN_CHROMIUM")
	if p == "" {
		p = "/usr/bin/chromium"
	}
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("MUNINN_CI") != "" {
			t.Fatalf("no Chromium at %s (MUNINN_CI is set: .ci/chromium.sh should have installed it): %v", p, err)
		}
		t.Skipf("no Chromium at %s: install it (apt-get install chromium) or set MUNINN_CHROMIUM", p)
	}
	return p
}

// screenshotDir is where the UI test saves its screenshots: $MUNINN_SCREENSHOTS
// if set, else the test's artifact directory (kept with go test -artifacts).
func screenshotDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("MUNINN_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.ArtifactDir()
}

// uiBrowser is one headless Chromium tab on the UI, with what the page
// wrote to the console as errors.
type uiBrowser struct {
	t    *testing.T
	ctx  context.Context
	base string
	dir  string
	mu   sync.Mutex
	errs []string
}

func newUIBrowser(t *testing.T, ctx context.Context, base string) *uiBrowser {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	bctx, cancelTab := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelTab(); cancelAlloc() })
	b := &uiBrowser{t: t, ctx: bctx, base: base, dir: screenshotDir(t)}
	cctx, stopConsole := context.WithCancel(bctx)
	messages := chromedp.Console(cctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				b.mu.Lock()
				b.errs = append(b.errs, m.String())
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { stopConsole(); <-done })
	t.Logf("screenshots go to %s", b.dir)
	return b
}

// do runs actions, failing the test on an error.
func (b *uiBrowser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, steps...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// open shows a page by its URL fragment and waits until it has rendered
// (its section is marked data-ready). The first call loads the UI.
func (b *uiBrowser) open(fragment, page string) string {
	b.t.Helper()
	ready := chromedp.WaitVisible(chromedp.CSS(`section.page-` + page + `[data-ready]`))
	if loc, err := chromedp.Run(b.ctx, chromedp.Location()); err != nil || !strings.HasPrefix(loc, b.base+"/ui/") {
		b.do("load "+fragment, chromedp.Navigate(b.base+"/ui/#"+fragment), ready)
	} else {
		js, _ := json.Marshal("#" + fragment)
		b.do("open "+fragment, chromedp.Evaluate[chromedp.Void](`document.getElementById("main").replaceChildren(); location.hash = `+string(js)+`; undefined`), ready)
	}
	if n := eval[int](b, `document.querySelectorAll("#main .error").length`); n > 0 {
		b.t.Fatalf("%s shows an error: %s", fragment, b.text("#main .error"))
	}
	return b.text("section.page-" + page)
}

// text is the visible text of the first element sel matches.
func (b *uiBrowser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		b.t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// eval evaluates a JavaScript expression in the page.
func eval[T any](b *uiBrowser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// shot saves a screenshot of the whole page as name.png.
func (b *uiBrowser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	p := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot %s", p)
}

// noErrors fails the test when the page shows an error box or wrote an
// error to the console.
func (b *uiBrowser) noErrors(page string) {
	b.t.Helper()
	if n := eval[int](b, `document.querySelectorAll("#main .error").length`); n > 0 {
		b.t.Errorf("%s shows an error: %s", page, b.text("#main .error"))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, e := range b.errs {
		b.t.Errorf("%s: console: %s", page, e)
	}
	b.errs = nil
}

// wantText checks that text has each of want, ignoring case (the table
// heads are upper case on the page, by CSS).
func wantText(t *testing.T, page, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(strings.ToLower(text), strings.ToLower(w)) {
			t.Errorf("%s: the page lacks %q; it shows:\n%.2000s", page, w, text)
		}
	}
}

// TestUIInBrowser serves the shop as `muninn serve` does, places the demo's
// orders through the REST API, and drives headless Chromium through every
// page of the admin UI, checking what each shows and saving screenshots.
func TestUIInBrowser(t *testing.T) {
	chromiumPath(t) // skip early, before starting the server
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sctx, stopServe := context.WithCancel(ctx)
	addrs := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		served <- runServe(sctx, serveConfig{
			Data: t.TempDir(), GRPCAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			// The real clock: the checkouts of the cards that never answer
			// stay running, with their payment deadline pending, for the
			// saga pages to show.
			PaymentTimeout: 15 * time.Minute, TimeScale: 1,
			Started: func(_, h string) { addrs <- h },
		})
	}()
	var httpAddr string
	select {
	case httpAddr = <-addrs:
	case err := <-served:
		t.Fatalf("serve did not start: %v", err)
	}
	defer func() {
		stopServe()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	base := "http://" + httpAddr
	c := &shopClient{base: base, http: &http.Client{Timeout: 30 * time.Second}}

	ids := make([]string, len(demoOrders))
	for i, o := range demoOrders {
		var placed struct {
			OrderID string `json:"order_id"`
		}
		if _, err := c.call(ctx, "POST", "/v1/orders",
			map[string]any{"customer_id": o.customer, "items": o.items, "payment_method": o.method},
			map[string]string{"X-Correlation-ID": fmt.Sprintf("ui-checkout-%02d", i+1)}, &placed); err != nil {
			t.Fatalf("place order %d: %v", i+1, err)
		}
		ids[i] = placed.OrderID
	}
	for i, id := range ids {
		if demoOrders[i].method == "card_timeout" {
			continue
		}
		if _, err := awaitSettled(ctx, c, id, 2*time.Minute); err != nil {
			t.Fatal(err)
		}
	}

	b := newUIBrowser(t, ctx, base)

	// /ui redirects to the page.
	b.do("open /ui", chromedp.Navigate(base+"/ui"), chromedp.WaitVisible(chromedp.CSS(`section.page-topics[data-ready]`)))
	if loc, err := chromedp.Run(b.ctx, chromedp.Location()); err != nil || !strings.HasPrefix(loc, base+"/ui/") {
		t.Errorf("/ui went to %q (%v), want %s/ui/", loc, err, base)
	}

	text := b.open("/topics", "topics")
	wantText(t, "topics", text, "shop.orders", "shop.payments", "shop.stock", "retain", "End offsets")
	b.noErrors("topics")
	b.shot("01-topics")

	text = b.open("/topic/shop.orders", "topic")
	wantText(t, "topic", text, "Partitions", "Latest records", "shop.order.placed", "ui-checkout-")
	b.noErrors("topic")
	b.shot("02-topic")

	text = b.open("/stream/shop.orders/"+ids[0]+"?v=2", "stream")
	wantText(t, "stream", text, ids[0], "shop.order.placed", "shop.order.paid", "shop.order.completed",
		"schema v1", "sku-book", "ui-checkout-01", "correlation", "causation")
	if sel := b.text("article.event.selected"); !strings.Contains(sel, "v2") || !strings.Contains(sel, "shop.order.paid") {
		t.Errorf("stream: the selected event is not version 2, shop.order.paid: %q", sel)
	}
	b.noErrors("stream")
	b.shot("03-stream")

	text = b.open("/groups", "groups")
	wantText(t, "groups", text, "shop-checkout", "live")
	group := eval[string](b, `document.querySelector("#groups-table tbody a").textContent`)
	text = b.open("/group/"+group, "group")
	wantText(t, "group", text, "Members", "Assignment", "Partitions", "Committed", "lag (records)")
	b.noErrors("groups")
	b.shot("04-group")

	text = b.open("/projections", "projections")
	wantText(t, "projections", text, "shop-order-details", "Rebuild", "lag (records)")
	// The card is redrawn from the server while the rebuild runs and after
	// it: read the finished card's text in the same step that finds it.
	const card = `article.projection[data-name="shop-order-details"]`
	b.do("rebuild", chromedp.Click(chromedp.CSS(card+` button.rebuild-button`)))
	rebuilt, err := chromedp.Run(b.ctx, chromedp.Poll[string](`(() => {
		const e = document.querySelector('`+card+` .rebuild[data-finished] .progress.finished');
		return e ? e.closest(".rebuild").textContent : false; })()`, chromedp.WithPollingTimeout(0)))
	if err != nil {
		t.Fatalf("rebuild: %v", err)
	}
	wantText(t, "rebuild", rebuilt, "done")
	b.noErrors("projections")
	b.shot("05-projections")

	text = b.open("/sagas", "sagas")
	wantText(t, "sagas", text, "shop-checkout", "Pending commands")
	text = b.open("/saga/shop-checkout?status=completed", "saga")
	wantText(t, "saga instances", text, "completed", ids[0], "ui-checkout-01")
	if strings.Contains(text, ids[3]) {
		t.Errorf("saga instances: the completed tab lists the declined order %s", ids[3])
	}
	b.shot("06-saga-instances")
	text = b.open("/saga/shop-checkout/"+ids[5], "saga") // a card that never answers: waiting for its deadline
	wantText(t, "saga instance", text, ids[5], "running", "State", "sku-chair", "Pending commands", "Deadlines", checkout.TimeoutName, "ui-checkout-06")
	b.noErrors("sagas")
	b.shot("07-saga-instance")

	// Lineage: pick a recent request, see its causal tree, follow a node.
	text = b.open("/lineage", "lineage")
	wantText(t, "lineage", text, "Recent requests", "ui-checkout-01")
	b.shot("08-lineage-recent")
	b.do("pick a request", chromedp.Evaluate[chromedp.Void](`document.getElementById("main").firstChild.removeAttribute("data-ready"); undefined`),
		chromedp.Click(chromedp.CSS(`#recent-table a.corr[href="#/lineage/ui-checkout-01"]`)),
		chromedp.WaitVisible(chromedp.CSS(`section.page-lineage[data-ready] svg.graph`)))
	type node struct{ Kind, Title, Href string }
	nodes := eval[[]node](b, `[...document.querySelectorAll("svg.graph g.node")].map((g) => ({
		Kind: g.dataset.kind, Title: g.querySelector("text.t").textContent,
		Href: (g.closest("a") && g.closest("a").getAttribute("href")) || ""}))`)
	kinds := map[string]int{}
	titles := map[string]bool{}
	for _, n := range nodes {
		kinds[n.Kind]++
		titles[n.Title] = true
	}
	for _, ev := range []string{"shop.order.placed", "shop.stock.reserved", "shop.payment.requested", "shop.payment.captured",
		"shop.order.paid", "shop.shipment.shipped", "shop.order.shipped", "shop.order.completed"} {
		if !titles[ev] {
			t.Errorf("lineage: no node for %s; nodes %+v", ev, nodes)
		}
	}
	// Commands are named by their type, not by the stream they went to.
	for _, n := range nodes {
		if n.Kind == "command" && !strings.Contains(n.Title, ".") {
			t.Errorf("lineage: command node %q is not named by its type", n.Title)
		}
	}
	if !titles["order.PlaceOrder"] {
		t.Errorf("lineage: no node for the order.PlaceOrder command; nodes %+v", nodes)
	}
	if kinds["request"] != 1 || kinds["command"] < 7 || kinds["event"] < 8 || kinds["policy"] < 5 || kinds["readmodel"] < 1 {
		t.Errorf("lineage: nodes by kind %v, want 1 request, >= 7 commands, >= 8 events, >= 5 policies, >= 1 read model", kinds)
	}
	b.noErrors("lineage")
	b.shot("08-lineage-completed")

	// A node links to its record in the stream browser.
	b.do("follow a node", chromedp.Click(chromedp.CSS(`svg.graph a[href^="#/stream/shop.orders/"] g[data-kind="event"]`)),
		chromedp.WaitVisible(chromedp.CSS(`section.page-stream[data-ready] article.event.selected`)))
	wantText(t, "lineage -> stream", b.text("article.event.selected"), "shop.order.placed", "v1")

	// The lineage of a declined payment: the decline fails the saga, and its
	// failure handler cancels the order, which releases the reserved stock.
	text = b.open("/lineage/ui-checkout-04", "lineage")
	wantText(t, "lineage of a declined payment", text, "ui-checkout-04")
	dl := eval[int](b, `[...document.querySelectorAll('svg.graph g[data-kind="policy"] text.t')].filter((t) => /failure/.test(t.textContent)).length`)
	if dl != 1 {
		t.Errorf("lineage of a declined payment: %d nodes for the saga's failure handler, want 1", dl)
	}
	titles6 := eval[string](b, `[...document.querySelectorAll("svg.graph g.node text.t")].map((t) => t.textContent).join(" ")`)
	wantText(t, "lineage of a declined payment", titles6, "shop.payment.declined", "order.CancelOrder", "shop.stock.released", "shop.order.cancelled")
	b.noErrors("lineage of a declined payment")
	b.shot("09-lineage-declined")

	// Record data is text, never markup: an event whose type, payload,
	// header and correlation ID are HTML shows them as they are and runs
	// nothing. (The muninn.v1 Append takes any type; a key of a snapshot
	// topic that no aggregate has is read by nobody else.)
	hostile := `<img src=x onerror="window.__pwned=1">`
	if _, err := c.call(ctx, "POST", "/v1/streams/shop.stock.snapshots/ui-hostile", map[string]any{"events": []map[string]any{{
		"type": "x.<b>bold</b>", "data": map[string]any{"html": hostile}, "correlation_id": "ui-<script>window.__pwned=2</script>",
		"headers": map[string]string{"note": `<svg onload="window.__pwned=3">`},
	}}}, nil, nil); err != nil {
		t.Fatalf("append the hostile event: %v", err)
	}
	text = b.open("/stream/shop.stock.snapshots/ui-hostile", "stream")
	wantText(t, "hostile stream", text, "x.<b>bold</b>", `onerror=\"window.__pwned=1\"`, `<svg onload="window.__pwned=3">`, "ui-<script>")
	b.do("follow the hostile correlation ID", chromedp.Click(chromedp.CSS(`article.event a.corr`)),
		chromedp.WaitVisible(chromedp.CSS(`section.page-lineage[data-ready] svg.graph`)))
	wantText(t, "hostile lineage", eval[string](b, `[...document.querySelectorAll("svg.graph g.node text")].map((t) => t.textContent).join(" ")`), "x.<b>bold</b>")
	if n := eval[int](b, `(window.__pwned || 0) + document.querySelectorAll("#main img, #main script, #main b, #main svg[onload]").length`); n != 0 {
		t.Errorf("record data became markup or ran: %d", n)
	}

	// A correlation ID nobody used says so.
	text = b.open("/lineage/no-such-request", "lineage")
	wantText(t, "lineage of nothing", text, `No record carries the correlation ID "no-such-request"`)
	b.noErrors("lineage of nothing")
}

// TestUIDeadLetters drives the projections page's dead letters in headless
// Chromium: a projection parks the records it cannot apply, the page lists
// them with their errors, Replay applies one (now that it can) and Discard
// forgets another, each through the muninn.v1 REST API.
func TestUIDeadLetters(t *testing.T) {
	chromiumPath(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	store, err := eventstore.OpenMem()
	if err != nil {
		t.Fatal(err)
	}
	const topic = "ui.letters"
	if err := store.CreateTopic(ctx, topic, eventstore.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	var poison atomic.Bool
	poison.Store(true)
	var mu sync.Mutex
	applied := map[string]bool{}
	p, err := projection.New(store, "ui-letters", []string{topic},
		projection.HandlerFunc(func(_ *projection.Tx, rec eventstore.Record) error {
			if poison.Load() && strings.HasPrefix(rec.Key, "poison") {
				return consume.Permanent(fmt.Errorf("cannot apply %s yet", rec.Key))
			}
			mu.Lock()
			applied[rec.Key] = true
			mu.Unlock()
			return nil
		}),
		projection.WithRetries(0), projection.WithErrorPolicy(consume.Park("ui-letters.dlq")))
	if err != nil {
		t.Fatal(err)
	}
	a, err := admin.New(store, admin.WithProjections(p))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := service.New(service.WithGRPCAddr("127.0.0.1:0"), service.WithHTTPAddr("127.0.0.1:0"), uiOption())
	if err != nil {
		t.Fatal(err)
	}
	srv.Register(func(g *grpc.Server) { a.Register(g) })
	srv.RegisterGateway(a.RegisterGateway)
	var g service.Group
	g.AddCloser("store", store)
	g.Add("projection", p)
	g.AddServer(srv)
	gctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- g.Run(gctx) }()
	defer func() {
		stop()
		if err := <-ran; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	select {
	case <-srv.Started():
	case err := <-ran:
		t.Fatalf("the server did not start: %v", err)
	}

	var positions []eventstore.Position
	for _, key := range []string{"fine-1", "poison-1", "poison-2"} {
		res, err := store.Append(ctx, topic, key, eventstore.Any, []eventstore.Event{{Type: "ui.letter", Payload: []byte(`{"key":"` + key + `"}`)}})
		if err != nil {
			t.Fatal(err)
		}
		positions = append(positions, res.Position())
	}
	if err := p.WaitFor(ctx, positions...); err != nil {
		t.Fatal(err)
	}

	b := newUIBrowser(t, ctx, "http://"+srv.HTTPAddr())
	text := b.open("/projections", "projections")
	wantText(t, "dead letters", text, "ui-letters", "Dead letters", "ui-letters.dlq", "poison-1", "poison-2", "cannot apply poison-1 yet")
	if strings.Contains(b.text("table.dead-letters"), "fine-1") {
		t.Errorf("dead letters: fine-1 was applied, yet it is listed")
	}
	b.shot("10-dead-letters")

	poison.Store(false)
	b.do("replay poison-1", chromedp.Click(chromedp.CSS(`table.dead-letters tr[data-key="poison-1"] button.replay`)),
		chromedp.Poll[chromedp.Void](`document.querySelector('table.dead-letters tr[data-key="poison-1"] .replayed, #main .error') !== null`, chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(0)))
	b.noErrors("replay")
	mu.Lock()
	replayed := applied["poison-1"]
	mu.Unlock()
	if !replayed {
		t.Errorf("Replay in the UI did not apply poison-1")
	}
	b.do("discard poison-2", chromedp.Click(chromedp.CSS(`table.dead-letters tr[data-key="poison-2"] button.discard`)),
		chromedp.Poll[chromedp.Void](`document.querySelector("#main .error") !== null || (document.querySelector('table.dead-letters tr[data-key="poison-2"]') === null && document.querySelector("table.dead-letters") !== null)`, chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(0)))
	mu.Lock()
	discarded := !applied["poison-2"]
	mu.Unlock()
	if !discarded {
		t.Errorf("Discard in the UI applied poison-2")
	}
	b.noErrors("dead letters")
	b.shot("11-dead-letters-handled")
}
