package pgwriter

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/log"
	sdklog "go.opentelemetry.io/otel/sdk/log"
	"go.opentelemetry.io/otel/sdk/resource"

	"github.com/sentinel-gateway/otelaudit"
	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/migrations"
)

// The writer-shape benchmarks run Export's write path both ways, side by
// side, on the same SDK records (512 per batch, the calls of
// exporter/bench_test.go):
//
//	go test -run '^$' -bench 'Shape' -benchmem -count 6 ./exporter/internal/pgwriter/
//
// ShapeLazy maps each record while the COPY streams the rows before it
// (a Source called on pgx's goroutine); ShapeMapFirst maps the whole batch
// and then writes it with pgx.CopyFromSlice.

const shapeBatch = 512

type collect struct{ records []sdklog.Record }

func (c *collect) OnEmit(_ context.Context, r *sdklog.Record) error {
	c.records = append(c.records, r.Clone())
	return nil
}
func (c *collect) Enabled(context.Context, sdklog.EnabledParameters) bool { return true }
func (c *collect) Shutdown(context.Context) error                         { return nil }
func (c *collect) ForceFlush(context.Context) error                       { return nil }

func shapeRecords(b *testing.B) [][]sdklog.Record {
	var c collect
	lp := sdklog.NewLoggerProvider(sdklog.WithProcessor(&c), sdklog.WithResource(resource.NewSchemaless(attribute.String("service.name", "gateway"))))
	l := lp.Logger("bench")
	batches := make([][]sdklog.Record, b.N)
	for i := range batches {
		c.records = make([]sdklog.Record, 0, shapeBatch)
		for j := range shapeBatch {
			var r log.Record
			r.SetEventName(otelaudit.EventName)
			r.SetTimestamp(time.Now())
			r.AddAttributes(
				otelaudit.RequestIDKey.String(uuid.Must(uuid.NewV7()).String()),
				otelaudit.UserIDKey.String("alice@example.com"),
				otelaudit.UserRolesKey.StringSlice([]string{"admin"}),
				otelaudit.ToolNameKey.String("search_docs"),
				otelaudit.BackendNameKey.String("docs"),
				otelaudit.ToolCallArgumentsKey.Map(attribute.String("query", "quarterly report"), attribute.Int("limit", 10), attribute.Bool("fuzzy", j%2 == 0)),
				otelaudit.ResponseStatusKey.String("ok"),
				otelaudit.LatencyMSKey.Int64(int64(j%100)),
				otelaudit.GenAIOperationNameKey.String(otelaudit.OperationExecuteTool),
				otelaudit.MCPMethodNameKey.String(otelaudit.MethodToolsCall),
				otelaudit.MCPSessionIDKey.String("3f1c2a9e-session"),
				otelaudit.JSONRPCRequestIDKey.String("42"),
			)
			l.Emit(context.Background(), r)
		}
		batches[i] = c.records
	}
	return batches
}

// sdkRows maps SDK records the way exporter.lazyRows does.
type sdkRows struct {
	records []sdklog.Record
	rows    []auditrow.Row
	rec     auditrow.Record
	attrs   []attribute.KeyValue
	mapper  auditrow.Mapper
}

func (s *sdkRows) reset(records []sdklog.Record) {
	s.records, s.rows = records, s.rows[:0]
	s.mapper.Reset()
}

func (s *sdkRows) Len() int { return len(s.records) }

func (s *sdkRows) Row(i int) *auditrow.Row {
	for len(s.rows) <= i {
		r := &s.records[len(s.rows)]
		s.attrs = s.attrs[:0]
		r.WalkAttributes(func(kv attribute.KeyValue) bool { s.attrs = append(s.attrs, kv); return true })
		svc, _ := r.Resource().Set().Value("service.name")
		s.rec = auditrow.Record{
			Timestamp: r.Timestamp(), ObservedTimestamp: r.ObservedTimestamp(), TraceID: r.TraceID(), SpanID: r.SpanID(),
			EventName: r.EventName(), ServiceName: svc.Emit(), Body: r.Body(), Attributes: s.attrs,
		}
		s.rows = append(s.rows, s.mapper.Map(&s.rec))
	}
	return &s.rows[i]
}

func (s *sdkRows) mapAll() []auditrow.Row {
	if n := s.Len(); n > 0 {
		s.Row(n - 1)
	}
	return s.rows
}

func shapeWriter(b *testing.B) *Writer {
	url := pgtest.NewDatabase(b)
	ctx := context.Background()
	if err := migrations.Up(ctx, url); err != nil {
		b.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	return New(pool, "audit_log")
}

func BenchmarkShapeLazy(b *testing.B)     { benchShape(b, true) }
func BenchmarkShapeMapFirst(b *testing.B) { benchShape(b, false) }

func benchShape(b *testing.B, lazy bool) {
	w := shapeWriter(b)
	batches := shapeRecords(b)
	var src sdkRows
	ctx := context.Background()
	runtime.GC()
	b.ResetTimer()
	for i := range b.N {
		src.reset(batches[i])
		var res Result
		var err error
		if lazy {
			res, err = w.WriteSource(ctx, &src)
		} else {
			res, err = w.writeSlice(ctx, src.mapAll())
		}
		if err != nil || res.Inserted != shapeBatch {
			b.Fatalf("write = %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(b.N*shapeBatch)/b.Elapsed().Seconds(), "rows/s")
}
