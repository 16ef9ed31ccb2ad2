#!/usr/bin/env python3
"""The SAM template and the CDK app grant the same IAM actions (scripts/check-infra.sh).

usage: iam-parity.py SAM_TRANSLATED.json CDK_TEMPLATE.json

Allowed differences: the ticket-sink actions exist in the SAM template behind conditions, while
the CDK app adds them only when a sink is configured (the default synth has none); CDK's SQS
on-failure destination also grants sqs:GetQueueAttributes and sqs:GetQueueUrl.
"""
import json
import sys

SAM_ONLY = {"sns:Publish", "events:PutEvents", "secretsmanager:GetSecretValue"}
CDK_ONLY = {"sqs:GetQueueAttributes", "sqs:GetQueueUrl"}


def actions(path):
    found = set()

    def walk(x):
        if isinstance(x, dict):
            if "Action" in x and "Effect" in x:
                a = x["Action"]
                found.update(a if isinstance(a, list) else [a])
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    with open(path, encoding="utf-8") as f:
        template = json.load(f)
    for res in template["Resources"].values():
        if res["Type"] in ("AWS::IAM::Policy", "AWS::IAM::Role"):
            walk(res["Properties"])
    return found


def main(sam_path, cdk_path):
    sam, cdk = actions(sam_path), actions(cdk_path)
    extra_sam, extra_cdk = sam - cdk - SAM_ONLY, cdk - sam - CDK_ONLY
    if extra_sam or extra_cdk:
        print(f"IAM actions differ: only SAM {sorted(extra_sam)}, only CDK {sorted(extra_cdk)}")
        return 1
    print(f"IAM parity: {len(sam & cdk)} actions in both templates")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
