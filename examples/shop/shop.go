package shop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/muninn-es/muninn/aggregate"
	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/command"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/examples/shop/order"
	"github.com/muninn-es/muninn/examples/shop/payment"
	"github.com/muninn-es/muninn/examples/shop/policies"
	"github.com/muninn-es/muninn/examples/shop/readmodels"
	"github.com/muninn-es/muninn/examples/shop/shipping"
	"github.com/muninn-es/muninn/projection"
	"github.com/muninn-es/muninn/saga"
	"github.com/muninn-es/muninn/stream"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/metric"
)

// DefaultQueryTimeout bounds how long a query waits for its min_position.
const DefaultQueryTimeout = 5 * time.Second

// Option configures New.
type Option func(*config)

type config struct {
	clock          clock.Clock
	paymentTimeout time.Duration
	logger         *slog.Logger
	meters         metric.MeterProvider
	// tracer is WithTracerProvider's (trace.go); nil for the default.
	tracer trace.TracerProvider
}

// WithClock sets the clock of the checkout's deadlines, retries and
// back-offs (default clock.System()): a demo passes a clock.Scaled, tests a
// clock.Manual to move the payment deadline.
func WithClock(c clock.Clock) Option { return func(o *config) { o.clock = c } }

// WithPaymentTimeout sets how long the checkout waits for the payment
// provider (default DefaultPaymentTimeout).
func WithPaymentTimeout(d time.Duration) Option { return func(o *config) { o.paymentTimeout = d } }

// WithLogger sets where the runners log (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *config) { o.logger = l } }

// Shop is the whole shop service on one store: the command bus with the
// Order, Payment, Shipment and Stock aggregates, the checkout saga, the
// generated policies that simulate the payment provider, the order details,
// customer orders and revenue read models, and the generated services over
// them (service.go).
type Shop struct {
	cfg       config
	store     eventstore.Store
	bus       *command.Bus
	orderSrv  *order.Server
	orders    *command.Handler[order.Order, order.Command, order.Event]
	rm        *readmodels.ReadModels
	revenue   *payment.Revenue
	checkout  *saga.Saga[Checkout]
	policies  []*saga.Saga[struct{}]
	closeOnce sync.Once
	closeErr  error
}

