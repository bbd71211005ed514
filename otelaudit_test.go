package otelaudit

import "testing"

func TestStatusValid(t *testing.T) {
	for _, s := range []Status{StatusOK, StatusError, StatusDenied, StatusTimeout, StatusCancelled} {
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

func TestStatusCancelled(t *testing.T) {
	if StatusCancelled != "cancelled" || !StatusCancelled.Valid() {
		t.Errorf("StatusCancelled = %q, Valid %v", StatusCancelled, StatusCancelled.Valid())
	}
}

func TestLimitsAndMarkers(t *testing.T) {
	// Other packages and stored rows depend on these exact values.
	if DefaultMaxFieldBytes != 256 || DefaultMaxErrorBytes != 4096 || DefaultMaxArgsBytes != 64<<10 ||
		MaxStoredArgsBytes != 1<<20 || MaxJSONDepth != 32 {
		t.Errorf("limits %d %d %d %d %d", DefaultMaxFieldBytes, DefaultMaxErrorBytes, DefaultMaxArgsBytes, MaxStoredArgsBytes, MaxJSONDepth)
	}
	if DefaultMaxArgsBytes > MaxStoredArgsBytes {
		t.Errorf("the middleware's argument limit is above the mapping's hard cap")
	}
	if got := TruncatedSizeKey(UserIDKey); got != "otelaudit.truncated.user.id.size" {
		t.Errorf("TruncatedSizeKey = %q", got)
	}
	if got := TruncatedSHA256Key(MCPSessionIDKey); got != "otelaudit.truncated.mcp.session.id.sha256" {
		t.Errorf("TruncatedSHA256Key = %q", got)
	}
	if len(TruncatedSuffix) >= DefaultMaxFieldBytes {
		t.Errorf("suffix %q too long", TruncatedSuffix)
	}
}
