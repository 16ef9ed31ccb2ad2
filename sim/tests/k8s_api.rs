//! The Kubernetes API and the authenticator over real sockets: tokens from our presigner and
//! from `aws eks get-token`, STS in moto (both replay modes) and in a stub, the unmodified `kube`
//! client, kubectl, faults, and authenticator lines in memory and in moto's CloudWatch Logs.

mod support;

use std::time::{Duration, Instant};

use eks_sim::config::{LogsConfig, StsMode};
use eks_sim::{
    AccessEntryConfig, AuthMode, ClusterConfig, Fault, PolicyConfig, Rule, SimConfig, Simulator,
    Target,
};
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::*;

const VIEW: &str = "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy";

fn cluster(name: &str, creator: &str, mode: AuthMode) -> ClusterConfig {
    let mut c = ClusterConfig::new(name, creator);
    c.authentication_mode = mode;
    c
}

async fn start(clusters: Vec<ClusterConfig>, f: impl FnOnce(&mut SimConfig)) -> Simulator {
    let mut cfg = SimConfig::with_clusters(clusters);
    cfg.sts.endpoint = Some(moto().endpoint.clone());
    f(&mut cfg);
    Simulator::start(cfg).await.expect("simulator starts")
}

fn api_status(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The `error=` value of the last `access denied` line.
fn last_denial(sim: &Simulator) -> String {
    sim.authlog()
        .into_iter()
        .rev()
        .find(|l| l.contains("msg=\"access denied\""))
        .expect("an access denied line")
}

#[test]
fn presigner_reproduces_the_authenticator_test_vector() {
    let creds = eks_sim::sigv4::Creds {
        access_key: "ASIAR2TG44V6AS3ZZE7C".into(),
        secret_key: "4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/Q".into(),
        session_token: None,
    };
    let url = presign(
        &creds,
        "us-west-2",
        "test-cluster",
        1_682_640_000,
        "sts.us-west-2.amazonaws.com",
        60,
    );
    assert!(
        url.ends_with(
            "X-Amz-Signature=e211dba77aba9dc44b0b6be38b8eaad092599c5157f6314444c5b9d85747f5ce"
        ),
        "{url}"
    );
    assert_eq!(
        token_of(&url),
        "k8s-aws-v1.aHR0cHM6Ly9zdHMudXMtd2VzdC0yLmFtYXpvbmF3cy5jb20vP0FjdGlvbj1HZXRDYWxsZXJJZGVudGl0eSZWZXJzaW9uPTIwMTEtMDYtMTUmWC1BbXotQWxnb3JpdGhtPUFXUzQtSE1BQy1TSEEyNTYmWC1BbXotQ3JlZGVudGlhbD1BU0lBUjJURzQ0VjZBUzNaWkU3QyUyRjIwMjMwNDI4JTJGdXMtd2VzdC0yJTJGc3RzJTJGYXdzNF9yZXF1ZXN0JlgtQW16LURhdGU9MjAyMzA0MjhUMDAwMDAwWiZYLUFtei1FeHBpcmVzPTYwJlgtQW16LVNpZ25lZEhlYWRlcnM9aG9zdCUzQngtazhzLWF3cy1pZCZYLUFtei1TaWduYXR1cmU9ZTIxMWRiYTc3YWJhOWRjNDRiMGI2YmUzOGI4ZWFhZDA5MjU5OWM1MTU3ZjYzMTQ0NDRjNWI5ZDg1NzQ3ZjVjZQ"
    );
}

/// moto mode: IAM users and assumed roles from moto, tokens from our presigner and from the AWS
/// CLI, aws-auth templates, unknown and deleted keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moto_mode_identifies_users_and_assumed_roles() {
    let (creator, creator_key) = user_with_key("creator").await;
    let (dev, dev_key) = user_with_key("dev").await;
    let role = create_role(&unique("deployer"), "/").await;
    let session = assume_role(&dev_key, &role.arn, "alice@example.com").await;
    let mut c = cluster("moto-c", &creator.arn, AuthMode::ConfigMap);
    c.aws_auth = Some(
        [(
            "mapRoles".to_string(),
            format!("- rolearn: {}\n  username: deployer:{{{{SessionName}}}}\n  groups:\n    - deployers\n", role.arn.to_uppercase().replace("ARN:AWS:IAM", "arn:aws:iam")),
        )]
        .into(),
    );
    let sim = start(vec![c], |_| {}).await;

    // The creator, with our presigner: kubernetes-admin.
    let client = kube_client(&sim, "moto-c", &token(&creator_key, "moto-c")).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "kube-system");
    let cm = cms.get("aws-auth").await.expect("creator reads aws-auth");
    assert!(cm.data.unwrap()["mapRoles"].contains("deployer:"));
    let log = sim.authlog();
    let sts_line = log
        .iter()
        .find(|l| l.contains("msg=\"STS response\""))
        .expect("STS response line");
    assert!(sts_line.starts_with("time=\""), "{sts_line}");
    for want in [
        format!("accesskeyid={}", creator_key.access_key),
        format!("accountid={ACCOUNT}"),
        format!("arn=\"{}\"", creator.arn),
        "method=POST path=/authenticate".to_string(),
        "stsendpoint=sts.us-west-2.amazonaws.com".to_string(),
        format!("userid={}", creator.unique_id),
    ] {
        assert!(sts_line.contains(&want), "{want} missing in {sts_line}");
    }
    let granted = log
        .iter()
        .find(|l| l.contains("msg=\"access granted\""))
        .expect("granted line");
    assert!(granted.contains("groups=\"[system:masters]\""), "{granted}");
    assert!(granted.contains("username=kubernetes-admin"), "{granted}");
    assert!(
        granted.contains(&format!(
            "uid=\"aws-iam-authenticator:{ACCOUNT}:{}\"",
            creator.unique_id
        )),
        "{granted}"
    );

    // The assumed role, with `aws eks get-token`: mapped by aws-auth (case-insensitively), the
    // session name rendered with `@` as `-`; its group has no permissions here: 403.
    let cli = cli_token(&session, "moto-c");
    assert!(cli.starts_with("k8s-aws-v1."));
    let client = kube_client(&sim, "moto-c", &cli).await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "kube-system");
    let st = api_status(cms.get("aws-auth").await.unwrap_err());
    assert_eq!(st.code, 403);
    assert_eq!(
        st.message,
        "configmaps \"aws-auth\" is forbidden: User \"deployer:alice-example.com\" cannot get resource \"configmaps\" in API group \"\" in the namespace \"kube-system\""
    );
    let sts_line = lines_with(&sim, &session.access_key)
        .into_iter()
        .find(|l| l.contains("STS response"))
        .unwrap();
    assert!(
        sts_line.contains(&format!(
            "arn=\"arn:aws:sts::{ACCOUNT}:assumed-role/{}/alice@example.com\"",
            role.name
        )),
        "{sts_line}"
    );
    assert!(sts_line.contains("session=alice@example.com"), "{sts_line}");
    assert!(
        sts_line.contains(&format!("userid={}", role.unique_id)),
        "{sts_line}"
    );
    let granted = lines_with(&sim, "deployer:alice-example.com")
        .pop()
        .unwrap();
    assert!(
        granted.contains(&format!("arn=\"{}\"", role.arn)),
        "canonical role ARN: {granted}"
    );
    assert!(granted.contains("groups=\"[deployers]\""), "{granted}");

    // An IAM user nobody mapped: 401 and `ARN is not mapped`.
    let client = kube_client(&sim, "moto-c", &token(&dev_key, "moto-c")).await;
    let st = api_status(
        Api::<ConfigMap>::namespaced(client, "kube-system")
            .get("aws-auth")
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (st.code, st.reason.as_str(), st.message.as_str()),
        (401, "Unauthorized", "Unauthorized")
    );
    let denied = last_denial(&sim);
    assert!(
        denied.ends_with(&format!(
            "arn=\"{}\" client=\"{}\" error=\"ARN is not mapped\" method=POST path=/authenticate",
            dev.arn,
            denied
                .split("client=\"")
                .nth(1)
                .unwrap()
                .split('"')
                .next()
                .unwrap()
        )),
        "{denied}"
    );
    assert!(denied.contains("level=warning"), "{denied}");

    // A key moto does not know, then a deleted user's key: STS's InvalidClientTokenId.
    let bogus = eks_sim::sigv4::Creds {
        access_key: "AKIAZZZZZZZZZZZZZZZZ".into(),
        secret_key: "x".into(),
        session_token: None,
    };
    let client = kube_client(&sim, "moto-c", &token(&bogus, "moto-c")).await;
    assert_eq!(
        api_status(
            Api::<ConfigMap>::namespaced(client, "kube-system")
                .get("aws-auth")
                .await
                .unwrap_err()
        )
        .code,
        401
    );
    let denied = last_denial(&sim);
    assert!(
        denied.contains(r#"error="sts getCallerIdentity failed: error from AWS (expected 200, got 403) on us-west-2 endpoint. Body: {\"Error\":{\"Code\":\"InvalidClientTokenId\""#),
        "{denied}"
    );
    assert!(!denied.contains(" arn="), "no identity yet: {denied}");
    delete_access_key(&dev.name, &dev_key.access_key).await;
    let client = kube_client(&sim, "moto-c", &token(&dev_key, "moto-c")).await;
    assert_eq!(
        api_status(
            Api::<ConfigMap>::namespaced(client, "kube-system")
                .get("aws-auth")
                .await
                .unwrap_err()
        )
        .code,
        401
    );
    assert!(last_denial(&sim).contains("InvalidClientTokenId"));
    let counters = sim.counters("moto-c").unwrap();
    assert_eq!((counters.authn_granted, counters.authn_denied), (2, 3));
}

