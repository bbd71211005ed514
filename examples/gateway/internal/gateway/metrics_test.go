package gateway

import (
	"context"
	"net/http"
	"testing"

	"go.opentelemetry.io/otel"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// TestAnonymousMetrics: refused requests show in the gateway's metrics.
func TestAnonymousMetrics(t *testing.T) {
	reader := sdkmetric.NewManualReader()
	prev := otel.GetMeterProvider()
	otel.SetMeterProvider(sdkmetric.NewMeterProvider(sdkmetric.WithReader(reader)))
	t.Cleanup(func() { otel.SetMeterProvider(prev) })

	tg := startGateway(t, demoConfig())
	for range 3 {
		resp, err := http.Get(tg.base + "/mcp")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	var rm metricdata.ResourceMetrics
	if err := reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sm := range rm.ScopeMetrics {
		if sm.Scope.Name != MeterName {
			continue
		}
		for _, m := range sm.Metrics {
			if sum, ok := m.Data.(metricdata.Sum[int64]); ok {
				for _, dp := range sum.DataPoints {
					got[m.Name] += dp.Value
				}
			}
		}
	}
	if got["otelaudit.gateway.anonymous.requests"] != 3 {
		t.Errorf("metrics: %v, want otelaudit.gateway.anonymous.requests 3", got)
	}
	for _, name := range []string{"otelaudit.gateway.anonymous.rows", "otelaudit.gateway.anonymous.refused", "otelaudit.gateway.connections.refused"} {
		if _, ok := got[name]; !ok {
			t.Errorf("metric %s missing: %v", name, got)
		}
	}
}
