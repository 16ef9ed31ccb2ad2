# Sourced by scripts/check-infra.sh and scripts/e2e-lambda.sh: pinned Python tools, each in its own
# venv under $HOME/.cache/eks-auth-remediator/venvs/<name>, so their dependency pins cannot clash
# with each other or with the test tools (moto, boto3, awscli) that scripts/install-test-deps.sh
# installs. A venv is (re)built only when its pins change.

VENV_ROOT="${EKS_AUTH_VENV_ROOT:-$HOME/.cache/eks-auth-remediator/venvs}"

# The pins. cfn-lint 1.x no longer applies the SAM transform: scripts/sam-translate.py does it with
# the aws-sam-translator that aws-sam-cli brings. ziglang: the zig that cargo-zigbuild (inside
# cargo-lambda) links arm64 binaries with.
PINS_SAM="aws-sam-cli==1.170.0 cfn-lint==1.58.0"
PINS_CHECKOV="checkov==3.3.30"
PINS_CARGO_LAMBDA="cargo-lambda==1.9.2 ziglang==0.17.1"

ensure_venv() { # ensure_venv NAME PINS: prints the venv's bin directory
  local dir="$VENV_ROOT/$1" pins=$2
  if [ "$(cat "$dir/.pins" 2>/dev/null)" != "$pins" ] || [ ! -x "$dir/bin/python" ]; then
    echo "installing $pins into $dir" >&2
    rm -rf "$dir"
    # shellcheck disable=SC2086
    if ! python3 -m venv "$dir" >&2 \
      || ! "$dir/bin/python" -m pip install --quiet --disable-pip-version-check $pins >&2; then
      echo "installing $pins failed" >&2
      rm -rf "$dir"
      return 1
    fi
    printf '%s' "$pins" >"$dir/.pins"
  fi
  echo "$dir/bin"
}

cargo_lambda_on_path() {
  local bin
  bin=$(ensure_venv cargo-lambda "$PINS_CARGO_LAMBDA") || return 1
  export PATH="$bin:$PATH"
}
