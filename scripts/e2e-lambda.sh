#!/usr/bin/env bash
# End to end through the Lambda Runtime API as cargo-lambda emulates it: `cargo lambda watch
# --only-lambda-apis` serves the API, the function binary from the test build (same
# CARGO_TARGET_DIR, dev profile: nothing is rebuilt) runs against it with EKS_AUTH_OFFLINE=true (no
# AWS call), and every sample in events/ goes through `cargo lambda invoke --data-file`. Checks the
# causes of the findings per sample, CONTROL_MESSAGE as a no-op, and bad input as an invocation
# error of type NonRetryable.DecodeError. Every step has a timeout; both processes are killed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/tool-venvs.sh
cargo_lambda_on_path || exit 1

target="${CARGO_TARGET_DIR:-target}"
bin="$target/debug/eks-auth-remediator"
if [ ! -x "$bin" ]; then
  echo "building $bin (normally left by ./scripts/test.sh)"
  cargo build --locked --bin eks-auth-remediator
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/eks-auth-e2e.XXXXXX")
pids=()
# Each background process leads its own process group (setsid): cleanup ends the whole group.
cleanup() {
  for p in "${pids[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
setsid timeout -k 5 600 cargo lambda watch --only-lambda-apis -A 127.0.0.1 -P "$port" >"$work/watch.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "cargo lambda watch did not start:"; cat "$work/watch.log"; exit 1; }

# The variables `cargo lambda watch --only-lambda-apis` asks the function to be started with.
AWS_LAMBDA_FUNCTION_NAME=_ AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256 \
  AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$port/.rt" AWS_LAMBDA_LOG_FORMAT=JSON \
  EKS_AUTH_OFFLINE=true AWS_REGION=eu-west-1 \
  setsid timeout -k 5 600 "$bin" >"$work/function.log" 2>&1 &
pids+=($!)

invoke() { # invoke OUT ARGS...: the response (or the error) in OUT; returns cargo lambda's status
  local out=$1
  shift
  timeout -k 5 60 cargo lambda invoke -A 127.0.0.1 -P "$port" "$@" _ >"$out" 2>&1
}

passed=0
failed=0
check() { # check NAME OUTFILE EXPECTED (the python expression below must print EXPECTED)
  local name=$1 out=$2 want=$3 got
  got=$(python3 - "$out" <<'PY' 2>&1 || true
import json, sys
r = json.load(open(sys.argv[1]))
if r.get("control_message"):
    print("control_message")
else:
    causes = {f["cause"] for f in r["findings"] if f["outcome"] == "denied"}
    causes |= {"config_error" for f in r["findings"] if f["outcome"] == "config_error"}
    print(" ".join(sorted(causes)) or "none")
PY
  )
  if [ "$got" = "$want" ]; then
    passed=$((passed + 1))
    echo "ok   $name: $got"
  else
    failed=$((failed + 1))
    echo "FAIL $name: got '$got', want '$want'"
    head -c 2000 "$out"
    echo
  fi
}

# The causes every sample must produce (events/events.tsv lists how each was made).
declare -A want=(
  [config-error.json]=config_error [control-message.json]=control_message
  [decoded-mixed.json]="expired_token not_mapped token_expired" [granted.json]=none
  [kinesis-cross-account.json]="expired_token not_mapped token_expired" [manual.json]=not_mapped
  [mixed.json]="expired_token not_mapped token_expired" [other.json]=none [wrappers.json]=not_mapped
)
for f in events/*.json; do
  name=$(basename "$f")
  expected=${want[$name]:-$(basename "$name" .json | tr - _)}
  if invoke "$work/out.json" --data-file "$f"; then
    check "$name" "$work/out.json" "$expected"
  else
    failed=$((failed + 1))
    echo "FAIL $name: invocation failed"
    cat "$work/out.json"
  fi
done

# Bad input: the function reports an invocation error that says retrying cannot help.
bad=('{"awslogs":{"data":"!!not base64!!"}}' '{"awslogs":{"data":"aGVsbG8="}}' '{"Records":[{"kinesis":{"data":"AAAA"}}]}' '{"neither":"shape"}')
for b in "${bad[@]}"; do
  if invoke "$work/err.txt" --data-ascii "$b"; then
    failed=$((failed + 1))
    echo "FAIL bad input $b: succeeded"
    cat "$work/err.txt"
  elif grep -q "NonRetryable" "$work/err.txt"; then
    passed=$((passed + 1))
    echo "ok   bad input $b: $(grep -m1 -o 'NonRetryable[A-Za-z.]*' "$work/err.txt")"
  else
    failed=$((failed + 1))
    echo "FAIL bad input $b: not a NonRetryable error"
    cat "$work/err.txt"
  fi
done

if ! kill -0 "${pids[1]}" 2>/dev/null; then
  failed=$((failed + 1))
  echo "FAIL the function exited during the run:"
  tail -20 "$work/function.log"
fi
echo "e2e: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
