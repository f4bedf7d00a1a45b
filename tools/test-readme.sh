#!/usr/bin/env bash
# The README test: runs README.md's commands as printed, the way a new user would, on a clean copy of the
# repository (the files git knows, nothing built), and checks what the first call wrote.
#
#   - "## Set-up: two commands": the first command only (it starts the server; the second is the test
#     command that runs this script). It runs in the background until the server logs that it is ready.
#   - "## A first call": every command of every ```bash block, in order, from the copy's root; each must
#     exit 0. Then the files and outputs the first call promises are checked.
#
# Only the port differs from the README: the server gets Kestrel__Endpoints__Grpc__Url and the clients
# MASKFORMER_ADDRESS (both documented in the README), on $MASKFORMER_README_PORT (default 5182).
# Prints TAP-style lines ("ok N - ...", "not ok N - ...") and "# pass N" / "# fail N"; exits non-zero on
# any failure. Takes 1-3 minutes (a clean Release build of the server and the CLI).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${MASKFORMER_README_PORT:-5182}"
WORK="$(mktemp -d /tmp/maskformer-readme.XXXXXX)"
COPY="$WORK/repo"
LOGS="$WORK/logs"
mkdir -p "$COPY" "$LOGS"
pass=0
fail=0
n=0
server_pgid=""

