package verify_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/sentinel-gateway/otelaudit/internal/auditrow"
	"github.com/sentinel-gateway/otelaudit/internal/integrity"
	"github.com/sentinel-gateway/otelaudit/internal/pgtest"
	"github.com/sentinel-gateway/otelaudit/verify"
)

func TestUntouchedTrailIsIntact(t *testing.T) {
	tr := buildTrail(t)
	url := pgtest.WithDatabase(pgtest.AdminURL(), copyDatabase(t, tr.final, true))
	rep := run(t, url, integrityOpts(tr)...)
	if !rep.Intact() {
		for _, f := range rep.Findings {
			t.Errorf("finding: %s", f)
		}
		t.FailNow()
	}
	if rep.Rows != 90 || len(rep.Streams) != 2 || rep.Checkpoints != 2 || rep.AnchorEntries != 2 || rep.SignaturesUnchecked != 0 {
		t.Fatalf("report: %d rows, %d streams, %d checkpoints, %d anchor entries, %d unchecked; want 90, 2, 2, 2, 0",
			rep.Rows, len(rep.Streams), rep.Checkpoints, rep.AnchorEntries, rep.SignaturesUnchecked)
	}
	for _, s := range rep.Streams {
		if s.State != verify.StateIntact || !s.Closed || s.Checkpointed != s.LastSeq {
			t.Errorf("stream %+v: want intact, closed, checkpointed at its last seal", s)
		}
	}
	if len(rep.Warnings) != 0 {
		t.Errorf("warnings: %v", rep.Warnings)
	}
}

// TestUpdateOfEachColumnIsCaught edits one column of one row in the middle,
// for every audit column, and expects verify to name that row.
func TestUpdateOfEachColumnIsCaught(t *testing.T) {
	tr := buildTrail(t)
	id, req, stream, seq := rowAt(t, tr.final, 33)
	set := map[string]string{
		"request_id":      "request_id = gen_random_uuid()",
		"timestamp":       `"timestamp" = "timestamp" + interval '1 microsecond'`,
		"client_subject":  "client_subject = 'mallory'",
		"client_role":     "client_role = client_role || ',root'",
		"tool_name":       "tool_name = 'delete_everything'",
		"backend_name":    "backend_name = 'elsewhere'",
		"request_args":    `request_args = jsonb_set(request_args, '{limit}', '1000')`,
		"response_status": "response_status = 'denied'",
		"error_message":   "error_message = 'edited'",
		"latency_ms":      "latency_ms = latency_ms + 1",
		"trace_id":        "trace_id = 'ffffffffffffffffffffffffffffffff'",
		"span_id":         "span_id = 'ffffffffffffffff'",
		"service_name":    "service_name = 'other'",
		"attributes":      `attributes = attributes || '{"mcp.session.id":"forged"}'`,
	}
	for _, c := range auditrow.Columns {
		t.Run(c.Name, func(t *testing.T) {
			expr, ok := set[c.Name]
			if !ok {
				t.Fatalf("no edit for column %s", c.Name)
			}
			url := tamper(t, tr.final, fmt.Sprintf("UPDATE audit_log SET %s WHERE id = %d", expr, id))
			rep := run(t, url, integrityOpts(tr)...)
			caught(t, rep, "row_hash", func(f verify.Finding) bool {
				return f.RowID == id && f.Stream == stream && f.Seq == seq && (c.Name == "request_id" || f.RequestID == req.String())
			})
		})
	}
	// The attacker also recomputes the row's hash: the seal's batch hash
	// still catches it.
	t.Run("with row_hash recomputed", func(t *testing.T) {
		url := tamper(t, tr.final, fmt.Sprintf("UPDATE audit_log SET tool_name = 'delete_everything' WHERE id = %d", id))
		forgeHash(t, url, id)
		rep := run(t, url, integrityOpts(tr)...)
		caught(t, rep, "batch_hash", func(f verify.Finding) bool { return f.Stream == stream && f.Seq == seq })
	})
}

