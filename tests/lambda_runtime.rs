//! The Lambda binary against a local Lambda Runtime API (the same HTTP protocol Lambda and
//! `cargo lambda watch` serve): a sample event gets the handler's response; an undecodable event
//! is reported as a `NonRetryable.DecodeError` invocation error, so Lambda's retries and the
//! on-failure destination take over.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// What the function posted back for one invocation.
#[derive(Debug)]
struct Reply {
    request_id: String,
    kind: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

type Request = (String, String, Vec<(String, String)>, Vec<u8>);

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    let get = |k: &str| headers.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(len) = get("content-length").and_then(|l| l.parse::<usize>().ok()) {
        body.resize(len, 0);
        r.read_exact(&mut body).ok()?;
    } else if get("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some((method, path, headers, body))
}

fn serve(conn: TcpStream, events: &mut VecDeque<(String, Vec<u8>)>, tx: &mpsc::Sender<Reply>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    while let Some((method, path, headers, body)) = read_request(&mut reader) {
        if method == "GET" && path.ends_with("/runtime/invocation/next") {
            let Some((id, payload)) = events.pop_front() else {
                // No more work: keep the function waiting until the test kills it.
                std::thread::sleep(Duration::from_secs(30));
                return;
            };
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                + 30_000;
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nlambda-runtime-aws-request-id: {id}\r\nlambda-runtime-deadline-ms: {deadline}\r\nlambda-runtime-invoked-function-arn: arn:aws:lambda:eu-west-1:111122223333:function:eks-auth-remediator\r\nlambda-runtime-trace-id: Root=1-5759e988-bd862e3fe1be46a994272793\r\ncontent-length: {}\r\n\r\n",
                payload.len()
            );
            conn.write_all(head.as_bytes()).unwrap();
            conn.write_all(&payload).unwrap();
        } else if method == "POST" {
            // /2018-06-01/runtime/invocation/{id}/response or .../error
            let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
            let (request_id, kind) = match segs.as_slice() {
                [_, "runtime", "invocation", id, kind] => (id.to_string(), kind.to_string()),
                _ => ("".into(), path.clone()),
            };
            conn.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n{}")
                .unwrap();
            tx.send(Reply {
                request_id,
                kind,
                headers,
                body,
            })
            .unwrap();
        } else {
            conn.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .unwrap();
        }
    }
}

#[test]
fn lambda_binary_answers_the_runtime_api() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let sample =
        std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("events/not-mapped.json"))
            .unwrap();
    let mut events: VecDeque<(String, Vec<u8>)> = VecDeque::from([
        ("req-good".to_string(), sample),
        (
            "req-bad".to_string(),
            br#"{"awslogs":{"data":"not base64!"}}"#.to_vec(),
        ),
    ]);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            serve(conn, &mut events, &tx);
        }
    });
    let mut child = Command::new(env!("CARGO_BIN_EXE_eks-auth-remediator"))
        .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
        .env("AWS_LAMBDA_FUNCTION_NAME", "eks-auth-remediator")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_REGION", "eu-west-1")
        .env("EKS_AUTH_OFFLINE", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    let good = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("response to the sample event");
    let bad = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("error for the bad event");
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    let logs = String::from_utf8_lossy(&out.stdout);

    assert_eq!(good.request_id, "req-good");
    assert_eq!(good.kind, "response");
    let resp: Value = serde_json::from_slice(&good.body).unwrap();
    assert_eq!(resp["findings"][0]["cause"], "not_mapped");
    assert_eq!(
        resp["findings"][0]["region"], "eu-west-1",
        "region from the Lambda environment"
    );
    assert_eq!(resp["tickets"].as_array().unwrap().len(), 3);

    assert_eq!(bad.request_id, "req-bad");
    assert_eq!(bad.kind, "error");
    let err: Value = serde_json::from_slice(&bad.body).unwrap();
    assert_eq!(err["errorType"], "NonRetryable.DecodeError");
    assert!(
        err["errorMessage"]
            .as_str()
            .unwrap()
            .contains("awslogs.data base64"),
        "{err}"
    );
    assert!(bad
        .headers
        .iter()
        .any(|(k, _)| k == "lambda-runtime-function-error-type"));

    // AWS_LAMBDA_LOG_FORMAT=JSON: structured log lines, tickets among them.
    let json_lines: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(!json_lines.is_empty(), "no JSON logs in: {logs}");
    assert!(
        json_lines
            .iter()
            .any(|l| l["fields"]["message"] == "ticket"),
        "{logs}"
    );
}