ok() { n=$((n + 1)); pass=$((pass + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); fail=$((fail + 1)); echo "not ok $n - $*"; }
check() { local what="$1"; shift; if "$@"; then ok "$what"; else not_ok "$what"; fi; }

finish() {
  if [[ -n "$server_pgid" ]]; then
    kill -TERM -- "-$server_pgid" 2>/dev/null
    for _ in $(seq 50); do kill -0 -- "-$server_pgid" 2>/dev/null || break; sleep 0.2; done
    kill -KILL -- "-$server_pgid" 2>/dev/null
  fi
  # The copy and its build are large; the logs stay. MASKFORMER_README_KEEP=1 keeps the copy too.
  [[ -n "${MASKFORMER_README_KEEP:-}" ]] || rm -rf "$COPY"
  echo "# logs: $LOGS"
  echo "# pass $pass"
  echo "# fail $fail"
}
trap finish EXIT

# The ```bash blocks of the README section whose heading starts with $1, up to the next "## " heading,
# one command per line (backslash continuations joined), comments and blank lines dropped.
section_commands() {
  awk -v heading="$1" '
    /^## / { inside = (index($0, "## " heading) == 1); next }
    inside && /^```bash/ { code = 1; next }
    inside && code && /^```/ { code = 0; next }
    inside && code { print }
  ' "$ROOT/README.md" | awk '
    /\\$/ { line = line substr($0, 1, length($0) - 1); next }
    { line = line $0; if (line !~ /^[[:space:]]*(#|$)/) print line; line = "" }
  '
}

# 1. A clean copy: the tracked files and any new ones git does not ignore, nothing built.
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  # (a tracked file deleted in the working tree is left out: tar warns and goes on)
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$COPY"
else
  (cd "$ROOT" && tar --exclude='bin' --exclude='obj' --exclude='node_modules' --exclude='./out' -cf - .) | tar -xf - -C "$COPY"
fi
check "clean copy of the repository has no build output" test ! -e "$COPY/src/MaskFormer.Server/bin"

mapfile -t setup < <(section_commands "Set-up")
mapfile -t first_call < <(section_commands "A first call")
check "README set-up section has a first command" test "${#setup[@]}" -ge 1
check "README first-call section has commands" test "${#first_call[@]}" -ge 1
[[ ${#setup[@]} -ge 1 && ${#first_call[@]} -ge 1 ]] || exit 1

# 2. Command 1, as printed, in the background in its own process group; wait for the ready log line.
echo "# server: ${setup[0]}"
# (setsid directly under this non-interactive shell execs in place, so $! is the new group's id.)
Kestrel__Endpoints__Grpc__Url="http://127.0.0.1:$PORT" setsid bash -c 'cd "$0" && eval "$1"' "$COPY" "${setup[0]}" >"$LOGS/server.log" 2>&1 &
server_pgid=$!
ready=""
for _ in $(seq 1200); do
  if grep -q "Inference engine ready" "$LOGS/server.log" 2>/dev/null; then ready=1; break; fi
  kill -0 "$server_pgid" 2>/dev/null || break
  sleep 0.5
done
if [[ -z "$ready" ]]; then
  not_ok "server started by '${setup[0]}' became ready"
  tail -30 "$LOGS/server.log" | sed 's/^/#   /'
  exit 1
fi
ok "server started by '${setup[0]}' became ready"
check "server serves the shipped models/ of the copy" grep -q "model repository $COPY/models" "$LOGS/server.log"

# 3. The first call's commands, as printed, from the copy's root.
i=0
for command in "${first_call[@]}"; do
  i=$((i + 1))
  if (cd "$COPY" && MASKFORMER_ADDRESS="127.0.0.1:$PORT" timeout 600 bash -euo pipefail -c "$command") >"$LOGS/call-$i.log" 2>&1; then
    ok "$command"
  else
    not_ok "$command (exit $?)"
    tail -20 "$LOGS/call-$i.log" | sed 's/^/#   /'
  fi
done

# 4. What the first call promises.
out="$COPY/out"
png_size() { python3 -c 'import struct,sys; d=open(sys.argv[1],"rb").read(24); assert d[:8]==b"\x89PNG\r\n\x1a\n"; print("%dx%d" % struct.unpack(">II", d[16:24]))' "$1" 2>/dev/null; }
input_size="$(png_size "$COPY/models/tiny-shapes/heldout/0000.png")"
check "out/0000.labels.png is a PNG the size of the input ($input_size)" test "$(png_size "$out/0000.labels.png")" = "$input_size"
check "out/0000.overlay.png is a PNG" test -n "$(png_size "$out/0000.overlay.png")"
check "out/0000.json names the model, lists its classes with areas covering the image, timings and the files" python3 - "$out/0000.json" "$input_size" "$COPY/models/tiny-shapes/config.json" <<'EOF'
import json, os, sys
summary = json.load(open(sys.argv[1]))
width, height = map(int, sys.argv[2].split("x"))
labels = set(json.load(open(sys.argv[3]))["id2label"].values())
assert summary["model"] == "tiny-shapes", summary["model"]
assert (summary["width"], summary["height"]) == (width, height)
classes = summary["classes"]
assert classes and {c["name"] for c in classes} <= labels, classes
assert sum(c["area"] for c in classes) == width * height, "the areas do not cover the image"
assert summary["timings_ms"]["totalMs"] > 0
assert all(os.path.isfile(path) for path in summary["outputs"].values()), summary["outputs"]
EOF
models_log=""
health_log=""
for i in $(seq ${#first_call[@]}); do
  case "${first_call[$((i - 1))]}" in
    *" -- models"*) models_log="$LOGS/call-$i.log" ;;
    *" -- health"*) health_log="$LOGS/call-$i.log" ;;
  esac
done
check "models lists tiny-shapes" grep -q "tiny-shapes" "${models_log:-/dev/null}"
check "health says SERVING" grep -q "SERVING" "${health_log:-/dev/null}"
frames=$(ls "$COPY"/models/tiny-shapes/clip/frame_???.png | wc -l)
check "stream of the clip wrote one overlay per frame ($frames)" test "$(find "$out/overlays" -type f 2>/dev/null | wc -l)" -ge "$frames"
check "stream of the video wrote a video" bash -c "ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 '$out/overlay.mp4' | grep -Eq '^[1-9]'"

# 5. "Any gRPC tool": its bash commands as printed, against the same server (its address for localhost:5081).
mapfile -t any_tool < <(section_commands "Any gRPC tool")
check "README any-gRPC-tool section has commands" test "${#any_tool[@]}" -ge 1
tool_log() { for k in "${!any_tool[@]}"; do [[ "${any_tool[$k]}" == *"$1"* ]] && echo "$LOGS/tool-$k.log" && return; done; echo /dev/null; }
for k in "${!any_tool[@]}"; do
  command="${any_tool[$k]}"
  if (cd "$COPY" && timeout 600 bash -euo pipefail -c "${command//localhost:5081/127.0.0.1:$PORT}") >"$LOGS/tool-$k.log" 2>&1; then
    ok "$command"
  else
    not_ok "$command (exit $?)"
    tail -20 "$LOGS/tool-$k.log" | sed 's/^/#   /'
  fi
done
check "reflection lists SegmentationService/Segment" grep -q "maskformer.v1.SegmentationService/Segment" "$(tool_log --list-methods)"
check "ListModels through reflection names tiny-shapes" grep -q '"tiny-shapes"' "$(tool_log /ListModels)"
check "Segment through reflection answers a panoptic PNG" grep -q '"segmentIdPng"' "$(tool_log /Segment)"
check "health through reflection says SERVING" grep -q '"SERVING"' "$(tool_log Health/Check)"

[[ $fail -eq 0 ]]
