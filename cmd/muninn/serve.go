package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/muninn-es/muninn/clock"
	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/eventstore/postgres"
	"github.com/muninn-es/muninn/examples/shop"
	"github.com/muninn-es/muninn/service"
	"github.com/muninn-es/muninn/service/admin"
)

// serveConfig is what `muninn serve` runs: the shop on the store in Data
// or, with Postgres set, on the PostgreSQL store at that URL, with gRPC on
// GRPCAddr and REST on HTTPAddr.
type serveConfig struct {
	Data string
	// Postgres is the URL of a PostgreSQL server to keep the store in
	// instead of Data; Schema is the schema the store lives in
	// (postgres.WithSchema) and LeaseTimeout its consumer-group lease
	// (postgres.WithLeaseTimeout). Several serve processes on one schema
	// are replicas of one shop.
	Postgres       string
	Schema         string
	LeaseTimeout   time.Duration
	GRPCAddr       string
	HTTPAddr       string
	PaymentTimeout time.Duration
	// TimeScale > 1 runs the shop's clock (deadlines, back-offs) that many
	// times faster than real time, for demos.
	TimeScale float64
	// Clock, if not nil, is the shop's clock instead (tests pass a
	// clock.Manual).
	Clock clock.Clock
	// NoMetrics turns /metrics off (metrics.go).
	NoMetrics bool
	Logger    *slog.Logger
	// Trace names the span exporter ("" for none, "stdout"; telemetry.go)
	// and TraceOut where "stdout" writes (default os.Stdout).
	Trace    string
	TraceOut io.Writer
	// Started, if not nil, is called with the bound addresses once both
	// servers listen.
	Started func(grpcAddr, httpAddr string)
}

// The defaults of --schema and --lease-timeout: those of postgres.Open.
const (
	defaultPGSchema       = "muninn"
	defaultPGLeaseTimeout = 10 * time.Second
)

