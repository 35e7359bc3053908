#!/usr/bin/env bash
# Builds the load-test harness (Release) and runs one scenario.
#   load-tests/run.sh <scenario> [options]      e.g. load-tests/run.sh relay-throughput --target postfix --messages 20000
#   load-tests/run.sh list                       scenarios
#   load-tests/run.sh --help                     options
# Postfix must be installed for --target postfix and --receiver smtp-sink: sudo load-tests/setup.sh
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
if [[ $# -eq 0 || "$1" == list || "$1" == -h || "$1" == --help ]]; then exec dotnet "$out/mtasts-load.dll" "$@"; fi
exec dotnet "$out/mtasts-load.dll" "$@" --repo "$repo"
