#!/usr/bin/env python3
"""A plain Python (stdlib only) handler doing the Rust pipeline's work, for the benchmark.

It does what `event::decode_value` + `handler::diagnose_decoded` do for a CloudWatch Logs
subscription event of logrus text lines:

  base64 decode -> gzip decompress -> JSON parse -> for each log event: skip redelivered ids,
  parse the logfmt line (Go-quoted values with escapes), classify the outcome and the denial
  cause (the same rules as `classify_error` in src/diagnosis.rs), canonicalise the ARN
  (assumed-role -> role), then group denials by (cluster, principal, outcome, cause) with a count,
  first/last seen, distinct client hosts, STS codes/regions, errors, samples and a finding id.

It is written the way a Python Lambda handler would be: `re` for the logfmt fields, `str` methods
for the rest, no C extensions. It times several runs on the event file written by
`cargo run --release --example batch -- FILE` and prints events/s and MB/s, then the findings
and per-cause counts, and (with --compare) checks them against
`target/release/eks-auth invoke FILE --offline`.

    python3 scripts/py_pipeline.py /tmp/batch.json --runs 5 --compare target/release/eks-auth
"""

import argparse
import base64
import gzip
import hashlib
import json
import re
import subprocess
import sys
import time
from datetime import datetime, timezone

MAX_SAMPLES = 3
MAX_CLIENTS = 20
MAX_EVIDENCE = 10
MAX_UNPARSED_SAMPLES = 5
MAX_SAMPLE_CHARS = 2000

PARTITIONS = {"aws", "aws-cn", "aws-us-gov", "aws-iso", "aws-iso-b", "aws-iso-e", "aws-iso-f", "aws-eusc"}

# key=value or key="Go-quoted value"; a line is a record only when every token matches.
FIELD = re.compile(r'[ \t]*([^=" \t]+)=(?:"((?:[^"\\]|\\.)*)"|([^ \t]*))(?=[ \t]|$)')
ESCAPE = re.compile(r'\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|.)')
SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "'": "'", "n": "\n", "t": "\t", "r": "\r",
                  "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
STS_CODE_MARKERS = ('"Code":"', '\\"Code\\":\\"', '"Code": "', "<Code>")
CODE_CHARS = re.compile(r"[A-Za-z0-9.]*")


def _unescape_one(m):
    e = m.group(1)
    c = e[0]
    if c in "xuU":
        return chr(int(e[1:], 16))
    try:
        return SIMPLE_ESCAPES[c]
    except KeyError:
        raise ValueError("bad escape") from None


def parse_logfmt(line):
    """[(key, value)] or None when the line is not logfmt."""
    fields = []
    pos, end = 0, len(line)
    while pos < end:
        m = FIELD.match(line, pos)
        if m is None:
            if line[pos:].strip(" \t"):
                return None
            break
        key, quoted, bare = m.group(1, 2, 3)
        if quoted is not None:
            value = ESCAPE.sub(_unescape_one, quoted) if "\\" in quoted else quoted
        else:
            value = bare
        fields.append((key, value))
        pos = m.end()
    return fields or None


def parse_line(line):
    line = line.strip()
    if not line:
        return "empty", None
    if line.startswith("{"):
        try:
            obj = json.loads(line)
        except ValueError as e:
            return "invalid JSON: %s" % e, None
        if isinstance(obj, dict) and obj:
            return None, {k: v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}
        return "no key=value fields found", None
    fields = parse_logfmt(line)
    if fields is None:
        return "no key=value fields found", None
    rec = {}
    for k, v in fields:
        rec.setdefault(k, v)  # the first value of a key wins, as in AuthRecord::get
    return None, rec


def canonicalize(arn):
    s = arn.strip()
    parts = s.split(":", 5)
    if len(parts) != 6 or parts[0] != "arn" or not parts[2] or not parts[5]:
        return s
    _, partition, service, _region, account, resource = parts
    if partition not in PARTITIONS:
        return s
    if service in ("iam", "sts") and not (len(account) == 12 and account.isdigit() and account.isascii()):
        return s
    if service == "sts" and resource.split("/", 1)[0] == "assumed-role":
        role = resource.split("/")[1] if "/" in resource else ""
        return "arn:%s:iam::%s:role/%s" % (partition, account, role)
    return s


