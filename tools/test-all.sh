#!/usr/bin/env bash
# Runs every test of the repository on a clean machine: .NET unit and integration tests, the proto
# lint (buf, DEFAULT rules), and the Node, Python, Go and C# clients against a live server on the committed model, and the
# deployment checks (tests/deploy: the Dockerfile's cpu target built by its own commands and served, every
# Kubernetes overlay rendered and validated against the schemas and the application's settings).
# Ends with one line "N passed, N failed" summed over every test run; exits non-zero on any failure.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# Each test sets the clients' token and TLS variables it needs; a shell's own (docs/security.md exports
# them) would turn the cleartext test servers' calls into usage errors.
unset MASKFORMER_TOKEN MASKFORMER_CA_CERT MASKFORMER_CLIENT_CERT MASKFORMER_CLIENT_KEY
CONFIGURATION="${CONFIGURATION:-Release}"
PORT="${MASKFORMER_TEST_PORT:-5181}"
LOGS="$(mktemp -d /tmp/maskformer-tests.XXXXXX)"
passed=0
failed=0
status=0
server_pid=""

cleanup() {
  for pid in "$server_pid" "${token_server_pid:-}" "${tls_server_pid:-}"; do
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null
      wait "$pid" 2>/dev/null
    fi
  done
}
trap cleanup EXIT

# Each step names the seconds since the run began, so a slow CI run shows which step took the time.
step() { printf '\n==> [%d s] %s\n' "$SECONDS" "$*"; }

# Runs a step's command under a time limit, so that a hang fails that step, with its log, instead of
# holding the whole run until CI kills it with nothing printed.
limited() {
  local seconds="$1" code
  shift
  timeout -k 30 "$seconds" "$@"
  code=$?
  if [[ $code -eq 124 || $code -eq 137 ]]; then echo "TIMED OUT after $seconds s: $*"; fi
  return $code
}
fail_step() { echo "FAILED: $*"; failed=$((failed + 1)); status=1; }

# Every count_* below reads one runner's log and its exit code. A skipped, cancelled or "todo" test
# counts as failed (the suite has none on purpose, so one is a test that stopped testing), and a runner
# that exits non-zero without a failure in its log (killed by `limited`, a hook that threw, a build
# error) counts one failure more, so the last line never reads "0 failed" over a broken step.
add_counts() {
  local log="$1" code="$2" p="$3" f="$4"
  passed=$((passed + p)); failed=$((failed + f))
  if [[ $code -ne 0 || $p -eq 0 || $f -ne 0 ]]; then
    status=1
    if [[ $f -eq 0 ]]; then
      failed=$((failed + 1)); tail -40 "$log"
      echo "FAILED: $(basename "$log" .log): exit code $code, $p passed and no failing test in its log"
    fi
    return 1
  fi
}

# Node's test runner: "# pass N", "# fail N", "# cancelled N", "# skipped N", "# todo N".
count_node() {
  local log="$1" code="$2" p f
  p=$(grep -Eo '^# pass [0-9]+' "$log" | awk '{ s += $3 } END { print s + 0 }')
  f=$(grep -Eo '^# (fail|cancelled|skipped|todo) [0-9]+' "$log" | awk '{ s += $3 } END { print s + 0 }')
  add_counts "$log" "$code" "$p" "$f" || grep -B2 -A24 '^ *not ok' "$log" | head -120
}

# Python's unittest: "Ran N tests" then "OK" or "FAILED (failures=F, errors=E)", with "skipped=S",
# "unexpected successes=U" inside either.
count_unittest() {
  local log="$1" code="$2" total f
  total=$(grep -Eo '^Ran [0-9]+ test' "$log" | awk '{ print $2 }' | tail -1)
  total=${total:-0}
  f=$(grep -E '^(OK|FAILED) \(' "$log" | grep -Eo '(failures|errors|skipped|expected failures|unexpected successes)=[0-9]+' \
    | awk -F= '{ s += $2 } END { print s + 0 }')
  add_counts "$log" "$code" $((total - f)) "$f"
}

