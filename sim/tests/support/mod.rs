//! Shared test helpers: a moto server (MOTO_ENDPOINT, or one started here), IAM/STS calls over
//! moto's Query API signed with `eks_sim::sigv4`, a SigV4 query presigner for `k8s-aws-v1.`
//! tokens, kubeconfig files, kubectl, and a tiny programmable STS stub.
#![allow(dead_code)]

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use eks_sim::client::HttpClient;
use eks_sim::sigv4::{self, Creds};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub const REGION: &str = "us-west-2";
pub const ACCOUNT: &str = "123456789012";

/// A moto server for this test binary.
pub struct Moto {
    pub endpoint: String,
    /// The watchdog shell that owns a moto we started (it stops moto when this process exits).
    _child: Option<Child>,
}

static MOTO: OnceLock<Moto> = OnceLock::new();

/// `MOTO_ENDPOINT` if set, else a `moto_server` started once for this test binary. Panics
/// (fails the test loudly) when moto cannot be started.
pub fn moto() -> &'static Moto {
    MOTO.get_or_init(|| {
        if let Ok(ep) = std::env::var("MOTO_ENDPOINT") {
            if !ep.is_empty() {
                wait_for_port(&ep, Duration::from_secs(30))
                    .unwrap_or_else(|e| panic!("MOTO_ENDPOINT={ep} is not reachable: {e}"));
                return Moto { endpoint: ep.trim_end_matches('/').to_string(), _child: None };
            }
        }
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
            l.local_addr().expect("local addr").port()
        };
        let log = std::env::temp_dir().join(format!("eks-sim-moto-{}-{port}.log", std::process::id()));
        // moto stops when this test process does: the shell polls our pid.
        let script = format!(
            "moto_server -H 127.0.0.1 -p {port} >{log} 2>&1 & m=$!; \
             while kill -0 {pid} 2>/dev/null && kill -0 $m 2>/dev/null; do sleep 0.5; done; kill $m 2>/dev/null; wait $m",
            log = log.display(),
            pid = std::process::id()
        );
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&script)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start moto_server (pip install 'moto[server]'): {e}"));
        let endpoint = format!("http://127.0.0.1:{port}");
        let start = Instant::now();
        while let Err(e) = wait_for_port(&endpoint, Duration::from_millis(200)) {
            // The watchdog shell ends as soon as moto does: no point waiting any longer.
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            if exited || start.elapsed() > Duration::from_secs(60) {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                panic!("moto_server did not start on {endpoint} ({e}); is moto[server] installed (pip install 'moto[server]')? log:\n{text}");
            }
        }
        Moto { endpoint, _child: Some(child) }
    })
}