def is_region(s):
    parts = s.split("-")
    return (len(parts) >= 3 and all(p and p.isascii() and p.isalnum() for p in parts)
            and parts[-1].isdigit())


def region_of_error(e):
    pos = e.find(" endpoint")
    if pos < 0:
        return None
    before = e[:pos]
    on = before.rfind(" on ")
    if on < 0:
        return None
    region = before[on + 4:]
    return region if is_region(region) else None


def region_of_endpoint(ep):
    host = ep
    while host.startswith("https://"):
        host = host[8:]
    while host.startswith("http://"):
        host = host[7:]
    host = re.split(r"[/:]", host, maxsplit=1)[0]
    parts = host.split(".")
    if parts[0] != "sts" or len(parts) < 2:
        return None
    if parts[1] == "amazonaws":
        return "us-east-1"
    return parts[1] if is_region(parts[1]) else None


def sts_code(e):
    for marker in STS_CODE_MARKERS:
        pos = e.find(marker)
        if pos >= 0:
            code = CODE_CHARS.match(e, pos + len(marker)).group(0)
            if code:
                return code
    return None


def quoted_after(e, marker):
    pos = e.find(marker)
    if pos < 0:
        return None
    rest = e[pos + len(marker):]
    end = rest.find("'")
    return rest[:end] if end >= 0 else None


def instance_id(e):
    pos = e.find("i-")
    if pos < 0:
        return None
    m = re.match(r"[A-Za-z0-9-]*", e[pos:])
    return m.group(0) if len(m.group(0)) > 2 else None


def classify_error(error):
    """(cause, sts_code, region, arn, detail), as classify_error in src/diagnosis.rs."""
    e = error.strip()
    lower = e.lower()
    code = arn = detail = None
    region = region_of_error(e)
    if "arn does not match user id" in lower:
        cause = "stale_principal"
    elif lower.startswith("arn is not mapped") or lower.startswith("identity is not mapped"):
        if ": " in e:
            a = e.split(": ", 1)[1].strip()
            arn = a if a.startswith("arn:") else None
        cause = "not_mapped"
    elif "getcalleridentity was throttled" in lower:
        code = sts_code(e)
        cause = "sts_throttled"
    elif "sts getcalleridentity failed: error during get" in lower:
        cause = "sts_unreachable"
    elif "does not have a recognized partition" in lower or (
            "sts getcalleridentity failed: arn '" in lower and "is invalid" in lower):
        arn = quoted_after(e, "arn '")
        cause = "invalid_arn"
    elif "sts getcalleridentity failed" in lower or "error from aws" in lower:
        code = sts_code(e)
        cause = {
            "InvalidClientTokenId": "invalid_client_token",
            "ExpiredToken": "expired_token",
            "SignatureDoesNotMatch": "signature_mismatch",
            "Throttling": "sts_throttled",
            "ThrottlingException": "sts_throttled",
            "RequestLimitExceeded": "sts_throttled",
        }.get(code, "sts_rejected")
    elif "x-amz-date parameter is expired" in lower:
        cause = "token_expired"
    elif lower.startswith("input token was not properly formatted"):
        cause = "malformed_token"
    elif ("rendertemplates error" in lower or "error rendering username template" in lower
          or "failed mapping username" in lower or "failed querying private dns" in lower):
        detail = instance_id(e)
        cause = "template_error"
    elif "username must not begin with" in lower or lower.startswith("invalid username"):
        detail = quoted_after(e, "username '")
        cause = "reserved_username"
    else:
        cause = "unknown"
    return cause, code, region, arn, detail


