package auditrow

import (
	"time"

	"github.com/google/uuid"
)

// legacyRows are the rows encoded in testdata/rows-v1.bin by the codec of
// version 1 (before the column table), so that a spool file written by that
// version keeps decoding. Do not change them: the file was produced from
// exactly these values.
func legacyRows() []Row {
	return []Row{
		{
			RequestID:     uuid.MustParse("01900000-0000-7000-8000-000000000001"),
			Timestamp:     time.Date(2026, 11, 27, 12, 0, 0, 123456789, time.UTC),
			ClientSubject: "alice@example.com", ClientRole: "admin", ToolName: "search_docs", BackendName: "docs",
			RequestArgs:    []byte(`{"fuzzy":true,"limit":10,"query":"quarterly report"}`),
			ResponseStatus: "ok", LatencyMS: 12,
			TraceID: "0102030405060708090a0b0c0d0e0f10", SpanID: "0102030405060708", ServiceName: "gateway",
			Attributes: []byte(`{"gen_ai.operation.name":"execute_tool","mcp.method.name":"tools/call","mcp.session.id":"3f1c2a9e-session","jsonrpc.request.id":"42"}`),
		},
		{
			RequestID:     uuid.MustParse("01900000-0000-7000-8000-000000000002"),
			Timestamp:     time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC), // before the epoch: negative seconds
			ClientSubject: "bob", ClientRole: "viewer,auditor", ToolName: "transfer_funds", BackendName: "bank",
			RequestArgs:    []byte{}, // empty, not nil
			ResponseStatus: "error", ErrorMessage: "backend said: ünïcødé \u2028 failure", LatencyMS: -3,
		},
		{
			RequestID:     uuid.MustParse("01900000-0000-7000-8000-000000000003"),
			Timestamp:     time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
			ClientSubject: Unknown, ClientRole: Unknown, ToolName: Unknown, BackendName: Unknown, ResponseStatus: Unknown,
			LatencyMS:  1 << 40,
			Attributes: []byte(`{"otelaudit.mapping.missing":["user.id"]}`),
		},
	}
}
