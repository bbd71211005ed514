#!/usr/bin/env bash
# Installs, with Debian's apt-get, what `make test` needs beyond Go and
# PostgreSQL when it is missing:
#   - a C compiler (gcc): the race detector needs cgo;
#   - Node.js and npm: the gateway's end-to-end test drives it with the
#     official TypeScript MCP SDK client and proxies
#     @modelcontextprotocol/server-everything.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  printf 'ensure-tools: installing %s\n' "${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

major=$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/')
if [ -n "$major" ] && [ "$major" -lt 20 ]; then
  printf 'ensure-tools: node %s is older than 20, which the TypeScript MCP SDK needs: the gateway end-to-end test will be skipped\n' "$(node --version)" >&2
fi
