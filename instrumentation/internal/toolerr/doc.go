// Package toolerr makes the error text of a failed MCP tool result, the one
// implementation both MCP adapters (mcpsdk and mcpgo) use.
package toolerr
