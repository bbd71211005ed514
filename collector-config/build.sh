#!/bin/sh
# Builds the otelcol-audit distribution with the OpenTelemetry Collector
# Builder v0.165.0 into collector-config/_build/otelcol-audit/otelcol-audit,
# unless that binary is newer than every input (the manifest, the pgaudit
# exporter module, and the library packages it compiles in: the root package,
# internal/, exporter/internal/, migrations/). FORCE=1 rebuilds.
#
# Used by `make collector` and by the end-to-end tests in exporter/pgauditexporter,
# so that both share one cached binary. Prints the binary's path.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
cfg=$root/collector-config
out=$cfg/_build/otelcol-audit/otelcol-audit
ocb_version=v0.165.0
ocb_dir=$cfg/_build/ocb-$ocb_version
ocb=$ocb_dir/builder

stale() {
	[ "${FORCE:-}" = 1 ] && return 0
	[ -x "$out" ] || return 0
	newer=$(find "$root/exporter/pgauditexporter" "$root/exporter/internal" "$root/internal" "$root/migrations" "$root" \
		\( -path "$root/.git" -o -path "$cfg/_build" \) -prune -o \
		-type f -newer "$out" \( -name '*.go' -o -name '*.sql' -o -name 'go.mod' -o -name 'go.sum' -o -name 'builder-config.yaml' \) \
		! -name '*_test.go' -print 2>/dev/null | \
		grep -E "^$root/([^/]+\.go|go\.(mod|sum)|collector-config/builder-config\.yaml|exporter/pgauditexporter/|exporter/internal/|internal/|migrations/)" | head -n 1 || true)
	[ -n "$newer" ]
}

build() {
	if ! stale; then
		echo "$out"
		return 0
	fi
	if [ ! -x "$ocb" ]; then
		GOBIN=$ocb_dir go install "go.opentelemetry.io/collector/cmd/builder@$ocb_version" >&2
	fi
	(cd "$cfg" && "$ocb" --config builder-config.yaml) >&2
	touch "$out"
	echo "$out"
}

mkdir -p "$cfg/_build"
if command -v flock >/dev/null 2>&1 && [ -z "${OTELCOL_AUDIT_BUILD_LOCKED:-}" ]; then
	# One build at a time (tests and make may race).
	OTELCOL_AUDIT_BUILD_LOCKED=1 exec flock "$cfg/_build/.lock" "$0" "$@"
fi
build
