package otelaudit

import "testing"

func TestStatusValid(t *testing.T) {
	for _, s := range []Status{StatusOK, StatusError, StatusDenied, StatusTimeout} {
		if !s.Valid() {
			t.Errorf("%q.Valid() = false, want true", s)
		}
	}
	for _, s := range []Status{"", "OK", "failed"} {
		if s.Valid() {
			t.Errorf("%q.Valid() = true, want false", s)
		}
	}
}

func TestKeysAreSemanticConventions(t *testing.T) {
	// The exact strings are a contract with every stored row and every
	// Collector pipeline: a typo here silently moves data to another column.
	want := map[string]string{
		string(ToolNameKey):           "gen_ai.tool.name",
		string(ToolCallArgumentsKey):  "gen_ai.tool.call.arguments",
		string(GenAIOperationNameKey): "gen_ai.operation.name",
		string(UserIDKey):             "user.id",
		string(UserRolesKey):          "user.roles",
		string(ErrorMessageKey):       "error.message",
		string(ErrorTypeKey):          "error.type",
		string(MCPMethodNameKey):      "mcp.method.name",
		string(MCPSessionIDKey):       "mcp.session.id",
		string(JSONRPCRequestIDKey):   "jsonrpc.request.id",
		string(RequestIDKey):          "otelaudit.request.id",
		string(BackendNameKey):        "otelaudit.backend.name",
		string(ResponseStatusKey):     "otelaudit.response.status",
		string(LatencyMSKey):          "otelaudit.latency_ms",
	}
	for got, w := range want {
		if got != w {
			t.Errorf("key %q, want %q", got, w)
		}
	}
	if EventName != "otelaudit.tool_call" {
		t.Errorf("EventName = %q", EventName)
	}
}
