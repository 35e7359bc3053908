#!/usr/bin/env bash
# Installs the DNSSEC test environment's Debian packages (idempotent, quiet): NSD (authoritative), Unbound
# (validating resolver), ldnsutils (ldns-keygen, ldns-signzone). Nothing is started or enabled here: the tests
# (tests/MtaSts.Actors.TestInfra/Dns/DnssecTestEnvironment.cs) run private instances on loopback ports.
set -euo pipefail
need=()
command -v nsd >/dev/null 2>&1 || [ -x /usr/sbin/nsd ] || need+=(nsd)
command -v unbound >/dev/null 2>&1 || [ -x /usr/sbin/unbound ] || need+=(unbound)
command -v ldns-signzone >/dev/null 2>&1 || need+=(ldnsutils)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  log=$(mktemp)
  if ! apt-get install -y -qq --no-install-recommends "${need[@]}" >"$log" 2>&1; then
    cat "$log" >&2; rm -f "$log"; exit 1
  fi
  rm -f "$log"
  # Packages may start their system services; the tests use their own instances only.
  (service nsd stop || true) >/dev/null 2>&1
  (service unbound stop || true) >/dev/null 2>&1
fi