fn wait_for_port(endpoint: &str, limit: Duration) -> Result<(), String> {
    let hostport = endpoint
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string();
    let start = Instant::now();
    loop {
        match TcpStream::connect(&hostport) {
            Ok(_) => return Ok(()),
            Err(e) if start.elapsed() > limit => return Err(e.to_string()),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A name unique to this process and call.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Admin credentials for moto's default account.
pub fn admin_creds() -> Creds {
    Creds {
        access_key: "AKIAIOSFODNN7EXAMPLE".into(),
        secret_key: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        session_token: None,
    }
}

/// An AWS SDK configuration acting as `creds` in [`REGION`], over plain HTTP (moto and the
/// simulator); callers set the endpoint.
pub fn sdk_config(creds: &Creds) -> aws_config::SdkConfig {
    use aws_credential_types::provider::SharedCredentialsProvider;
    aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(
            aws_credential_types::Credentials::new(
                creds.access_key.clone(),
                creds.secret_key.clone(),
                creds.session_token.clone(),
                None,
                "test",
            ),
        ))
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .build()
}

fn enc(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

/// A Query API call (IAM, STS) to moto; returns status and body.
pub async fn query_api(
    service: &str,
    version: &str,
    creds: &Creds,
    params: &[(&str, &str)],
) -> (u16, String) {
    let ep = &moto().endpoint;
    let mut all: Vec<(String, String)> = vec![("Version".into(), version.into())];
    all.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let body: String = all
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let host = ep.trim_start_matches("http://").to_string();
    let headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
        ("host".to_string(), host),
    ];
    let region = if service == "iam" {
        "us-east-1"
    } else {
        REGION
    };
    let mut h = headers.clone();
    h.extend(sigv4::sign(
        "POST",
        "/",
        "",
        &headers,
        body.as_bytes(),
        region,
        service,
        creds,
        unix_now(),
    ));
    let reply = HttpClient::default()
        .send("POST", &format!("{ep}/"), &h, body.into_bytes())
        .await
        .unwrap_or_else(|e| panic!("moto {service} call failed: {e}"));
    (
        reply.status,
        String::from_utf8_lossy(&reply.body).into_owned(),
    )
}

pub fn xml(body: &str, tag: &str) -> String {
    eks_sim::sts::xml_field(body, tag).unwrap_or_else(|| panic!("no <{tag}> in {body}"))
}

async fn iam(params: &[(&str, &str)]) -> String {
    let (status, body) = query_api("iam", "2010-05-08", &admin_creds(), params).await;
    assert_eq!(status, 200, "IAM {params:?}: {body}");
    body
}

/// An IAM entity in moto.
#[derive(Debug, Clone)]
pub struct Principal {
    pub arn: String,
    pub unique_id: String,
    pub name: String,
}

pub async fn create_user(name: &str) -> Principal {
    let body = iam(&[("Action", "CreateUser"), ("UserName", name)]).await;
    Principal {
        arn: xml(&body, "Arn"),
        unique_id: xml(&body, "UserId"),
        name: name.into(),
    }
}

pub async fn create_access_key(user: &str) -> Creds {
    let body = iam(&[("Action", "CreateAccessKey"), ("UserName", user)]).await;
    Creds {
        access_key: xml(&body, "AccessKeyId"),
        secret_key: xml(&body, "SecretAccessKey"),
        session_token: None,
    }
}

pub async fn delete_access_key(user: &str, key: &str) {
    iam(&[
        ("Action", "DeleteAccessKey"),
        ("UserName", user),
        ("AccessKeyId", key),
    ])
    .await;
}

pub async fn delete_user(user: &str) {
    iam(&[("Action", "DeleteUser"), ("UserName", user)]).await;
}

/// A user with an access key.
pub async fn user_with_key(prefix: &str) -> (Principal, Creds) {
    let name = unique(prefix);
    let p = create_user(&name).await;
    let k = create_access_key(&name).await;
    (p, k)
}

pub async fn create_role(name: &str, path: &str) -> Principal {
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    let body = iam(&[
        ("Action", "CreateRole"),
        ("RoleName", name),
        ("Path", path),
        ("AssumeRolePolicyDocument", &trust),
    ])
    .await;
    Principal {
        arn: xml(&body, "Arn"),
        unique_id: xml(&body, "RoleId"),
        name: name.into(),
    }
}

/// STS AssumeRole: session credentials.
pub async fn assume_role(creds: &Creds, role_arn: &str, session: &str) -> Creds {
    let (status, body) = query_api(
        "sts",
        "2011-06-15",
        creds,
        &[
            ("Action", "AssumeRole"),
            ("RoleArn", role_arn),
            ("RoleSessionName", session),
        ],
    )
    .await;
    assert_eq!(status, 200, "AssumeRole: {body}");
    Creds {
        access_key: xml(&body, "AccessKeyId"),
        secret_key: xml(&body, "SecretAccessKey"),
        session_token: Some(xml(&body, "SessionToken")),
    }
}

// ---- tokens ---------------------------------------------------------------------------

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hmac(key: &[u8], data: &str) -> Vec<u8> {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("hmac key");
    m.update(data.as_bytes());
    m.finalize().into_bytes().to_vec()
}

/// The presigned `GET https://<host>/?Action=GetCallerIdentity...` URL a token wraps, signed over
/// `host` and `x-k8s-aws-id: <cluster>` (what aws-iam-authenticator and `aws eks get-token` make).
pub fn presign(
    creds: &Creds,
    region: &str,
    cluster: &str,
    unix: u64,
    host: &str,
    expires: u32,
) -> String {
    let date = sigv4::amz_date(unix);
    let day = &date[..8];
    let scope = format!("{day}/{region}/sts/aws4_request");
    let mut params: Vec<(String, String)> = vec![
        ("Action".into(), "GetCallerIdentity".into()),
        ("Version".into(), "2011-06-15".into()),
        ("X-Amz-Algorithm".into(), "AWS4-HMAC-SHA256".into()),
        (
            "X-Amz-Credential".into(),
            format!("{}/{scope}", creds.access_key),
        ),
        ("X-Amz-Date".into(), date.clone()),
        ("X-Amz-Expires".into(), expires.to_string()),
        ("X-Amz-SignedHeaders".into(), "host;x-k8s-aws-id".into()),
    ];
    if let Some(t) = &creds.session_token {
        params.push(("X-Amz-Security-Token".into(), t.clone()));
    }
    params.sort();
    let query: String = params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&");
    let canonical = format!(
        "GET\n/\n{query}\nhost:{host}\nx-k8s-aws-id:{cluster}\n\nhost;x-k8s-aws-id\n{}",
        hex(&Sha256::digest(b""))
    );
    let to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        hex(&Sha256::digest(canonical.as_bytes()))
    );
    let k = hmac(format!("AWS4{}", creds.secret_key).as_bytes(), day);
    let k = hmac(&k, region);
    let k = hmac(&k, "sts");
    let k = hmac(&k, "aws4_request");
    let sig = hex(&hmac(&k, &to_sign));
    format!("https://{host}/?{query}&X-Amz-Signature={sig}")
}

/// `k8s-aws-v1.` + base64url without padding.
pub fn token_of(url: &str) -> String {
    format!(
        "k8s-aws-v1.{}",
        eks_sim::token::raw_url_b64_encode(url.as_bytes())
    )
}

/// A fresh token for `cluster` from these credentials.
pub fn token(creds: &Creds, cluster: &str) -> String {
    token_of(&presign(
        creds,
        REGION,
        cluster,
        unix_now(),
        &format!("sts.{REGION}.amazonaws.com"),
        60,
    ))
}

/// `aws eks get-token` (AWS CLI v1) with these credentials.
pub fn cli_token(creds: &Creds, cluster: &str) -> String {
    let mut cmd = Command::new("aws");
    cmd.args([
        "eks",
        "get-token",
        "--cluster-name",
        cluster,
        "--region",
        REGION,
        "--output",
        "json",
    ])
    .env("AWS_ACCESS_KEY_ID", &creds.access_key)
    .env("AWS_SECRET_ACCESS_KEY", &creds.secret_key)
    .env("AWS_CONFIG_FILE", "/dev/null")
    .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    .env_remove("AWS_PROFILE")
    .env_remove("AWS_ENDPOINT_URL")
    .env_remove("AWS_ENDPOINT_URL_STS");
    match &creds.session_token {
        Some(t) => cmd.env("AWS_SESSION_TOKEN", t),
        None => cmd.env_remove("AWS_SESSION_TOKEN"),
    };
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run `aws` (pip install awscli): {e}"));
    assert!(
        out.status.success(),
        "aws eks get-token failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ExecCredential JSON");
    v["status"]["token"]
        .as_str()
        .expect("status.token")
        .to_string()
}

// ---- files and kubectl ----------------------------------------------------------------

/// A per-test scratch directory.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(&format!("eks-sim-{name}")));
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write file");
    p
}

