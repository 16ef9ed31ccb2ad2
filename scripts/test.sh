#!/usr/bin/env bash
# The project's test command: unit, integration, property, CLI and Lambda Runtime API tests of
# the remediator; remediation end to end and the EKS simulator's tests against moto, the AWS SDK,
# boto3, the AWS CLI, kube and kubectl; doc tests; and a smoke run of the benchmarks in test mode.
# Installs missing test tools first, and starts one moto server for all tests (stopped on exit)
# unless MOTO_ENDPOINT names one already running.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
if [ -z "${MOTO_ENDPOINT:-}" ]; then
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  log="${TMPDIR:-/tmp}/eks-auth-moto-$port.log"
  moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  moto_pid=$!
  trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
  for _ in $(seq 1 150); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
    if ! kill -0 "$moto_pid" 2>/dev/null; then echo "moto_server exited:"; cat "$log"; exit 1; fi
    sleep 0.2
  done
  export MOTO_ENDPOINT="http://127.0.0.1:$port"
  echo "moto on $MOTO_ENDPOINT"
fi
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc "$@"
