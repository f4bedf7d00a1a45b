#!/usr/bin/env bash
# Fuzzes image decoding and request validation (fuzz/MaskFormer.Fuzz) with AFL++ and SharpFuzz, from the
# committed corpus in fuzz/corpus. Prints "fuzz: N executions, N crashes, N hangs" and exits non-zero if
# AFL++ saved any crash or hang (they are replayed, with their exceptions, before it exits).
#
#   bash tools/fuzz.sh 60                       # the CI run: 60 seconds
#   nice -n 10 bash tools/fuzz.sh 0 /tmp/fuzz   # the long run: until stopped (Ctrl-C), findings kept in /tmp/fuzz
#
# Needs Debian's afl++ (tools/install-test-deps.sh) and the sharpfuzz tool (dotnet-tools.json).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
DURATION="${1:-60}"
WORK="${2:-$(mktemp -d /tmp/maskformer-fuzz.XXXXXX)}"
mkdir -p "$WORK"
BIN="$WORK/bin"

dotnet build fuzz/MaskFormer.Fuzz -c Release -nologo -clp:ErrorsOnly >/dev/null
dotnet tool restore >/dev/null
rm -rf "$BIN"
cp -r fuzz/MaskFormer.Fuzz/bin/Release/net10.0 "$BIN"
# Coverage comes from the instrumented assemblies: the decoder library and the engine's own checks.
for assembly in SixLabors.ImageSharp.dll MaskFormer.Engine.dll MaskFormer.Server.dll; do
  dotnet sharpfuzz "$BIN/$assembly" >/dev/null
done

export AFL_SKIP_BIN_CHECK=1 AFL_NO_UI=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1
limit=()
[[ "$DURATION" != 0 ]] && limit=(-V "$DURATION")
# A run resumes where the last one in the same folder stopped.
input=(-i fuzz/corpus)
[[ -d "$WORK/findings/default/queue" ]] && input=(-i -)
fuzz() { afl-fuzz "${input[@]}" -o "$WORK/findings" -t 5000 -m none "${limit[@]}" -- dotnet "$BIN/MaskFormer.Fuzz.dll" >"$WORK/afl.log" 2>&1; }
# On a loaded machine the first dry run has once come back without coverage; one more try settles it.
if ! fuzz; then
  grep -q "No instrumentation detected" "$WORK/afl.log" && rm -rf "$WORK/findings" && input=(-i fuzz/corpus) && fuzz || {
    tail -30 "$WORK/afl.log"; echo "fuzz: afl-fuzz failed"; exit 1; }
fi

stats="$WORK/findings/default/fuzzer_stats"
value() { awk -F: -v key="$1" '$1 ~ "^"key" *$" { gsub(/ /, "", $2); print $2 }' "$stats"; }
execs="$(value execs_done)"; crashes="$(value saved_crashes)"; hangs="$(value saved_hangs)"
echo "fuzz: $execs executions, $crashes crashes, $hangs hangs ($(value execs_per_sec) per second; findings in $WORK/findings)"
if [[ "$crashes" != 0 || "$hangs" != 0 ]]; then
  dotnet fuzz/MaskFormer.Fuzz/bin/Release/net10.0/MaskFormer.Fuzz.dll replay "$WORK/findings/default/crashes" "$WORK/findings/default/hangs" || true
  exit 1
fi