// New wires the shop on store: it registers the aggregates (creating their
// topics if missing) and builds the runners, which Run runs. Bad options
// are reported all at once. Close the Shop after Run has returned; the store
// stays the caller's.
func New(store eventstore.Store, opts ...Option) (*Shop, error) {
	cfg := config{clock: clock.System(), paymentTimeout: DefaultPaymentTimeout,
		logger: slog.New(slog.DiscardHandler), meters: otel.GetMeterProvider()}
	for _, o := range opts {
		o(&cfg)
	}
	var errs []error
	if store == nil {
		errs = append(errs, errors.New("shop: store is nil"))
	}
	if cfg.clock == nil {
		errs = append(errs, errors.New("shop: WithClock: clock is nil"))
	}
	if cfg.paymentTimeout <= 0 {
		errs = append(errs, fmt.Errorf("shop: WithPaymentTimeout: %s is not positive", cfg.paymentTimeout))
	}
	if cfg.logger == nil {
		errs = append(errs, errors.New("shop: WithLogger: logger is nil"))
	}
	if cfg.meters == nil {
		errs = append(errs, errors.New("shop: WithMeterProvider: meter provider is nil"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	s := &Shop{cfg: cfg, store: store}
	var err error
	if s.bus, err = command.New(store, command.WithName("shop"), command.WithClock(cfg.clock), command.WithLogger(cfg.logger),
		command.WithMeterProvider(cfg.meters), command.WithTracerProvider(cfg.tracer)); err != nil {
		return nil, fmt.Errorf("shop: %w", err)
	}
	if err := s.register(store); err != nil {
		_ = s.bus.Close()
		return nil, err
	}
	return s, nil
}

// aggregateCache is how many aggregates of each type the shop keeps in
// memory (aggregate.WithCache).
const aggregateCache = 4096

func (s *Shop) register(store eventstore.Store) error {
	ctx := context.Background()
	// Every checkout step loads its aggregate: keep the busy ones in memory,
	// as a production service would, so that a step reads only the events
	// after the cached state instead of replaying the stream from disk.
	cache := aggregate.WithCache(aggregateCache)
	payments, errP := payment.New(cache)
	shipments, errS := shipping.NewShipment(cache)
	stock, errK := shipping.NewStock(cache)
	if err := errors.Join(errP, errS, errK); err != nil {
		return fmt.Errorf("shop: %w", err)
	}
	// The Order aggregate is registered by its generated server.
	var err error
	if s.orderSrv, err = order.NewServer(ctx, s.bus, cache); err != nil {
		return fmt.Errorf("shop: %w", err)
	}
	s.orders = s.orderSrv.OrderHandler()
	if _, err = command.Register(ctx, s.bus, payments); err != nil {
		return fmt.Errorf("shop: register payments: %w", err)
	}
	if _, err = command.Register(ctx, s.bus, shipments); err != nil {
		return fmt.Errorf("shop: register shipments: %w", err)
	}
	if _, err = command.Register(ctx, s.bus, stock); err != nil {
		return fmt.Errorf("shop: register stock: %w", err)
	}
	if s.rm, err = readmodels.Open(store, projection.WithClock(s.cfg.clock), projection.WithLogger(s.cfg.logger),
		projection.WithMeterProvider(s.cfg.meters), projection.WithTracerProvider(s.cfg.tracer)); err != nil {
		return fmt.Errorf("shop: read models: %w", err)
	}
	if s.revenue, err = payment.NewRevenue(store, stream.WithClock(s.cfg.clock), stream.WithLogger(s.cfg.logger),
		stream.WithTracerProvider(s.cfg.tracer), stream.WithMeterProvider(s.cfg.meters)); err != nil {
		return fmt.Errorf("shop: revenue: %w", err)
	}
	// The revenue is a custom read model: the stream app answers its query.
	s.rm.Revenue = revenueSource{s.revenue}
	if s.checkout, err = saga.New(store, s.bus, CheckoutSaga(s.cfg.paymentTimeout), saga.WithClock(s.cfg.clock), saga.WithLogger(s.cfg.logger),
		saga.WithMeterProvider(s.cfg.meters), saga.WithTracerProvider(s.cfg.tracer)); err != nil {
		return fmt.Errorf("shop: checkout: %w", err)
	}
	// The model's policies (package policies, generated from eventmodel.yaml)
	// are the simulated payment provider: one saga each, so that each keeps
	// its own consumer group and its own once-only record of the commands
	// it sent.
	for _, p := range policies.All() {
		pol, err := saga.New(store, s.bus, p, saga.WithClock(s.cfg.clock), saga.WithLogger(s.cfg.logger),
			saga.WithMeterProvider(s.cfg.meters), saga.WithTracerProvider(s.cfg.tracer))
		if err != nil {
			return fmt.Errorf("shop: policy %s: %w", p.Name(), err)
		}
		s.policies = append(s.policies, pol)
	}
	return nil
}

// Run runs the shop's runners (the order details and customer orders
// projections, the revenue stream processor, the checkout saga and the
// model's policies, which answer payment requests) until ctx ends, then
// returns nil; if one of them fails, it stops the others and
// returns that error.
func (s *Shop) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	type runner struct {
		name string
		run  func(context.Context) error
	}
	runners := []runner{
		{"order details", s.rm.OrderDetails.Projection.Run},
		{"customer orders", s.rm.CustomerOrders.Projection.Run},
		{"revenue", s.revenue.App.Run},
		{"checkout", s.checkout.Run},
	}
	for _, p := range s.policies {
		runners = append(runners, runner{"policy " + p.Name(), p.Run})
	}
	var wg sync.WaitGroup
	errs := make([]error, len(runners))
	for i, r := range runners {
		wg.Go(func() {
			if err := r.run(ctx); err != nil && ctx.Err() == nil {
				errs[i] = fmt.Errorf("shop: %s: %w", r.name, err)
				cancel(errs[i])
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Close closes the shop's command bus; it is idempotent. Call it after Run
// has returned.
func (s *Shop) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.bus.Close() })
	return s.closeErr
}

// Bus returns the shop's command bus, for in-process callers and tools.
func (s *Shop) Bus() *command.Bus { return s.bus }

// OrderDetails returns the order details read model (package readmodels,
// generated): an order by ID.
func (s *Shop) OrderDetails() *readmodels.OrderDetailsTable { return s.rm.OrderDetails }

// CustomerOrders returns the customer orders read model: a customer's
// orders (its index ByCustomerID).
func (s *Shop) CustomerOrders() *readmodels.CustomerOrdersTable { return s.rm.CustomerOrders }

// Projections returns the projections of the shop's read models, for the
// admin API.
func (s *Shop) Projections() []*projection.Projection { return s.rm.Projections() }

// Revenue returns the revenue per hour read model.
func (s *Shop) Revenue() *payment.Revenue { return s.revenue }

// Checkout returns the checkout saga, to inspect its instances.
func (s *Shop) Checkout() *saga.Saga[Checkout] { return s.checkout }

// Policies returns the sagas of the model's policies (package policies),
// which Run runs: the simulated payment provider's answers.
func (s *Shop) Policies() []*saga.Saga[struct{}] { return s.policies }

// Settled waits until the checkout of order id has ended (completed, or
// failed and compensated) with every command sent, and the order details
// and customer orders read models have applied the order's last event;
// then it returns the order as the order details have it. Give ctx a
// timeout: an order whose payment is never answered settles only at its
// deadline.
func (s *Shop) Settled(ctx context.Context, id string) (readmodels.OrderDetails, error) {
	if err := order.ValidateID("order_id", id); err != nil {
		return readmodels.OrderDetails{}, err
	}
	_, err := s.checkout.WaitFor(ctx, id, func(in saga.Instance[Checkout]) bool {
		return (in.Status == saga.StatusCompleted || in.Status == saga.StatusFailed) && in.PendingCommands == 0
	})
	if err != nil {
		return readmodels.OrderDetails{}, fmt.Errorf("shop: checkout of %s: %w", id, err)
	}
	st, err := s.orders.Load(ctx, id)
	if err != nil {
		return readmodels.OrderDetails{}, fmt.Errorf("shop: order %s: %w", id, err)
	}
	last := eventstore.Position{Topic: order.Topic, Offset: -1}
	for rec, err := range s.store.ReadStream(ctx, order.Topic, id, st.Version) {
		if err != nil {
			return readmodels.OrderDetails{}, fmt.Errorf("shop: order %s: %w", id, err)
		}
		last = rec.Position()
	}
	for _, p := range s.rm.Projections() {
		if err := p.WaitFor(ctx, last); err != nil {
			return readmodels.OrderDetails{}, fmt.Errorf("shop: %s of %s: %w", p.Name(), id, err)
		}
	}
	v, _, err := s.rm.OrderDetails.Get(ctx, id)
	return v, err
}