func newServeCmd() *cobra.Command {
	cfg := serveConfig{GRPCAddr: service.DefaultGRPCAddr, HTTPAddr: service.DefaultHTTPAddr,
		PaymentTimeout: shop.DefaultPaymentTimeout, TimeScale: 1,
		Schema: defaultPGSchema, LeaseTimeout: defaultPGLeaseTimeout}
	var verbose bool
	metricsOn := true
	cmd := &cobra.Command{
		Use:   "serve --data DIR | --postgres URL [--schema NAME]",
		Short: "Serve the example shop over gRPC and REST on the embedded store in DIR, or on PostgreSQL",
		Long: `serve runs the example shop (examples/shop: orders, payments, shipping and the
checkout saga) on the event store in DIR, created if missing, or with
--postgres on a PostgreSQL store in the schema --schema of that server
(created and migrated if missing), with the shop's generated services
(shop.order.v1, shop.payment.v1) over gRPC and,
through the REST gateway, as JSON over HTTP:

  POST /v1/orders                         place an order
  GET  /v1/orders/{order_id}              an order (?min_position= to read your writes)
  POST /v1/orders/{order_id}:cancel       cancel it
  GET  /v1/customers/{customer_id}/orders a customer's orders
  GET  /v1/revenue                        revenue per hour

the framework's services (muninn.v1: topics, streams, subscriptions, consumer
groups, traces, projections, sagas; what the operator commands use) under
/v1/topics, /v1/streams, /v1/groups, /v1/traces, /v1/projections and
/v1/sagas, the admin web UI at /ui/ (topics, streams, groups, projections,
sagas and the lineage graph of a correlation ID), /healthz, /readyz,
/openapi.json, and /metrics (Prometheus; --metrics=false turns it off).
Both servers bind to loopback unless
told otherwise. It prints one line with the bound addresses when it serves,
and stops gracefully on SIGINT or SIGTERM: intake stops, in-flight calls
finish, the runners commit, the store closes. An address with port 0 takes a
free port (the line says which).

On PostgreSQL, several serve processes on one schema are replicas of one
shop: each takes commands, and the projections, the stream processor and
the sagas of all of them run as one consumer group per runner, the
partitions split among the replicas. A replica that stops (or is killed)
leaves its partitions to the others at the latest when its lease runs out
(--lease-timeout).`,
		Example: `  muninn serve --data /var/lib/shop
  muninn serve --data ./shop --grpc 127.0.0.1:0 --http 127.0.0.1:0
  muninn serve --postgres 'postgres://shop@db.internal/shop' --schema shop --http 127.0.0.1:8081 --grpc 127.0.0.1:7071`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cmd.SilenceUsage = true
			switch {
			case cfg.Data == "" && cfg.Postgres == "":
				return errors.New("serve: --data DIR or --postgres URL is required (where the event store is)")
			case cfg.Data != "" && cfg.Postgres != "":
				return errors.New("serve: --data and --postgres exclude each other: the store is in one place")
			case cfg.Postgres == "" && (cmd.Flags().Changed("schema") || cmd.Flags().Changed("lease-timeout")):
				return errors.New("serve: --schema and --lease-timeout apply to a PostgreSQL store only (--postgres URL)")
			}
			level := slog.LevelWarn
			if verbose {
				level = slog.LevelInfo
			}
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			cfg.NoMetrics = !metricsOn
			out := cmd.OutOrStdout()
			where := "data " + cfg.Data
			if cfg.Postgres != "" {
				where = "postgres schema " + cfg.Schema // not the URL: it may hold a password
			}
			cfg.Started = func(g, h string) {
				fmt.Fprintf(out, "muninn serve: gRPC on %s, HTTP on http://%s (%s)\n", g, h, where)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Data, "data", "", "directory of the event store (created if missing)")
	f.StringVar(&cfg.Postgres, "postgres", "", "URL of a PostgreSQL server to keep the event store in, instead of --data (postgres://user@host/db, or postgres:///db?host=/socket/dir)")
	f.StringVar(&cfg.Schema, "schema", cfg.Schema, "with --postgres: the schema of the store (replicas of one shop share it)")
	f.DurationVar(&cfg.LeaseTimeout, "lease-timeout", cfg.LeaseTimeout, "with --postgres: how long a replica that stopped renewing keeps its consumer-group partitions")
	f.StringVar(&cfg.GRPCAddr, "grpc", cfg.GRPCAddr, "gRPC listen address")
	f.StringVar(&cfg.HTTPAddr, "http", cfg.HTTPAddr, "HTTP (REST gateway) listen address")
	f.DurationVar(&cfg.PaymentTimeout, "payment-timeout", cfg.PaymentTimeout, "how long the checkout waits for the payment provider")
	f.Float64Var(&cfg.TimeScale, "time-scale", cfg.TimeScale, "run the shop's clock this many times faster than real time (demos)")
	f.BoolVarP(&verbose, "verbose", "v", false, "log at info level, not only warnings")
	f.BoolVar(&metricsOn, "metrics", metricsOn, "serve Prometheus metrics at /metrics on the HTTP address")
	f.StringVar(&cfg.Trace, "trace", "", "export OpenTelemetry spans: \"stdout\" writes each as JSON to stdout")
	return cmd
}

// runServe opens the store, wires the shop and the servers, and runs them
// until ctx ends or a part fails.
func runServe(ctx context.Context, cfg serveConfig) error {
	if cfg.TimeScale <= 0 {
		return fmt.Errorf("serve: --time-scale %v must be positive", cfg.TimeScale)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tp, traceCloser, err := newTracing(cfg.Trace, cfg.TraceOut)
	if err != nil {
		return err
	}
	m, err := newServeMetrics(!cfg.NoMetrics)
	if err != nil {
		return err
	}
	defer func() { _ = m.shutdown(context.Background()) }()
	store, err := openServeStore(ctx, cfg, tp, append(m.storeOptions(), eventstore.WithTracerProvider(tp))...)
	if err != nil {
		return err
	}
	var clk clock.Clock = clock.System()
	if cfg.TimeScale != 1 {
		clk = clock.Scaled(cfg.TimeScale)
	}
	if cfg.Clock != nil {
		clk = cfg.Clock
	}
	s, err := shop.New(store, append(m.shopOptions(), shop.WithClock(clk), shop.WithPaymentTimeout(cfg.PaymentTimeout), shop.WithLogger(cfg.Logger),
		shop.WithTracerProvider(tp))...)
	if err != nil {
		return errors.Join(err, store.Close())
	}
	sagas := []admin.Saga{admin.SagaOf(s.Checkout())}
	for _, p := range s.Policies() {
		sagas = append(sagas, admin.SagaOf(p))
	}
	a, err := admin.New(store, admin.WithProjections(s.Projections()...), admin.WithSagas(sagas...))
	if err != nil {
		return errors.Join(err, s.Close(), store.Close())
	}
	srv, err := service.New(
		service.WithGRPCAddr(cfg.GRPCAddr),
		service.WithHTTPAddr(cfg.HTTPAddr),
		service.WithLogger(cfg.Logger),
		service.WithTitle("Muninn shop"),
		service.WithTracerProvider(tp),
		service.WithOpenAPI(append(admin.OpenAPI(), shop.OpenAPI()...)...),
		uiOption(),
		m.serviceOption(),
	)
	if err != nil {
		return errors.Join(err, s.Close(), store.Close())
	}
	srv.Register(func(g *grpc.Server) {
		s.RegisterGRPC(g)
		a.Register(g)
	})
	srv.RegisterGateway(shop.RegisterGateway)
	srv.RegisterGateway(a.RegisterGateway)
	for name, check := range s.ReadyChecks() {
		srv.Ready(name, check)
	}

	var g service.Group
	g.AddCloser("tracing", traceCloser) // closed last: it flushes every span
	g.AddCloser("store", store)
	g.AddCloser("shop", closerFunc(s.Close))
	g.Add("shop", s)
	g.AddServer(srv)
	if cfg.Started != nil {
		go func() {
			select {
			case <-srv.Started():
				cfg.Started(srv.GRPCAddr(), srv.HTTPAddr())
			case <-ctx.Done():
			}
		}()
	}
	return g.Run(ctx)
}

// openServeStore opens the store cfg names: PostgreSQL if cfg.Postgres is
// set, else the embedded store in cfg.Data.
func openServeStore(ctx context.Context, cfg serveConfig, tp trace.TracerProvider, pebbleOpts ...eventstore.Option) (eventstore.Store, error) {
	if cfg.Postgres != "" {
		store, err := postgres.Open(ctx, cfg.Postgres, postgres.WithSchema(cfg.Schema),
			postgres.WithLeaseTimeout(cfg.LeaseTimeout), postgres.WithLogger(cfg.Logger), postgres.WithTracerProvider(tp))
		if err != nil {
			// pgx's errors do not repeat the password of the URL.
			return nil, fmt.Errorf("serve: open the PostgreSQL store (schema %s): %w", cfg.Schema, err)
		}
		return store, nil
	}
	store, err := eventstore.Open(cfg.Data, pebbleOpts...)
	if errors.Is(err, eventstore.ErrLocked) {
		return nil, fmt.Errorf("serve: %s is in use by another running store; stop it or choose another --data (%w)", cfg.Data, err)
	}
	if err != nil {
		return nil, fmt.Errorf("serve: open %s: %w", cfg.Data, err)
	}
	return store, nil
}

// closerFunc adapts a Close method to io.Closer.
type closerFunc func() error

func (f closerFunc) Close() error { return f() }