# `go test -v`: "--- PASS: Name" / "--- FAIL: Name" / "--- SKIP: Name"; a package that fails to build
# counts one failure.
count_gotest() {
  local log="$1" code="$2" p f
  p=$(grep -Ec '^--- PASS: ' "$log")
  f=$(grep -Ec '^--- (FAIL|SKIP): ' "$log")
  grep -Eq '^ok ' "$log" || [[ $code -ne 0 ]] || code=1
  add_counts "$log" "$code" "$p" "$f"
}

# A `dotnet test` log: "Failed!  - Failed: 1, Passed: 9, Skipped: 0, ..." / "Passed!  - Failed: 0, ...".
# A filter that matches no test exits 0 with no such line: that counts as a failure too.
count_dotnet() {
  local log="$1" code="$2" p f
  p=$(grep -Eo 'Passed: +[0-9]+,' "$log" | awk '{ s += $2 } END { print s + 0 }')
  f=$(grep -Eo '(Failed|Skipped): +[0-9]+,' "$log" | awk '{ s += $2 } END { print s + 0 }')
  add_counts "$log" "$code" "$p" "$f"
}

step "test dependencies (ffmpeg, Python gRPC from Debian)"
if ! bash tools/install-test-deps.sh; then
  fail_step "installing test dependencies"
fi

step "build ($CONFIGURATION)"
if ! dotnet build MaskFormer.sln -c "$CONFIGURATION" -nologo -clp:ErrorsOnly >"$LOGS/build.log" 2>&1; then
  cat "$LOGS/build.log"
  fail_step "build"
  echo "$passed passed, $failed failed"
  exit 1
fi
echo "ok"

# The build already fails on every analyzer and code-style warning (TreatWarningsAsErrors with
# EnforceCodeStyleInBuild), so format checks only what the build cannot: whitespace and the order of
# usings (the style pass's IMPORTS). Its third pass, the analyzers, would repeat the build's in half the step's time.
step "code style (dotnet format whitespace and style --verify-no-changes)"
if dotnet format whitespace MaskFormer.sln --verify-no-changes >"$LOGS/format.log" 2>&1 \
    && dotnet format style MaskFormer.sln --verify-no-changes --no-restore >>"$LOGS/format.log" 2>&1; then
  passed=$((passed + 1)); echo "ok"
else
  cat "$LOGS/format.log"; fail_step "dotnet format"
fi

step "npm ci (tests/hf: transformers.js, the oracle of the HUGGINGFACE panoptic tests)"
if (cd tests/hf && npm ci --no-audit --no-fund --ignore-scripts >"$LOGS/npm-hf.log" 2>&1); then
  echo "ok"
else
  cat "$LOGS/npm-hf.log"; fail_step "npm ci (tests/hf)"
fi

# A dotnet test log's failures and its summary line.
show_dotnet_failures() { grep -E '^\s+Failed |Passed!|Failed!' -A6 "$1" | head -60; }

# run_dotnet_test NAME SECONDS PROJECT [ARGS...]: one test run under its limit, its log in $LOGS/NAME.log.
run_dotnet_test() {
  local name="$1" seconds="$2" project="$3"
  shift 3
  limited "$seconds" dotnet test "$project" -c "$CONFIGURATION" --no-build -nologo "$@" >"$LOGS/$name.log" 2>&1
}

# dotnet_test NAME SECONDS PROJECT [ARGS...]: run_dotnet_test, its failures shown and counted.
dotnet_test() {
  local name="$1" code
  run_dotnet_test "$@"
  code=$?
  show_dotnet_failures "$LOGS/$name.log"
  count_dotnet "$LOGS/$name.log" "$code"
}

