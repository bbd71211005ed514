package pgauditexporter

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/exporter/exportertest"

	"github.com/sentinel-gateway/otelaudit/exporter/pgauditexporter/internal/metadata"
	"github.com/sentinel-gateway/otelaudit/internal/integrity"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/verify"
)

// TestTrailThroughTheComponentVerifies writes batches through the Collector
// component with signing_key_file and anchor_file, shuts it down, and
// verifies the trail with the anchor and the public key; then edits one row
// and expects verify to name it.
func TestTrailThroughTheComponentVerifies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _, err := integrity.MarshalKeyPair(priv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(url)
	cfg.SigningKeyFile = filepath.Join(dir, "signing.pem")
	cfg.AnchorFile = filepath.Join(dir, "checkpoints.jsonl")
	if err := os.WriteFile(cfg.SigningKeyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	exp, _ := newTestExporter(t, cfg)
	ids := newIDs(5)
	for range 3 {
		if err := exp.ConsumeLogs(ctx, auditLogs(newIDs(4))); err != nil {
			t.Fatal(err)
		}
	}
	if err := exp.ConsumeLogs(ctx, auditLogs(ids)); err != nil {
		t.Fatal(err)
	}
	if err := exp.ConsumeLogs(ctx, auditLogs(ids)); err != nil { // a replay: no seal
		t.Fatal(err)
	}
	if err := exp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	rep, err := verify.Run(ctx, pool, verify.WithPublicKey(pub), verify.WithAnchorFile(cfg.AnchorFile))
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Intact() || rep.Rows != 17 || rep.Seals != 5 || rep.AnchorEntries != 1 || rep.Checkpoints != 1 ||
		len(rep.Streams) != 1 || rep.Streams[0].State != verify.StateIntact {
		t.Fatalf("report: intact %v, first %v, %d rows, %d seals, %d anchor entries, %d checkpoints, streams %+v; want intact, 17, 5 (4 batches + close), 1, 1, one intact stream",
			rep.Intact(), rep.First(), rep.Rows, rep.Seals, rep.AnchorEntries, rep.Checkpoints, rep.Streams)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only`); err != nil {
		t.Fatal(err)
	}
	var id int64
	if err := pool.QueryRow(ctx, `UPDATE audit_log SET client_subject = 'mallory' WHERE id = (SELECT min(id) + 5 FROM audit_log) RETURNING id`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	rep, err = verify.Run(ctx, pool, verify.WithPublicKey(pub), verify.WithAnchorFile(cfg.AnchorFile))
	if err != nil {
		t.Fatal(err)
	}
	if f := rep.First(); f == nil || f.Kind != "row_hash" || f.RowID != id {
		t.Fatalf("after editing row %d: first finding %v, want row_hash naming it", id, f)
	}
}

// TestAnchorFileSymlinkStopsStart: an anchor_file planted as a symbolic link
// makes Start fail, naming the setting, instead of appending through it.
func TestAnchorFileSymlinkStopsStart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "elsewhere")
	if err := os.WriteFile(target, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(pgtest.NewDatabase(t))
	cfg.AnchorFile = filepath.Join(dir, "checkpoints.jsonl")
	if err := os.Symlink(target, cfg.AnchorFile); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	exp, err := NewFactory().CreateLogs(context.Background(), exportertest.NewNopSettings(metadata.Type), cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = exp.Start(context.Background(), componenttest.NewNopHost())
	if err == nil || !strings.Contains(err.Error(), "anchor_file") || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("Start: %v, want an anchor_file error naming the symbolic link", err)
	}
	_ = exp.Shutdown(context.Background())
	if b, _ := os.ReadFile(target); len(b) != 0 {
		t.Errorf("written through the link: %q", b)
	}
}
