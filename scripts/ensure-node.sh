#!/usr/bin/env bash
# Makes sure Node.js and npm are installed: the gateway's end-to-end test
# drives it with the official TypeScript MCP SDK client and proxies
# @modelcontextprotocol/server-everything. Installs Debian's nodejs and npm
# with apt-get when they are missing.
set -euo pipefail
warn_old() {
  major=$(node --version 2>/dev/null | sed -E 's/^v([0-9]+).*/\1/')
  if [ -n "$major" ] && [ "$major" -lt 20 ]; then
    printf 'ensure-node: node %s is older than 20, which the TypeScript MCP SDK needs: the gateway end-to-end test will be skipped\n' "$(node --version)" >&2
  fi
}
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  warn_old
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
printf 'ensure-node: installing Debian'"'"'s nodejs and npm\n' >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq nodejs npm >/dev/null
warn_old