// forgeHash sets row id's row_hash to the hash of its current content.
func forgeHash(t *testing.T, url string, id int64) {
	t.Helper()
	ctx := context.Background()
	conn := pgtest.Connect(t, url)
	rows, err := conn.Query(ctx, `SELECT request_id, "timestamp", client_subject, client_role, tool_name, backend_name, request_args,
		response_status, error_message, latency_ms, trace_id, span_id, service_name, attributes FROM audit_log WHERE id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
	var r auditrow.Row
	if !rows.Next() {
		t.Fatal("no row")
	}
	if err := integrity.ScanRow(rows, &r); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	h := integrity.RowHash(&r)
	if _, err := conn.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `UPDATE audit_log SET row_hash = $1 WHERE id = $2`, h[:], id); err != nil {
		t.Fatal(err)
	}
}

func TestDeleteFromTheMiddleIsCaught(t *testing.T) {
	tr := buildTrail(t)
	id, _, stream, seq := rowAt(t, tr.final, 45)
	url := tamper(t, tr.final, fmt.Sprintf("DELETE FROM audit_log WHERE id = %d", id))
	caught(t, run(t, url, integrityOpts(tr)...), "row_count", func(f verify.Finding) bool { return f.Stream == stream && f.Seq == seq })
}

func TestForgedRowIsCaught(t *testing.T) {
	tr := buildTrail(t)
	id, _, stream, seq := rowAt(t, tr.final, 50)
	forge := func(extra string) string {
		return fmt.Sprintf(`INSERT INTO audit_log (request_id, "timestamp", client_subject, client_role, tool_name, backend_name,
			request_args, response_status, latency_ms, row_hash, seal_stream, seal_seq, seal_pos)
			SELECT gen_random_uuid(), "timestamp", 'ghost', client_role, 'approve_payment', backend_name, request_args,
			'ok', 1, %s FROM audit_log WHERE id = %d`, extra, id)
	}
	t.Run("without hash", func(t *testing.T) {
		url := tamper(t, tr.final, forge("NULL, NULL, NULL, NULL"))
		caught(t, run(t, url, integrityOpts(tr)...), "row_unsealed", func(f verify.Finding) bool { return f.RowID > 0 })
	})
	t.Run("with a wrong hash in a seal", func(t *testing.T) {
		url := tamper(t, tr.final, forge("row_hash, seal_stream, seal_seq, 999"))
		caught(t, run(t, url, integrityOpts(tr)...), "row_hash", func(f verify.Finding) bool { return f.Stream == stream && f.Seq == seq })
	})
	t.Run("with a forged hash in a seal", func(t *testing.T) {
		url := tamper(t, tr.final, forge("row_hash, seal_stream, seal_seq, 999"))
		var forged int64
		conn := pgtest.Connect(t, url)
		if err := conn.QueryRow(context.Background(), `SELECT max(id) FROM audit_log`).Scan(&forged); err != nil {
			t.Fatal(err)
		}
		forgeHash(t, url, forged)
		caught(t, run(t, url, integrityOpts(tr)...), "row_count", func(f verify.Finding) bool { return f.Stream == stream && f.Seq == seq })
	})
}

func TestSwappedRowsAreCaught(t *testing.T) {
	tr := buildTrail(t)
	a, _, stream, seq := rowAt(t, tr.final, 21)
	b, _, _, _ := rowAt(t, tr.final, 22)
	// Each row keeps its id, created_at and seal reference and takes the
	// other's content (and, with hashes, the other's row_hash).
	swap := func(hashFrom string) []string {
		content := `request_id, "timestamp", client_subject, client_role, tool_name, backend_name, request_args, response_status, error_message, latency_ms, trace_id, span_id, service_name, attributes`
		var ycols []string
		for _, c := range strings.Split(content, ", ") {
			ycols = append(ycols, "y."+c)
		}
		return []string{
			fmt.Sprintf(`CREATE TEMP TABLE s AS SELECT * FROM audit_log WHERE id IN (%d, %d)`, a, b),
			fmt.Sprintf(`DELETE FROM audit_log WHERE id IN (%d, %d)`, a, b),
			fmt.Sprintf(`INSERT INTO audit_log (id, %s, created_at, row_hash, seal_stream, seal_seq, seal_pos) OVERRIDING SYSTEM VALUE
				SELECT x.id, %s, x.created_at, %s.row_hash, x.seal_stream, x.seal_seq, x.seal_pos FROM s x JOIN s y ON x.id <> y.id`,
				content, strings.Join(ycols, ", "), hashFrom),
		}
	}
	t.Run("contents", func(t *testing.T) {
		url := tamper(t, tr.final, swap("x")...)
		caught(t, run(t, url, integrityOpts(tr)...), "row_hash", func(f verify.Finding) bool { return f.RowID == a || f.RowID == b })
	})
	t.Run("contents with their hashes", func(t *testing.T) {
		url := tamper(t, tr.final, swap("y")...)
		caught(t, run(t, url, integrityOpts(tr)...), "batch_hash", func(f verify.Finding) bool { return f.Stream == stream && f.Seq == seq })
	})
}

// streamB returns the id of the trail's second stream and its last seq.
func streamB(t *testing.T, db string) (uuid.UUID, int64) {
	t.Helper()
	var id uuid.UUID
	var seq int64
	queryTemplate(t, db, func(conn *pgx.Conn) error {
		return conn.QueryRow(context.Background(), `SELECT seal_stream, seal_seq FROM audit_log ORDER BY id DESC LIMIT 1`).Scan(&id, &seq)
	})
	return id, seq
}

// TestTailTruncation deletes the last 10 rows, their seal, the close seal
// and the checkpoints that name them: without an anchor the shorter chain
// looks whole (the README's stated limitation); with the anchor it is caught.
func TestTailTruncation(t *testing.T) {
	tr := buildTrail(t)
	b, last := streamB(t, tr.final)
	url := tamper(t, tr.final,
		fmt.Sprintf(`DELETE FROM audit_log WHERE seal_stream = '%s' AND seal_seq = %d`, b, last),
		fmt.Sprintf(`DELETE FROM audit_log_seals WHERE stream_id = '%s' AND seq >= %d`, b, last),
		fmt.Sprintf(`DELETE FROM audit_log_checkpoints WHERE stream_id = '%s'`, b))
	conn := pgtest.Connect(t, url)
	var left int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM audit_log`).Scan(&left); err != nil || left != 80 {
		t.Fatalf("rows left = %d, %v; want 80 (the last 10 deleted)", left, err)
	}
	t.Run("without anchor: not detectable (README limitation)", func(t *testing.T) {
		rep := run(t, url, verify.WithPublicKey(tr.pub))
		if !rep.Intact() {
			t.Fatalf("without an anchor verify found %v; the documented limitation says it cannot", rep.First())
		}
		// What is visible: stream B no longer ends with a close seal.
		unclosed := false
		for _, s := range rep.Streams {
			unclosed = unclosed || (s.ID == b && s.State == verify.StateUnclosed)
		}
		if !unclosed {
			t.Errorf("stream %s is not reported unclosed: %+v", b, rep.Streams)
		}
	})
	t.Run("with anchor", func(t *testing.T) {
		caught(t, run(t, url, integrityOpts(tr)...), "anchor_missing", func(f verify.Finding) bool { return f.Stream == b && f.Seq == last+1 })
	})
}