def diagnose(rec):
    msg = rec.get("msg", "")
    error = rec.get("error", rec.get("err"))
    lmsg = msg.lower()
    if lmsg == "access denied":
        outcome = "denied"
    elif lmsg == "access granted":
        outcome = "granted"
    elif msg == "STS response":
        outcome = "sts_response"
    elif msg.startswith("Errors parsing configmap") or "error parsing the config map" in msg:
        outcome = "config_error"
    else:
        outcome = "other"
    raw_arn = rec.get("arn") or None
    endpoint = rec.get("stsendpoint", rec.get("sts"))
    d = {
        "outcome": outcome,
        "cause": None,
        "principal": canonicalize(raw_arn) if raw_arn else None,
        "sts_error_code": None,
        "region": region_of_endpoint(endpoint) if endpoint is not None else None,
        "client": rec.get("client"),
        "error": error,
        "detail": None,
        "time": rec.get("time"),
    }
    if outcome == "denied":
        cause, code, region, arn, detail = classify_error(error or "")
        d["cause"] = cause
        d["sts_error_code"] = code
        d["region"] = region or d["region"]
        d["detail"] = detail
        if d["principal"] is None and arn:
            d["principal"] = canonicalize(arn)
    return d


def parse_ms(s):
    try:
        t = s.strip().replace("z", "Z")
        if t.endswith("Z"):
            t = t[:-1] + "+00:00"
        dt = datetime.fromisoformat(t.replace(" ", "T", 1))
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=timezone.utc)
        return int(dt.timestamp() * 1000)
    except ValueError:
        return None


