#!/usr/bin/env bash
# Publishes the gateway as one self-contained directory (no .NET install needed on the target) plus a tarball:
#   src/MtaSts.Actors.Host/packaging/publish.sh [RID]      (default linux-x64)
# → dist/mtasts-gateway-<RID>/ (mtasts-gateway, hocon/*.conf, README.md, mtasts-gateway.service, Containerfile)
#   dist/mtasts-gateway-<RID>.tar.gz
# Install (systemd): tar -C /opt -xzf …; mv /opt/mtasts-gateway-<RID> /opt/mtasts-gateway; useradd --system mtasts;
#   mkdir -p /etc/mtasts && touch /etc/mtasts/gateway.conf; cp /opt/mtasts-gateway/mtasts-gateway.service /etc/systemd/system/;
#   systemctl daemon-reload && systemctl enable --now mtasts-gateway
set -euo pipefail
rid="${1:-linux-x64}"
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
out="$repo/dist/mtasts-gateway-$rid"
rm -rf "$out"
# ReadyToRun: the gateway's and its libraries' code is compiled ahead of time, so a start (or a restart after a crash,
# or a node joining a cluster) JITs far less: start → SMTP listening 1.2 s instead of 1.7 s, 1.3 s of CPU instead
# of 1.9 s (means of 5) (load-tests/README.md, "ReadyToRun"). Hot methods are still re-compiled by the tiered JIT.
dotnet publish "$repo/src/MtaSts.Actors.Host" -c Release -r "$rid" --self-contained -p:PublishReadyToRun=true -warnaserror -o "$out"
here="$repo/src/MtaSts.Actors.Host/packaging"
cp "$here/mtasts-gateway.service" "$here/Containerfile" "$repo/README.md" "$out/"
"$out/mtasts-gateway" config >/dev/null   # the published binary starts and its shipped configuration is valid
tar -C "$repo/dist" -czf "$repo/dist/mtasts-gateway-$rid.tar.gz" "mtasts-gateway-$rid"
echo "published $out ($(du -sh "$out" | cut -f1)) and dist/mtasts-gateway-$rid.tar.gz"
