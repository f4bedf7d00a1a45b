#!/usr/bin/env bash
# Does a device serve, and give the CPU's answers? Starts two servers on the embedded model, one on the
# CPU and one on DEVICE marked Required (so a CUDA provider that cannot load stops it instead of falling
# back), segments the first IMAGES held-out images on both with the README's CLI, and compares the label
# maps and panoptic PNGs byte for byte (the service's PNG encoding is deterministic, so equal files mean
# equal maps).
#
#   tools/gpu-check.sh [DEVICE] [IMAGES]      DEVICE: cuda:0 (default), cuda:N or cpu; IMAGES: 8 (1-16)
#
# Needs the Release builds (dotnet build MaskFormer.sln -c Release). MASKFORMER_GPU_CHECK_PORT (default
# 5391, and the port after it) chooses the ports; MASKFORMER_GPU_CHECK_ARGS adds settings (split on spaces)
# to the DEVICE server only (for example --MaskFormer:Inference:CudaProviderOptions:use_tf32=1);
# MASKFORMER_GPU_CHECK_MODELS is the model repository both serve (default models/).
# Exit 0: every map equal; 1: a map differs or a call failed; 2: a server did not start (its log's end is
# printed) or the builds are missing. The last line says how many maps were equal.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEVICE="${1:-cuda:0}"
COUNT="${2:-8}"
PORT="${MASKFORMER_GPU_CHECK_PORT:-5391}"
MODELS="${MASKFORMER_GPU_CHECK_MODELS:-$ROOT/models}"
SERVER_DLL="$ROOT/src/MaskFormer.Server/bin/Release/net10.0/MaskFormer.Server.dll"
CLI_DLL="$ROOT/src/MaskFormer.Cli/bin/Release/net10.0/maskformer.dll"
if [[ ! -f "$SERVER_DLL" || ! -f "$CLI_DLL" ]]; then
  echo "gpu-check: build first: dotnet build MaskFormer.sln -c Release" >&2
  exit 2
fi
if ! [[ "$COUNT" =~ ^[0-9]+$ ]] || (( COUNT < 1 || COUNT > 16 )); then
  echo "gpu-check: IMAGES must be 1-16 (was '$COUNT')" >&2
  exit 2
fi

WORK="$(mktemp -d /tmp/maskformer-gpu-check.XXXXXX)"
pids=()
finish() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null; done
  wait 2>/dev/null
  [[ -n "${MASKFORMER_GPU_CHECK_KEEP:-}" ]] || rm -rf "$WORK"
}
trap finish EXIT

# start NAME DEVICE PORT [SETTINGS...]: a server in the background; waits until it answers SERVING.
start() {
  local name="$1" device="$2" port="$3"
  shift 3
  # Another server on the port would answer for one that failed to bind.
  if dotnet "$CLI_DLL" health --server "127.0.0.1:$port" >/dev/null 2>&1; then
    echo "gpu-check: something already answers on 127.0.0.1:$port; stop it or set MASKFORMER_GPU_CHECK_PORT" >&2
    return 1
  fi
  Kestrel__Endpoints__Grpc__Url="http://127.0.0.1:$port" dotnet "$SERVER_DLL" \
    "--MaskFormer:Models:Path=$MODELS" "--MaskFormer:Inference:Devices:0:Name=$device" \
    "--MaskFormer:Inference:Devices:0:Required=true" "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  local deadline=$((SECONDS + 180))
  while (( SECONDS < deadline )); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "gpu-check: the $device server exited before it served; its log ends:" >&2
      tail -5 "$WORK/$name.log" >&2
      return 1
    fi
    [[ "$(dotnet "$CLI_DLL" health --server "127.0.0.1:$port" 2>/dev/null)" == SERVING ]] && return 0
    sleep 1
  done
  echo "gpu-check: the $device server did not answer SERVING within 3 minutes; its log ends:" >&2
  tail -5 "$WORK/$name.log" >&2
  return 1
}

read -r -a extra <<<"${MASKFORMER_GPU_CHECK_ARGS:-}"
start reference cpu "$PORT" || exit 2
start device "$DEVICE" "$((PORT + 1))" "${extra[@]}" || exit 2

total=0
equal=0
failed=0
images=("$ROOT"/models/tiny-shapes/heldout/[0-9][0-9][0-9][0-9].png)
for image in "${images[@]:0:COUNT}"; do
  base="$(basename "$image" .png)"
  for side in reference device; do
    port="$PORT"
    [[ "$side" == device ]] && port=$((PORT + 1))
    if ! dotnet "$CLI_DLL" segment "$image" --server "127.0.0.1:$port" --task semantic,panoptic --out "$WORK/$side" >"$WORK/$side.$base.txt" 2>&1; then
      echo "$base: the $side call failed: $(head -1 "$WORK/$side.$base.txt")"
      failed=$((failed + 1))
      continue 2
    fi
  done
  # The device side must say it ran there ("... on cuda:0 in 9.4 ms").
  if ! grep -q " on $DEVICE in " "$WORK/device.$base.txt"; then
    echo "$base: the device call did not run on $DEVICE: $(head -1 "$WORK/device.$base.txt")"
    failed=$((failed + 1))
    continue
  fi
  verdicts=()
  for map in labels panoptic; do
    total=$((total + 1))
    if cmp -s "$WORK/reference/$base.$map.png" "$WORK/device/$base.$map.png"; then
      equal=$((equal + 1))
      verdicts+=("$map equal")
    else
      verdicts+=("$map DIFFERS")
    fi
  done
  # The device line says where the model ran ("... on cuda:0 in 9.4 ms").
  echo "$(head -1 "$WORK/device.$base.txt"): ${verdicts[*]}"
done

echo "$DEVICE: $equal of $total maps equal to the CPU's, $failed call(s) failed"
(( equal == total && failed == 0 ))