def format_ms(ms):
    dt = datetime.fromtimestamp(ms / 1000, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (ms % 1000)


def truncate(s, n):
    return s if len(s) <= n else s[:n] + "\u2026"


def finding_id(cluster, principal, what):
    h = hashlib.sha256()
    h.update((cluster or "").encode() + b"\0" + (principal or "").lower().encode() + b"\0" + what.encode())
    return h.hexdigest()[:16]


def cluster_of_log_group(group):
    if group and group.startswith("/aws/eks/") and group.endswith("/cluster"):
        name = group[len("/aws/eks/"):-len("/cluster")]
        if name and "/" not in name:
            return name
    return None


def add_capped(s, v):
    if v is not None and len(s) < MAX_EVIDENCE:
        s.add(v)


def handle(event):
    """Decode a subscription event and group its lines into findings: (findings, stats)."""
    gz = base64.b64decode(event["awslogs"]["data"])
    logs = json.loads(gzip.decompress(gz))
    cluster = cluster_of_log_group(logs.get("logGroup"))
    stream = logs.get("logStream")
    stats = {"events": 0, "duplicates": 0, "parsed": 0, "unparsed": 0, "blank": 0,
             "outcomes": {}, "causes": {}, "unparsed_samples": []}
    seen = set()
    groups = {}
    cluster_regions = {}
    if logs.get("messageType") == "CONTROL_MESSAGE":
        return [], stats
    for ev in logs.get("logEvents", []):
        stats["events"] += 1
        eid = ev.get("id")
        if eid is not None:
            if eid in seen:
                stats["duplicates"] += 1
                continue
            seen.add(eid)
        line = ev["message"]
        err, rec = parse_line(line)
        if rec is None:
            if err == "empty":
                stats["blank"] += 1
            else:
                stats["unparsed"] += 1
                if len(stats["unparsed_samples"]) < MAX_UNPARSED_SAMPLES:
                    stats["unparsed_samples"].append({"id": eid, "error": err, "line": truncate(line, 300)})
            continue
        stats["parsed"] += 1
        d = diagnose(rec)
        outcome, cause = d["outcome"], d["cause"]
        stats["outcomes"][outcome] = stats["outcomes"].get(outcome, 0) + 1
        if cause:
            stats["causes"][cause] = stats["causes"].get(cause, 0) + 1
        if d["region"] and cluster not in cluster_regions:
            cluster_regions[cluster] = d["region"]
        if outcome not in ("denied", "config_error"):
            continue
        ts = ev.get("timestamp")
        if ts is None and d["time"]:
            ts = parse_ms(d["time"])
        principal = d["principal"]
        key = (cluster, principal.lower() if principal else None, outcome, cause)
        g = groups.get(key)
        if g is None:
            g = groups[key] = {
                "id": finding_id(cluster, principal, cause or outcome),
                "cluster": cluster, "account": logs.get("owner") or None, "outcome": outcome,
                "cause": cause, "principal": principal, "count": 0, "first": None, "last": None,
                "clients": set(), "codes": set(), "regions": set(), "details": set(),
                "errors": set(), "streams": set(), "samples": [],
            }
        g["count"] += 1
        if ts is not None:
            g["first"] = ts if g["first"] is None else min(g["first"], ts)
            g["last"] = ts if g["last"] is None else max(g["last"], ts)
        client = d["client"]
        if client is not None and len(g["clients"]) < MAX_CLIENTS * 50:
            g["clients"].add(client.rsplit(":", 1)[0])
        add_capped(g["codes"], d["sts_error_code"])
        add_capped(g["regions"], d["region"])
        add_capped(g["details"], d["detail"])
        add_capped(g["errors"], d["error"][:500] if d["error"] is not None else None)
        add_capped(g["streams"], stream)
        if len(g["samples"]) < MAX_SAMPLES:
            g["samples"].append(truncate(line, MAX_SAMPLE_CHARS))
    findings = []
    for g in groups.values():  # dicts keep first-seen order
        first, last = g.pop("first"), g.pop("last")
        clients = sorted(g.pop("clients"))
        regions = sorted(g.pop("regions"))
        g.update(
            first_seen=format_ms(first) if first is not None else None,
            last_seen=format_ms(last) if last is not None else None,
            distinct_clients=len(clients),
            clients=clients[:MAX_CLIENTS],
            sts_error_codes=sorted(g.pop("codes")),
            sts_regions=regions,
            region=regions[0] if regions else cluster_regions.get(cluster),
            details=sorted(g.pop("details")),
            errors=sorted(g.pop("errors")),
            log_streams=sorted(g.pop("streams")),
        )
        findings.append(g)
    return findings, stats


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("event", help="subscription event JSON (cargo run --release --example batch -- FILE)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--compare", metavar="EKS_AUTH",
                    help="path of the eks-auth binary: check findings and causes against `invoke --offline`")
    ap.add_argument("--json", action="store_true", help="print one JSON summary line at the end")
    args = ap.parse_args()

    with open(args.event, "rb") as f:
        event = json.load(f)  # the Lambda runtime hands the handler a parsed event
    decompressed = len(gzip.decompress(base64.b64decode(event["awslogs"]["data"])))

    times = []
    for _ in range(max(1, args.runs)):
        t0 = time.perf_counter()
        findings, stats = handle(event)
        times.append(time.perf_counter() - t0)
    best, mean = min(times), sum(times) / len(times)
    n = stats["events"]
    print("python %s: %d events, %d bytes decompressed, %d runs" % (
        sys.version.split()[0], n, decompressed, len(times)))
    print("  best %.1f ms, mean %.1f ms" % (best * 1e3, mean * 1e3))
    print("  %.0f events/s, %.2f MB/s (best run)" % (n / best, decompressed / best / 1e6))
    print("  findings: %d" % len(findings))
    print("  causes: %s" % json.dumps(dict(sorted(stats["causes"].items()))))

    ok = True
    if args.compare:
        out = subprocess.run([args.compare, "invoke", args.event, "--offline"], check=True,
                             capture_output=True).stdout
        rust = json.loads(out)
        rust_causes = dict(sorted(rust["stats"]["causes"].items()))
        same_causes = rust_causes == dict(sorted(stats["causes"].items()))
        same_findings = len(rust["findings"]) == len(findings)
        rust_ids = sorted(f["id"] for f in rust["findings"])
        same_ids = rust_ids == sorted(f["id"] for f in findings)
        ok = same_causes and same_findings and same_ids
        print("  rust: findings %d, causes %s" % (len(rust["findings"]), json.dumps(rust_causes)))
        print("  same work as Rust: %s (causes %s, findings %s, finding ids %s)" % (
            "yes" if ok else "NO", same_causes, same_findings, same_ids))
    if args.json:
        print(json.dumps({"events": n, "bytes": decompressed, "best_s": best, "mean_s": mean,
                          "events_per_s": n / best, "mb_per_s": decompressed / best / 1e6,
                          "findings": len(findings), "causes": stats["causes"], "same_as_rust": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