pub const KUBECTL: &str = "/usr/bin/kubectl";

/// Output of one kubectl run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs kubectl with a kubeconfig and a private cache/home. Panics when kubectl is missing.
pub async fn kubectl(dir: &Path, kubeconfig: &Path, args: &[&str]) -> Run {
    kubectl_env(dir, kubeconfig, args, &[]).await
}

/// [`kubectl`] with extra environment variables (for the exec plugin).
pub async fn kubectl_env(
    dir: &Path,
    kubeconfig: &Path,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    assert!(
        Path::new(KUBECTL).exists(),
        "{KUBECTL} is missing: install kubectl (Debian package kubernetes-client)"
    );
    let mut cmd = Command::new(KUBECTL);
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--cache-dir")
        .arg(dir.join("kube-cache"))
        .args(args)
        .env("HOME", dir)
        .env_remove("KUBECONFIG")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    // kubectl talks to the simulator in this process: run it off the async threads.
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || cmd.output()),
    )
    .await
    .expect("kubectl timed out")
    .expect("join kubectl")
    .expect("run kubectl");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A kube client from the simulator's kubeconfig for a static token.
pub async fn kube_client(sim: &eks_sim::Simulator, cluster: &str, token: &str) -> kube::Client {
    let yaml = sim
        .kubeconfig(cluster, Some(token))
        .expect("cluster exists");
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig parses");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .expect("kube config");
    kube::Client::try_from(cfg).expect("kube client")
}

