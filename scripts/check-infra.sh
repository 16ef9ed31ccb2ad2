#!/usr/bin/env bash
# Checks the deployment templates offline, with pinned tools (scripts/tool-venvs.sh):
#   SAM:  sam validate --lint; cfn-lint on the translated template (scripts/sam-translate.py) and on
#         the remediation role template; checkov on the SAM source, the translation and the role.
#   CDK:  npm ci; tsc + the assertion/cdk-nag tests (node --test); cdk synth without bundling;
#         the same IAM actions as the SAM template (scripts/iam-parity.py); checkov on the
#         synthesized templates.
# No AWS credentials, no Docker, no cargo-lambda needed; telemetry off. Skips live in the templates,
# each with its reason (Metadata.checkov.skip, Validations.of(...).acknowledge).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/tool-venvs.sh

export SAM_CLI_TELEMETRY=0 CDK_DISABLE_VERSION_CHECK=1 CDK_DISABLE_CLI_TELEMETRY=true
export AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
export EKS_AUTH_CDK_SKIP_BUNDLING=1

step_start=$SECONDS
step() { echo "== infra: $1 (previous step $((SECONDS - step_start)) s)"; step_start=$SECONDS; }

step "tools"
sam_bin=$(ensure_venv sam "$PINS_SAM")
checkov_bin=$(ensure_venv checkov "$PINS_CHECKOV")
"$sam_bin/sam" --version
"$sam_bin/cfn-lint" --version
echo "checkov $("$checkov_bin/checkov" --version)"
node --version
npm --version

out=$(mktemp -d "${TMPDIR:-/tmp}/eks-auth-infra.XXXXXX")
trap 'rm -rf "$out"' EXIT

step "sam validate --lint"
"$sam_bin/sam" validate --lint -t infra/sam/template.yaml
"$sam_bin/sam" validate --lint -t infra/sam/remediation-role.yaml

step "cfn-lint (translated SAM template, remediation role)"
"$sam_bin/python" scripts/sam-translate.py infra/sam/template.yaml "$out/template.json"
"$sam_bin/cfn-lint" "$out/template.json" infra/sam/remediation-role.yaml

checkov() { # checkov FILE...: every failed check fails the run
  local f
  for f in "$@"; do
    "$checkov_bin/checkov" --quiet --compact --skip-download --framework cloudformation -f "$f" \
      | sed '/^$/d'
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "checkov failed on $f"; return 1; }
  done
}
step "checkov (SAM)"
checkov infra/sam/template.yaml "$out/template.json" infra/sam/remediation-role.yaml

step "cdk: npm ci"
cd infra/cdk
npm ci --no-audit --no-fund --loglevel=error

step "cdk: tsc + tests (aws-cdk-lib/assertions, cdk-nag)"
npm test

step "cdk synth (no bundling)"
rm -rf cdk.out
npx cdk synth --quiet --no-notices -o cdk.out
npx cdk synth --quiet --no-notices -o cdk.out.multi -c clusters=prod-eu,prod-us -c withRemediationRole=true \
  -c crossAccountSourceAccounts=444455556666 -c ticketTopicArn=arn:aws:sns:us-east-1:111122223333:tickets
ls cdk.out/*.template.json cdk.out.multi/*.template.json

step "IAM parity (SAM vs CDK)"
python3 ../../scripts/iam-parity.py "$out/template.json" cdk.out/EksAuthRemediator.template.json

step "checkov (CDK)"
checkov cdk.out/*.template.json cdk.out.multi/*.template.json
rm -rf cdk.out.multi
step "done"
