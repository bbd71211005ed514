// Command gateway runs the example otelaudit MCP gateway: MCP over
// streamable HTTP at /mcp, /healthz, bearer-token authentication, per-role
// tool allow-lists, a builtin demo backend and proxied downstream MCP
// servers, with one audit_log row per tool call.
//
//	go run ./examples/gateway -config examples/gateway/gateway.yaml
//
// See gateway.yaml for the configuration and the environment variables that
// override it. SIGTERM or SIGINT stop the gateway gracefully: in-flight calls
// finish (up to shutdown_timeout) and every audit record is flushed before
// the process exits.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sentinel-gateway/otelaudit/examples/gateway/internal/gateway"
)

// flushTimeout bounds the audit flush after the gateway stops serving.
const flushTimeout = 30 * time.Second

func main() {
	configPath := flag.String("config", "examples/gateway/gateway.yaml", "path of the YAML configuration file")
	flag.Parse()
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(*configPath, logger); err != nil {
		logger.Error("gateway failed", "err", err)
		os.Exit(1)
	}
}

// run loads the configuration, serves until SIGTERM or SIGINT, and shuts
// down gracefully.
func run(configPath string, logger *slog.Logger) error {
	cfg, err := gateway.Load(configPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	if cfg.Audit.IsEnabled() && cfg.AuditExporter == nil && cfg.DatabaseURL != "" && !gateway.OTLPEnabled() {
		// As the demo does: a first run on a machine creates the database.
		created, err := gateway.EnsureDatabase(ctx, cfg.DatabaseURL)
		if err != nil {
			return err
		}
		if created {
			logger.Info("created the audit database", "database_url", gateway.RedactURL(cfg.DatabaseURL))
		}
	}

	g, err := gateway.New(ctx, cfg, logger)
	if err != nil {
		return fmt.Errorf("start gateway: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = g.Close(context.Background())
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	serveErr := g.Serve(ctx, ln)
	stop() // a second signal now kills the process

	fctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	closeErr := g.Close(fctx)
	if serveErr != nil {
		return serveErr
	}
	if closeErr != nil {
		return fmt.Errorf("flush audit records: %w", closeErr)
	}
	logger.Info("gateway stopped; audit records flushed")
	return nil
}
