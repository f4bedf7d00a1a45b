#!/usr/bin/env bash
# Achieved against target on the committed clip: the README's streaming figures. Loops the 16-frame
# clip into a 30 fps video (LOOPS times, default 20: 320 frames) and streams it three times with the
# CLI, one after another on one server: no target (sent at the video's 30 fps, QUEUE, 4 in flight),
# --target-fps 30 --max-age 100ms, and --target-fps 15 --max-age 100ms (each sent at its target).
# Draws nothing (--no-overlays), so the client's drawing does not set the pace.
# Prints the client's and the server's final figures of each run (its StreamStatus) and the machine's load.
# Starts its own server on 127.0.0.1:$MASKFORMER_LATENCY_PORT (default 5183).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PORT="${MASKFORMER_LATENCY_PORT:-5183}"
LOOPS="${LOOPS:-20}"
WORK="$(mktemp -d /tmp/maskformer-latency.XXXXXX)"
server_pid=""
cleanup() {
  if [[ -n "$server_pid" ]]; then kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

dotnet build src/MaskFormer.Server -c Release -nologo -clp:ErrorsOnly >/dev/null
dotnet build src/MaskFormer.Cli -c Release -nologo -clp:ErrorsOnly >/dev/null
ffmpeg -v error -y -stream_loop "$((LOOPS - 1))" -framerate 30 -i models/tiny-shapes/clip/frame_%03d.png -pix_fmt yuv420p "$WORK/clip30.mp4"
dotnet src/MaskFormer.Server/bin/Release/net10.0/MaskFormer.Server.dll \
  --Kestrel:Endpoints:Grpc:Url="http://127.0.0.1:$PORT" --MaskFormer:Models:Path="$ROOT/models" >"$WORK/server.log" 2>&1 &
server_pid=$!

cli() { dotnet src/MaskFormer.Cli/bin/Release/net10.0/maskformer.dll "$@" --server "127.0.0.1:$PORT"; }
cli health --wait 120 >/dev/null || { tail -20 "$WORK/server.log"; exit 1; }

echo "load: $(cut -d' ' -f1-3 /proc/loadavg), $(nproc) cores, $((16 * LOOPS)) frames of models/tiny-shapes/clip at 30 fps"
run() {
  local name="$1"; shift
  cli stream "$WORK/clip30.mp4" --no-overlays "$@" | grep -E "^server: |latency: frame sent" | sed "s/^/$name: /"
}
run none
run target30 --target-fps 30 --max-age 100ms
run target15 --target-fps 15 --max-age 100ms
