#!/usr/bin/env bash
# Installs PostgreSQL from Debian (idempotent, quiet) for the cluster tests. Nothing is started or enabled here:
# the tests (tests/MtaSts.Actors.TestInfra/Postgres/PostgresInstance.cs) run a private cluster (initdb + postgres as
# the postgres user) in a temp dir on a loopback port.
set -euo pipefail
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  log=$(mktemp)
  if ! apt-get install -y -qq --no-install-recommends postgresql >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; exit 1
  fi
  rm -f "$log"
  # The package may create and start a system cluster; the tests use their own instance only.
  (service postgresql stop || true) >/dev/null 2>&1
fi
