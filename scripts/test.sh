#!/usr/bin/env bash
# The project's test command: unit, integration, property, CLI and Lambda Runtime API tests,
# doc tests, and a smoke run of the benchmarks in test mode. Needs only the Rust toolchain.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --all-targets "$@"
cargo test --doc "$@"