// TestRestoreFromOlderCopy verifies the copy taken after stream A against
// the anchor written after stream B.
func TestRestoreFromOlderCopy(t *testing.T) {
	tr := buildTrail(t)
	b, _ := streamB(t, tr.final)
	url := pgtest.WithDatabase(pgtest.AdminURL(), copyDatabase(t, tr.base, true))
	if rep := run(t, url, verify.WithPublicKey(tr.pub)); !rep.Intact() {
		t.Fatalf("the older copy on its own: %v (it is a consistent trail; only the anchor can tell)", rep.First())
	}
	caught(t, run(t, url, integrityOpts(tr)...), "anchor_missing", func(f verify.Finding) bool { return f.Stream == b })
}

func TestEditedSealIsCaught(t *testing.T) {
	tr := buildTrail(t)
	_, _, stream, _ := rowAt(t, tr.final, 0)
	for name, set := range map[string]string{
		"row_count":  "row_count = row_count - 1",
		"batch_hash": "batch_hash = sha256(batch_hash)",
		"first_ts":   "first_ts = first_ts - interval '1 day'",
		"prev_hash":  "prev_hash = sha256(prev_hash)",
	} {
		t.Run(name, func(t *testing.T) {
			url := tamper(t, tr.final, fmt.Sprintf(`UPDATE audit_log_seals SET %s WHERE stream_id = '%s' AND seq = 2`, set, stream))
			caught(t, run(t, url, integrityOpts(tr)...), "seal_hash", func(f verify.Finding) bool { return f.Stream == stream && f.Seq == 2 })
		})
	}
}

