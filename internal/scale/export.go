package scale

import (
	"context"
	"fmt"
	"runtime"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/exporter"
)

// collect is a Processor that keeps the records it is given.
type collect struct{ records []sdklog.Record }

func (c *collect) OnEmit(_ context.Context, r *sdklog.Record) error {
	c.records = append(c.records, r.Clone())
	return nil
}
func (c *collect) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (c *collect) Shutdown(context.Context) error                         { return nil }
func (c *collect) ForceFlush(context.Context) error                       { return nil }

// Records makes n batches of size audit records, stamped now, shaped like
// the exporter benchmark's calls.
func Records(n, size int) [][]sdklog.Record {
	var c collect
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(&c), sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "gateway"))))
	l := lp.Logger("scale")
	out := make([][]sdklog.Record, n)
	for i := range out {
		c.records = make([]sdklog.Record, 0, size)
		for j := 0; j < size; j++ {
			var r log.Record
			r.SetEventName(otelaudit.EventName)
			r.SetTimestamp(time.Now())
			r.AddAttributes(
				otelaudit.RequestIDKey.String(uuid.Must(uuid.NewV7()).String()),
				otelaudit.UserIDKey.String(fmt.Sprintf("user-%d@example.com", j%5000)),
				otelaudit.UserRolesKey.StringSlice([]string{"analyst"}),
				otelaudit.ToolNameKey.String("search_docs"),
				otelaudit.BackendNameKey.String("docs"),
				otelaudit.ToolCallArgumentsKey.Map(attribute.String("query", "quarterly report"), attribute.Int("limit", 10), attribute.Bool("fuzzy", j%2 == 0)),
				otelaudit.ResponseStatusKey.String("ok"),
				otelaudit.LatencyMSKey.Int64(int64(j%100)),
				otelaudit.GenAIOperationNameKey.String(otelaudit.OperationExecuteTool),
				otelaudit.MCPMethodNameKey.String(otelaudit.MethodToolsCall),
				otelaudit.MCPSessionIDKey.String(uuid.NewString()),
				otelaudit.JSONRPCRequestIDKey.String("42"),
			)
			l.Emit(context.Background(), r)
		}
		out[i] = c.records
	}
	return out
}

// ExportRate writes batches through a real exporter.Exporter on pool (no
// migration, no maintenance tasks, no sealing: the schema's cost alone,
// and v1 has no seal tables) and returns rows per second.
func ExportRate(ctx context.Context, pool *pgxpool.Pool, table string, batches [][]sdklog.Record) (float64, error) {
	exp, err := exporter.New(ctx, exporter.WithPool(pool), exporter.WithMigrate(false), exporter.WithTable(table),
		exporter.WithPartitionsAhead(0), exporter.WithSealing(false))
	if err != nil {
		return 0, fmt.Errorf("scale: %w", err)
	}
	defer func() { _ = exp.Shutdown(context.Background()) }()
	rows := 0
	runtime.GC()
	start := time.Now()
	for _, b := range batches {
		if err := exp.Export(ctx, b); err != nil {
			return 0, fmt.Errorf("scale: export: %w", err)
		}
		rows += len(b)
	}
	return float64(rows) / time.Since(start).Seconds(), nil
}
