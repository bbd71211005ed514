#!/usr/bin/env bash
# Installs, with Debian's apt-get, what `make test` needs beyond Go and
# PostgreSQL when it is missing:
#   - a C compiler (gcc): the race detector needs cgo;
#   - Node.js and npm: the gateway's end-to-end test drives it with the
#     official TypeScript MCP SDK client and proxies
#     @modelcontextprotocol/server-everything.
#   - Chromium (Debian's /usr/bin/chromium): the viewer's browser test drives
#     it with playwright-core; browsers cannot be downloaded by Playwright
#     here, so the distribution's build is the one used;
#   - playwright-core itself, with npm ci from the lockfile in
#     cmd/otelaudit/webtest (node_modules stays untracked).
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
command -v gcc >/dev/null 2>&1 || missing+=(gcc libc6-dev)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
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

# playwright-core for the viewer's browser test, pinned by its lockfile.
# PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD: the test uses /usr/bin/chromium.
webtest="$(dirname "$0")/../cmd/otelaudit/webtest"
if [ -f "$webtest/package-lock.json" ] && command -v npm >/dev/null 2>&1; then
  if [ ! -f "$webtest/node_modules/playwright-core/package.json" ] ||
     [ "$webtest/package-lock.json" -nt "$webtest/node_modules/.package-lock.json" ]; then
    printf 'ensure-tools: npm ci in cmd/otelaudit/webtest\n' >&2
    (cd "$webtest" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error >&2)
  fi
fi
