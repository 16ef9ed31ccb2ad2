//! Cross-checks `eks_token` against the AWS CLI's own presigner (botocore), run through
//! `scripts/botocore_presign.py`. Needs python3 with awscli installed (scripts/install-test-deps.sh);
//! without them these tests fail, they never skip.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use base64::Engine;
use eks_auth_remediator::eks_token::{self, StsEndpoint, Token};
use secrecy::ExposeSecret;

struct Case {
    key: &'static str,
    secret: &'static str,
    session: Option<&'static str>,
    region: &'static str,
    cluster: &'static str,
    epoch: u64,
}

const VECTOR: Case = Case {
    key: "ASIAR2TG44V6AS3ZZE7C",
    secret: "4KD5cntGcVmLWRdF5wvNRuzNL5Qxmp6OKVY6Fz/Q",
    session: None,
    region: "us-west-2",
    cluster: "test-cluster",
    epoch: 1_682_640_000,
};

// Shaped like a real STS session token: long, base64 with '/', '+' and '='.
const SESSION: &str = "IQoJb3JpZ2luX2VjEHoaCXVzLWVhc3QtMSJHMEUCIQD7g0bXyz/+abc+DEF/ghi=\
FQoGZXIvYXdzEBYaDF2dLx8lR3m9pQ8vZCKsAb4a1f0nL0oYb2X1mZk/3YQ+u7wE7c9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0==";

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn botocore(case: &Case, regional_endpoints: &str, what: &str) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/botocore_presign.py");
    let mut cmd = Command::new(python());
    cmd.arg(script)
        .args(["--access-key", case.key, "--secret-key", case.secret])
        .args(["--region", case.region, "--cluster", case.cluster])
        .args(["--epoch", &case.epoch.to_string()])
        .args([
            "--sts-regional-endpoints",
            regional_endpoints,
            "--print",
            what,
        ]);
    if let Some(t) = case.session {
        cmd.args(["--session-token", t]);
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} for the botocore cross-check ({e}): install python3 and the AWS CLI v1 \
             (scripts/install-test-deps.sh), or point PYTHON at an interpreter that has them",
            python()
        )
    });
    assert!(
        out.status.success(),
        "scripts/botocore_presign.py failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn ours(case: &Case, endpoint: StsEndpoint) -> Token {
    let creds = Credentials::new(
        case.key,
        case.secret,
        case.session.map(str::to_string),
        None,
        "test",
    );
    eks_token::presign_with(
        &creds,
        case.region,
        case.cluster,
        UNIX_EPOCH + Duration::from_secs(case.epoch),
        endpoint,
    )
    .expect("presign")
}

fn decode(token: &str) -> String {
    let b64 = token.strip_prefix("k8s-aws-v1.").expect("prefix");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(b64)
        .expect("unpadded base64url");
    String::from_utf8(raw).expect("utf-8 URL")
}

