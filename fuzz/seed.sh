#!/usr/bin/env bash
# Seeds fuzz/corpus/ (gitignored) from the sample events and log lines in events/.
# Usage: bash fuzz/seed.sh   (from anywhere; idempotent)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
dec="$here/corpus/decode_event"
par="$here/corpus/parse_line"
mkdir -p "$dec" "$par"

# decode_event: the raw sample events, plus the gzip stream and the decoded JSON inside each
# subscription event, so every layer of the target starts from a valid input.
cp "$root"/events/*.json "$dec"/
python3 - "$root/events" "$dec" <<'PY'
import base64, gzip, json, pathlib, sys
src, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
for p in sorted(src.glob("*.json")):
    try:
        data = json.loads(p.read_text())["awslogs"]["data"]
    except (KeyError, TypeError, ValueError):
        continue
    gz = base64.b64decode(data)
    (out / f"{p.stem}.gz").write_bytes(gz)
    (out / f"{p.stem}.inner.json").write_bytes(gzip.decompress(gz))
PY

# parse_line: every sample line on its own, and each sample file whole (console pastes).
for f in "$root"/events/lines/*.log; do
    name="$(basename "$f" .log)"
    cp "$f" "$par/$name.log"
    n=0
    while IFS= read -r line || [ -n "$line" ]; do
        n=$((n + 1))
        printf '%s' "$line" > "$par/$name.$n.line"
    done < "$f"
done
echo "seeded $(ls "$dec" | wc -l) decode_event and $(ls "$par" | wc -l) parse_line inputs"
