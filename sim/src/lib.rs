//! eks-sim: a local EKS control plane for tests.
//!
//! - the EKS management API subset (access entries, access policies, DescribeCluster,
//!   UpdateClusterConfig's accessConfig) as REST-JSON that the unmodified AWS SDKs speak;
//! - per cluster, a Kubernetes API subset over HTTPS (ConfigMaps, `/version`, discovery,
//!   SelfSubjectAccessReview) with a generated CA;
//! - authentication like EKS: `k8s-aws-v1.` tokens validated as the aws-iam-authenticator does,
//!   replayed against STS (moto), mapped through access entries and aws-auth, every decision
//!   written as an authenticator log line (memory, file, CloudWatch Logs);
//! - fault injection and write counters for reliability tests.
//!
//! Use it in-process ([`Simulator::start`]) or as the `eks-sim` binary.

pub mod authlog;
pub mod authn;
pub mod civil;
pub mod client;
pub mod config;
pub mod control;
pub mod eks_api;
pub mod faults;
pub mod k8s_api;
pub mod sigv4;
pub mod state;
pub mod sts;
pub mod tls;
pub mod token;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{
    AccessEntryConfig, AuthMode, ClusterConfig, PolicyConfig, SimConfig, StsConfig, StsMode,
};
pub use faults::{Fault, Rule, Target};
pub use state::Counters;

/// The response type of every handler.
pub type HttpResponse = http::Response<Full<Bytes>>;

/// Returned by a handler to close the connection without answering (the `drop` fault).
#[derive(Debug, thiserror::Error)]
#[error("connection dropped by fault injection")]
pub struct Dropped;

/// Largest request body accepted.
pub const MAX_BODY: usize = 8 << 20;

/// Everything the handlers share.
pub struct Shared {
    pub config: SimConfig,
    state: Mutex<State>,
    pub tls: tls::Tls,
    pub http: client::HttpClient,
    pub sinks: authlog::Sinks,
    logs_created: tokio::sync::Mutex<BTreeSet<String>>,
}

pub use state::State;

impl Shared {
    /// Locks the state. A poisoned lock (a panicking handler) is recovered: the data is plain.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A kubeconfig for a cluster: static `token`, or the `aws eks get-token` exec plugin.
    pub fn kubeconfig(&self, cluster: &str, token: Option<&str>) -> Option<String> {
        let endpoint = self.state().clusters.get(cluster)?.endpoint.clone();
        let ca = self.tls.ca_data();
        let user = match token {
            Some(t) => format!("    token: {t}\n"),
            None => format!(
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: aws\n      args: [eks, get-token, --cluster-name, {cluster}, --region, {}]\n      interactiveMode: Never\n",
                self.config.region
            ),
        };
        Some(format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster}\n  cluster:\n    server: {endpoint}\n    certificate-authority-data: {ca}\ncontexts:\n- name: {cluster}\n  context:\n    cluster: {cluster}\n    user: {cluster}\ncurrent-context: {cluster}\nusers:\n- name: {cluster}\n  user:\n{user}"
        ))
    }

    /// Records an authenticator line for a cluster and sends it to the configured sinks.
    pub async fn log_auth(&self, cluster: &str, line: String) {
        self.state().authlog.push(line.clone());
        let mut created = self.logs_created.lock().await;
        let mut done = created.contains(cluster);
        self.sinks.write(cluster, &line, &mut done).await;
        if done {
            created.insert(cluster.to_string());
        }
    }
}

/// Reads a request body with a size cap.
///
/// # Errors
/// A message when the body is too large or the connection failed.
pub async fn read_body(body: Incoming) -> Result<Bytes, String> {
    Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| format!("cannot read request body: {e}"))
}

/// What a client needs to reach one simulated cluster.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ClusterInfo {
    pub name: String,
    pub arn: String,
    /// `https://127.0.0.1:<port>`.
    pub endpoint: String,
    /// PEM of the CA that signed the endpoint's certificate.
    pub ca_pem: String,
}

/// A running simulator; dropping it stops the listeners.
pub struct Simulator {
    shared: Arc<Shared>,
    eks_addr: SocketAddr,
    clusters: BTreeMap<String, ClusterInfo>,
    shutdown: watch::Sender<bool>,
}

