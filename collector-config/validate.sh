#!/bin/sh
# Runs `otelcol-audit validate --config FILE` for each FILE given, with only
# the environment variables FILE's header marks as required set, each to the
# example value the header gives:
#
#   #   OTELAUDIT_DATABASE_URL       required, e.g. postgres://otelaudit@db:5432/audit
#
# Every other OTELAUDIT_* variable is left unset, so the defaults in the file
# are what is validated. Used by `make collector-validate`; the end-to-end
# test TestShippedConfigsValidate does the same in Go.
set -eu

bin=$1
shift
status=0
for cfg in "$@"; do
	vars=$(sed -n 's/^#[[:space:]]*\(OTELAUDIT_[A-Z0-9_]*\)[[:space:]][[:space:]]*required, e\.g\. \([^[:space:]]*\).*/\1=\2/p' "$cfg")
	# shellcheck disable=SC2086
	if env -i PATH="$PATH" HOME="${HOME:-/}" $vars "$bin" validate --config "$cfg"; then
		echo "$cfg: valid (with only ${vars:-no variables} set)"
	else
		echo "$cfg: INVALID with only ${vars:-no variables} set" >&2
		status=1
	fi
done
exit $status
