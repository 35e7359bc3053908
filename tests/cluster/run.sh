#!/usr/bin/env bash
# Cluster chaos test (issue 12): 3 gateway OS processes on loopback sharing one private PostgreSQL (Debian package,
# tests/postgres/setup.sh), a counting receiver and a load generator (reused from load-tests/), under load:
#   a  SIGKILL a non-seed node        b  SIGKILL the node started first     c  SIGSTOP a node beyond the failure detector
#   d  rolling restart of every node  limit  a 2-connection destination limit across the 3 nodes
# Per scenario: acked vs delivered (LOST while the killed node stays down), duplicates, 250s from a node that was not an
# Up member, time until a never-seen domain is delivered after the fault, refusals per node. Ends with
# "cluster: N passed, N failed"; exit 1 on any failure.
#
#   tests/cluster/run.sh [--no-build] [--scenario a|b|c|d|limit|all] [--messages N] [--quick] [driver options]
#   tests/cluster/run.sh bench [--messages N]    3 nodes and 1 node in cluster mode vs the single-node default vs Postfix
#
# Node configuration: load-tests/MtaSts.Actors.LoadTests/Targets/ClusterNodeConfig.cs (switch with --bootstrap,
# --cluster-conf FILE, --node-extra FILE). Work files go to a temp dir, removed on success (--keep keeps them).
set -uo pipefail
cd "$(dirname "$0")/../.."
build=1
if [ "${1:-}" = "--no-build" ]; then build=0; shift; fi
if [ "${1:-}" = "bench" ]; then
  shift
  # The load-test harness has the targets: gateway-cluster (one node, cluster-postgres.conf, private PostgreSQL),
  # gateway (single-node default, local segment spool) and postfix — same traffic in one run, ratios in the report.
  [ "$build" -eq 1 ] && { dotnet build src/MtaSts.Actors.Host -c Release -warnaserror 2>&1 | tail -2; }
  [ "$build" -eq 0 ] && export MTASTS_LOAD_NO_BUILD=1
  exec load-tests/run.sh relay-throughput --target gateway-cluster3,gateway-cluster,gateway,postfix "$@"
fi
if [ "$build" -eq 1 ]; then
  for p in src/MtaSts.Actors.Host tests/cluster/ClusterChaos; do
    dotnet build "$p" -c Release -warnaserror 2>&1 | tail -2
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "cluster test: build of $p failed"; echo "cluster: 0 passed, 1 failed"; exit 2; }
  done
fi
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then timeout 600 tests/postgres/setup.sh || { echo "cluster: 0 passed, 1 failed"; exit 1; }
  else echo "cluster test: PostgreSQL missing and not root (sudo tests/postgres/setup.sh)"; echo "cluster: 0 passed, 1 failed"; exit 1; fi
fi
gateway=src/MtaSts.Actors.Host/bin/Release/net10.0/mtasts-gateway.dll
driver=tests/cluster/ClusterChaos/bin/Release/net10.0/cluster-chaos.dll
for f in "$gateway" "$driver"; do [ -f "$f" ] || { echo "cluster test: $f missing (build first)"; exit 2; }; done
args=("$@")
# The driver's own runtime: workstation GC, it shares 2 cores with 3 gateways and PostgreSQL.
export DOTNET_gcServer=0
# Hard bound against a hang of the driver itself (it has its own per-phase bounds and stops every node it started).
timeout -k 30 1800 dotnet "$driver" --gateway "$gateway" --repo "$PWD" "${args[@]}"
