package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/otlptranslator"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/metric/noop"

	"github.com/muninn-es/muninn/eventstore"
	"github.com/muninn-es/muninn/examples/shop"
	"github.com/muninn-es/muninn/internal/otelsdk"
	"github.com/muninn-es/muninn/service"
)

// metricsPath is where `muninn serve` serves its metrics.
const metricsPath = "/metrics"

// serveMetrics is the metrics setup of `muninn serve`: the framework reports
// through the OpenTelemetry metrics API, and the SDK's Prometheus exporter
// turns the readings into Prometheus' text format at /metrics, on a registry
// of its own with the Go runtime's and the process's collectors.
//
// The exporter is told to keep Muninn's names as they are
// (UnderscoreEscapingWithoutSuffixes: no unit or _total suffixes are added,
// the names already follow Prometheus' conventions) and to add no
// otel_scope_* labels or target_info, so that the names are exactly the
// documented ones (muninn_commands_total, ...).
type serveMetrics struct {
	provider metric.MeterProvider
	handler  http.Handler // nil when metrics are off
	shutdown func(context.Context) error
}

// newServeMetrics returns the metrics setup; off, it is a no-op provider
// and no handler.
func newServeMetrics(on bool) (*serveMetrics, error) {
	if !on {
		return &serveMetrics{provider: noop.NewMeterProvider(), shutdown: func(context.Context) error { return nil }}, nil
	}
	reg := prometheus.NewRegistry()
	if err := errors.Join(
		reg.Register(collectors.NewGoCollector()),
		reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
	); err != nil {
		return nil, fmt.Errorf("serve: metrics: %w", err)
	}
	exp, err := otelprom.New(
		otelprom.WithRegisterer(reg),
		otelprom.WithTranslationStrategy(otlptranslator.UnderscoreEscapingWithoutSuffixes),
		otelprom.WithoutScopeInfo(),
		otelprom.WithoutTargetInfo(),
	)
	if err != nil {
		return nil, fmt.Errorf("serve: metrics: %w", err)
	}
	// Exemplars off: the text format served below has none (otelsdk).
	mp := otelsdk.NewMeterProvider(exp)
	return &serveMetrics{
		provider: mp,
		handler:  promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: nil}),
		shutdown: mp.Shutdown,
	}, nil
}

// storeOptions, shopOptions and serviceOptions wire the setup into the
// store, the shop and the server.
func (m *serveMetrics) storeOptions() []eventstore.Option {
	return []eventstore.Option{eventstore.WithMeterProvider(m.provider)}
}

func (m *serveMetrics) shopOptions() []shop.Option {
	return []shop.Option{shop.WithMeterProvider(m.provider)}
}

// serviceOption serves the metrics at metricsPath; off, that path answers
// 404 saying so.
func (m *serveMetrics) serviceOption() service.Option {
	h := m.handler
	if h == nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "metrics are off (muninn serve --metrics=false)", http.StatusNotFound)
		})
	}
	return service.WithHandler("GET "+metricsPath, h)
}
