# otelcol-audit: the Collector distribution with the pgaudit exporter.
# Included by the top-level Makefile (include mk/*.mk).
#
#   make collector            build collector-config/_build/otelcol-audit/otelcol-audit
#                             (skipped when the binary is newer than its inputs)
#   make collector-validate   `otelcol-audit validate` every shipped config, with only
#                             the variables its header marks as required set
#   make collector-test       the pgaudit module's tests (unit, e2e, persistence)
#   make collector-vet        go vet the pgaudit module (part of make test)
#   make generate             re-run mdatagen on exporter/pgauditexporter/metadata.yaml
#   make generate-check       fail when the committed generated code is not current
#                             (part of make test)

OTELCOL_AUDIT := collector-config/_build/otelcol-audit/otelcol-audit
COLLECTOR_CONFIGS := collector-config/gateway.yaml collector-config/agent.yaml

.PHONY: collector collector-validate collector-test collector-vet generate generate-check collector-generate collector-generate-check

collector:
	@collector-config/build.sh

collector-validate: collector
	@collector-config/validate.sh $(OTELCOL_AUDIT) $(COLLECTOR_CONFIGS)

collector-test: collector
	cd exporter/pgauditexporter && go test -race -count=1 -timeout 20m ./...

collector-generate:
	@collector-config/mdatagen.sh generate

collector-generate-check:
	@collector-config/mdatagen.sh check

generate: collector-generate
generate-check: collector-generate-check
test: generate-check

collector-vet:
	cd exporter/pgauditexporter && $(GO) vet ./...

test: collector-vet
