#!/usr/bin/env bash
# Regenerates events/*.json from events/lines/*.log as listed in events/events.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet --bin eks-auth
bin="${CARGO_TARGET_DIR:-target}/debug/eks-auth"
grep -v '^#' events/events.tsv | while IFS=$'\t' read -r out shape lines extra; do
  [ -n "$out" ] || continue
  args=(event --cluster prod --region eu-west-1 --account 111122223333 --format "$shape")
  # shellcheck disable=SC2206
  [ -n "${extra:-}" ] && args+=($extra)
  if [ "$lines" = "-" ]; then
    "$bin" "${args[@]}" > "events/$out"
  else
    "$bin" "${args[@]}" "events/lines/$lines" > "events/$out"
  fi
  echo "events/$out"
done
