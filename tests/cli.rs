//! The CLI end to end: every sample event through `invoke`, `event` -> `invoke` round trips for
//! every shape, exit statuses, and the gzip bomb's memory bound.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

fn eks_auth(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_eks-auth"))
        .args(args)
        .env("EKS_AUTH_OFFLINE", "true")
        .env_remove("AWS_REGION")
        .env_remove("AWS_DEFAULT_REGION")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn eks-auth");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(data) = stdin {
        pipe.write_all(data).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn invoke_file(path: &Path) -> Value {
    let out = eks_auth(&["invoke", path.to_str().unwrap(), "--offline"], None);
    assert!(
        out.status.success(),
        "{}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn events_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("events")
}

fn causes(resp: &Value) -> Vec<String> {
    resp["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["cause"].as_str().unwrap_or("config_error").to_string())
        .collect()
}

#[test]
fn every_sample_event() {
    let per_cause = [
        ("not-mapped", "not_mapped"),
        ("invalid-client-token", "invalid_client_token"),
        ("expired-token", "expired_token"),
        ("signature-mismatch", "signature_mismatch"),
        ("sts-rejected", "sts_rejected"),
        ("sts-throttled", "sts_throttled"),
        ("sts-unreachable", "sts_unreachable"),
        ("token-expired", "token_expired"),
        ("malformed-token", "malformed_token"),
        ("template-error", "template_error"),
        ("reserved-username", "reserved_username"),
        ("invalid-arn", "invalid_arn"),
        ("stale-principal", "stale_principal"),
        ("unknown", "unknown"),
        ("config-error", "config_error"),
    ];
    for (name, cause) in per_cause {
        let resp = invoke_file(&events_dir().join(format!("{name}.json")));
        assert_eq!(resp["source"], "subscription");
        assert_eq!(resp["clusters"], serde_json::json!(["prod"]));
        let got = causes(&resp);
        assert!(
            !got.is_empty() && got.iter().all(|c| c == cause),
            "{name}: {got:?}"
        );
        assert_eq!(resp["stats"]["unparsed"], 0, "{name}");
        let actions = resp["actions"].as_array().unwrap();
        assert_eq!(actions.len(), got.len());
        if cause == "sts_throttled" {
            assert!(actions
                .iter()
                .all(|a| a["kind"] == "none" && a["status"] == "skipped"));
            assert!(resp["tickets"].as_array().unwrap().is_empty());
        } else {
            // Every denial that is not remediated ends in a ticket.
            let tickets = resp["tickets"].as_array().unwrap();
            assert_eq!(tickets.len(), got.len(), "{name}");
            for (a, t) in actions.iter().zip(tickets) {
                assert_eq!(a["kind"], "ticket");
                assert_eq!(a["ticket_id"], t["id"]);
                assert_eq!(t["schema_version"], "1.0");
                assert_eq!(t["cluster"], "prod");
                assert_eq!(t["account"], "111122223333");
                assert!(!t["recommended_commands"].as_array().unwrap().is_empty());
            }
        }
    }
    let nm = invoke_file(&events_dir().join("not-mapped.json"));
    let principals: Vec<&str> = nm["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["principal"].as_str().unwrap())
        .collect();
    assert_eq!(
        principals,
        [
            "arn:aws:iam::111122223333:role/developer",
            "arn:aws:iam::111122223333:role/AWSReservedSSO_PowerUser_0123456789abcdef",
            "arn:aws:iam::111122223333:user/ci-deployer"
        ]
    );
    assert_eq!(nm["findings"][0]["count"], 2);

    for quiet in ["granted", "other"] {
        let resp = invoke_file(&events_dir().join(format!("{quiet}.json")));
        assert!(resp["findings"].as_array().unwrap().is_empty(), "{quiet}");
        assert!(resp["stats"]["parsed"].as_u64().unwrap() > 0);
    }
    let ctl = invoke_file(&events_dir().join("control-message.json"));
    assert_eq!(ctl["control_message"], true);
    assert_eq!(ctl["stats"]["events"], 0);

    let wrappers = invoke_file(&events_dir().join("wrappers.json"));
    assert_eq!(causes(&wrappers), ["not_mapped"]);
    assert_eq!(wrappers["findings"][0]["count"], 6);

    let kinesis = invoke_file(&events_dir().join("kinesis-cross-account.json"));
    let mixed = invoke_file(&events_dir().join("mixed.json"));
    let decoded = invoke_file(&events_dir().join("decoded-mixed.json"));
    assert_eq!(kinesis["source"], "kinesis");
    assert_eq!(decoded["source"], "decoded");
    assert_eq!(kinesis["findings"], mixed["findings"]);
    assert_eq!(decoded["findings"], mixed["findings"]);
    assert_eq!(kinesis["tickets"], mixed["tickets"]);

    let manual = invoke_file(&events_dir().join("manual.json"));
    assert_eq!(manual["source"], "manual");
    assert_eq!(manual["findings"][0]["region"], "eu-west-1");
    assert_eq!(
        manual["tickets"][0]["aws_auth_arn"],
        "arn:aws:iam::111122223333:role/gitlab-runner"
    );
}

#[test]
fn event_then_invoke_round_trips_every_shape() {
    let lines = std::fs::read(events_dir().join("lines/mixed.log")).unwrap();
    let mut results = Vec::new();
    for shape in ["subscription", "kinesis", "decoded", "manual"] {
        let ev = eks_auth(
            &[
                "event",
                "--cluster",
                "staging",
                "--region",
                "ap-south-1",
                "--format",
                shape,
                "-",
            ],
            Some(&lines),
        );
        assert!(
            ev.status.success(),
            "{}",
            String::from_utf8_lossy(&ev.stderr)
        );
        let out = eks_auth(&["invoke", "-", "--offline"], Some(&ev.stdout));
        assert!(
            out.status.success(),
            "{shape}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let resp: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(resp["clusters"], serde_json::json!(["staging"]), "{shape}");
        assert_eq!(resp["stats"]["events"], 5, "{shape}");
        assert_eq!(resp["stats"]["parsed"], 5, "{shape}");
        assert_eq!(
            causes(&resp),
            ["not_mapped", "expired_token", "token_expired"],
            "{shape}"
        );
        results.push(resp);
    }
    // The same lines give the same ticket ids whatever the shape: ticket systems can dedupe.
    let ids = |r: &Value| -> Vec<String> {
        r["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    };
    for r in &results[1..] {
        assert_eq!(ids(r), ids(&results[0]));
    }
}

#[test]
fn redelivered_event_counts_once() {
    // The same batch twice in one Kinesis event (a redelivery): ids dedupe.
    let sub: Value = serde_json::from_slice(
        &std::fs::read(events_dir().join("kinesis-cross-account.json")).unwrap(),
    )
    .unwrap();
    let rec = sub["Records"][0].clone();
    let doubled = serde_json::json!({"Records": [rec.clone(), rec]});
    let out = eks_auth(
        &["invoke", "-", "--offline"],
        Some(doubled.to_string().as_bytes()),
    );
    assert!(out.status.success());
    let resp: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(resp["stats"]["events"], 10);
    assert_eq!(resp["stats"]["duplicates"], 5);
    assert_eq!(resp["findings"][0]["count"], 2);
}

#[test]
fn bad_input_exits_2_with_one_line_naming_the_layer() {
    let cases: &[(&[u8], &str)] = &[
        (b"{", "event: invalid JSON"),
        (br#"{"awslogs":{"data":"%%%"}}"#, "awslogs.data base64"),
        (br#"{"awslogs":{"data":"aGVsbG8="}}"#, "awslogs.data gzip"),
        (br#"{"hello":1}"#, "unrecognised event"),
    ];
    for (input, want) in cases {
        let out = eks_auth(&["invoke", "-", "--offline"], Some(input));
        assert_eq!(out.status.code(), Some(2), "{want}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(want), "{err}");
        assert!(out.stdout.is_empty());
    }
    let out = eks_auth(&["invoke", "/nonexistent/event.json", "--offline"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/event.json"));
    let policy = events_dir().join("manual.json");
    let out = eks_auth(
        &["invoke", policy.to_str().unwrap(), "--policy", "p.yaml"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("p.yaml"));
    let out = eks_auth(&["explain"], Some(b""));
    assert_eq!(out.status.code(), Some(2));
}

/// `invoke` acts as the role `EKS_AUTH_REMEDIATION_ROLE_ARN` names, as the Lambda function
/// does: a value that is not a role ARN is refused before any call to AWS.
#[test]
fn invoke_refuses_a_remediation_role_that_is_not_a_role_arn() {
    let event = events_dir().join("manual.json");
    let out = Command::new(env!("CARGO_BIN_EXE_eks-auth"))
        .args(["invoke", event.to_str().unwrap()])
        .env_remove("EKS_AUTH_OFFLINE")
        .env_remove("EKS_AUTH_POLICY")
        .env_remove("EKS_AUTH_POLICY_FILE")
        .env("AWS_REGION", "eu-west-1")
        .env(
            "EKS_AUTH_REMEDIATION_ROLE_ARN",
            "arn:aws:iam::111122223333:user/alice",
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("EKS_AUTH_REMEDIATION_ROLE_ARN"), "{err}");
    assert!(out.stdout.is_empty());
}

#[test]
fn markdown_tickets() {
    let out = eks_auth(
        &[
            "invoke",
            events_dir().join("not-mapped.json").to_str().unwrap(),
            "--markdown",
        ],
        None,
    );
    assert!(out.status.success());
    let md = String::from_utf8(out.stdout).unwrap();
    assert_eq!(md.matches("\n## Diagnosis").count(), 3);
    assert!(md.contains("```sh"));
}

/// A 1 GB gzip bomb wrapped as a subscription event: a clear error, bounded memory.
#[test]
fn gzip_bomb_is_refused_with_bounded_memory() {
    use base64::Engine;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        enc.write_all(&zeros).unwrap();
    }
    let gz = enc.finish().unwrap();
    assert!(gz.len() < 2 << 20, "bomb is {} bytes compressed", gz.len());
    let event = serde_json::json!({"awslogs": {"data": base64::engine::general_purpose::STANDARD.encode(&gz)}});
    let path = std::env::temp_dir().join(format!("eks-auth-bomb-{}.json", std::process::id()));
    std::fs::write(&path, event.to_string()).unwrap();

    // Reaped with wait4 below to read this child's own peak RSS.
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_eks-auth"))
        .args(["invoke", path.to_str().unwrap(), "--offline"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    let mut status = 0;
    // SAFETY: plain FFI; `usage` is a valid out-pointer and `pid` our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let _ = std::fs::remove_file(&path);
    assert_eq!(waited, pid);
    assert!(libc::WIFEXITED(status));
    assert_eq!(libc::WEXITSTATUS(status), 2, "{err}");
    assert!(
        err.contains("awslogs.data gzip: decompressed data exceeds the 33554432-byte limit"),
        "{err}"
    );
    let peak_mb = usage.ru_maxrss as f64 / 1024.0;
    assert!(peak_mb < 100.0, "peak RSS {peak_mb:.1} MB");
    eprintln!("gzip bomb: peak RSS {peak_mb:.1} MB");
}
