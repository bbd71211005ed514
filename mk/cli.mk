# The operator CLI (cmd/otelaudit): query, tail, export, stats, serve.
# Included by the top-level Makefile (include mk/*.mk). Its tests, the
# browser test of the viewer included, run in make test (go test ./...);
# scripts/ensure-tools.sh (make tools) installs Chromium and playwright-core.
#
#   make screenshot           refresh docs/viewer.png (and docs/viewer-detail.png)
#                             from the browser test
#   make bench-export         1M rows (testdata/fill-1m.sql) into otelaudit_cli_bench,
#                             then export them in every format; rows/s on stderr
#   make bench-viewer         p50/p95 of the viewer's data requests against
#                             $(VIEWER_BENCH_DB) (default: otelaudit_scale, the
#                             20M-row database of the schema benchmarks);
#                             OTELAUDIT_VIEWER_BENCH_INGEST=2000 writes that many
#                             rows a second while it measures (a live page)

CLI_BENCH_DB ?= postgres://postgres@127.0.0.1:5432/otelaudit_cli_bench?sslmode=disable
VIEWER_BENCH_DB ?= postgres://postgres@127.0.0.1:5432/otelaudit_scale?sslmode=disable
PSQL_ADMIN ?= psql -h 127.0.0.1 -U postgres -X -q

.PHONY: screenshot bench-export bench-export-fill bench-viewer otelaudit-bin

otelaudit-bin:
	$(GO) build -o bin/otelaudit ./cmd/otelaudit

screenshot: postgres tools
	OTELAUDIT_SCREENSHOT=$(CURDIR)/docs/viewer.png $(GO) test -count=1 -run '^TestViewerInBrowser$$' ./cmd/otelaudit

bench-export-fill: postgres otelaudit-bin
	$(PSQL_ADMIN) -c "DROP DATABASE IF EXISTS otelaudit_cli_bench WITH (FORCE)" -c "CREATE DATABASE otelaudit_cli_bench"
	bin/otelaudit migrate --database-url '$(CLI_BENCH_DB)'
	$(PSQL_ADMIN) -d otelaudit_cli_bench -c "SELECT count(*) FROM audit_log_ensure_partitions(now() - interval '9 days', now() + interval '1 day')"
	$(PSQL_ADMIN) -d otelaudit_cli_bench -f cmd/otelaudit/testdata/fill-1m.sql
	$(PSQL_ADMIN) -d otelaudit_cli_bench -c "VACUUM ANALYZE audit_log"

bench-export: bench-export-fill
	@for f in jsonl csv ocsf; do \
	  bin/otelaudit export --database-url '$(CLI_BENCH_DB)' --format $$f -o /dev/null; \
	done

bench-viewer: postgres
	OTELAUDIT_VIEWER_BENCH_DB='$(VIEWER_BENCH_DB)' $(GO) test -count=1 -run '^TestViewerLatency$$' -v ./cmd/otelaudit
