// Package metadata holds the build information of the pgaudit exporter, as
// mdatagen would generate it from metadata.yaml (kept by hand so that the
// module does not need mdatagen to build).
package metadata

import (
	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/config/configoptional"
	"go.opentelemetry.io/collector/exporter/exporterhelper"
)

var (
	// Type is the component type, the key under exporters: in a config.
	Type = component.MustNewType("pgaudit")
	// ScopeName is the instrumentation scope of the component's own
	// telemetry.
	ScopeName = "github.com/sentinel-gateway/otelaudit/exporter/pgauditexporter"
)

// LogsStability is the stability of the logs signal.
const LogsStability = component.StabilityLevelAlpha

// NewDefaultSendingQueueConfig returns the sending queue default declared in
// metadata.yaml.
func NewDefaultSendingQueueConfig() configoptional.Optional[exporterhelper.QueueBatchConfig] {
	return configoptional.Some(exporterhelper.NewDefaultQueueConfig())
}
