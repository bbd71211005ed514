package pgauditexporter

import (
	"bytes"
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/otel/exporters/otlp/otlplog/otlploghttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sentinel-gateway/otelaudit/instrumentation"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
)

// TestOTLPAuthentication: gateway.yaml authenticates OTLP with bearer
// tokens (bearertokenauth). Requests without a token or with a wrong one,
// over OTLP/HTTP and OTLP/gRPC, are refused and write no row; the same
// records sent with the token land.
func TestOTLPAuthentication(t *testing.T) {
	t.Parallel()
	databaseURL := pgtest.NewDatabase(t)
	gw := newGateway(t, databaseURL)
	ctx := context.Background()

	postHTTP := func(ids []uuid.UUID, authorization string) int {
		t.Helper()
		body, err := plogotlp.NewExportRequestFromLogs(auditLogs(ids)).MarshalProto()
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+gw.HTTPAddr+"/v1/logs", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-protobuf")
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	conn, err := grpc.NewClient(gw.GRPCAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	client := plogotlp.NewGRPCClient(conn)
	exportGRPC := func(ids []uuid.UUID, authorization string) codes.Code {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if authorization != "" {
			cctx = metadata.AppendToOutgoingContext(cctx, "authorization", authorization)
		}
		_, err := client.Export(cctx, plogotlp.NewExportRequestFromLogs(auditLogs(ids)))
		return status.Code(err)
	}

	refused := newIDs(4)
	for _, auth := range []string{"", "Bearer wrong-" + gw.Token, gw.Token /* no scheme */} {
		if code := postHTTP(refused, auth); code != http.StatusUnauthorized {
			t.Errorf("OTLP/HTTP with Authorization %q: status %d, want 401", auth, code)
		}
		if code := exportGRPC(refused, auth); code != codes.Unauthenticated {
			t.Errorf("OTLP/gRPC with authorization %q: %s, want Unauthenticated", auth, code)
		}
	}

	viaHTTP, viaGRPC := newIDs(3), newIDs(5)
	if code := postHTTP(viaHTTP, "Bearer "+gw.Token); code != http.StatusOK {
		t.Fatalf("authenticated OTLP/HTTP: status %d, want 200", code)
	}
	if code := exportGRPC(viaGRPC, "Bearer "+gw.Token); code != codes.OK {
		t.Fatalf("authenticated OTLP/gRPC: %s, want OK", code)
	}
	waitRows(t, databaseURL, len(viaHTTP)+len(viaGRPC), 60*time.Second)

	stored := storedIDs(t, databaseURL)
	for _, id := range refused {
		if stored[id] > 0 {
			t.Errorf("request %s of an unauthenticated request was stored", id)
		}
	}
	for _, id := range append(viaHTTP, viaGRPC...) {
		if stored[id] != 1 {
			t.Errorf("request %s of an authenticated request was stored %d times, want once", id, stored[id])
		}
	}
}

// TestGatewayRefusesToStartWithoutTokenFile: with no token file,
// gateway.yaml does not start (rather than run with no token accepted, or
// with none required).
func TestGatewayRefusesToStartWithoutTokenFile(t *testing.T) {
	t.Parallel()
	bin := collectorBinary(t)
	dir := t.TempDir()
	cmd := exec.Command(bin, "--config", filepath.Join(repoRoot(t), "collector-config", "gateway.yaml"))
	cmd.Env = append(cleanEnv(),
		"OTELAUDIT_DATABASE_URL="+pgtest.AdminURL(),
		"OTELAUDIT_OTLP_TOKEN_FILE="+filepath.Join(dir, "missing-tokens"),
		"OTELAUDIT_OTLP_TOKEN_WAIT_SECONDS=1",
		"OTELAUDIT_QUEUE_DIR="+filepath.Join(dir, "queue"),
		"OTELAUDIT_OTLP_HTTP_ENDPOINT="+freeAddr(t),
		"OTELAUDIT_OTLP_GRPC_ENDPOINT="+freeAddr(t),
		"OTELAUDIT_HEALTH_ENDPOINT="+freeAddr(t),
		"OTELAUDIT_METRICS_HOST=127.0.0.1",
		"OTELAUDIT_METRICS_PORT=0",
	)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("otelcol-audit exited 0 without its token file:\n%s", out.String())
		}
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Fatalf("otelcol-audit still running after 60 s without its token file:\n%s", out.String())
	}
	if !strings.Contains(out.String(), "missing-tokens") {
		t.Fatalf("the error does not name the token file:\n%s", out.String())
	}
}

// TestAgentForwardsWithToken: agent.yaml next to a gateway accepts OTLP on
// localhost and forwards it to the gateway tier with its bearer token; the
// rows land. With a token the tier does not know, none do.
func TestAgentForwardsWithToken(t *testing.T) {
	t.Parallel()
	databaseURL := pgtest.NewDatabase(t)
	gw := newGateway(t, databaseURL)
	agent := newAgent(t, gw, gw.Token)
	wrong := newAgent(t, gw, "not-"+gw.Token)

	ctx := context.Background()
	send := func(c *collectorProcess, n int) []instrumentation.Call {
		t.Helper()
		lp := otlpProvider(t, 4096, otlploghttp.WithEndpoint(c.HTTPAddr), otlploghttp.WithInsecure())
		calls := testCalls(n)
		record(lp, calls)
		if err := lp.Shutdown(ctx); err != nil {
			t.Fatalf("OTLP export to the agent: %v", err)
		}
		return calls
	}
	send(wrong, 50)
	calls := send(agent, 100)
	waitRows(t, databaseURL, len(calls), 60*time.Second)
	// The wrong agent keeps retrying and is refused each time: by now the
	// tier has refused it at least once, and none of its rows landed.
	waitFor(t, 60*time.Second, "the tier refusing the agent with the wrong token", func() bool {
		v, err := wrong.Metric("otelcol_exporter_send_failed_log_records")
		if err == nil && v > 0 {
			return true
		}
		return strings.Contains(wrong.logs.String(), "401")
	})
	assertCount(t, databaseURL, len(calls))
}
