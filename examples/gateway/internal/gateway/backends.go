package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/sentinel-gateway/otelaudit/instrumentation"
)

// connectTimeout bounds connecting to a downstream server and listing its
// tools at start-up.
const connectTimeout = 30 * time.Second

// registeredTool is one tool as the gateway serves it.
type registeredTool struct {
	tool    *mcp.Tool
	handler mcp.ToolHandler
}

// backend is a started backend: its tools and how to stop it.
type backend struct {
	name  string
	tools []registeredTool
	// session is the client session of a proxied backend, nil for builtin.
	session *mcp.ClientSession
}

// close ends the session with a proxied backend (and stops its process).
func (b *backend) close() error {
	if b.session == nil {
		return nil
	}
	if err := b.session.Close(); err != nil {
		return fmt.Errorf("backend %s: close: %w", b.name, err)
	}
	return nil
}

// startBackend starts the backend bc and lists its tools, named as the
// gateway serves them (with bc.ToolPrefix).
func startBackend(ctx context.Context, bc BackendConfig, logger *slog.Logger) (*backend, error) {
	b := &backend{name: bc.Name}
	if bc.Type == BackendBuiltin {
		b.tools = builtinTools(bc.Name)
	} else {
		cctx, cancel := context.WithTimeout(ctx, connectTimeout)
		defer cancel()
		session, err := connectDownstream(cctx, bc, logger)
		if err != nil {
			return nil, fmt.Errorf("backend %s: %w", bc.Name, err)
		}
		b.session = session
		for t, err := range session.Tools(cctx, nil) {
			if err != nil {
				_ = session.Close()
				return nil, fmt.Errorf("backend %s: list tools: %w", bc.Name, err)
			}
			b.tools = append(b.tools, proxyTool(bc.Name, session, t))
		}
	}
	if bc.ToolPrefix != "" {
		for i, rt := range b.tools {
			t := *rt.tool
			t.Name = bc.ToolPrefix + t.Name
			b.tools[i].tool = &t
		}
	}
	return b, nil
}

// connectDownstream opens an MCP client session with a stdio or http
// backend.
func connectDownstream(ctx context.Context, bc BackendConfig, logger *slog.Logger) (*mcp.ClientSession, error) {
	var transport mcp.Transport
	switch bc.Type {
	case BackendStdio:
		cmd := exec.Command(bc.Command, bc.Args...)
		cmd.Dir = bc.Dir
		cmd.Env = os.Environ()
		for k, v := range bc.Env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		// The server's own diagnostics go to the gateway's stderr.
		cmd.Stderr = os.Stderr
		transport = &mcp.CommandTransport{Command: cmd, TerminateDuration: 2 * time.Second}
	case BackendHTTP:
		hc := &http.Client{Transport: headerTransport{headers: bc.Headers, next: http.DefaultTransport}}
		transport = &mcp.StreamableClientTransport{Endpoint: bc.URL, HTTPClient: hc}
	default:
		return nil, fmt.Errorf("cannot proxy a backend of type %q", bc.Type)
	}
	client := mcp.NewClient(&mcp.Implementation{Name: "otelaudit-gateway", Version: Version}, nil)
	session, err := client.Connect(ctx, transport, nil)
	if err != nil {
		return nil, fmt.Errorf("connect over %s: %w", bc.Type, err)
	}
	logger.Info("connected to downstream MCP server", "backend", bc.Name, "type", bc.Type)
	return session, nil
}

// proxyTool returns the gateway's version of a downstream tool: same
// description and schemas, a handler that forwards the call.
func proxyTool(backendName string, session *mcp.ClientSession, t *mcp.Tool) registeredTool {
	own := *t
	if own.InputSchema == nil {
		own.InputSchema = json.RawMessage(`{"type": "object"}`)
	}
	remote := t.Name
	return registeredTool{
		tool: &own,
		handler: func(ctx context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
			instrumentation.SetBackend(ctx, backendName)
			p := &mcp.CallToolParams{Name: remote}
			if len(req.Params.Arguments) > 0 {
				p.Arguments = req.Params.Arguments
			}
			res, err := session.CallTool(ctx, p)
			if err != nil {
				if ctx.Err() != nil {
					// Keep the deadline visible, so the call is a timeout.
					return nil, fmt.Errorf("backend %s: %w", backendName, errors.Join(context.Cause(ctx), err))
				}
				return nil, fmt.Errorf("backend %s: %w", backendName, err)
			}
			return res, nil
		},
	}
}

// headerTransport adds fixed headers to every request.
type headerTransport struct {
	headers map[string]string
	next    http.RoundTripper
}

func (h headerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if len(h.headers) == 0 {
		return h.next.RoundTrip(r)
	}
	r = r.Clone(r.Context())
	for k, v := range h.headers {
		r.Header.Set(k, v)
	}
	return h.next.RoundTrip(r)
}