func TestBadCheckpointSignatureIsCaught(t *testing.T) {
	tr := buildTrail(t)
	url := tamper(t, tr.final, `UPDATE audit_log_checkpoints SET signature = sha512(signature) WHERE id = (SELECT min(id) FROM audit_log_checkpoints)`)
	caught(t, run(t, url, integrityOpts(tr)...), "checkpoint_signature", nil)
	// Without the public key the signature cannot be checked: a warning.
	rep := run(t, url)
	if !rep.Intact() || rep.SignaturesUnchecked == 0 {
		t.Fatalf("without a public key: intact %v, unchecked %d; want intact with unchecked signatures", rep.Intact(), rep.SignaturesUnchecked)
	}
}

// TestWithoutRows: the chain-only check catches what breaks chains and
// checkpoints, not row edits.
func TestWithoutRows(t *testing.T) {
	tr := buildTrail(t)
	id, _, _, _ := rowAt(t, tr.final, 10)
	opts := append(integrityOpts(tr), verify.WithoutRows())
	edited := tamper(t, tr.final, fmt.Sprintf("UPDATE audit_log SET tool_name = 'x' WHERE id = %d", id))
	if rep := run(t, edited, opts...); !rep.Intact() || rep.Rows != 0 || rep.Seals == 0 {
		t.Fatalf("chain-only check of an edited row: intact %v, %d rows, %d seals; want intact, 0 rows read, seals read", rep.Intact(), rep.Rows, rep.Seals)
	}
	b, last := streamB(t, tr.final)
	truncated := tamper(t, tr.final, fmt.Sprintf(`DELETE FROM audit_log_seals WHERE stream_id = '%s' AND seq >= %d`, b, last))
	caught(t, run(t, truncated, opts...), "checkpoint_mismatch", nil)
}

// TestSinceAndStreamNarrow: --since checks the rows and batches written
// since then (chains and checkpoints still whole); --stream one stream.
func TestSinceAndStreamNarrow(t *testing.T) {
	tr := buildTrail(t)
	b, _ := streamB(t, tr.final)
	var bStart time.Time
	queryTemplate(t, tr.final, func(conn *pgx.Conn) error {
		return conn.QueryRow(context.Background(), `SELECT min(sealed_at) FROM audit_log_seals WHERE stream_id = $1`, b).Scan(&bStart)
	})
	url := pgtest.WithDatabase(pgtest.AdminURL(), copyDatabase(t, tr.final, true))
	rep := run(t, url, append(integrityOpts(tr), verify.WithSince(bStart))...)
	if !rep.Intact() || rep.Rows != 30 || len(rep.Streams) != 2 {
		t.Fatalf("since stream B began: intact %v (%v), %d rows, %d streams; want intact, 30 rows (B's), both chains", rep.Intact(), rep.First(), rep.Rows, len(rep.Streams))
	}
	rep = run(t, url, append(integrityOpts(tr), verify.WithStream(b))...)
	if !rep.Intact() || rep.Rows != 30 || len(rep.Streams) != 1 || rep.Streams[0].ID != b || rep.AnchorEntries != 2 {
		t.Fatalf("stream B only: intact %v (%v), %d rows, streams %+v; want intact, 30 rows, stream B", rep.Intact(), rep.First(), rep.Rows, rep.Streams)
	}
	// A row of stream A edited: outside --since, caught without it.
	id, _, _, _ := rowAt(t, tr.final, 5)
	edited := tamper(t, tr.final, fmt.Sprintf("UPDATE audit_log SET tool_name = 'x' WHERE id = %d", id))
	if rep := run(t, edited, append(integrityOpts(tr), verify.WithSince(bStart))...); !rep.Intact() {
		t.Fatalf("an edit before --since was checked: %v", rep.First())
	}
	caught(t, run(t, edited, integrityOpts(tr)...), "row_hash", func(f verify.Finding) bool { return f.RowID == id })
}