impl Simulator {
    /// Binds the EKS API listener and one HTTPS listener per cluster, and starts serving.
    ///
    /// # Errors
    /// Duplicate cluster names, a listener that cannot bind, certificate generation.
    pub async fn start(config: SimConfig) -> anyhow::Result<Simulator> {
        let mut names = BTreeSet::new();
        for c in &config.clusters {
            anyhow::ensure!(
                names.insert(c.name.clone()),
                "cluster {} is configured twice",
                c.name
            );
        }
        let tls = tls::Tls::generate()?;
        let mut state = State::default();
        let mut listeners = Vec::new();
        let mut clusters = BTreeMap::new();
        for c in &config.clusters {
            let listener = TcpListener::bind(&c.listen).await?;
            let addr = listener.local_addr()?;
            let mut cluster = state::Cluster::new(c, &config);
            cluster.endpoint = format!("https://{addr}");
            clusters.insert(
                c.name.clone(),
                ClusterInfo {
                    name: c.name.clone(),
                    arn: cluster.arn.clone(),
                    endpoint: cluster.endpoint.clone(),
                    ca_pem: tls.ca_pem.clone(),
                },
            );
            state.clusters.insert(c.name.clone(), cluster);
            listeners.push((c.name.clone(), listener));
        }
        let eks_listener = TcpListener::bind(&config.eks_listen).await?;
        let eks_addr = eks_listener.local_addr()?;
        let http = client::HttpClient::default();
        let sinks = authlog::Sinks {
            file: config.authlog_file.clone(),
            logs_endpoint: config.logs.as_ref().map(|l| l.endpoint.clone()),
            region: config.region.clone(),
            http: http.clone(),
        };
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(state),
            tls,
            http,
            sinks,
            logs_created: tokio::sync::Mutex::new(BTreeSet::new()),
        });
        let (shutdown, rx) = watch::channel(false);
        tokio::spawn(serve_eks(eks_listener, shared.clone(), rx.clone()));
        for (name, listener) in listeners {
            tokio::spawn(serve_kube(listener, name, shared.clone(), rx.clone()));
        }
        Ok(Simulator {
            shared,
            eks_addr,
            clusters,
            shutdown,
        })
    }

    /// `http://127.0.0.1:<port>`: the endpoint URL for the EKS client (and the control API
    /// under `/_sim/`).
    pub fn eks_endpoint(&self) -> String {
        format!("http://{}", self.eks_addr)
    }

    /// Connection details of one cluster.
    pub fn cluster(&self, name: &str) -> Option<&ClusterInfo> {
        self.clusters.get(name)
    }

    pub fn clusters(&self) -> impl Iterator<Item = &ClusterInfo> {
        self.clusters.values()
    }

    /// Adds a fault rule.
    pub fn inject(&self, rule: Rule) {
        self.shared.state().faults.add(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.shared.state().faults.clear();
    }

    /// A cluster's counters.
    pub fn counters(&self, cluster: &str) -> Option<Counters> {
        self.shared
            .state()
            .clusters
            .get(cluster)
            .map(|c| c.counters.clone())
    }

    /// A ConfigMap as stored (for assertions that bypass authentication).
    pub fn configmap(
        &self,
        cluster: &str,
        namespace: &str,
        name: &str,
    ) -> Option<serde_json::Value> {
        let st = self.shared.state();
        st.clusters
            .get(cluster)?
            .cm_get(namespace, name)
            .ok()
            .cloned()
    }

    /// The authenticator lines written so far.
    pub fn authlog(&self) -> Vec<String> {
        self.shared.state().authlog.clone()
    }

    /// Runs `f` on a cluster's state (set-up and assertions in tests).
    pub fn with_cluster<R>(
        &self,
        cluster: &str,
        f: impl FnOnce(&mut state::Cluster) -> R,
    ) -> Option<R> {
        let mut st = self.shared.state();
        st.clusters.get_mut(cluster).map(f)
    }

    /// The shared state, for handlers and advanced tests.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// A kubeconfig for a cluster that authenticates with `aws eks get-token` (exec plugin) or,
    /// when `token` is given, with that static bearer token.
    pub fn kubeconfig(&self, cluster: &str, token: Option<&str>) -> Option<String> {
        self.shared.kubeconfig(cluster, token)
    }

    /// Stops the listeners (also on drop).
    pub fn stop(&self) {
        let _ = self.shutdown.send(true);
    }
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve_eks(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
            _ = stop.changed() => return,
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                let shared = shared.clone();
                async move {
                    if req.uri().path().starts_with("/_sim/") {
                        return Ok::<_, Dropped>(control::handle(shared, req).await);
                    }
                    eks_api::handle(shared, req).await
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

async fn serve_kube(
    listener: TcpListener,
    cluster: String,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(shared.tls.server_config.clone());
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
            _ = stop.changed() => return,
        };
        let (shared, cluster, acceptor) = (shared.clone(), cluster.clone(), acceptor.clone());
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let svc = hyper::service::service_fn(move |req: http::Request<Incoming>| {
                k8s_api::handle(shared.clone(), cluster.clone(), peer, req)
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await;
        });
    }
}
