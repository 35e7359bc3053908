#!/usr/bin/env bash
# Crash test (durability): runs the real gateway as an OS process (dotnet mtasts-gateway.dll serve), submits mail
# under load from concurrent MailKit clients, SIGKILLs the gateway at random moments (5 times by default, one of them
# while it is still starting), restarts it on the same data directory, then drains and proves that every message
# that got a 250 was delivered — duplicates are counted and reported; any loss exits non-zero.
#
#   tests/crash/crash-test.sh [--no-build] [driver options: --kills 5 --submitters 8 --rate 100 --seed N ...]
#
# Work files (config, data dir, mail.log, gateway-N.out per process) go to $CRASH_WORK or a fresh temp dir, kept on
# failure and removed on success unless CRASH_KEEP=1.
set -uo pipefail
cd "$(dirname "$0")/../.."
build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi
if [ "$build" -eq 1 ]; then
  for p in src/MtaSts.Actors.Host tests/crash/CrashDriver; do
    dotnet build "$p" -c Release -warnaserror 2>&1 | tail -2
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "crash test: build of $p failed"; exit 2; }
  done
fi
gateway=src/MtaSts.Actors.Host/bin/Release/net10.0/mtasts-gateway.dll
driver=tests/crash/CrashDriver/bin/Release/net10.0/crash-driver.dll
for f in "$gateway" "$driver"; do [ -f "$f" ] || { echo "crash test: $f missing (build first)"; exit 2; }; done
work=${CRASH_WORK:-$(mktemp -d /tmp/mtasts-crash.XXXXXX)}
# Hard bound: the driver has its own timeouts; this only guards against a hang of the driver itself.
timeout -s KILL 600 dotnet "$driver" --gateway "$gateway" --work "$work" "$@"
rc=$?
if [ "$rc" -eq 0 ] && [ "${CRASH_KEEP:-0}" != 1 ] && [ -z "${CRASH_WORK:-}" ]; then rm -rf "$work"
else echo "crash test work files: $work"; fi
exit "$rc"