# The examples against the live server (started below). Each writes $LOGS/NAME.log and its exit code to
# $LOGS/NAME.code ("install" where its install step failed, that log in $LOGS/INSTALL.log), and the seconds
# it started and took, so two of them can run side by side and be counted in this shell afterwards.
run_example() {
  local name="$1" started=$SECONDS code
  case "$name" in
    node-examples)
      if (cd examples/node && npm ci --no-audit --no-fund >"$LOGS/npm-examples.log" 2>&1); then
        (cd examples/node && MASKFORMER_ADDRESS="127.0.0.1:$PORT" limited 420 node --test 2>&1) >"$LOGS/$name.log"
        code=$?
      else code=install; fi ;;
    python)
      if (cd examples/python && bash install.sh >"$LOGS/python-install.log" 2>&1); then
        (cd examples/python && MASKFORMER_ADDRESS="127.0.0.1:$PORT" limited 420 /usr/bin/python3 -m unittest -v test_examples 2>&1) >"$LOGS/$name.log"
        code=$?
      else code=install; fi ;;
    go)
      if (cd examples/go && sh install.sh >"$LOGS/go-install.log" 2>&1); then
        (cd examples/go && MASKFORMER_ADDRESS="127.0.0.1:$PORT" limited 420 sh test.sh 2>&1) >"$LOGS/$name.log"
        code=$?
      else code=install; fi ;;
    csharp-example)
      MASKFORMER_ADDRESS="127.0.0.1:$PORT" run_dotnet_test "$name" 420 examples/csharp/MaskFormer.Examples.Tests/MaskFormer.Examples.Tests.csproj
      code=$? ;;
  esac
  echo "$code" >"$LOGS/$name.code"
  echo "$started $((SECONDS - started))" >"$LOGS/$name.seconds"
}

# report_example NAME TITLE [INSTALL]: the example's step line with when it started and how long it took;
# fails the step, showing the install log, where its install failed (nothing to count then).
report_example() {
  local name="$1" title="$2" install="${3:-}" started took
  if [[ ! -s "$LOGS/$name.code" ]]; then
    step "$title"; fail_step "$title: its lane ended before it did"
    return 1
  fi
  read -r started took <"$LOGS/$name.seconds"
  printf '\n==> [%d s, took %d s] %s\n' "$started" "$took" "$title"
  if [[ "$(cat "$LOGS/$name.code")" == install ]]; then
    cat "$LOGS/$install.log"; fail_step "installing the $title"
    return 1
  fi
}

