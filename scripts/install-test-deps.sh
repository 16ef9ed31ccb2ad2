#!/usr/bin/env bash
# Installs what the tests need beyond the Rust toolchain: moto in server mode (IAM, STS,
# CloudWatch Logs), boto3 and the AWS CLI v1 (independent clients of the simulator), and kubectl.
# Idempotent, and quick when everything is already there.
set -euo pipefail
pip_wanted=()
python3 -c "import moto, flask, flask_cors" 2>/dev/null && command -v moto_server >/dev/null \
  || pip_wanted+=("moto[server]==5.2.1")
python3 -c "import boto3" 2>/dev/null || pip_wanted+=("boto3==1.43.11")
command -v aws >/dev/null || pip_wanted+=("awscli==1.45.11")
if ((${#pip_wanted[@]})); then
  echo "installing: ${pip_wanted[*]}"
  python3 -m pip install --quiet "${pip_wanted[@]}"
fi
if ! command -v kubectl >/dev/null; then
  echo "installing kubectl (Debian kubernetes-client)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq kubernetes-client
fi
