#!/bin/sh
# Runs mdatagen on exporter/pgauditexporter/metadata.yaml.
#
#   collector-config/mdatagen.sh generate   regenerate the committed output
#   collector-config/mdatagen.sh check      fail when the committed output is
#                                           not what metadata.yaml generates
#
# The generator is go.opentelemetry.io/collector/cmd/mdatagen at the release
# of the Collector modules in exporter/pgauditexporter/go.mod ($version
# below), installed once into collector-config/_build. MDATAGEN=/path/to/it
# uses another binary.
#
# check regenerates into the tree and compares with git (`git diff
# --exit-code`, and no new files). Where no mdatagen can be had (a module
# proxy that does not serve it), check falls back to the checksums that
# generate records in exporter/pgauditexporter/mdatagen.sum: metadata.yaml
# and every generated file must be byte for byte what they were after the
# last generate, so an edited metadata.yaml that was not regenerated, or a
# hand-edited generated file, still fails.
set -eu

version=v0.165.0
root=$(cd "$(dirname "$0")/.." && pwd)
comp=$root/exporter/pgauditexporter
sumfile=$comp/mdatagen.sum
# Everything mdatagen writes for this component, relative to $comp.
generated="documentation.md generated_component_test.go generated_package_test.go internal/metadata internal/metadatatest"

mdatagen() {
	if [ -n "${MDATAGEN:-}" ]; then
		echo "$MDATAGEN"
		return 0
	fi
	bin=$root/collector-config/_build/mdatagen-$version/mdatagen
	if [ ! -x "$bin" ]; then
		GOBIN=$(dirname "$bin") go install "go.opentelemetry.io/collector/cmd/mdatagen@$version" >&2 || return 1
	fi
	echo "$bin"
}

# sums prints the SHA-256 of metadata.yaml and of every generated file.
sums() {
	(cd "$comp" && find metadata.yaml $generated -type f | LC_ALL=C sort | xargs sha256sum)
}

generate() {
	bin=$1
	(cd "$comp" && rm -rf internal/metadata internal/metadatatest && "$bin" metadata.yaml)
	sums >"$sumfile"
}

case "${1:-}" in
generate)
	bin=$(mdatagen) || { echo "mdatagen.sh: cannot install go.opentelemetry.io/collector/cmd/mdatagen@$version; set MDATAGEN to a binary" >&2; exit 2; }
	generate "$bin"
	echo "mdatagen.sh: generated from exporter/pgauditexporter/metadata.yaml"
	;;
check)
	if bin=$(mdatagen 2>/dev/null); then
		generate "$bin"
		cd "$root"
		paths="exporter/pgauditexporter/mdatagen.sum"
		for p in $generated; do paths="$paths exporter/pgauditexporter/$p"; done
		# shellcheck disable=SC2086
		untracked=$(git status --porcelain --untracked-files=all -- $paths | grep '^??' || true)
		# shellcheck disable=SC2086
		if ! git diff --exit-code --stat -- $paths || [ -n "$untracked" ]; then
			echo "$untracked"
			echo "mdatagen.sh: the generated code is not what metadata.yaml generates: run make generate and commit the result" >&2
			exit 1
		fi
		echo "mdatagen.sh: generated code is current (mdatagen)"
	else
		if ! sums | cmp -s - "$sumfile"; then
			sums | diff "$sumfile" - >&2 || true
			echo "mdatagen.sh: metadata.yaml or the generated code changed since the last make generate: run make generate and commit the result" >&2
			exit 1
		fi
		echo "mdatagen.sh: mdatagen@$version cannot be installed here; metadata.yaml and the generated code match the checksums of the last make generate (mdatagen.sum)"
	fi
	;;
*)
	echo "usage: $0 generate|check" >&2
	exit 2
	;;
esac
