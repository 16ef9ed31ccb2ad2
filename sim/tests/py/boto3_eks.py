#!/usr/bin/env python3
"""boto3 against the simulator's EKS API: the same kinds of calls as sim/tests/eks_api.rs.

Usage: boto3_eks.py ENDPOINT   (e.g. http://127.0.0.1:41234)

The simulator must have been started with the test configuration: cluster `api`
(API_AND_CONFIG_MAP, creator arn:aws:iam::123456789012:user/creator) and cluster `cm`
(CONFIG_MAP). EKS_SIM_CA_PEM, when set, is the PEM DescribeCluster's CA must decode to.
Exits non-zero on the first unexpected response; prints "boto3 fidelity: OK" at the end.
"""

import base64
import datetime
import json
import os
import sys
import time
import urllib.request

import boto3
import botocore
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError

ACCOUNT = "123456789012"
CREATOR = f"arn:aws:iam::{ACCOUNT}:user/creator"


class Failed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failed(what)


def role(name):
    return f"arn:aws:iam::{ACCOUNT}:role/{name}"


def policy(name):
    return f"arn:aws:eks::aws:cluster-access-policy/{name}"


def expect_error(code, status, fn, *args, **kwargs):
    """Calls fn and returns the ClientError, which must carry `code` and HTTP `status`."""
    try:
        fn(*args, **kwargs)
    except ClientError as e:
        got = e.response["Error"]["Code"]
        got_status = e.response["ResponseMetadata"]["HTTPStatusCode"]
        check(got == code, f"{fn.__name__}: expected {code}, got {got}: {e}")
        check(got_status == status, f"{fn.__name__}: expected HTTP {status}, got {got_status}")
        check(e.response["Error"].get("Message"), f"{fn.__name__}: {code} without a message")
        return e
    raise Failed(f"{fn.__name__}{args}{kwargs}: expected {code}, got success")


