#!/usr/bin/env bash
# Makes sure a PostgreSQL server is reachable for the tests and the demo.
#
#  - OTELAUDIT_TEST_DATABASE_URL set: that server is used as it is.
#  - Otherwise the local server at 127.0.0.1:5432 (user postgres, no password):
#    started if it is stopped; on a machine without PostgreSQL, Debian's
#    `postgresql` package is installed with apt-get and a cluster created.
#
# The PostgreSQL server binaries (initdb, pg_ctl) are always made available:
# fault tests start private clusters of their own with them.
# It never stops or reconfigures a server that was already running.
set -euo pipefail

log() { printf 'ensure-postgres: %s\n' "$*" >&2; }
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

have_server_binaries() { ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }

install_postgres() {
  log "installing Debian's postgresql package"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq postgresql postgresql-client >/dev/null
}

if ! have_server_binaries || ! command -v psql >/dev/null 2>&1; then
  install_postgres
fi

if [ -n "${OTELAUDIT_TEST_DATABASE_URL:-}" ]; then
  if psql "$OTELAUDIT_TEST_DATABASE_URL" -Atqc 'select 1' >/dev/null 2>&1; then
    log "using OTELAUDIT_TEST_DATABASE_URL"
    exit 0
  fi
  log "OTELAUDIT_TEST_DATABASE_URL is set but the server does not answer"
  exit 1
fi

URL="postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
ready() { psql "$URL" -Atqc 'select 1' >/dev/null 2>&1; }

if ready; then
  log "PostgreSQL is running at 127.0.0.1:5432"
  exit 0
fi

VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
created=no
if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  log "creating cluster $VERSION/main"
  $SUDO pg_createcluster "$VERSION" main >/dev/null
  created=yes
fi
CLUSTER_VERSION=$(ls /etc/postgresql | sort -V | tail -n 1)
HBA=/etc/postgresql/$CLUSTER_VERSION/main/pg_hba.conf
if [ "$created" = yes ] || ! $SUDO grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$HBA"; then
  if ! pg_lsclusters -h 2>/dev/null | awk '{print $4}' | grep -q online; then
    # A cluster that is not running yet: let local test connections in
    # without a password, as on the project's CI machines.
    log "allowing trust authentication from 127.0.0.1 and ::1 in $HBA"
    $SUDO sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$HBA"
    $SUDO sed -i -E 's/^(local\s+all\s+postgres\s+)\S+/\1trust/' "$HBA"
  fi
fi

# A cluster made while another server held 5432 (pg_createcluster then picks
# the next free port) is moved back to 5432 while it is stopped and 5432 is
# free: the tests and the demo connect there.
CLUSTER_PORT=$(pg_lsclusters -h 2>/dev/null | awk -v v="$CLUSTER_VERSION" '$1==v && $2=="main" {print $3}')
if [ -n "$CLUSTER_PORT" ] && [ "$CLUSTER_PORT" != 5432 ] \
   && ! pg_lsclusters -h 2>/dev/null | awk -v v="$CLUSTER_VERSION" '$1==v && $2=="main" {print $4}' | grep -q online \
   && ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  log "moving cluster $CLUSTER_VERSION/main from port $CLUSTER_PORT to 5432"
  $SUDO pg_conftool "$CLUSTER_VERSION" main set port 5432
fi

log "starting cluster $CLUSTER_VERSION/main"
$SUDO pg_ctlcluster --skip-systemctl-redirect "$CLUSTER_VERSION" main start || true

for _ in $(seq 1 60); do
  if ready; then
    log "PostgreSQL is running at 127.0.0.1:5432"
    exit 0
  fi
  sleep 0.5
done
log "PostgreSQL did not become ready at 127.0.0.1:5432; set OTELAUDIT_TEST_DATABASE_URL to a server to use"
exit 1
