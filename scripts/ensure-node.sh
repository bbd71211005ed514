#!/usr/bin/env bash
# Makes sure Node.js and npm are installed: the gateway's end-to-end test
# drives it with the official TypeScript MCP SDK client and proxies
# @modelcontextprotocol/server-everything. Installs Debian's nodejs and npm
# with apt-get when they are missing.
set -euo pipefail
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
printf 'ensure-node: installing Debian'"'"'s nodejs and npm\n' >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq nodejs npm >/dev/null