/// Byte-identical tokens; on a mismatch, say which query parameters differ.
fn assert_same(ours: &str, theirs: &str, what: &str) {
    if ours == theirs {
        return;
    }
    let (a, b) = (decode(ours), decode(theirs));
    let params = |u: &str| -> Vec<String> {
        let mut v: Vec<String> = u
            .split_once('?')
            .map(|(_, q)| q.split('&').map(str::to_string).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    let (pa, pb) = (params(&a), params(&b));
    let only_ours: Vec<_> = pa.iter().filter(|p| !pb.contains(p)).collect();
    let only_theirs: Vec<_> = pb.iter().filter(|p| !pa.contains(p)).collect();
    panic!(
        "{what}: tokens differ\n ours:     {a}\n botocore: {b}\n only ours: {only_ours:?}\n only botocore: {only_theirs:?}"
    );
}

fn check(case: &Case) {
    let theirs = botocore(case, "regional", "token");
    let theirs = theirs.trim_end_matches('\n');
    let ours = ours(case, StsEndpoint::Regional);
    assert_same(
        ours.secret().expose_secret(),
        theirs,
        &format!("{} {}", case.region, case.cluster),
    );
}

#[test]
fn authenticator_vector_matches_botocore_and_the_known_signature() {
    check(&VECTOR);
    let url = decode(
        ours(&VECTOR, StsEndpoint::Regional)
            .secret()
            .expose_secret(),
    );
    assert!(
        url.ends_with(
            "&X-Amz-Signature=e211dba77aba9dc44b0b6be38b8eaad092599c5157f6314444c5b9d85747f5ce"
        ),
        "{url}"
    );
}

#[test]
fn session_token_us_east_1_matches_botocore() {
    check(&Case {
        session: Some(SESSION),
        region: "us-east-1",
        cluster: "prod_cluster-1",
        epoch: 1_700_000_123,
        ..VECTOR
    });
}

#[test]
fn session_token_eu_west_1_matches_botocore() {
    check(&Case {
        key: "ASIAEXAMPLEEXAMPLE01",
        secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY+=",
        session: Some("short/+=token"),
        region: "eu-west-1",
        cluster: "staging",
        epoch: 1_735_689_599,
    });
}

#[test]
fn no_session_token_ap_southeast_2_matches_botocore() {
    check(&Case {
        key: "AKIAIOSFODNN7EXAMPLE",
        region: "ap-southeast-2",
        cluster: "0e3b8c2a-7f1d-4c5e-9a6b-2d4f8e1c3a5b",
        epoch: 1_600_000_000,
        ..VECTOR
    });
}

#[test]
fn other_partitions_match_botocore() {
    check(&Case {
        session: Some(SESSION),
        region: "cn-north-1",
        ..VECTOR
    });
    check(&Case {
        region: "us-gov-west-1",
        ..VECTOR
    });
}

#[test]
fn global_endpoint_matches_botocore_legacy_mode() {
    for region in ["us-east-1", "eu-west-1"] {
        let case = Case {
            session: Some(SESSION),
            region,
            ..VECTOR
        };
        let theirs = botocore(&case, "legacy", "token");
        let ours = ours(&case, StsEndpoint::Global);
        assert_same(
            ours.secret().expose_secret(),
            theirs.trim_end_matches('\n'),
            &format!("global via {region}"),
        );
        assert!(decode(ours.secret().expose_secret()).starts_with("https://sts.amazonaws.com/?"));
    }
}

#[test]
fn exec_credential_is_byte_identical_to_aws_eks_get_token() {
    let case = Case {
        session: Some(SESSION),
        ..VECTOR
    };
    let theirs = botocore(&case, "regional", "exec-credential");
    let token = ours(&case, StsEndpoint::Regional);
    assert_eq!(eks_token::exec_credential_json(&token), theirs);
    assert_eq!(
        token.expires_at(),
        SystemTime::UNIX_EPOCH + Duration::from_secs(case.epoch + 14 * 60)
    );
}

#[test]
fn token_carries_only_parameters_the_authenticator_allows() {
    // The authenticator's whitelist: action, version and the x-amz-* signing parameters.
    const ALLOWED: &[&str] = &[
        "Action",
        "Version",
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-Security-Token",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
    ];
    let case = Case {
        session: Some(SESSION),
        ..VECTOR
    };
    let url = decode(ours(&case, StsEndpoint::Regional).secret().expose_secret());
    let query = url.split_once('?').expect("query").1;
    let keys: Vec<&str> = query
        .split('&')
        .map(|kv| kv.split_once('=').expect("k=v").0)
        .collect();
    assert_eq!(keys.len(), ALLOWED.len(), "{keys:?}");
    assert!(keys.iter().all(|k| ALLOWED.contains(k)), "{keys:?}");
    assert!(query.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&"));
    assert!(query.contains("X-Amz-Expires=60&"));
}
