// Package mcpgo audits the tool calls of an MCP server built with
// github.com/mark3labs/mcp-go.
//
//	hooks := &server.Hooks{}
//	mcpgo.AddHooks(hooks) // records jsonrpc.request.id
//	s := server.NewMCPServer("gateway", "1.0.0",
//		server.WithHooks(hooks),
//		server.WithToolHandlerMiddleware(mcpgo.Middleware(auditor, mcpgo.WithBackendName("search"))),
//	)
//
// Every tool call then becomes one otelaudit audit record. A gateway that
// proxies tools to several backends names the backend of a call from inside
// its tool handler with instrumentation.SetBackend(ctx, name).
package mcpgo
