//! The control API under `/_sim/` on the EKS listener, for scripts driving a standalone
//! simulator: state and counters, fault rules, authenticator lines, kubeconfigs.
//!
//! - `GET /_sim/state`: clusters (mode, endpoint, counters, access entries) and fault rules
//! - `POST /_sim/faults` with a [`crate::Rule`] as JSON; `DELETE /_sim/faults`
//! - `GET /_sim/authlog`: the authenticator lines, one per line
//! - `GET /_sim/kubeconfig/<cluster>[?token=...]`: a kubeconfig (exec plugin or static token)

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;

use crate::{read_body, HttpResponse, Shared};

fn reply(status: u16, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
    http::Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()))
        .unwrap_or_default()
}

/// Serves one control request.
pub async fn handle(shared: Arc<Shared>, req: http::Request<Incoming>) -> HttpResponse {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    match (method.as_str(), path.as_str()) {
        ("GET", "/_sim/state") => {
            let st = shared.state();
            let clusters: serde_json::Map<String, serde_json::Value> = st
                .clusters
                .iter()
                .map(|(name, c)| {
                    (
                        name.clone(),
                        json!({"mode": c.mode.as_str(), "endpoint": c.endpoint, "arn": c.arn,
                            "creator_arn": c.creator_arn, "counters": c.counters,
                            "access_entries": c.access_entries.values().collect::<Vec<_>>()}),
                    )
                })
                .collect();
            let body =
                json!({"eks_endpoint": null, "clusters": clusters, "faults": st.faults.rules()});
            reply(200, "application/json", body.to_string())
        }
        ("POST", "/_sim/faults") => {
            let body = match read_body(req.into_body()).await {
                Ok(b) => b,
                Err(e) => return reply(400, "text/plain", e),
            };
            match serde_json::from_slice::<crate::Rule>(&body) {
                Ok(rule) => {
                    shared.state().faults.add(rule);
                    reply(204, "text/plain", "")
                }
                Err(e) => reply(400, "text/plain", format!("invalid fault rule: {e}")),
            }
        }
        ("DELETE", "/_sim/faults") => {
            shared.state().faults.clear();
            reply(204, "text/plain", "")
        }
        ("GET", "/_sim/authlog") => {
            let mut text = shared.state().authlog.join("\n");
            text.push('\n');
            reply(200, "text/plain", text)
        }
        ("GET", p) if p.starts_with("/_sim/kubeconfig/") => {
            let cluster = &p["/_sim/kubeconfig/".len()..];
            let token = query
                .split('&')
                .find_map(|kv| kv.strip_prefix("token="))
                .map(|t| {
                    percent_encoding::percent_decode_str(t)
                        .decode_utf8_lossy()
                        .into_owned()
                });
            match shared.kubeconfig(cluster, token.as_deref()) {
                Some(k) => reply(200, "application/yaml", k),
                None => reply(404, "text/plain", format!("no cluster {cluster}")),
            }
        }
        _ => reply(
            404,
            "text/plain",
            format!("no control endpoint {method} {path}"),
        ),
    }
}
