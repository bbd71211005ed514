// Package mcpsdk audits the tool calls of an MCP server built with
// github.com/modelcontextprotocol/go-sdk.
//
//	server := mcp.NewServer(&mcp.Implementation{Name: "gateway"}, nil)
//	server.AddReceivingMiddleware(mcpsdk.Middleware(auditor, mcpsdk.WithBackendName("search")))
//
// Every tools/call request then becomes one otelaudit audit record; every
// other method passes through untouched. A gateway that proxies tools to
// several backends names the backend of a call from inside its tool handler
// with instrumentation.SetBackend(ctx, name).
package mcpsdk
