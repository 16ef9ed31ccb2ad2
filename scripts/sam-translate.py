#!/usr/bin/env python3
"""Translates a SAM template to plain CloudFormation, offline, for cfn-lint and checkov.

cfn-lint 1.x no longer runs the SAM transform itself. Local CodeUri values (what `sam build`
would upload) are replaced with a dummy s3:// URI first, as the translator requires one.
Run with the Python of the `sam` venv (scripts/check-infra.sh): it needs aws-sam-translator
and its YAML loader for CloudFormation short-form tags.

usage: sam-translate.py TEMPLATE OUT.json
"""
import json
import sys

from samtranslator.model.exceptions import InvalidDocumentException
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse


class NoManagedPolicies:
    """The template names no AWS managed policies; the translator asks only when it does."""

    def load(self):
        return {}


def main(src, dst):
    with open(src, encoding="utf-8") as f:
        template = yaml_parse(f.read())
    for res in template.get("Resources", {}).values():
        props = res.get("Properties") or {}
        if res.get("Type") == "AWS::Serverless::Function" and isinstance(props.get("CodeUri"), str):
            if not props["CodeUri"].startswith("s3://"):
                props["CodeUri"] = "s3://dummy-bucket/eks-auth-remediator.zip"
    try:
        out = transform(template, {}, NoManagedPolicies())
    except InvalidDocumentException as e:
        for cause in e.causes:
            print(f"{src}: {cause.message}", file=sys.stderr)
        return 1
    with open(dst, "w", encoding="utf-8") as f:
        json.dump(out, f, indent=1, sort_keys=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
