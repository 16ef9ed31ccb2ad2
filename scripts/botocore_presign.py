#!/usr/bin/env python3
"""Print the EKS bearer token the AWS CLI's `aws eks get-token` makes, at a frozen time.

An independent check of src/eks_token.rs: this runs the installed AWS CLI v1 (`awscli`, which
presigns with botocore) in-process, exactly as `aws eks get-token --cluster-name C --region R` does
(its STSClientFactory registers the `x-k8s-aws-id` header through botocore's
`provide-client-params` / `before-sign` events), with the signing clock frozen at --epoch and every
ambient AWS setting removed so only the given credentials and region count.

    botocore_presign.py --access-key AKID --secret-key SECRET [--session-token TOKEN] \
        --region us-west-2 --cluster NAME --epoch 1682640000 \
        [--sts-regional-endpoints regional|legacy] [--print token|exec-credential]

--print token (default) writes the token and a newline; --print exec-credential writes the CLI's
stdout unchanged. Exit status 3 when awscli/botocore cannot be imported, 4 when the CLI fails or the
clock could not be frozen.
"""

import argparse
import base64
import contextlib
import datetime
import io
import json
import os
import sys
import urllib.parse


def fail(code, msg):
    sys.stderr.write(f"botocore_presign.py: {msg}\n")
    sys.exit(code)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--access-key", required=True)
    ap.add_argument("--secret-key", required=True)
    ap.add_argument("--session-token")
    ap.add_argument("--region", required=True)
    ap.add_argument("--cluster", required=True)
    ap.add_argument("--epoch", required=True, type=int)
    ap.add_argument("--sts-regional-endpoints", choices=["regional", "legacy"], default="regional")
    ap.add_argument("--print", dest="what", choices=["token", "exec-credential"], default="token")
    args = ap.parse_args()

    # Only our inputs: drop profiles, endpoint overrides, FIPS/dual-stack switches, exec info.
    for k in list(os.environ):
        if k.startswith("AWS_") or k == "KUBERNETES_EXEC_INFO":
            del os.environ[k]
    os.environ.update(
        AWS_ACCESS_KEY_ID=args.access_key,
        AWS_SECRET_ACCESS_KEY=args.secret_key,
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_STS_REGIONAL_ENDPOINTS=args.sts_regional_endpoints,
        AWS_DEFAULT_OUTPUT="json",
    )
    if args.session_token:
        os.environ["AWS_SESSION_TOKEN"] = args.session_token

    try:
        import botocore.auth
        import awscli.customizations.eks.get_token as get_token
        from awscli.clidriver import create_clidriver
    except ImportError as e:
        fail(3, f"cannot import the AWS CLI v1 / botocore ({e}); install them with "
                "scripts/install-test-deps.sh (pip install awscli)")

    frozen = datetime.datetime.fromtimestamp(args.epoch, datetime.timezone.utc).replace(tzinfo=None)

    def now(remove_tzinfo=True):
        return frozen if remove_tzinfo else frozen.replace(tzinfo=datetime.timezone.utc)

    # botocore.auth signs with its module-level get_current_datetime; get_token computes the
    # reported expiry with its own. Refuse to run if either moved rather than sign at "now".
    for mod in (botocore.auth, get_token):
        if not hasattr(mod, "get_current_datetime"):
            fail(4, f"{mod.__name__}.get_current_datetime is gone: cannot freeze the clock")
        mod.get_current_datetime = now

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = create_clidriver().main(
            ["eks", "get-token", "--cluster-name", args.cluster, "--region", args.region]
        )
    if rc != 0:
        fail(4, f"aws eks get-token exited {rc}")
    text = out.getvalue()
    token = json.loads(text)["status"]["token"]

    b64 = token[len("k8s-aws-v1."):]
    url = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).decode()
    date = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get("X-Amz-Date", [""])[0]
    if date != frozen.strftime("%Y%m%dT%H%M%SZ"):
        fail(4, f"the signing clock was not frozen: X-Amz-Date={date}")

    sys.stdout.write(token + "\n" if args.what == "token" else text)


if __name__ == "__main__":
    main()
