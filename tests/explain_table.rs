//! Table tests: every error-string family in DOMAIN.md section 2 and every wrapper format gives
//! the right outcome, cause and canonical principal, through the library and `eks-auth explain --json`.

use std::io::Write;
use std::process::{Command, Stdio};

use eks_auth_remediator::{authlog, diagnosis};

/// (error value as logged, expected cause, expected STS code)
const ERRORS: &[(&str, &str, Option<&str>)] = &[
    ("ARN is not mapped", "not_mapped", None),
    ("ARN is not mapped: arn:aws:iam::111122223333:role/dev", "not_mapped", None),
    ("Identity is not mapped", "not_mapped", None),
    ("identity is not mapped", "not_mapped", None),
    (
        r#"sts getCallerIdentity failed: error from AWS (expected 200, got 403) on us-west-2 endpoint. Body: {"Error":{"Code":"InvalidClientTokenId","Message":"The security token included in the request is invalid.","Type":"Sender"},"RequestId":"r"}"#,
        "invalid_client_token",
        Some("InvalidClientTokenId"),
    ),
    (
        r#"sts getCallerIdentity failed: error from AWS (expected 200, got 403). Body: {"Error":{"Code":"InvalidClientTokenId"}}"#,
        "invalid_client_token",
        Some("InvalidClientTokenId"),
    ),
    (
        r#"sts getCallerIdentity failed: error from AWS (expected 200, got 403) on eu-west-1 endpoint. Body: {"Error":{"Code":"ExpiredToken","Message":"The security token included in the request is expired","Type":"Sender"}}"#,
        "expired_token",
        Some("ExpiredToken"),
    ),
    (
        r#"sts getCallerIdentity failed: error from AWS (expected 200, got 403). Body: {"Error":{"Code":"SignatureDoesNotMatch","Message":"The request signature we calculated does not match the signature you provided."}}"#,
        "signature_mismatch",
        Some("SignatureDoesNotMatch"),
    ),
    (
        r#"sts getCallerIdentity failed: error from AWS (expected 200, got 403) on us-east-1 endpoint. Body: {"Error":{"Code":"AccessDenied","Message":"STS is not activated in this region"}}"#,
        "sts_rejected",
        Some("AccessDenied"),
    ),
    (
        r#"sts getCallerIdentity failed: error from AWS (expected 200, got 400). Body: {"Error":{"Code":"InvalidAction"}}"#,
        "sts_rejected",
        Some("InvalidAction"),
    ),
    ("sts getCallerIdentity failed: error from AWS (expected 200, got 403)", "sts_rejected", None),
    (
        r#"sts getCallerIdentity was throttled: error from AWS (expected 200, got 400) on us-west-2 endpoint. Body: {"Error":{"Code":"Throttling","Message":"Rate exceeded"}}"#,
        "sts_throttled",
        Some("Throttling"),
    ),
    (
        r#"sts getCallerIdentity failed: error from AWS (expected 200, got 400). Body: {"Error":{"Code":"Throttling","Message":"Rate exceeded"}}"#,
        "sts_throttled",
        Some("Throttling"),
    ),
    (
        r#"sts getCallerIdentity failed: error during GET: Get "https://sts.us-west-2.amazonaws.com/?Action=GetCallerIdentity": dial tcp: i/o timeout on us-west-2 endpoint"#,
        "sts_unreachable",
        None,
    ),
    (
        "input token was not properly formatted: X-Amz-Date parameter is expired (15 minute expiration) 2021-11-18 07:11:46 +0000 UTC",
        "token_expired",
        None,
    ),
    (r#"input token was not properly formatted: token is missing expected "k8s-aws-v1." prefix"#, "malformed_token", None),
    ("input token was not properly formatted: illegal base64 data at input byte 12", "malformed_token", None),
    (r#"input token was not properly formatted: unexpected hostname "evil.example.com" in pre-signed URL"#, "malformed_token", None),
    (r#"input token was not properly formatted: unexpected scheme "http" in pre-signed URL"#, "malformed_token", None),
    (r#"input token was not properly formatted: unexpected path "/x" in pre-signed URL"#, "malformed_token", None),
    (r#"input token was not properly formatted: non-whitelisted query parameter "foo""#, "malformed_token", None),
    (r#"input token was not properly formatted: query parameter with multiple values not supported"#, "malformed_token", None),
    ("input token was not properly formatted: client did not sign the x-k8s-aws-id header in the pre-signed URL", "malformed_token", None),
    ("input token was not properly formatted: token is too large", "malformed_token", None),
    ("input token was not properly formatted: malformed query parameter", "malformed_token", None),
    (
        r#"mapper MapperConfigMap renderTemplates error: error rendering username template "system:node:{{EC2PrivateDNSName}}": failed querying private DNS from EC2 API for node i-0abc123def4567890: UnauthorizedOperation"#,
        "template_error",
        None,
    ),
    (
        r#"failed mapping username: error rendering username template "system:node:{{EC2PrivateDNSName}}": failed querying private DNS from EC2 API for node i-0abc"#,
        "template_error",
        None,
    ),
    (
        "invalid username 'system:admin' for mapper MapperConfigMap: username must not begin with with the following prefixes: [system: eks: amazon: aws: iam:]",
        "reserved_username",
        None,
    ),
    (
        "sts getCallerIdentity failed: arn 'arn:aws-xx:sts::111122223333:assumed-role/dev/a' is invalid: arn 'arn:aws-xx:sts::111122223333:assumed-role/dev/a' does not have a recognized partition",
        "invalid_arn",
        None,
    ),
    ("sts getCallerIdentity failed: arn 'nonsense' is invalid", "invalid_arn", None),
    ("ARN does not match User ID", "stale_principal", None),
    ("something nobody has seen", "unknown", None),
    ("", "unknown", None),
];

fn denied_line(error: &str, arn: Option<&str>) -> String {
    let arn = arn.map_or(String::new(), |a| {
        format!("arn={} ", authlog::quote_value(a))
    });
    format!(
        "time=\"2022-12-28T15:37:19Z\" level=warning msg=\"access denied\" {arn}client=\"127.0.0.1:33384\" error={} method=POST path=/authenticate",
        authlog::quote_value(error)
    )
}

fn explain_json(input: &str) -> Vec<serde_json::Value> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eks-auth"))
        .args(["explain", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn eks-auth");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

#[test]
fn every_error_family_through_library_and_cli() {
    let lines: Vec<String> = ERRORS
        .iter()
        .map(|(e, _, _)| denied_line(e, None))
        .collect();
    for ((error, cause, code), line) in ERRORS.iter().zip(&lines) {
        let d = diagnosis::diagnose(&authlog::parse_line(line).unwrap());
        assert_eq!(d.cause.map(|c| c.as_str()), Some(*cause), "{error}");
        assert_eq!(d.sts_error_code.as_deref(), *code, "{error}");
    }
    let results = explain_json(&lines.join("\n"));
    assert_eq!(results.len(), ERRORS.len());
    for ((error, cause, code), v) in ERRORS.iter().zip(&results) {
        assert_eq!(v["outcome"], "denied", "{error}");
        assert_eq!(v["cause"], *cause, "{error}");
        assert_eq!(v["sts_error_code"].as_str(), *code, "{error}");
        assert!(v["summary"].as_str().unwrap().contains(cause), "{error}");
    }
}

#[test]
fn region_and_instance_evidence() {
    let line = denied_line(ERRORS[4].0, None);
    let d = diagnosis::diagnose(&authlog::parse_line(&line).unwrap());
    assert_eq!(d.region.as_deref(), Some("us-west-2"));
    let line = denied_line(ERRORS[25].0, Some("arn:aws:iam::444455556666:role/node"));
    let d = diagnosis::diagnose(&authlog::parse_line(&line).unwrap());
    assert_eq!(d.detail.as_deref(), Some("i-0abc123def4567890"));
    let line = denied_line(ERRORS[27].0, Some("arn:aws:iam::111122223333:role/admin"));
    let d = diagnosis::diagnose(&authlog::parse_line(&line).unwrap());
    assert_eq!(d.detail.as_deref(), Some("system:admin"));
    let line = denied_line(ERRORS[28].0, None);
    let d = diagnosis::diagnose(&authlog::parse_line(&line).unwrap());
    assert_eq!(
        d.principal.as_deref(),
        Some("arn:aws-xx:sts::111122223333:assumed-role/dev/a")
    );
}

const BASE: &str = r#"time="2022-12-28T15:37:19Z" level=warning msg="access denied" arn="arn:aws:sts::111122223333:assumed-role/Dev/alice@example.com" client="127.0.0.1:33384" error="ARN is not mapped" method=POST path=/authenticate"#;

fn wrapped() -> Vec<(&'static str, String)> {
    vec![
        ("plain logfmt", BASE.to_string()),
        (
            "docker json-file",
            serde_json::json!({"log": format!("{BASE}\n"), "stream": "stderr", "time": "2022-12-28T15:37:19.5Z"}).to_string(),
        ),
        (
            "kubectl logs --prefix",
            format!("[pod/aws-iam-authenticator-7x9kq/aws-iam-authenticator] {BASE}"),
        ),
        (
            "stern",
            format!("aws-iam-authenticator-ip-10-0-1-5.ec2.internal aws-iam-authenticator {BASE}"),
        ),
        ("kubectl logs --timestamps", format!("2022-12-28T15:37:19.123456789Z {BASE}")),
        (
            "insights csv",
            format!("\"2022-12-28 15:37:19.000\",\"{}\"", BASE.replace('"', "\"\"")),
        ),
        (
            "insights csv with stream",
            format!(
                "\"authenticator-0123456789abcdef0123456789abcdef\",\"2022-12-28 15:37:19.000\",\"{}\"",
                BASE.replace('"', "\"\"")
            ),
        ),
        ("console copy", format!("2022-12-28T15:37:19.000+00:00\n{BASE}")),
        ("console copy (space)", format!("2022-12-28 15:37:19.000\n{BASE}")),
        (
            "logrus tty",
            "WARN[2022-12-28T15:37:19Z] access denied                                 arn=\"arn:aws:sts::111122223333:assumed-role/Dev/alice@example.com\" client=\"127.0.0.1:33384\" error=\"ARN is not mapped\" method=POST path=/authenticate".to_string(),
        ),
        (
            "logrus tty relative time",
            "WARN[0042] access denied                                 arn=\"arn:aws:sts::111122223333:assumed-role/Dev/alice@example.com\" error=\"ARN is not mapped\"".to_string(),
        ),
        (
            "json formatter",
            r#"{"arn":"arn:aws:sts::111122223333:assumed-role/Dev/alice@example.com","client":"127.0.0.1:33384","error":"ARN is not mapped","level":"warning","method":"POST","msg":"access denied","path":"/authenticate","time":"2022-12-28T15:37:19Z"}"#.to_string(),
        ),
        ("crlf", format!("{BASE}\r")),
    ]
}

#[test]
fn every_wrapper_through_cli() {
    let cases = wrapped();
    let input: Vec<String> = cases.iter().map(|(_, l)| l.clone()).collect();
    let results = explain_json(&input.join("\n"));
    assert_eq!(results.len(), cases.len());
    for ((name, _), v) in cases.iter().zip(&results) {
        assert_eq!(v["outcome"], "denied", "{name}: {v}");
        assert_eq!(v["cause"], "not_mapped", "{name}");
        assert_eq!(
            v["principal"], "arn:aws:iam::111122223333:role/Dev",
            "{name}: assumed role canonicalised"
        );
    }
}

#[test]
fn other_outcomes_name_canonical_principals() {
    let lines = [
        r#"time="2022-12-28T15:40:00Z" level=info msg="STS response" accesskeyid=ASIAEXAMPLE accountid=111122223333 arn="arn:aws:sts::111122223333:assumed-role/admin/alice" client="127.0.0.1:1" method=POST path=/authenticate session=alice sts=sts.amazonaws.com userid=AROAEXAMPLE"#,
        r#"time="2022-12-28T15:40:00Z" level=info msg="access granted" arn="arn:aws:iam::111122223333:role/admin" client="127.0.0.1:1" groups="[system:masters]" method=POST path=/authenticate uid="heptio-authenticator-aws:111122223333:AROAEXAMPLE" username=kubernetes-admin"#,
        r#"time="2022-12-28T15:40:00Z" level=warning msg="Errors parsing configmap: [yaml: line 2: mapping values are not allowed in this context]""#,
        r#"time="2022-12-28T15:40:00Z" level=info msg="listening on https://127.0.0.1:21362/authenticate""#,
        "this is not a log line",
    ];
    let results = explain_json(&lines.join("\n"));
    let outcomes: Vec<&str> = results
        .iter()
        .map(|v| v["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(
        outcomes,
        [
            "sts_response",
            "granted",
            "config_error",
            "other",
            "unparsed"
        ]
    );
    assert_eq!(
        results[0]["principal"],
        "arn:aws:iam::111122223333:role/admin"
    );
    assert_eq!(results[0]["region"], "us-east-1");
    assert_eq!(
        results[1]["principal"],
        "arn:aws:iam::111122223333:role/admin"
    );
    for v in &results {
        assert!(v["cause"].is_null());
    }
}

#[test]
fn explain_prose_has_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_eks-auth"))
        .args([
            "explain",
            "--cluster",
            "prod",
            "--region",
            "eu-west-1",
            BASE,
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("What to do:"), "{text}");
    assert!(text.contains(
        "eksctl create iamidentitymapping --cluster prod --region eu-west-1 --arn arn:aws:iam::111122223333:role/Dev"
    ));
    assert!(
        text.contains("aws eks update-kubeconfig --name prod --region eu-west-1")
            || text.contains("aws sts get-caller-identity")
    );
}