def inject(endpoint, rule):
    req = urllib.request.Request(
        f"{endpoint}/_sim/faults",
        data=json.dumps(rule).encode(),
        method="POST",
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(req) as resp:
        check(resp.status == 204, f"fault injection answered {resp.status}")


def is_time(v):
    return isinstance(v, datetime.datetime) and v.year >= 2024


def clusters(eks, ca_pem):
    names = eks.list_clusters()["clusters"]
    check(names == ["api", "cm"], f"list_clusters: {names}")
    pages = list(eks.get_paginator("list_clusters").paginate(PaginationConfig={"PageSize": 1}))
    check(len(pages) == 2, f"list_clusters pages: {pages}")
    check([n for p in pages for n in p["clusters"]] == ["api", "cm"], f"paged clusters: {pages}")

    c = eks.describe_cluster(name="api")["cluster"]
    check(c["name"] == "api", c)
    check(c["arn"] == f"arn:aws:eks:us-west-2:{ACCOUNT}:cluster/api", c["arn"])
    check(c["status"] == "ACTIVE", c["status"])
    check(is_time(c["createdAt"]), f"createdAt {c['createdAt']!r}")
    check(c["endpoint"].startswith("https://127.0.0.1:"), c["endpoint"])
    check(c["accessConfig"] == {"authenticationMode": "API_AND_CONFIG_MAP",
                                "bootstrapClusterCreatorAdminPermissions": True}, c["accessConfig"])
    pem = base64.b64decode(c["certificateAuthority"]["data"]).decode()
    check(pem.startswith("-----BEGIN CERTIFICATE-----"), pem[:40])
    if ca_pem:
        check(pem == ca_pem, "certificateAuthority.data does not decode to the simulator's CA")
    logging = c["logging"]["clusterLogging"]
    check(any(s["enabled"] and "authenticator" in s["types"] for s in logging), logging)
    check("vpcId" in c["resourcesVpcConfig"], c["resourcesVpcConfig"])
    check(c["identity"]["oidc"]["issuer"].startswith("https://oidc.eks.us-west-2.amazonaws.com/id/"), c["identity"])

    e = expect_error("ResourceNotFoundException", 404, eks.describe_cluster, name="nope")
    check(e.response["Error"]["Message"] == "No cluster found for name: nope.", e.response)
    check(e.response.get("clusterName") == "nope", e.response)

    pols = [p for page in eks.get_paginator("list_access_policies").paginate(PaginationConfig={"PageSize": 2})
            for p in page["accessPolicies"]]
    check(len(pols) == 5, pols)
    check({"name": "AmazonEKSClusterAdminPolicy", "arn": policy("AmazonEKSClusterAdminPolicy")} in pols, pols)


def access_entries(eks):
    dev = role("py/dev")
    out = eks.create_access_entry(
        clusterName="api", principalArn=dev, kubernetesGroups=["dev-readers"],
        username="dev:{{SessionName}}", tags={"owner": "sre"}, clientRequestToken="py-token-1",
    )["accessEntry"]
    check(out["clusterName"] == "api" and out["principalArn"] == dev, out)
    check(out["kubernetesGroups"] == ["dev-readers"], out)
    check(out["username"] == "dev:{{SessionName}}" and out["type"] == "STANDARD", out)
    check(out["tags"] == {"owner": "sre"}, out)
    check(is_time(out["createdAt"]) and is_time(out["modifiedAt"]), out)
    check(out["accessEntryArn"].startswith(f"arn:aws:eks:us-west-2:{ACCOUNT}:access-entry/api/role/"), out)

    again = eks.create_access_entry(
        clusterName="api", principalArn=dev, kubernetesGroups=["dev-readers"],
        username="dev:{{SessionName}}", tags={"owner": "sre"}, clientRequestToken="py-token-1",
    )["accessEntry"]
    check(again["accessEntryArn"] == out["accessEntryArn"], "idempotent retry returns the same entry")
    expect_error("ResourceInUseException", 409, eks.create_access_entry, clusterName="api", principalArn=dev)
    e = expect_error("InvalidParameterException", 400, eks.create_access_entry, clusterName="api",
                     principalArn=f"arn:aws:sts::{ACCOUNT}:assumed-role/dev/s")
    check("invalid principal" in e.response["Error"]["Message"], e.response)
    expect_error("InvalidRequestException", 400, eks.create_access_entry, clusterName="cm", principalArn=dev)
    expect_error("ResourceNotFoundException", 404, eks.create_access_entry, clusterName="nope", principalArn=dev)

    d = eks.describe_access_entry(clusterName="api", principalArn=dev)["accessEntry"]
    check(d["accessEntryArn"] == out["accessEntryArn"], d)

    for n in ["py/a", "py/b", "py/c"]:
        eks.create_access_entry(clusterName="api", principalArn=role(n))
    node = role("py/node")
    n = eks.create_access_entry(clusterName="api", principalArn=node, type="EC2_LINUX")["accessEntry"]
    check(n["type"] == "EC2_LINUX", n)
    first = eks.list_access_entries(clusterName="api", maxResults=2)
    check(len(first["accessEntries"]) == 2 and "nextToken" in first, first)
    listed = [a for page in eks.get_paginator("list_access_entries").paginate(
        clusterName="api", PaginationConfig={"PageSize": 2}) for a in page["accessEntries"]]
    want = sorted([CREATOR, dev, node] + [role(x) for x in ["py/a", "py/b", "py/c"]])
    check(listed == want, f"list_access_entries: {listed} != {want}")
    expect_error("InvalidRequestException", 400, eks.list_access_entries, clusterName="cm")

    u = eks.update_access_entry(clusterName="api", principalArn=dev,
                                kubernetesGroups=["dev-writers"], username="developer")["accessEntry"]
    check(u["kubernetesGroups"] == ["dev-writers"] and u["username"] == "developer", u)
    expect_error("InvalidParameterException", 400, eks.update_access_entry, clusterName="api",
                 principalArn=node, kubernetesGroups=["g"])

    # Policies.
    view = policy("AmazonEKSViewPolicy")
    a = eks.associate_access_policy(clusterName="api", principalArn=dev, policyArn=view,
                                    accessScope={"type": "namespace", "namespaces": ["dev", "qa"]})
    check(a["clusterName"] == "api" and a["principalArn"] == dev, a)
    ap = a["associatedAccessPolicy"]
    check(ap["policyArn"] == view and ap["accessScope"] == {"type": "namespace", "namespaces": ["dev", "qa"]}, ap)
    check(is_time(ap["associatedAt"]) and is_time(ap["modifiedAt"]), ap)
    eks.associate_access_policy(clusterName="api", principalArn=dev, policyArn=policy("AmazonEKSEditPolicy"),
                                accessScope={"type": "cluster"})
    pages = list(eks.get_paginator("list_associated_access_policies").paginate(
        clusterName="api", principalArn=dev, PaginationConfig={"PageSize": 1}))
    check(len(pages) == 2, pages)
    assoc = [p for page in pages for p in page["associatedAccessPolicies"]]
    check(sorted(p["policyArn"] for p in assoc) == [policy("AmazonEKSEditPolicy"), view], assoc)
    check(pages[0]["clusterName"] == "api" and pages[0]["principalArn"] == dev, pages[0])
    filtered = eks.list_access_entries(clusterName="api", associatedPolicyArn=view)["accessEntries"]
    check(filtered == [dev], filtered)
    expect_error("InvalidParameterException", 400, eks.associate_access_policy, clusterName="api",
                 principalArn=dev, policyArn=policy("AmazonEKSNopePolicy"), accessScope={"type": "cluster"})
    e = expect_error("InvalidParameterException", 400, eks.associate_access_policy, clusterName="api",
                     principalArn=node, policyArn=view, accessScope={"type": "cluster"})
    check("STANDARD" in e.response["Error"]["Message"], e.response)
    expect_error("ResourceNotFoundException", 404, eks.associate_access_policy, clusterName="api",
                 principalArn=role("ghost"), policyArn=view, accessScope={"type": "cluster"})
    r = eks.disassociate_access_policy(clusterName="api", principalArn=dev, policyArn=view)
    check(r["ResponseMetadata"]["HTTPStatusCode"] == 200, r)
    expect_error("ResourceNotFoundException", 404, eks.disassociate_access_policy, clusterName="api",
                 principalArn=dev, policyArn=view)

    eks.delete_access_entry(clusterName="api", principalArn=dev)
    expect_error("ResourceNotFoundException", 404, eks.describe_access_entry, clusterName="api", principalArn=dev)
    expect_error("ResourceNotFoundException", 404, eks.delete_access_entry, clusterName="api", principalArn=dev)


def modes(eks):
    u = eks.update_cluster_config(name="cm", accessConfig={"authenticationMode": "API_AND_CONFIG_MAP"})["update"]
    check(u["status"] == "Successful" and u["type"] == "AccessConfigUpdate", u)
    check(u["params"] == [{"type": "AuthenticationMode", "value": "API_AND_CONFIG_MAP"}], u)
    check(is_time(u["createdAt"]) and u["errors"] == [] and len(u["id"]) == 36, u)
    check(eks.list_access_entries(clusterName="cm")["accessEntries"] == [CREATOR], "creator kept admin")
    e = expect_error("InvalidParameterException", 400, eks.update_cluster_config, name="cm",
                     accessConfig={"authenticationMode": "CONFIG_MAP"})
    check("Unsupported authentication mode update" in e.response["Error"]["Message"], e.response)
    e = expect_error("InvalidParameterException", 400, eks.update_cluster_config, name="cm")
    check(e.response["Error"]["Message"] == "No changes needed", e.response)
    mode = eks.describe_cluster(name="cm")["cluster"]["accessConfig"]["authenticationMode"]
    check(mode == "API_AND_CONFIG_MAP", mode)


def faults(eks, endpoint):
    inject(endpoint, {"cluster": "api", "target": {"api": "eks", "operation": "DescribeCluster"},
                      "fault": {"kind": "throttle"}, "count": 1})
    expect_error("ThrottlingException", 429, eks.describe_cluster, name="api")
    inject(endpoint, {"cluster": None, "target": {"api": "eks", "operation": "*"},
                      "fault": {"kind": "status", "status": 503}, "count": 1})
    expect_error("ServiceUnavailableException", 503, eks.list_access_entries, clusterName="api")
    inject(endpoint, {"cluster": "api", "target": {"api": "eks", "operation": "DescribeCluster"},
                      "fault": {"kind": "status", "status": 500}, "count": 1})
    expect_error("ServerException", 500, eks.describe_cluster, name="api")
    inject(endpoint, {"cluster": "api", "target": {"api": "eks", "operation": "CreateAccessEntry"},
                      "fault": {"kind": "conflict"}, "count": 1})
    expect_error("ResourceInUseException", 409, eks.create_access_entry, clusterName="api",
                 principalArn=role("py/conflict"))
    inject(endpoint, {"cluster": "api", "target": {"api": "eks", "operation": "DescribeCluster"},
                      "fault": {"kind": "drop"}, "count": 1})
    try:
        eks.describe_cluster(name="api")
        raise Failed("a dropped connection answered")
    except HTTPClientError:
        pass
    inject(endpoint, {"cluster": "api", "target": {"api": "eks", "operation": "DescribeCluster"},
                      "fault": {"kind": "latency", "millis": 300}, "count": 1})
    t = time.monotonic()
    check(eks.describe_cluster(name="api")["cluster"]["name"] == "api", "latency then answer")
    check(time.monotonic() - t >= 0.3, "latency applied")

    # With retries on, a throttle that clears is invisible to the caller.
    retrying = client(endpoint, {"total_max_attempts": 3, "mode": "standard"})
    inject(endpoint, {"cluster": "api", "target": {"api": "eks", "operation": "ListAccessEntries"},
                      "fault": {"kind": "throttle"}, "count": 1})
    r = retrying.list_access_entries(clusterName="api")
    check(r["ResponseMetadata"]["RetryAttempts"] == 1, r["ResponseMetadata"])


def client(endpoint, retries):
    return boto3.client(
        "eks", endpoint_url=endpoint, region_name="us-west-2",
        aws_access_key_id="x", aws_secret_access_key="y",
        config=Config(retries=retries, connect_timeout=5, read_timeout=10),
    )


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    endpoint = sys.argv[1].rstrip("/")
    eks = client(endpoint, {"total_max_attempts": 1})
    try:
        clusters(eks, os.environ.get("EKS_SIM_CA_PEM"))
        access_entries(eks)
        modes(eks)
        faults(eks, endpoint)
    except (Failed, ClientError, botocore.exceptions.BotoCoreError) as e:
        print(f"boto3 fidelity: FAILED: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(f"boto3 fidelity: OK (boto3 {boto3.__version__}, botocore {botocore.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