/// Verbatim mode: what moto does with the authenticator's own request, and a stub that sees it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verbatim_mode_replays_the_presigned_request() {
    let (creator, creator_key) = user_with_key("vcreator").await;
    // Against moto: it routes a request without an Authorization header to S3 and answers
    // ListBuckets XML with 200, which the authenticator's JSON decoding rejects.
    let sim = start(
        vec![cluster("verb", &creator.arn, AuthMode::ConfigMap)],
        |c| c.sts.mode = StsMode::Verbatim,
    )
    .await;
    let client = kube_client(&sim, "verb", &token(&creator_key, "verb")).await;
    assert_eq!(
        api_status(client.apiserver_version().await.unwrap_err()).code,
        401
    );
    assert!(
        last_denial(&sim).contains(r#"error="sts getCallerIdentity failed: invalid character '<' looking for beginning of value""#),
        "{}",
        last_denial(&sim)
    );
    drop(sim);

    // Against a stub: the exact request, then STS's answers and errors.
    let stub = StsStub::start(200, &sts_json(&creator.arn, &creator.unique_id)).await;
    let sim = start(
        vec![cluster("verb", &creator.arn, AuthMode::ConfigMap)],
        |c| {
            c.sts.mode = StsMode::Verbatim;
            c.sts.endpoint = Some(stub.endpoint.clone());
        },
    )
    .await;
    let url = presign(
        &creator_key,
        REGION,
        "verb",
        unix_now(),
        "sts.us-west-2.amazonaws.com",
        60,
    );
    let client = kube_client(&sim, "verb", &token_of(&url)).await;
    let info = client
        .apiserver_version()
        .await
        .expect("creator gets /version");
    assert_eq!(info.git_version, "v1.31.0-eks-sim");
    let seen = stub.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(seen.method, "GET");
    assert_eq!(
        format!("https://sts.us-west-2.amazonaws.com{}", seen.uri),
        url,
        "the presigned query, byte for byte"
    );
    let header = |k: &str| {
        seen.headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("x-k8s-aws-id").as_deref(), Some("verb"));
    assert_eq!(header("accept").as_deref(), Some("application/json"));
    assert_eq!(
        header("host").as_deref(),
        Some("sts.us-west-2.amazonaws.com")
    );

    let cases: &[(u16, &str, &str)] = &[
        (
            403,
            r#"{"Error":{"Code":"SignatureDoesNotMatch","Message":"m","Type":"Sender"},"RequestId":"r"}"#,
            r#"error="sts getCallerIdentity failed: error from AWS (expected 200, got 403) on us-west-2 endpoint. Body: {\"Error\":{\"Code\":\"SignatureDoesNotMatch\",\"Message\":\"m\",\"Type\":\"Sender\"},\"RequestId\":\"r\"}""#,
        ),
        (
            400,
            r#"{"Error":{"Code":"Throttling","Message":"Rate exceeded","Type":"Sender"},"RequestId":"x"}"#,
            r#"error="sts getCallerIdentity was throttled: {\"Error\":{\"Code\":\"Throttling\",\"Message\":\"Rate exceeded\",\"Type\":\"Sender\"},\"RequestId\":\"x\"}""#,
        ),
        (
            200,
            &sts_json("arn:aws:sts::123456789012:assumed-role/r", "AROA:s"),
            "does not have a role",
        ),
        (
            200,
            &sts_json("arn:aws-foo:iam::123456789012:user/x", "AIDA"),
            "does not have a recognized partition",
        ),
    ];
    for (code, body, want) in cases {
        stub.set(*code, body);
        assert_eq!(
            api_status(client.apiserver_version().await.unwrap_err()).code,
            401
        );
        assert!(
            last_denial(&sim).contains(want),
            "{want} not in {}",
            last_denial(&sim)
        );
    }
    drop(sim);

    // No STS configured, and STS refusing connections: `error during GET`.
    let sim = start(
        vec![cluster("verb", &creator.arn, AuthMode::ConfigMap)],
        |c| c.sts.endpoint = None,
    )
    .await;
    let client = kube_client(&sim, "verb", &token(&creator_key, "verb")).await;
    assert_eq!(
        api_status(client.apiserver_version().await.unwrap_err()).code,
        401
    );
    assert!(last_denial(&sim).contains(r#"error="sts getCallerIdentity failed: error during GET: dial tcp: lookup sts.us-west-2.amazonaws.com"#), "{}", last_denial(&sim));
    drop(sim);
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let sim = start(
        vec![cluster("verb", &creator.arn, AuthMode::ConfigMap)],
        |c| c.sts.endpoint = Some(format!("http://{closed}")),
    )
    .await;
    let client = kube_client(&sim, "verb", &token(&creator_key, "verb")).await;
    assert_eq!(
        api_status(client.apiserver_version().await.unwrap_err()).code,
        401
    );
    assert!(
        last_denial(&sim).contains(&format!("error=\"sts getCallerIdentity failed: error during GET: dial tcp {closed}: connect: connection refused on us-west-2 endpoint\"")),
        "{}",
        last_denial(&sim)
    );
}

/// Tampered, foreign and expired tokens get the authenticator's strings, before STS is asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_and_expired_tokens_are_rejected() {
    let (creator, key) = user_with_key("tcreator").await;
    let sim = start(
        vec![cluster("tok", &creator.arn, AuthMode::ConfigMap)],
        |c| {
            c.sts.extra_hosts = vec!["sts.sim.local".into()];
        },
    )
    .await;
    let good = presign(
        &key,
        REGION,
        "tok",
        unix_now(),
        "sts.us-west-2.amazonaws.com",
        60,
    );
    let old = presign(
        &key,
        REGION,
        "tok",
        unix_now() - 20 * 60,
        "sts.us-west-2.amazonaws.com",
        60,
    );
    let unsigned_cluster = presign(
        &key,
        REGION,
        "tok",
        unix_now(),
        "sts.us-west-2.amazonaws.com",
        60,
    )
    .replace("host%3Bx-k8s-aws-id", "host");
    let cases: Vec<(String, String)> = vec![
        (token_of(&format!("{good}&X-Amz-Foo=bar")), r#"error="input token was not properly formatted: non-whitelisted query parameter \"X-Amz-Foo\"""#.into()),
        (token_of(&good.replace("sts.us-west-2.amazonaws.com", "sts.attacker.example")), r#"error="input token was not properly formatted: unexpected hostname \"sts.attacker.example\" in pre-signed URL""#.into()),
        (token_of(&good.replace("https://", "http://")), r#"error="input token was not properly formatted: unexpected scheme \"http\" in pre-signed URL""#.into()),
        (token_of(&unsigned_cluster), r#"error="input token was not properly formatted: client did not sign the x-k8s-aws-id header in the pre-signed URL""#.into()),
        (token_of(&format!("{good}&Action=GetCallerIdentity")), r#"error="input token was not properly formatted: query parameter with multiple values not supported""#.into()),
        (token_of(&good).replace("k8s-aws-v1.", "k8s-aws-v2."), r#"error="input token was not properly formatted: token is missing expected \"k8s-aws-v1.\" prefix""#.into()),
        ("k8s-aws-v1.not*base64".into(), r#"error="input token was not properly formatted: illegal base64 data at input byte 3""#.into()),
        (format!("k8s-aws-v1.{}", "A".repeat(5000)), r#"error="input token was not properly formatted: token is too large""#.into()),
        (token_of(&old), "error=\"input token was not properly formatted: X-Amz-Date parameter is expired (15 minute expiration) ".into()),
    ];
    for (tok, want) in &cases {
        let client = kube_client(&sim, "tok", tok).await;
        let st = api_status(
            Api::<ConfigMap>::namespaced(client, "kube-system")
                .list(&ListParams::default())
                .await
                .unwrap_err(),
        );
        assert_eq!(st.code, 401);
        let line = last_denial(&sim);
        assert!(line.contains(want), "{want}\nnot in\n{line}");
        assert!(
            !line.contains(" arn="),
            "no identity for a malformed token: {line}"
        );
    }
    let expired = last_denial(&sim);
    assert!(
        expired.ends_with("+0000 UTC\" method=POST path=/authenticate"),
        "{expired}"
    );
    // An extra host is accepted locally and then replayed (moto mode ignores the host).
    let extra = token_of(&presign(
        &key,
        REGION,
        "tok",
        unix_now(),
        "sts.sim.local",
        60,
    ));
    let client = kube_client(&sim, "tok", &extra).await;
    Api::<ConfigMap>::namespaced(client, "kube-system")
        .list(&ListParams::default())
        .await
        .expect("extra host accepted");
    assert!(lines_with(&sim, "stsendpoint=sts.sim.local").len() >= 2);
    // A token made for another cluster: moto mode cannot tell (moto checks no signature).
    let other = token(&key, "another-cluster");
    let client = kube_client(&sim, "tok", &other).await;
    Api::<ConfigMap>::namespaced(client, "kube-system")
        .list(&ListParams::default())
        .await
        .expect("moto mode accepts");
    let c = sim.counters("tok").unwrap();
    assert_eq!((c.authn_denied, c.authn_granted), (cases.len() as u64, 2));

    // No token at all, even for /version: 401 with kube-apiserver's exact body, no log line.
    let lines = sim.authlog().len();
    for (path, headers) in [
        ("/version", vec![]),
        (
            "/api/v1/namespaces/kube-system/configmaps/aws-auth",
            vec![("authorization", "Basic bm9ib2R5Om5vdGhpbmc=")],
        ),
    ] {
        let (code, h, body) = raw_https(&sim, "tok", "GET", path, &headers, b"").await;
        assert_eq!(code, 401);
        assert_eq!(h.get("content-type").unwrap(), "application/json");
        assert_eq!(
            body,
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#
        );
    }
    assert_eq!(sim.authlog().len(), lines);
    // A bearer token that is not an EKS token reaches the authenticator.
    let (code, _, _) = raw_https(
        &sim,
        "tok",
        "GET",
        "/version",
        &[("authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.sig")],
        b"",
    )
    .await;
    assert_eq!(code, 401);
    assert!(last_denial(&sim).contains(r#"token is missing expected \"k8s-aws-v1.\" prefix"#));
}

/// The unmodified kube client: ConfigMap CRUD with optimistic concurrency, patches of every kind,
/// server-side apply with field managers, errors as `Status`, SelfSubjectAccessReview.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_client_reads_and_writes_configmaps() {
    let (creator, key) = user_with_key("kcreator").await;
    let mut c = cluster("kc", &creator.arn, AuthMode::ConfigMap);
    c.aws_auth = Some([("mapRoles".to_string(), "- rolearn: arn:aws:iam::123456789012:role/node\n  username: system:node:{{EC2PrivateDNSName}}\n  groups: [system:nodes]\n".to_string())].into());
    let sim = start(vec![c], |_| {}).await;
    let client = kube_client(&sim, "kc", &token(&key, "kc")).await;
    let info = client.apiserver_version().await.unwrap();
    assert_eq!((info.major.as_str(), info.minor.as_str()), ("1", "31+"));
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");

    // get / list
    let aws_auth = cms.get("aws-auth").await.unwrap();
    let rv1 = aws_auth.metadata.resource_version.clone().unwrap();
    let list = cms.list(&ListParams::default()).await.unwrap();
    assert_eq!(list.items.len(), 1);
    let all: Api<ConfigMap> = Api::all(client.clone());
    assert_eq!(
        all.list(&ListParams::default()).await.unwrap().items.len(),
        1
    );

    // replace, then replace with the stale resourceVersion: 409 Conflict
    let mut edited = aws_auth.clone();
    edited
        .data
        .as_mut()
        .unwrap()
        .insert("mapUsers".into(), "[]\n".into());
    let replaced = cms
        .replace("aws-auth", &PostParams::default(), &edited)
        .await
        .unwrap();
    assert_ne!(
        replaced.metadata.resource_version.as_deref(),
        Some(rv1.as_str())
    );
    let st = api_status(
        cms.replace("aws-auth", &PostParams::default(), &edited)
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    assert!(
        st.message.contains("the object has been modified"),
        "{}",
        st.message
    );

    // create; create again: AlreadyExists
    let new_cm: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "team", "labels": {"app": "x"}}, "data": {"a": "1"}}),
    )
    .unwrap();
    let created = cms
        .create(
            &PostParams {
                field_manager: Some("creator-tool".into()),
                ..Default::default()
            },
            &new_cm,
        )
        .await
        .unwrap();
    assert_eq!(created.metadata.namespace.as_deref(), Some("kube-system"));
    let st = api_status(
        cms.create(&PostParams::default(), &new_cm)
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "AlreadyExists"));
    assert_eq!(
        cms.list(&ListParams::default().labels("app=x"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        cms.list(&ListParams::default().fields("metadata.name=aws-auth"))
            .await
            .unwrap()
            .items
            .len(),
        1
    );

    // merge and strategic merge patches, with field managers recorded
    let merged = cms
        .patch(
            "team",
            &PatchParams {
                field_manager: Some("merger".into()),
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"b": "2"}})),
        )
        .await
        .unwrap();
    assert_eq!(merged.data.as_ref().unwrap()["b"], "2");
    let managers: Vec<String> = merged
        .metadata
        .managed_fields
        .unwrap()
        .iter()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.contains(&"merger".to_string()) && managers.contains(&"creator-tool".to_string()),
        "{managers:?}"
    );
    let strategic = cms
        .patch(
            "team",
            &PatchParams::default(),
            &Patch::Strategic(json!({"data": {"c": "3"}})),
        )
        .await
        .unwrap();
    assert_eq!(strategic.data.as_ref().unwrap().len(), 3);
    // A merge patch with a stale resourceVersion precondition: 409.
    let st = api_status(
        cms.patch(
            "team",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "data": {"d": "4"}})),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(st.code, 409);

    // JSON patch (raw request: the kube crate's jsonpatch feature is off here)
    let req = http::Request::patch("/api/v1/namespaces/kube-system/configmaps/team?fieldManager=jp")
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&json!([{"op": "test", "path": "/data/a", "value": "1"}, {"op": "replace", "path": "/data/a", "value": "10"}, {"op": "remove", "path": "/data/c"}])).unwrap())
        .unwrap();
    let jp: ConfigMap = client.request(req).await.unwrap();
    assert_eq!(
        jp.data.as_ref().unwrap().get("a").map(String::as_str),
        Some("10")
    );
    assert!(!jp.data.as_ref().unwrap().contains_key("c"));
    let bad = http::Request::patch("/api/v1/namespaces/kube-system/configmaps/team")
        .header("content-type", "application/json-patch+json")
        .body(serde_json::to_vec(&json!([{"op": "remove", "path": "/data/nope"}])).unwrap())
        .unwrap();
    assert_eq!(
        api_status(client.request::<ConfigMap>(bad).await.unwrap_err()).code,
        400
    );

    // server-side apply: create, conflict between managers, force
    let applied = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied", "namespace": "kube-system"}, "data": {"k": "alice"}});
    let a = cms
        .patch(
            "applied",
            &PatchParams::apply("alice"),
            &Patch::Apply(&applied),
        )
        .await
        .unwrap();
    assert_eq!(a.data.as_ref().unwrap()["k"], "alice");
    let bob = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"k": "bob"}});
    let st = api_status(
        cms.patch("applied", &PatchParams::apply("bob"), &Patch::Apply(&bob))
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 409);
    assert!(
        st.message.contains("conflict with \"alice\""),
        "{}",
        st.message
    );
    let forced = cms
        .patch(
            "applied",
            &PatchParams::apply("bob").force(),
            &Patch::Apply(&bob),
        )
        .await
        .unwrap();
    assert_eq!(forced.data.as_ref().unwrap()["k"], "bob");
    // An update by another manager takes ownership: alice's next apply of that key conflicts.
    cms.patch(
        "applied",
        &PatchParams {
            field_manager: Some("editor".into()),
            ..Default::default()
        },
        &Patch::Merge(json!({"data": {"k": "edited"}})),
    )
    .await
    .unwrap();
    let st = api_status(
        cms.patch("applied", &PatchParams::apply("bob"), &Patch::Apply(&bob))
            .await
            .unwrap_err(),
    );
    assert!(
        st.message.contains("conflict with \"editor\""),
        "{}",
        st.message
    );
    // Apply without a field manager is refused.
    let req = http::Request::patch("/api/v1/namespaces/kube-system/configmaps/applied")
        .header("content-type", "application/apply-patch+yaml")
        .body(b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n".to_vec())
        .unwrap();
    assert_eq!(
        api_status(client.request::<ConfigMap>(req).await.unwrap_err()).code,
        422
    );

    // dry run: answered, not stored
    let writes = sim.counters("kc").unwrap().configmap_writes;
    let dry = cms
        .patch(
            "team",
            &PatchParams {
                dry_run: true,
                ..Default::default()
            },
            &Patch::Merge(json!({"data": {"dry": "yes"}})),
        )
        .await
        .unwrap();
    assert_eq!(dry.data.as_ref().unwrap()["dry"], "yes");
    assert!(!cms
        .get("team")
        .await
        .unwrap()
        .data
        .unwrap()
        .contains_key("dry"));
    assert_eq!(sim.counters("kc").unwrap().configmap_writes, writes);

    // delete; then 404 as a Status
    cms.delete("team", &DeleteParams::default()).await.unwrap();
    let st = api_status(cms.get("team").await.unwrap_err());
    assert_eq!(
        (st.code, st.reason.as_str(), st.message.as_str()),
        (404, "NotFound", "configmaps \"team\" not found")
    );
    assert!(st.is_not_found());
    let st = api_status(
        cms.delete("team", &DeleteParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 404);
    let pre = DeleteParams {
        preconditions: Some(kube::api::Preconditions {
            resource_version: Some("1".into()),
            uid: None,
        }),
        ..Default::default()
    };
    assert_eq!(
        api_status(cms.delete("applied", &pre).await.unwrap_err()).code,
        409
    );

    // SelfSubjectAccessReview
    let ssar = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some("kube-system".into()),
                verb: Some("update".into()),
                resource: Some("configmaps".into()),
                name: Some("aws-auth".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let reviews: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let r = reviews.create(&PostParams::default(), &ssar).await.unwrap();
    let status = r.status.unwrap();
    assert!(status.allowed);
    assert!(status.reason.unwrap().contains("system:masters"));

    // Discovery answers JSON whatever the Accept header asks for; OpenAPI is absent.
    let req = http::Request::get("/api").header("accept", "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/vnd.kubernetes.protobuf").body(Vec::new()).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
    assert_eq!(v["kind"], "APIVersions");
    let req = http::Request::get("/apis").body(Vec::new()).unwrap();
    let v: serde_json::Value =
        serde_json::from_str(&client.request_text(req).await.unwrap()).unwrap();
    assert_eq!(v["groups"][0]["name"], "authorization.k8s.io");
    let req = http::Request::get("/healthz").body(Vec::new()).unwrap();
    assert_eq!(client.request_text(req).await.unwrap(), "ok");
    let req = http::Request::get("/openapi/v3").body(Vec::new()).unwrap();
    assert_eq!(
        api_status(client.request_text(req).await.unwrap_err()).code,
        404
    );
    let req = http::Request::post("/api/v1/namespaces/kube-system/configmaps/aws-auth")
        .body(Vec::new())
        .unwrap();
    assert_eq!(
        api_status(client.request_text(req).await.unwrap_err()).code,
        405
    );

    let c = sim.counters("kc").unwrap();
    assert!(c.k8s_requests >= 25, "{c:?}");
    assert_eq!(c.authn_denied, 0);
}

/// kubectl against the simulator: reads, patches, creates, `auth can-i`, the exec plugin, and
/// the exact Unauthorized message for anonymous and unmapped callers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_works_and_prints_unauthorized() {
    let (creator, key) = user_with_key("kubectl-creator").await;
    let (_stranger, stranger_key) = user_with_key("stranger").await;
    let mut c = cluster("kctl", &creator.arn, AuthMode::ConfigMap);
    c.aws_auth = Some([("mapUsers".to_string(), "[]\n".to_string())].into());
    let sim = start(vec![c], |_| {}).await;
    let dir = scratch("kubectl");
    let kc = write(
        &dir,
        "creator.kubeconfig",
        &sim.kubeconfig("kctl", Some(&token(&key, "kctl"))).unwrap(),
    );

    let r = kubectl(
        &dir,
        &kc,
        &[
            "get",
            "configmap",
            "aws-auth",
            "-n",
            "kube-system",
            "-o",
            "json",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v["data"]["mapUsers"], "[]\n");

    let r = kubectl(&dir, &kc, &["get", "configmaps", "-n", "kube-system"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("aws-auth"), "{r:?}");

    let r = kubectl(
        &dir,
        &kc,
        &[
            "patch",
            "configmap",
            "aws-auth",
            "-n",
            "kube-system",
            "-p",
            r#"{"data":{"mapAccounts":"[]\n"}}"#,
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("configmap/aws-auth patched"), "{r:?}");
    let r = kubectl(
        &dir,
        &kc,
        &[
            "patch",
            "configmap",
            "aws-auth",
            "-n",
            "kube-system",
            "--type",
            "json",
            "-p",
            r#"[{"op":"remove","path":"/data/mapAccounts"}]"#,
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let stored = sim.configmap("kctl", "kube-system", "aws-auth").unwrap();
    assert!(stored["data"].get("mapAccounts").is_none());
    assert!(
        stored["metadata"]["managedFields"]
            .to_string()
            .contains("kubectl-patch"),
        "{stored}"
    );

    let r = kubectl(
        &dir,
        &kc,
        &[
            "create",
            "configmap",
            "made-by-kubectl",
            "-n",
            "default",
            "--from-literal=k=v",
        ],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    assert_eq!(
        sim.configmap("kctl", "default", "made-by-kubectl").unwrap()["data"]["k"],
        "v"
    );
    let r = kubectl(
        &dir,
        &kc,
        &["create", "configmap", "made-by-kubectl", "-n", "default"],
    )
    .await;
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("AlreadyExists") || r.stderr.contains("already exists"),
        "{r:?}"
    );

    let r = kubectl(
        &dir,
        &kc,
        &["auth", "can-i", "update", "configmaps", "-n", "kube-system"],
    )
    .await;
    assert_eq!((r.code, r.stdout.trim()), (0, "yes"), "{r:?}");

    // `kubectl apply` validates against OpenAPI, which the simulator does not serve (404):
    // it needs --validate=false, client-side or server-side.
    let manifest = write(&dir, "cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: default\ndata:\n  k: v1\n");
    let r = kubectl(&dir, &kc, &["apply", "-f", manifest.to_str().unwrap()]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr.contains("failed to download openapi") && r.stderr.contains("--validate=false"),
        "{r:?}"
    );
    let r = kubectl(
        &dir,
        &kc,
        &[
            "apply",
            "--validate=false",
            "-f",
            manifest.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, "configmap/applied created"),
        "{r:?}"
    );
    let v2 = write(&dir, "cm2.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: applied\n  namespace: default\ndata:\n  k: v2\n");
    let r = kubectl(
        &dir,
        &kc,
        &[
            "apply",
            "--server-side",
            "--validate=false",
            "-f",
            v2.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("conflict with \"kubectl-client-side-apply\": .data.k"),
        "{r:?}"
    );
    let r = kubectl(
        &dir,
        &kc,
        &[
            "apply",
            "--server-side",
            "--force-conflicts",
            "--validate=false",
            "-f",
            v2.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, "configmap/applied serverside-applied"),
        "{r:?}"
    );
    assert_eq!(
        sim.configmap("kctl", "default", "applied").unwrap()["data"]["k"],
        "v2"
    );
    let r = kubectl(
        &dir,
        &kc,
        &["delete", "configmap", "made-by-kubectl", "-n", "default"],
    )
    .await;
    assert_eq!(r.code, 0, "{r:?}");
    let r = kubectl(&dir, &kc, &["version", "-o", "json"]).await;
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("v1.31.0-eks-sim"));

    // The exec plugin: kubectl runs `aws eks get-token` itself.
    let exec = write(
        &dir,
        "exec.kubeconfig",
        &sim.kubeconfig("kctl", None).unwrap(),
    );
    let r = kubectl_env(
        &dir,
        &exec,
        &[
            "get",
            "configmap",
            "aws-auth",
            "-n",
            "kube-system",
            "-o",
            "name",
        ],
        &[
            ("AWS_ACCESS_KEY_ID", key.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", key.secret_key.as_str()),
        ],
    )
    .await;
    assert_eq!(
        (r.code, r.stdout.trim()),
        (0, "configmap/aws-auth"),
        "{r:?}"
    );

    // An unmapped user, and nobody at all.
    let stranger = write(
        &dir,
        "stranger.kubeconfig",
        &sim.kubeconfig("kctl", Some(&token(&stranger_key, "kctl")))
            .unwrap(),
    );
    let r = kubectl(
        &dir,
        &stranger,
        &["get", "configmap", "aws-auth", "-n", "kube-system"],
    )
    .await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("error: You must be logged in to the server (Unauthorized)"),
        "{r:?}"
    );
    // kubectl prompts for a password when a user has no credentials at all: "nobody" presents
    // basic credentials, which EKS does not accept either (no bearer token).
    let anon = sim
        .kubeconfig("kctl", Some("PLACEHOLDER"))
        .unwrap()
        .replace(
            "    token: PLACEHOLDER\n",
            "    username: nobody\n    password: nothing\n",
        );
    let anon = write(&dir, "anon.kubeconfig", &anon);
    let r = kubectl(&dir, &anon, &["get", "configmaps", "-n", "kube-system"]).await;
    assert_eq!(r.code, 1, "{r:?}");
    assert!(
        r.stderr
            .contains("error: You must be logged in to the server (Unauthorized)"),
        "{r:?}"
    );
    assert!(last_denial(&sim).contains("error=\"ARN is not mapped\""));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Fault rules on Kubernetes requests, after authentication.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_apply_to_kubernetes_requests() {
    let (creator, key) = user_with_key("fcreator").await;
    let mut c = cluster("flt", &creator.arn, AuthMode::ConfigMap);
    c.aws_auth = Some([("mapRoles".to_string(), "[]".to_string())].into());
    let sim = start(vec![c], |_| {}).await;
    let client = kube_client(&sim, "flt", &token(&key, "flt")).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    let rule = |target: Target, fault: Fault| Rule {
        cluster: Some("flt".into()),
        target,
        fault,
        count: Some(1),
    };
    let merge = Patch::Merge(json!({"data": {"x": "y"}}));

    sim.inject(rule(Target::KubeWrite, Fault::Conflict));
    cms.get("aws-auth").await.expect("reads are not KubeWrite");
    let st = api_status(
        cms.patch("aws-auth", &PatchParams::default(), &merge)
            .await
            .unwrap_err(),
    );
    assert_eq!((st.code, st.reason.as_str()), (409, "Conflict"));
    cms.patch("aws-auth", &PatchParams::default(), &merge)
        .await
        .expect("count 1");

    // kube's default client retries 429/503/504 (honouring Retry-After): a single throttle is
    // invisible to it.
    let before = sim.counters("flt").unwrap().k8s_requests;
    sim.inject(rule(Target::Kube, Fault::Throttle));
    cms.get("aws-auth").await.expect("kube retries a 429");
    assert_eq!(sim.counters("flt").unwrap().k8s_requests, before + 2);
    // Without retries: the 429 with Retry-After, and a 503.
    let plain = kube_client_retry(&sim, "flt", &token(&key, "flt"), false).await;
    sim.inject(rule(Target::Kube, Fault::Throttle));
    let resp = plain
        .send(
            http::Request::get("/api/v1/namespaces/kube-system/configmaps/aws-auth")
                .body(kube::client::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers().get("retry-after").unwrap(), "1");
    let plain_cms: Api<ConfigMap> = Api::namespaced(plain, "kube-system");
    sim.inject(rule(Target::Kube, Fault::Status { status: 503 }));
    let st = api_status(plain_cms.get("aws-auth").await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (503, "ServiceUnavailable"));
    sim.inject(rule(Target::Kube, Fault::Status { status: 500 }));
    let st = api_status(cms.get("aws-auth").await.unwrap_err());
    assert_eq!((st.code, st.reason.as_str()), (500, "InternalError"));

    sim.inject(rule(Target::Kube, Fault::Latency { millis: 300 }));
    let t = Instant::now();
    cms.get("aws-auth").await.unwrap();
    assert!(t.elapsed() >= Duration::from_millis(300));

    sim.inject(rule(Target::KubeWrite, Fault::Drop));
    let err = cms
        .patch("aws-auth", &PatchParams::default(), &merge)
        .await
        .unwrap_err();
    assert!(
        !matches!(err, kube::Error::Api(_)),
        "a dropped connection is no answer: {err:?}"
    );
    assert!(sim.shared().state().faults.rules().is_empty());
    let c = sim.counters("flt").unwrap();
    assert_eq!(c.configmap_writes, 1);
}

/// Access entries: policies, templates, the unique-ID binding and reserved usernames; aws-auth
/// parse errors logged once per version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_entries_and_aws_auth_errors() {
    let (creator, creator_key) = user_with_key("acreator").await;
    let (viewer, viewer_key) = user_with_key("viewer").await;
    let (stale, stale_key) = user_with_key("stale").await;
    let (sys, sys_key) = user_with_key("sysuser").await;
    let (cmuser, cmuser_key) = user_with_key("cmuser").await;
    let role = create_role(&unique("ops"), "/team/").await;
    let session = assume_role(&viewer_key, &role.arn, "bob").await;
    let mut c = cluster("ae", &creator.arn, AuthMode::ApiAndConfigMap);
    let entry = |arn: &str,
                 username: Option<&str>,
                 unique_id: Option<&str>,
                 policies: Vec<PolicyConfig>| AccessEntryConfig {
        principal_arn: arn.into(),
        kubernetes_groups: vec![],
        username: username.map(str::to_string),
        kind: "STANDARD".into(),
        policies,
        unique_id: unique_id.map(str::to_string),
    };
    let view = |ns: &[&str]| {
        vec![PolicyConfig {
            policy_arn: VIEW.into(),
            namespaces: ns.iter().map(|s| s.to_string()).collect(),
        }]
    };
    c.access_entries = vec![
        entry(
            &viewer.arn,
            None,
            Some(&viewer.unique_id),
            view(&["kube-system"]),
        ),
        entry(&stale.arn, None, Some("AIDAOLDOLDOLDOLDOLDO"), view(&[])),
        entry(&sys.arn, Some("system:admin"), None, view(&[])),
        // A role with a path: its assumed sessions match the entry without the path.
        entry(&role.arn, None, None, view(&[])),
    ];
    c.aws_auth = Some(
        [
            ("mapUsers".to_string(), format!("- userarn: {}\n  username: cm-user\n  groups: [system:masters]\n- username: no-arn\n", cmuser.arn)),
            ("mapRoles".to_string(), "- rolearn: [broken\n".to_string()),
        ]
        .into(),
    );
    let sim = start(vec![c], |_| {}).await;
    let get = |tok: String| {
        let sim = &sim;
        async move {
            let client = kube_client(sim, "ae", &tok).await;
            Api::<ConfigMap>::namespaced(client, "kube-system")
                .get("aws-auth")
                .await
        }
    };

    // The creator's bootstrapped entry (AmazonEKSClusterAdminPolicy).
    get(token(&creator_key, "ae"))
        .await
        .expect("creator is admin through its access entry");
    let granted = lines_with(&sim, "access granted").pop().unwrap();
    assert!(
        granted.contains(&format!("username=\"{}\"", creator.arn)),
        "{granted}"
    );
    assert!(granted.contains("groups=\"[]\""), "{granted}");

    // View policy: read in its namespace, no write.
    get(token(&viewer_key, "ae")).await.expect("viewer reads");
    let client = kube_client(&sim, "ae", &token(&viewer_key, "ae")).await;
    let st = api_status(
        Api::<ConfigMap>::namespaced(client.clone(), "kube-system")
            .patch(
                "aws-auth",
                &PatchParams::default(),
                &Patch::Merge(json!({"data": {"x": "y"}})),
            )
            .await
            .unwrap_err(),
    );
    assert_eq!(st.code, 403);
    assert_eq!(st.message, format!("configmaps \"aws-auth\" is forbidden: User \"{}\" cannot patch resource \"configmaps\" in API group \"\" in the namespace \"kube-system\"", viewer.arn));
    let st = api_status(
        Api::<ConfigMap>::namespaced(client, "default")
            .list(&ListParams::default())
            .await
            .unwrap_err(),
    );
    assert!(
        st.message.ends_with(
            "cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
        ),
        "{}",
        st.message
    );

    // The assumed role with a pathed entry; the default username template.
    get(cli_token(&session, "ae"))
        .await
        .expect("role session reads");
    let granted = lines_with(&sim, "access granted").pop().unwrap();
    assert!(
        granted.contains(&format!(
            "username=\"arn:aws:sts::{ACCOUNT}:assumed-role/{}/bob\"",
            role.name
        )),
        "{granted}"
    );
    assert!(
        granted.contains(&format!(
            "arn=\"arn:aws:iam::{ACCOUNT}:role/{}\"",
            role.name
        )),
        "{granted}"
    );

    // An entry bound to another unique ID: the deleted-and-recreated principal.
    assert_eq!(
        api_status(get(token(&stale_key, "ae")).await.unwrap_err()).code,
        401
    );
    let d = last_denial(&sim);
    assert!(
        d.contains(&format!("arn=\"{}\"", stale.arn))
            && d.contains("error=\"mapper DynamicFile Map error: ARN does not match User ID\""),
        "{d}"
    );

    // A reserved username.
    assert_eq!(
        api_status(get(token(&sys_key, "ae")).await.unwrap_err()).code,
        401
    );
    let d = last_denial(&sim);
    assert!(
        d.contains("error=\"invalid username 'system:admin' for mapper DynamicFile: username must not begin with with the following prefixes: [aws: iam: amazon: system: eks:]\""),
        "{d}"
    );

    // aws-auth still counts in API_AND_CONFIG_MAP; its broken key was logged once.
    get(token(&cmuser_key, "ae")).await.expect("aws-auth user");
    get(token(&cmuser_key, "ae"))
        .await
        .expect("aws-auth user again");
    let errs = lines_with(&sim, "Errors parsing configmap");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(errs[0].starts_with("time=\"") && errs[0].contains("level=warning msg=\"Errors parsing configmap: [value for userarn must be supplied error converting YAML to JSON: yaml: "), "{}", errs[0]);
    assert_eq!(lines_with(&sim, "Only saving data that was good").len(), 1);
    let c = sim.counters("ae").unwrap();
    assert_eq!((c.authn_granted, c.authn_denied), (7, 2));
}

/// Authenticator lines reach moto's CloudWatch Logs group `/aws/eks/<cluster>/cluster`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_land_in_cloudwatch_logs() {
    let (creator, key) = user_with_key("lcreator").await;
    let name = unique("logs");
    let sim = start(
        vec![cluster(&name, &creator.arn, AuthMode::ConfigMap)],
        |c| {
            c.logs = Some(LogsConfig {
                endpoint: moto().endpoint.clone(),
            });
        },
    )
    .await;
    let client = kube_client(&sim, &name, &token(&key, &name)).await;
    Api::<ConfigMap>::namespaced(client, "kube-system")
        .list(&ListParams::default())
        .await
        .unwrap();
    let bad = kube_client(&sim, &name, "k8s-aws-v1.@@").await;
    assert!(Api::<ConfigMap>::namespaced(bad, "kube-system")
        .list(&ListParams::default())
        .await
        .is_err());

    let body = json!({"logGroupName": format!("/aws/eks/{name}/cluster")}).to_string();
    let host = moto().endpoint.trim_start_matches("http://").to_string();
    let headers = vec![
        (
            "content-type".to_string(),
            "application/x-amz-json-1.1".to_string(),
        ),
        ("host".to_string(), host),
        (
            "x-amz-target".to_string(),
            "Logs_20140328.FilterLogEvents".to_string(),
        ),
    ];
    let mut all = headers.clone();
    all.extend(eks_sim::sigv4::sign(
        "POST",
        "/",
        "",
        &headers,
        body.as_bytes(),
        REGION,
        "logs",
        &admin_creds(),
        unix_now(),
    ));
    let reply = eks_sim::client::HttpClient::default()
        .send(
            "POST",
            &format!("{}/", moto().endpoint),
            &all,
            body.into_bytes(),
        )
        .await
        .unwrap();
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
    let events = v["events"].as_array().unwrap();
    let messages: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert_eq!(
        messages,
        sim.authlog().iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(messages
        .iter()
        .any(|m| m.contains("msg=\"access granted\"")));
    assert!(messages
        .iter()
        .any(|m| m.contains("msg=\"access denied\"") && m.contains("illegal base64 data")));
    assert!(events.iter().all(|e| e["logStreamName"]
        .as_str()
        .unwrap()
        .starts_with("authenticator-")));
}
