#!/usr/bin/env bash
# Builds the load-test harness (Release) and runs one scenario, or all of them into one report.
#   load-tests/run.sh <scenario> [options]      e.g. load-tests/run.sh relay-throughput --target postfix --messages 20000
#   load-tests/run.sh all [--scale F] [options]  every scenario: gateway, Postfix and the raw ceiling, one combined report
#   load-tests/run.sh all --smoke                tiny counts (1–2 min); exit 1 only on lost or duplicated messages
#   load-tests/run.sh list                       scenarios
#   load-tests/run.sh --help | all --help        options
# Postfix must be installed for --target postfix and --receiver smtp-sink: sudo load-tests/setup.sh
# (`all --smoke` runs setup.sh itself when Postfix is missing and it runs as root; if that fails: gateway + ceiling only).
# MTASTS_LOAD_NO_BUILD=1 skips the build (e.g. after `dotnet build MtaSts.Actors.sln -c Release`).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
proj="$here/MtaSts.Actors.LoadTests"
out="$proj/bin/Release/net10.0"

if [[ "${MTASTS_LOAD_NO_BUILD:-0}" != "1" ]]; then
  dotnet build "$proj" -c Release --nologo -v quiet -clp:ErrorsOnly >&2
fi
# Server GC off: the harness shares the box with the target, and workstation GC keeps its footprint small.
export DOTNET_gcServer=0
export DOTNET_TieredPGO=1
cd "$repo"
if [[ "${1:-}" == all && " $* " == *" --smoke "* && ! -x /usr/sbin/postfix ]]; then
  # Self-sufficient smoke: try to install Postfix (bounded); without it the harness runs gateway + ceiling and says so.
  if [[ $(id -u) -eq 0 ]]; then
    echo "run.sh: postfix missing, running load-tests/setup.sh …" >&2
    timeout 600 "$here/setup.sh" >&2 || echo "run.sh: load-tests/setup.sh failed: the smoke runs gateway + ceiling only" >&2
  else
    echo "run.sh: postfix missing and not root (cannot run setup.sh): the smoke runs gateway + ceiling only" >&2
  fi
fi
if [[ $# -eq 0 || "$1" == list || "$1" == -h || "$1" == --help ]]; then exec dotnet "$out/mtasts-load.dll" "$@"; fi
exec dotnet "$out/mtasts-load.dll" "$@" --repo "$repo"
