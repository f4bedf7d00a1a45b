#!/usr/bin/env bash
# Redraws the pictures in docs/images/ with the CLI against the committed model, as the README's
# commands do: one image segmented three ways, and one frame of a panoptic stream with track ids.
# Run it after the model changes. Starts its own server on 127.0.0.1:$MASKFORMER_DOCS_PORT (default 5182).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT="${MASKFORMER_DOCS_PORT:-5182}"
WORK="$(mktemp -d /tmp/maskformer-docs.XXXXXX)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

dotnet build src/MaskFormer.Server -c Release -nologo -clp:ErrorsOnly >/dev/null
dotnet build src/MaskFormer.Cli -c Release -nologo -clp:ErrorsOnly >/dev/null
dotnet src/MaskFormer.Server/bin/Release/net10.0/MaskFormer.Server.dll \
  --Kestrel:Endpoints:Grpc:Url="http://127.0.0.1:$PORT" --MaskFormer:Models:Path="$ROOT/models" >"$WORK/server.log" 2>&1 &
server_pid=$!

cli() { dotnet src/MaskFormer.Cli/bin/Release/net10.0/maskformer.dll "$@" --server "127.0.0.1:$PORT"; }
cli health --wait 120 >/dev/null || { tail -20 "$WORK/server.log"; exit 1; }
cli segment models/tiny-shapes/heldout/0000.png --task semantic,panoptic,instance --out "$WORK"
cli stream models/tiny-shapes/clip --task panoptic --out "$WORK/stream" --no-pacing >/dev/null

mkdir -p docs/images
cp "$WORK/0000.overlay.png" docs/images/semantic.png
cp "$WORK/0000.panoptic.overlay.png" docs/images/panoptic.png
cp "$WORK/0000.instance.overlay.png" docs/images/instance.png
cp "$WORK/stream/frame_010.overlay.png" docs/images/stream-panoptic.png
ls -l docs/images
