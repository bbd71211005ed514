package integrity_test

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/internal/integrity"
)

func typicalRow() auditrow.Row {
	return auditrow.Row{
		RequestID: uuid.New(), Timestamp: time.Now(), ClientSubject: "alice@example.com", ClientRole: "analyst,admin",
		ToolName: "search_documents", BackendName: "docs", ResponseStatus: "ok", LatencyMS: 42,
		TraceID: "4bf92f3577b34da6a3ce929d0e0e4736", SpanID: "00f067aa0ba902b7", ServiceName: "gateway",
		RequestArgs: []byte(`{"query":"quarterly report","limit":10,"filters":{"year":2025,"tags":["finance","q3"]}}`),
		Attributes:  []byte(`{"mcp.method.name":"tools/call","mcp.session.id":"3f2a9c1e-5b7d-4e8f-9a0b-1c2d3e4f5a6b","jsonrpc.request.id":"17","gen_ai.operation.name":"execute_tool"}`),
	}
}

func BenchmarkRowHash(b *testing.B) {
	r := typicalRow()
	var h integrity.RowHasher
	b.ReportAllocs()
	for b.Loop() {
		h.Hash(&r)
	}
}
