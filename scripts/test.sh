#!/usr/bin/env bash
# The project's test command: unit, integration, property, CLI and Lambda Runtime API tests of
# the remediator; the EKS simulator's tests against moto (started by the tests themselves, or the
# one at $MOTO_ENDPOINT), the AWS SDK, boto3, the AWS CLI, kube and kubectl; doc tests; and a
# smoke run of the benchmarks in test mode. Installs missing test tools first.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
cargo test --workspace --all-targets "$@"
cargo test --workspace --doc "$@"
