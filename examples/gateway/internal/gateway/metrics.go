package gateway

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// MeterName is the instrumentation scope of the gateway's own metrics.
const MeterName = "github.com/sentinel-gateway/otelaudit/examples/gateway"

// registerMetrics publishes [Gateway.AnonymousStats] through the global
// MeterProvider (otel.SetMeterProvider) as observable counters:
// otelaudit.gateway.anonymous.requests (refused with 401),
// otelaudit.gateway.anonymous.rows (rows they became),
// otelaudit.gateway.anonymous.refused{reason} (reason overflow: counted in
// an overflow row; unread: refused without reading the body) and
// otelaudit.gateway.connections.refused (the per-client connection cap).
func (g *Gateway) registerMetrics() error {
	m := otel.GetMeterProvider().Meter(MeterName)
	requests, err := m.Int64ObservableCounter("otelaudit.gateway.anonymous.requests", metric.WithUnit("{request}"),
		metric.WithDescription("Requests refused for want of a valid bearer token (HTTP 401)."))
	if err != nil {
		return err
	}
	rows, err := m.Int64ObservableCounter("otelaudit.gateway.anonymous.rows", metric.WithUnit("{row}"),
		metric.WithDescription("Audit rows the refused requests became, each standing for one or more of them."))
	if err != nil {
		return err
	}
	refused, err := m.Int64ObservableCounter("otelaudit.gateway.anonymous.refused", metric.WithUnit("{request}"),
		metric.WithDescription("Refused requests counted in an overflow row (reason overflow) or refused without reading their body (reason unread)."))
	if err != nil {
		return err
	}
	conns, err := m.Int64ObservableCounter("otelaudit.gateway.connections.refused", metric.WithUnit("{connection}"),
		metric.WithDescription("Connections closed on accept because their client address had server.max_conns_per_client open."))
	if err != nil {
		return err
	}
	overflow := metric.WithAttributes(attribute.String("reason", "overflow"))
	unread := metric.WithAttributes(attribute.String("reason", "unread"))
	reg, err := m.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		s := g.AnonymousStats()
		o.ObserveInt64(requests, s.Requests)
		o.ObserveInt64(rows, s.Rows)
		o.ObserveInt64(refused, s.Overflowed, overflow)
		o.ObserveInt64(refused, s.Unread, unread)
		o.ObserveInt64(conns, s.ConnsRefused)
		return nil
	}, requests, rows, refused, conns)
	if err != nil {
		return err
	}
	g.metricsReg = reg
	return nil
}

// unregisterMetrics stops publishing the gateway's metrics.
func (g *Gateway) unregisterMetrics() {
	if g.metricsReg != nil {
		if err := g.metricsReg.Unregister(); err != nil {
			otel.Handle(fmt.Errorf("gateway: unregister metrics: %w", err))
		}
	}
}