for project in tests/*/*.Tests.csproj; do
  name="$(basename "$project" .csproj)"
  step "dotnet test $name"
  dotnet_test "$name" 1200 "$project"
done

# Post-processing has 512-bit and 256-bit vector paths that must give the same bits; on a host with
# AVX-512 the run above takes the wide ones, so the exactness tests run again without them. On a host
# without it the run above already took the 256-bit paths: the same run again would add nothing but time.
if grep -qw avx512f /proc/cpuinfo; then
  step "dotnet test MaskFormer.Engine.Tests post-processing, 256-bit vectors only (DOTNET_EnableAVX512=0)"
  DOTNET_EnableAVX512=0 dotnet_test engine-avx2 600 tests/MaskFormer.Engine.Tests/MaskFormer.Engine.Tests.csproj \
    --filter "FullyQualifiedName~MaskFormer.Engine.Tests.Postprocessing"
else
  echo "(this CPU has no AVX-512: MaskFormer.Engine.Tests above ran the 256-bit vector paths; not run again with DOTNET_EnableAVX512=0)"
fi

step "fuzzing: AFL++ and SharpFuzz over decoding and request validation (tools/fuzz.sh, 45 s)"
if limited 300 bash tools/fuzz.sh 45 "$LOGS/fuzz" >"$LOGS/fuzz.log" 2>&1; then
  passed=$((passed + 1)); tail -1 "$LOGS/fuzz.log"
else
  tail -30 "$LOGS/fuzz.log"; fail_step "fuzzing"
fi

step "npm ci (tests/node)"
if ! (cd tests/node && npm ci --no-audit --no-fund >"$LOGS/npm.log" 2>&1); then
  cat "$LOGS/npm.log"; fail_step "npm ci"
else
  echo "ok"
  step "buf lint protos (DEFAULT rules)"
  if (cd tests/node && npm run --silent lint:proto) >"$LOGS/buf.log" 2>&1; then
    passed=$((passed + 1)); echo "ok (buf $(cd tests/node && npx --no-install buf --version))"
  else
    cat "$LOGS/buf.log"; fail_step "buf lint"
  fi

  step "start the server on 127.0.0.1:$PORT (committed model)"
  SERVER_DLL="src/MaskFormer.Server/bin/$CONFIGURATION/net10.0/MaskFormer.Server.dll"
  CLI_DLL="src/MaskFormer.Cli/bin/$CONFIGURATION/net10.0/maskformer.dll"
  # The examples' reconnect tests start servers of their own (and stop them with SIGTERM and SIGKILL).
  export MASKFORMER_SERVER_DLL="$ROOT/$SERVER_DLL" MASKFORMER_MODELS="$ROOT/models"
  dotnet "$SERVER_DLL" --Kestrel:Endpoints:Grpc:Url="http://127.0.0.1:$PORT" --MaskFormer:Models:Path="$ROOT/models" >"$LOGS/server.log" 2>&1 &
  server_pid=$!

  # A second server that needs a bearer token, for the examples' MASKFORMER_TOKEN tests.
  TOKEN_PORT="${MASKFORMER_TOKEN_TEST_PORT:-$((PORT + 2))}"
  echo "examples-test-token-$$" >"$LOGS/tokens.txt"
  dotnet "$SERVER_DLL" --Kestrel:Endpoints:Grpc:Url="http://127.0.0.1:$TOKEN_PORT" --MaskFormer:Models:Path="$ROOT/models" \
    --MaskFormer:Security:TokensFile="$LOGS/tokens.txt" --MaskFormer:Inference:WarmUp=false >"$LOGS/server-tokens.log" 2>&1 &
  token_server_pid=$!
  export MASKFORMER_TOKEN_SERVER="127.0.0.1:$TOKEN_PORT" MASKFORMER_TOKEN_SERVER_TOKEN="examples-test-token-$$"
  # Alive after the wait too: another server already on the port would answer the health check.
  if ! dotnet "$CLI_DLL" health --server "http://127.0.0.1:$TOKEN_PORT" --wait 120 >/dev/null || ! kill -0 "$token_server_pid" 2>/dev/null; then
    tail -30 "$LOGS/server-tokens.log"; fail_step "the token server did not become SERVING on port $TOKEN_PORT"
  fi

  # A third with TLS that wants a client certificate from its own CA, for the clients' TLS tests: the
  # certificates from tools/make-test-certs.sh, the health check by the CLI with its TLS options.
  TLS_PORT="${MASKFORMER_TLS_TEST_PORT:-$((PORT + 4))}"
  export MASKFORMER_TLS_FILES="$LOGS/tls" MASKFORMER_TLS_SERVER="https://127.0.0.1:$TLS_PORT"
  if bash tools/make-test-certs.sh "$MASKFORMER_TLS_FILES" >"$LOGS/tls-certs.log" 2>&1; then
    dotnet "$SERVER_DLL" --Kestrel:Endpoints:Grpc:Url="$MASKFORMER_TLS_SERVER" --MaskFormer:Models:Path="$ROOT/models" \
      --MaskFormer:Security:CertificatePath="$MASKFORMER_TLS_FILES/server.pem" --MaskFormer:Security:KeyPath="$MASKFORMER_TLS_FILES/server.key" \
      --MaskFormer:Security:ClientCaPath="$MASKFORMER_TLS_FILES/ca.pem" --MaskFormer:Inference:WarmUp=false >"$LOGS/server-tls.log" 2>&1 &
    tls_server_pid=$!
    if ! dotnet "$CLI_DLL" health --server "$MASKFORMER_TLS_SERVER" --ca-cert "$MASKFORMER_TLS_FILES/ca.pem" \
        --client-cert "$MASKFORMER_TLS_FILES/client.pem" --client-key "$MASKFORMER_TLS_FILES/client.key" --wait 120 >"$LOGS/health-tls.log" 2>&1 \
        || ! kill -0 "$tls_server_pid" 2>/dev/null; then
      cat "$LOGS/health-tls.log"; tail -30 "$LOGS/server-tls.log"; fail_step "the TLS server did not become SERVING on port $TLS_PORT"
    fi
  else
    cat "$LOGS/tls-certs.log"; fail_step "tools/make-test-certs.sh"
  fi
  if dotnet "$CLI_DLL" health --server "http://127.0.0.1:$PORT" --wait 120; then
    step "node client tests (tests/node)"
    (cd tests/node && MASKFORMER_ADDRESS="127.0.0.1:$PORT" limited 300 node --test 2>&1) >"$LOGS/node.log"
    code=$?
    grep -E '^# (tests|pass|fail|cancelled|skipped|todo)' "$LOGS/node.log"
    count_node "$LOGS/node.log" "$code"

    # The four examples wait far more than they compute (servers of their own started and stopped, streams
    # paced like cameras, timeouts waited out): 440 s one after another on 2 cores, 250 s in two lanes.
    # Each lane writes its logs and exit codes; the counts are read here once both have ended.
    step "examples in two lanes side by side: Python then Go, Node then C#"
    (run_example python; run_example go) &
    lane_python_go=$!
    (run_example node-examples; run_example csharp-example) &
    lane_node_csharp=$!
    wait "$lane_python_go" "$lane_node_csharp"

    if report_example node-examples "Node example (examples/node)" npm-examples; then
      grep -E '^# (tests|pass|fail|cancelled|skipped|todo)' "$LOGS/node-examples.log"
      count_node "$LOGS/node-examples.log" "$(cat "$LOGS/node-examples.code")"
    fi
    if report_example python "Python example (examples/python, Debian's python3-grpcio)" python-install; then
      grep -E '^Ran |^OK|^FAILED' "$LOGS/python.log"
      count_unittest "$LOGS/python.log" "$(cat "$LOGS/python.code")"
    fi
    if report_example go "Go example (examples/go, Debian's Go and grpc-go)" go-install; then
      grep -E '^(--- |ok |FAIL)' "$LOGS/go.log"
      count_gotest "$LOGS/go.log" "$(cat "$LOGS/go.code")"
    fi
    # The built example run as a process against this server; its reconnect tests start servers of their
    # own (MASKFORMER_SERVER_DLL), its token test calls the token server, its TLS tests the TLS server
    # (MASKFORMER_TLS_SERVER, MASKFORMER_TLS_FILES). Not under tests/, so the loop of
    # .NET test projects above does not run it without a server.
    if report_example csharp-example "C# example (examples/csharp)"; then
      show_dotnet_failures "$LOGS/csharp-example.log"
      count_dotnet "$LOGS/csharp-example.log" "$(cat "$LOGS/csharp-example.code")"
    fi
  else
    tail -30 "$LOGS/server.log"; fail_step "server did not become SERVING"
  fi
  cleanup
  server_pid=""
  token_server_pid=""
  tls_server_pid=""
fi

step "deployment checks (tests/deploy): Dockerfile lint + cpu target built by its own commands; Kubernetes overlays rendered and validated"
if (cd tests/deploy && npm ci --no-audit --no-fund >"$LOGS/npm-deploy.log" 2>&1); then
  (cd tests/deploy && limited 1200 node --test 2>&1) >"$LOGS/deploy.log"
  code=$?
  grep -E '^# (tests|pass|fail|cancelled|skipped|todo)|^not ok|^# (publish|cpu image)' "$LOGS/deploy.log"
  count_node "$LOGS/deploy.log" "$code"
else
  cat "$LOGS/npm-deploy.log"; fail_step "npm ci (tests/deploy)"
fi

step "README test (tools/test-readme.sh): command 1 and the first call exactly as printed, on a clean copy"
MASKFORMER_README_PORT="${MASKFORMER_README_PORT:-$((PORT + 1))}" limited 900 bash tools/test-readme.sh >"$LOGS/readme.log" 2>&1
code=$?
grep -E '^(ok|not ok) |^# (pass|fail)' "$LOGS/readme.log"
count_node "$LOGS/readme.log" "$code"

step "device check (tools/gpu-check.sh) on the CPU: its maps equal the CPU's; a server that answers differently is caught"
GPU_CHECK_PORT=$((PORT + 3))
if MASKFORMER_GPU_CHECK_PORT=$GPU_CHECK_PORT limited 300 bash tools/gpu-check.sh cpu 4 >"$LOGS/gpu-check.log" 2>&1; then
  passed=$((passed + 1)); tail -1 "$LOGS/gpu-check.log"
else
  cat "$LOGS/gpu-check.log"; fail_step "tools/gpu-check.sh cpu"
fi
# The same model file behind another normalisation answers differently: every map must differ, exit 1.
ALT_MODELS="$LOGS/gpu-check-models"
rm -rf "$ALT_MODELS"; mkdir -p "$ALT_MODELS"; cp -r models/tiny-shapes "$ALT_MODELS/"
sed -i 's/0\.485,/0.6,/' "$ALT_MODELS/tiny-shapes/preprocessor_config.json"
MASKFORMER_GPU_CHECK_PORT=$GPU_CHECK_PORT MASKFORMER_GPU_CHECK_ARGS="--MaskFormer:Models:Path=$ALT_MODELS" limited 300 bash tools/gpu-check.sh cpu 2 >"$LOGS/gpu-check-differs.log" 2>&1
code=$?
if [[ $code -eq 1 ]] && grep -q '^cpu: 0 of 4 maps equal' "$LOGS/gpu-check-differs.log"; then
  passed=$((passed + 1)); tail -1 "$LOGS/gpu-check-differs.log"
else
  cat "$LOGS/gpu-check-differs.log"; fail_step "tools/gpu-check.sh did not catch a server that answers differently (exit $code)"
fi
rm -rf "$ALT_MODELS"

step "benchmark smoke run (bench report --quick: tiny model, raw ORT and the service over gRPC)"
BENCH_DLL="bench/MaskFormer.Benchmarks/bin/$CONFIGURATION/net10.0/MaskFormer.Benchmarks.dll"
# The memory target's line must carry a ratio measured at rest (after the server gave memory back once idle),
# and the line after it one measured after the full collection the report asks the server for.
if limited 600 dotnet "$BENCH_DLL" report --quick --out "$LOGS/bench" >"$LOGS/bench.log" 2>&1 && [[ -s "$LOGS/bench/BENCHMARKS.md" ]] \
  && grep -Eq '^\| resident memory after 300 ÷ after 100 requests, each at rest \(after the server gave memory back once idle\) \| tiny-shapes \| ≤ 1.05 \| [0-9]+\.[0-9]{3} \|' "$LOGS/bench/BENCHMARKS.md" \
  && grep -Eq '^\| the same, each right after a full collection the report asks for \| tiny-shapes \| \(shown\) \| [0-9]+\.[0-9]{3} \|' "$LOGS/bench/BENCHMARKS.md"; then
  passed=$((passed + 1)); echo "ok ($LOGS/bench/BENCHMARKS.md)"
else
  tail -80 "$LOGS/bench.log"; fail_step "benchmark smoke run"
fi

echo
echo "logs: $LOGS (the run took $SECONDS s)"
[[ $failed -gt 0 ]] && status=1
echo "$passed passed, $failed failed"
exit $status
