#!/usr/bin/env bash
# Fuzzes image decoding and request validation (fuzz/MaskFormer.Fuzz) with AFL++ and SharpFuzz, from the
# committed corpus in fuzz/corpus. Prints "fuzz: N executions, N crashes, N hangs" and exits non-zero on
# any crash or hang, or when no execution ran at all (each is replayed, with its exception, before it exits).
#
#   bash tools/fuzz.sh 45                          # the CI step: 45 seconds
#   nice -n 10 bash tools/fuzz.sh 3600 /tmp/fuzz   # the long run: an hour, findings kept in /tmp/fuzz
#
# SharpFuzz runs the target in AFL++'s persistent mode inside one dotnet process. When AFL++ loses that
# process (an execution past the timeout on an overloaded machine kills it), the run goes on in a new
# segment from the queue found so far; the input it was running is replayed outside AFL++ and counted
# as a crash if it breaks the contract or the process, as a hang if it runs past the timeout again.
# Needs Debian's afl++ (tools/install-test-deps.sh) and the sharpfuzz tool (dotnet-tools.json).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${1:-60}"
WORK="${2:-$(mktemp -d /tmp/maskformer-fuzz.XXXXXX)}"
TIMEOUT_MS="${FUZZ_TIMEOUT_MS:-10000}"
mkdir -p "$WORK"
BIN="$WORK/bin"
HARNESS=(dotnet fuzz/MaskFormer.Fuzz/bin/Release/net10.0/MaskFormer.Fuzz.dll)
# The instrumented copy is half a gigabyte and rebuilt every run; only the findings are worth keeping.
# (CI keeps every run's logs folder, so leaving it filled this machine's disk.)
trap 'rm -rf "$BIN"' EXIT

dotnet build fuzz/MaskFormer.Fuzz -c Release -nologo -clp:ErrorsOnly >/dev/null
dotnet tool restore >/dev/null
rm -rf "$BIN"
cp -r fuzz/MaskFormer.Fuzz/bin/Release/net10.0 "$BIN"
# Coverage comes from the instrumented assemblies: the decoder library, the engine's checks, request mapping.
for assembly in SixLabors.ImageSharp.dll MaskFormer.Engine.dll MaskFormer.Server.dll; do
  dotnet sharpfuzz "$BIN/$assembly" >/dev/null
done

export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
value() { awk -F: -v key="$1" '$1 ~ "^"key" *$" { gsub(/ /, "", $2); print $2 }' "$2"; }
execs=0; crashes=0; hangs=0; segments=0; restarts=0
seeds=fuzz/corpus
started=$SECONDS
while :; do
  left=$((DURATION - (SECONDS - started)))
  [[ "$DURATION" != 0 && $left -le 0 ]] && break
  segments=$((segments + 1))
  out="$WORK/run-$segments"
  limit=(); [[ "$DURATION" != 0 ]] && limit=(-V "$left")
  afl-fuzz -i "$seeds" -o "$out" -t "$TIMEOUT_MS" -m none "${limit[@]}" -- dotnet "$BIN/MaskFormer.Fuzz.dll" >"$out.log" 2>&1 && ok=1 || ok=0
  stats="$out/default/fuzzer_stats"
  if [[ -f "$stats" ]]; then
    execs=$((execs + $(value execs_done "$stats"))); crashes=$((crashes + $(value saved_crashes "$stats"))); hangs=$((hangs + $(value saved_hangs "$stats")))
  fi
  [[ $ok == 1 ]] && break
  if ! grep -qE "Unable to communicate with fork server|No instrumentation detected" "$out.log"; then
    tail -30 "$out.log"; echo "fuzz: afl-fuzz failed"; exit 1
  fi
  restarts=$((restarts + 1))
  if [[ -f "$out/default/.cur_input" ]]; then
    cp "$out/default/.cur_input" "$out/lost-input"
    timeout $((TIMEOUT_MS / 1000 + 5)) "${HARNESS[@]}" replay "$out/lost-input" >"$out/lost-input.log" 2>&1 && code=0 || code=$?
    if [[ $code == 124 ]]; then hangs=$((hangs + 1)); mkdir -p "$out/default/hangs"; cp "$out/lost-input" "$out/default/hangs/";
    elif [[ $code != 0 ]]; then crashes=$((crashes + 1)); mkdir -p "$out/default/crashes"; cp "$out/lost-input" "$out/default/crashes/"; fi
  fi
  [[ -d "$out/default/queue" && -n "$(ls -A "$out/default/queue" 2>/dev/null)" ]] && seeds="$out/default/queue"
done

echo "fuzz: $execs executions, $crashes crashes, $hangs hangs ($segments segments, $((SECONDS - started)) s; findings in $WORK)"
# A run that never got AFL++ going (every segment lost its fork server at once) found nothing because it
# tried nothing: that is a failure, not a clean result.
if [[ "$execs" == 0 ]]; then
  tail -30 "$WORK"/run-*.log; echo "fuzz: AFL++ ran no executions"; exit 1
fi
if [[ "$crashes" != 0 || "$hangs" != 0 ]]; then
  "${HARNESS[@]}" replay "$WORK"/run-*/default/crashes "$WORK"/run-*/default/hangs || true
  exit 1
fi
