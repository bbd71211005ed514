package pgauditexporter

import (
	"bytes"
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

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

	rows, err := pgtest.Connect(t, databaseURL).Query(ctx, "SELECT request_id FROM audit_log")
	if err != nil {
		t.Fatal(err)
	}
	stored := map[uuid.UUID]bool{}
	for rows.Next() {
		var id uuid.UUID
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		stored[id] = true
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	for _, id := range refused {
		if stored[id] {
			t.Errorf("request %s of an unauthenticated request was stored", id)
		}
	}
	for _, id := range append(viaHTTP, viaGRPC...) {
		if !stored[id] {
			t.Errorf("request %s of an authenticated request was not stored", id)
		}
	}
}
