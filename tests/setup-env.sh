#!/usr/bin/env bash
# Installs the Debian packages the tests use (idempotent). Nothing is started here: tests start their own
# loopback instances. Binaries used: smtp-sink/smtp-source (postfix), tinyproxy.
set -euo pipefail
need=()
command -v smtp-sink >/dev/null 2>&1 || [ -x /usr/sbin/smtp-sink ] || need+=(postfix)
command -v tinyproxy >/dev/null 2>&1 || [ -x /usr/bin/tinyproxy ] || need+=(tinyproxy)
# Debian's chromium for the admin web page test (Playwright drives it; no browser download).
[ -x /usr/bin/chromium ] || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  # The package may start daemons we do not want; tests run their own instances on loopback ports.
  (service postfix stop || true) >/dev/null 2>&1
  (service tinyproxy stop || true) >/dev/null 2>&1
fi
# DNSSEC test environment (NSD, Unbound, ldnsutils) for the DANE tests.
bash "$(dirname "${BASH_SOURCE[0]}")/dnssec/setup.sh"
# PostgreSQL (initdb/postgres) for the cluster tests.
bash "$(dirname "${BASH_SOURCE[0]}")/postgres/setup.sh"