/// The authenticator lines containing `needle` (lines are written before the response is sent).
pub fn lines_with(sim: &eks_sim::Simulator, needle: &str) -> Vec<String> {
    sim.authlog()
        .into_iter()
        .filter(|l| l.contains(needle))
        .collect()
}

// ---- a programmable STS stub ----------------------------------------------------------

/// One request the stub saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub uri: String,
    pub headers: Vec<(String, String)>,
}

/// A plain-HTTP server answering every request with a fixed status and body, recording requests.
pub struct StsStub {
    pub endpoint: String,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    pub reply: Arc<Mutex<(u16, String)>>,
}

impl StsStub {
    pub async fn start(status: u16, body: &str) -> StsStub {
        use http_body_util::Full;
        use hyper_util::rt::TokioIo;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind stub");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let reply = Arc::new(Mutex::new((status, body.to_string())));
        let (s2, r2) = (seen.clone(), reply.clone());
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s3, r3) = (s2.clone(), r2.clone());
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(
                        move |req: http::Request<hyper::body::Incoming>| {
                            let (s4, r4) = (s3.clone(), r3.clone());
                            async move {
                                s4.lock().unwrap().push(Seen {
                                    method: req.method().to_string(),
                                    uri: req.uri().to_string(),
                                    headers: req
                                        .headers()
                                        .iter()
                                        .map(|(k, v)| {
                                            (k.to_string(), v.to_str().unwrap_or("").to_string())
                                        })
                                        .collect(),
                                });
                                let (st, body) = r4.lock().unwrap().clone();
                                Ok::<_, std::convert::Infallible>(
                                    http::Response::builder()
                                        .status(st)
                                        .header("content-type", "application/json")
                                        .body(Full::new(bytes::Bytes::from(body)))
                                        .unwrap(),
                                )
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        StsStub {
            endpoint,
            seen,
            reply,
        }
    }

    pub fn set(&self, status: u16, body: &str) {
        *self.reply.lock().unwrap() = (status, body.to_string());
    }
}

/// STS's JSON GetCallerIdentity answer.
pub fn sts_json(arn: &str, user_id: &str) -> String {
    format!(
        r#"{{"GetCallerIdentityResponse":{{"GetCallerIdentityResult":{{"Account":"{ACCOUNT}","Arn":"{arn}","UserId":"{user_id}"}},"ResponseMetadata":{{"RequestId":"00000000-0000-0000-0000-000000000000"}}}}}}"#
    )
}

/// A kube client like [`kube_client`], with kube's default retries of 429/503/504 on or off.
pub async fn kube_client_retry(
    sim: &eks_sim::Simulator,
    cluster: &str,
    token: &str,
    retry: bool,
) -> kube::Client {
    let yaml = sim
        .kubeconfig(cluster, Some(token))
        .expect("cluster exists");
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig parses");
    let mut cfg =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .expect("kube config");
    cfg.default_retry = retry;
    kube::Client::try_from(cfg).expect("kube client")
}

/// One HTTPS request to a cluster endpoint with exactly these headers (no client library).
pub async fn raw_https(
    sim: &eks_sim::Simulator,
    cluster: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, http::HeaderMap, String) {
    use base64::Engine;
    use http_body_util::{BodyExt, Full};
    use hyper_util::rt::TokioIo;
    let info = sim.cluster(cluster).expect("cluster");
    let der: String = info
        .ca_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(der)
        .expect("CA PEM");
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(der))
        .expect("CA cert");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let addr = info.endpoint.trim_start_matches("https://").to_string();
    let tcp = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").expect("server name");
    let stream = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .expect("TLS handshake");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("http handshake");
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.as_str());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(
            req.body(Full::new(bytes::Bytes::copy_from_slice(body)))
                .expect("request"),
        )
        .await
        .expect("response");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, String::from_utf8_lossy(&body).into_owned())
}
