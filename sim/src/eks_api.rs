//! The EKS management API subset (REST-JSON, as the AWS SDKs speak it).
//!
//! Operations: DescribeCluster, ListClusters, UpdateClusterConfig (accessConfig), the access
//! entry operations (Create, Describe, List, Update, Delete), the access policy operations
//! (Associate, ListAssociated, Disassociate, ListAccessPolicies). Paths, member names and error
//! shapes follow botocore's `eks/2017-11-01/service-2.json`; semantics live in [`crate::state`].
//!
//! Errors are the REST-JSON shape: the status of the modelled exception, the
//! `x-amzn-errortype` header naming it, and a JSON body with `message` (and `clusterName`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::config::AuthMode;
use crate::faults::Fault;
use crate::state::{self, AccessEntry, Association, Cluster, StateError};
use crate::{read_body, Dropped, HttpResponse, Shared};

/// The operations served, by their API names (what fault rules match on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    DescribeCluster,
    ListClusters,
    UpdateClusterConfig,
    CreateAccessEntry,
    DescribeAccessEntry,
    ListAccessEntries,
    UpdateAccessEntry,
    DeleteAccessEntry,
    AssociateAccessPolicy,
    ListAssociatedAccessPolicies,
    DisassociateAccessPolicy,
    ListAccessPolicies,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::DescribeCluster => "DescribeCluster",
            Op::ListClusters => "ListClusters",
            Op::UpdateClusterConfig => "UpdateClusterConfig",
            Op::CreateAccessEntry => "CreateAccessEntry",
            Op::DescribeAccessEntry => "DescribeAccessEntry",
            Op::ListAccessEntries => "ListAccessEntries",
            Op::UpdateAccessEntry => "UpdateAccessEntry",
            Op::DeleteAccessEntry => "DeleteAccessEntry",
            Op::AssociateAccessPolicy => "AssociateAccessPolicy",
            Op::ListAssociatedAccessPolicies => "ListAssociatedAccessPolicies",
            Op::DisassociateAccessPolicy => "DisassociateAccessPolicy",
            Op::ListAccessPolicies => "ListAccessPolicies",
        }
    }
}

/// A routed request: the operation and its (percent-decoded) path labels.
#[derive(Debug, Clone)]
struct Route {
    op: Op,
    cluster: Option<String>,
    principal: String,
    policy: String,
}

/// An EKS error: HTTP status, exception name, message.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ApiError {
    status: u16,
    kind: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: u16, kind: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            kind,
            message: message.into(),
        }
    }

    fn invalid_parameter(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "InvalidParameterException", message)
    }

    fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "InvalidRequestException", message)
    }

    fn server(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "ServerException", message)
    }

    fn no_cluster(name: &str) -> ApiError {
        ApiError::new(
            404,
            "ResourceNotFoundException",
            format!("No cluster found for name: {name}."),
        )
    }

    /// The error a fault rule injects (None for latency, handled by the caller).
    fn from_fault(fault: &Fault) -> Option<ApiError> {
        match fault {
            Fault::Throttle => Some(ApiError::new(429, "ThrottlingException", "Rate exceeded")),
            Fault::Conflict => Some(ApiError::new(
                409,
                "ResourceInUseException",
                "The resource is in use by another operation (eks-sim injected conflict).",
            )),
            Fault::Status { status } => {
                let status = if (400..=599).contains(status) {
                    *status
                } else {
                    500
                };
                let kind = match status {
                    503 => "ServiceUnavailableException",
                    429 => "ThrottlingException",
                    404 => "ResourceNotFoundException",
                    409 => "ResourceInUseException",
                    s if s >= 500 => "ServerException",
                    _ => "ClientException",
                };
                Some(ApiError::new(
                    status,
                    kind,
                    format!("eks-sim injected fault: HTTP {status}"),
                ))
            }
            Fault::Latency { .. } | Fault::Drop => None,
        }
    }
}

impl From<StateError> for ApiError {
    fn from(e: StateError) -> ApiError {
        match e {
            StateError::NotFound(m) => ApiError::new(404, "ResourceNotFoundException", m),
            StateError::InUse(m) => ApiError::new(409, "ResourceInUseException", m),
            StateError::InvalidParameter(m) => ApiError::invalid_parameter(m),
            StateError::InvalidRequest(m) => ApiError::invalid_request(m),
            StateError::Conflict(m) | StateError::AlreadyExists(m) | StateError::BadRequest(m) => {
                ApiError::invalid_parameter(m)
            }
        }
    }
}

type ApiResult = Result<Value, ApiError>;

/// Serves one EKS API request.
pub async fn handle(
    shared: Arc<Shared>,
    req: http::Request<Incoming>,
) -> Result<HttpResponse, Dropped> {
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query().unwrap_or(""));
    let Some(route) = route(&method, &path) else {
        return Ok(error_response(
            &ApiError::new(
                404,
                "UnknownOperationException",
                format!(
                    "eks-sim does not serve {method} {path} (not an EKS operation it simulates)"
                ),
            ),
            None,
        ));
    };
    let cluster = route.cluster.clone();
    let fault = {
        let mut st = shared.state();
        if let Some(c) = cluster.as_deref().and_then(|n| st.clusters.get_mut(n)) {
            c.counters.eks_requests += 1;
        }
        st.faults
            .take(cluster.as_deref(), Some(route.op.name()), false)
    };
    match &fault {
        Some(Fault::Drop) => return Err(Dropped),
        Some(Fault::Latency { millis }) => tokio::time::sleep(Duration::from_millis(*millis)).await,
        Some(f) => {
            if let Some(e) = ApiError::from_fault(f) {
                return Ok(error_response(&e, cluster.as_deref()));
            }
        }
        None => {}
    }
    let body = match read_body(req.into_body()).await {
        Ok(b) => b,
        Err(e) => {
            return Ok(error_response(
                &ApiError::invalid_parameter(e),
                cluster.as_deref(),
            ))
        }
    };
    let result = dispatch(&shared, &route, &query, &body).await;
    Ok(match result {
        Ok(v) => json_response(200, &v),
        Err(e) => error_response(&e, cluster.as_deref()),
    })
}

async fn dispatch(
    shared: &Shared,
    route: &Route,
    query: &BTreeMap<String, String>,
    body: &[u8],
) -> ApiResult {
    let cluster = route.cluster.as_deref().unwrap_or("");
    let principal = route.principal.as_str();
    match route.op {
        Op::ListClusters => {
            let names: Vec<(String, Value)> = shared
                .state()
                .clusters
                .keys()
                .map(|n| (n.clone(), Value::String(n.clone())))
                .collect();
            let (page, next) = paginate(names, query)?;
            Ok(with_next(json!({ "clusters": page }), next))
        }
        Op::ListAccessPolicies => {
            let policies: Vec<(String, Value)> = state::ACCESS_POLICIES
                .iter()
                .map(|p| {
                    let arn = format!("arn:aws:eks::aws:cluster-access-policy/{p}");
                    (arn.clone(), json!({"name": p, "arn": arn}))
                })
                .collect();
            let (page, next) = paginate(policies, query)?;
            Ok(with_next(json!({ "accessPolicies": page }), next))
        }
        Op::DescribeCluster => {
            let ca = shared.tls.ca_data();
            with_cluster(shared, cluster, |c| {
                Ok(json!({ "cluster": cluster_json(c, &ca) }))
            })
        }
        Op::UpdateClusterConfig => {
            let req: UpdateClusterConfigReq = parse_body(body)?;
            update_cluster_config(shared, cluster, req)
        }
        Op::CreateAccessEntry => {
            let req: CreateAccessEntryReq = parse_body(body)?;
            create_access_entry(shared, cluster, req).await
        }
        Op::DescribeAccessEntry => with_api_cluster(shared, cluster, |c| {
            let e = c.access_entry(principal)?;
            Ok(json!({ "accessEntry": entry_json(cluster, e) }))
        }),
        Op::ListAccessEntries => with_api_cluster(shared, cluster, |c| {
            let filter = query.get("associatedPolicyArn");
            let arns: Vec<(String, Value)> = c
                .access_entries
                .values()
                .filter(|e| match filter {
                    Some(p) => e.policies.iter().any(|a| &a.policy_arn == p),
                    None => true,
                })
                .map(|e| {
                    (
                        e.principal_arn.clone(),
                        Value::String(e.principal_arn.clone()),
                    )
                })
                .collect();
            let (page, next) = paginate(arns, query)?;
            Ok(with_next(json!({ "accessEntries": page }), next))
        }),
        Op::UpdateAccessEntry => {
            let req: UpdateAccessEntryReq = parse_body(body)?;
            with_api_cluster(shared, cluster, |c| {
                let e = update_access_entry(c, principal, req)?;
                Ok(json!({ "accessEntry": entry_json(cluster, &e) }))
            })
        }
        Op::DeleteAccessEntry => with_api_cluster(shared, cluster, |c| {
            c.delete_access_entry(principal)?;
            Ok(json!({}))
        }),
        Op::AssociateAccessPolicy => {
            let req: AssociateAccessPolicyReq = parse_body(body)?;
            let policy_arn = req.policy_arn.ok_or_else(|| missing("policyArn"))?;
            let scope = req.access_scope.ok_or_else(|| missing("accessScope"))?;
            with_api_cluster(shared, cluster, |c| {
                let a = c.associate(
                    principal,
                    &policy_arn,
                    scope.kind.as_deref().unwrap_or(""),
                    scope.namespaces.unwrap_or_default(),
                )?;
                Ok(json!({"clusterName": cluster, "principalArn": principal,
                    "associatedAccessPolicy": association_json(&a)}))
            })
        }
        Op::ListAssociatedAccessPolicies => with_api_cluster(shared, cluster, |c| {
            let e = c.access_entry(principal)?;
            let mut items: Vec<(String, Value)> = e
                .policies
                .iter()
                .map(|a| (a.policy_arn.clone(), association_json(a)))
                .collect();
            items.sort_by(|a, b| a.0.cmp(&b.0));
            let (page, next) = paginate(items, query)?;
            Ok(with_next(
                json!({"clusterName": cluster, "principalArn": principal, "associatedAccessPolicies": page}),
                next,
            ))
        }),
        Op::DisassociateAccessPolicy => with_api_cluster(shared, cluster, |c| {
            c.disassociate(principal, &route.policy)?;
            Ok(json!({}))
        }),
    }
}

// ---- routing and HTTP plumbing --------------------------------------------------------------

fn decode(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

/// Maps a method and raw (still percent-encoded) path to an operation.
fn route(method: &str, path: &str) -> Option<Route> {
    let trimmed = path.strip_prefix('/')?;
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let raw: Vec<&str> = trimmed.split('/').collect();
    if raw.iter().any(|s| s.is_empty()) {
        return None;
    }
    let seg: Vec<String> = raw.iter().map(|s| decode(s)).collect();
    let s: Vec<&str> = seg.iter().map(String::as_str).collect();
    let mk = |op: Op, cluster: Option<&str>, principal: &str, policy: &str| {
        Some(Route {
            op,
            cluster: cluster.map(str::to_string),
            principal: principal.to_string(),
            policy: policy.to_string(),
        })
    };
    match (method, s.as_slice()) {
        ("GET", ["clusters"]) => mk(Op::ListClusters, None, "", ""),
        ("GET", ["access-policies"]) => mk(Op::ListAccessPolicies, None, "", ""),
        ("GET", ["clusters", c]) => mk(Op::DescribeCluster, Some(c), "", ""),
        ("POST", ["clusters", c, "update-config"]) => mk(Op::UpdateClusterConfig, Some(c), "", ""),
        ("POST", ["clusters", c, "access-entries"]) => mk(Op::CreateAccessEntry, Some(c), "", ""),
        ("GET", ["clusters", c, "access-entries"]) => mk(Op::ListAccessEntries, Some(c), "", ""),
        ("GET", ["clusters", c, "access-entries", p]) => {
            mk(Op::DescribeAccessEntry, Some(c), p, "")
        }
        ("POST", ["clusters", c, "access-entries", p]) => mk(Op::UpdateAccessEntry, Some(c), p, ""),
        ("DELETE", ["clusters", c, "access-entries", p]) => {
            mk(Op::DeleteAccessEntry, Some(c), p, "")
        }
        ("POST", ["clusters", c, "access-entries", p, "access-policies"]) => {
            mk(Op::AssociateAccessPolicy, Some(c), p, "")
        }
        ("GET", ["clusters", c, "access-entries", p, "access-policies"]) => {
            mk(Op::ListAssociatedAccessPolicies, Some(c), p, "")
        }
        ("DELETE", ["clusters", c, "access-entries", p, "access-policies", pol]) => {
            mk(Op::DisassociateAccessPolicy, Some(c), p, pol)
        }
        _ => None,
    }
}

fn parse_query(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// A request id in the UUID format AWS uses.
fn uuid_like(seed: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let d = Sha256::digest(format!("{seed}/{n}/{nanos}").as_bytes());
    let h: String = d.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-4{}-{}{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        ["8", "9", "a", "b"][usize::from(d[8] & 3)],
        &h[17..20],
        &h[20..32]
    )
}

fn response(status: u16) -> http::response::Builder {
    http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("x-amzn-requestid", uuid_like("request"))
}

fn json_response(status: u16, body: &Value) -> HttpResponse {
    response(status)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

fn error_response(e: &ApiError, cluster: Option<&str>) -> HttpResponse {
    let mut body = Map::new();
    // ServiceUnavailableException is the one modelled error without clusterName.
    if let Some(c) = cluster.filter(|_| {
        e.kind != "ServiceUnavailableException" && e.kind != "UnknownOperationException"
    }) {
        body.insert("clusterName".into(), c.into());
    }
    body.insert("message".into(), e.message.clone().into());
    let body = Value::Object(body);
    response(e.status)
        .header("x-amzn-errortype", e.kind)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

fn missing(member: &str) -> ApiError {
    ApiError::invalid_parameter(format!(
        "{member} is a required parameter and cannot be empty."
    ))
}

/// Parses a JSON request body (empty means `{}`); shape errors are InvalidParameterException.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let value: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::invalid_parameter(format!("The request body is not valid JSON: {e}"))
        })?
    };
    if !value.is_object() {
        return Err(ApiError::invalid_parameter(
            "The request body must be a JSON object.",
        ));
    }
    serde_json::from_value(value).map_err(|e| {
        ApiError::invalid_parameter(format!(
            "The request body does not match the operation's input: {e}"
        ))
    })
}

/// Runs `f` on a cluster under the state lock (never held across an await).
fn with_cluster<R>(
    shared: &Shared,
    name: &str,
    f: impl FnOnce(&mut Cluster) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    let mut st = shared.state();
    let c = st
        .clusters
        .get_mut(name)
        .ok_or_else(|| ApiError::no_cluster(name))?;
    f(c)
}

fn mode_error() -> ApiError {
    ApiError::invalid_request(
        "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.",
    )
}

/// Like [`with_cluster`] for access-entry operations: EKS refuses them in CONFIG_MAP mode.
fn with_api_cluster<R>(
    shared: &Shared,
    name: &str,
    f: impl FnOnce(&mut Cluster) -> Result<R, ApiError>,
) -> Result<R, ApiError> {
    with_cluster(shared, name, |c| {
        if !c.mode.uses_api() {
            return Err(mode_error());
        }
        f(c)
    })
}

/// `maxResults` (1..=100, default 100) and `nextToken` over items sorted by key. The token is
/// the last key returned, base64url-encoded.
fn paginate(
    mut items: Vec<(String, Value)>,
    query: &BTreeMap<String, String>,
) -> Result<(Vec<Value>, Option<String>), ApiError> {
    let max = match query.get("maxResults") {
        None => 100,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(ApiError::invalid_parameter(format!(
                    "maxResults must be between 1 and 100, got {m}"
                )))
            }
        },
    };
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let start = match query.get("nextToken").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => {
            let after = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(t)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| ApiError::invalid_parameter("The nextToken is invalid."))?;
            items
                .iter()
                .position(|(k, _)| *k > after)
                .unwrap_or(items.len())
        }
    };
    let end = (start + max).min(items.len());
    let next = (end < items.len()).then(|| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(items[end - 1].0.as_bytes())
    });
    Ok((
        items[start..end].iter().map(|(_, v)| v.clone()).collect(),
        next,
    ))
}

fn with_next(mut v: Value, next: Option<String>) -> Value {
    if let Some(t) = next {
        v["nextToken"] = t.into();
    }
    v
}

// ---- shapes ---------------------------------------------------------------------------------

fn cluster_json(c: &Cluster, ca_data: &str) -> Value {
    let id: String = Sha256::digest(c.arn.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02X}"))
        .collect();
    json!({
        "name": c.name,
        "arn": c.arn,
        "createdAt": c.created_at,
        "version": c.version,
        "endpoint": c.endpoint,
        "roleArn": format!("arn:aws:iam::{}:role/eks-sim-cluster-role", c.account),
        "resourcesVpcConfig": {
            "subnetIds": [],
            "securityGroupIds": [],
            "clusterSecurityGroupId": format!("sg-{}", &id[..17].to_lowercase()),
            "vpcId": format!("vpc-{}", &id[..17].to_lowercase()),
            "endpointPublicAccess": true,
            "endpointPrivateAccess": false,
            "publicAccessCidrs": ["0.0.0.0/0"],
        },
        "kubernetesNetworkConfig": {"serviceIpv4Cidr": "10.100.0.0/16", "ipFamily": "ipv4"},
        "logging": {"clusterLogging": [
            {"types": ["authenticator"], "enabled": true},
            {"types": ["api", "audit", "controllerManager", "scheduler"], "enabled": false},
        ]},
        "identity": {"oidc": {"issuer": format!("https://oidc.eks.{}.amazonaws.com/id/{id}", c.region)}},
        "status": "ACTIVE",
        "certificateAuthority": {"data": ca_data},
        "platformVersion": "eks.1",
        "tags": {},
        "accessConfig": {
            "bootstrapClusterCreatorAdminPermissions": c.bootstrap_admin,
            "authenticationMode": c.mode.as_str(),
        },
    })
}

fn entry_json(cluster: &str, e: &AccessEntry) -> Value {
    json!({
        "clusterName": cluster,
        "principalArn": e.principal_arn,
        "kubernetesGroups": e.kubernetes_groups,
        "accessEntryArn": e.access_entry_arn,
        "createdAt": e.created_at,
        "modifiedAt": e.modified_at,
        "tags": e.tags,
        "username": e.username,
        "type": e.kind,
    })
}

fn association_json(a: &Association) -> Value {
    json!({"policyArn": a.policy_arn,
        "accessScope": {"type": a.scope_type, "namespaces": a.namespaces},
        "associatedAt": a.associated_at, "modifiedAt": a.modified_at})
}

// ---- UpdateClusterConfig --------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateClusterConfigReq {
    access_config: Option<AccessConfigReq>,
    logging: Option<Value>,
    resources_vpc_config: Option<Value>,
    upgrade_policy: Option<Value>,
    zonal_shift_config: Option<Value>,
    compute_config: Option<Value>,
    kubernetes_network_config: Option<Value>,
    storage_config: Option<Value>,
    remote_network_config: Option<Value>,
    deletion_protection: Option<Value>,
    control_plane_scaling_config: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessConfigReq {
    authentication_mode: Option<String>,
}

fn update_json(kind: &str, param_type: &str, value: &str) -> Value {
    json!({"update": {
        "id": uuid_like(value),
        "status": "Successful",
        "type": kind,
        "params": [{"type": param_type, "value": value}],
        "createdAt": state::now_epoch(),
        "errors": [],
    }})
}

fn update_cluster_config(shared: &Shared, cluster: &str, req: UpdateClusterConfigReq) -> ApiResult {
    let unsupported = [
        ("resourcesVpcConfig", req.resources_vpc_config.is_some()),
        ("upgradePolicy", req.upgrade_policy.is_some()),
        ("zonalShiftConfig", req.zonal_shift_config.is_some()),
        ("computeConfig", req.compute_config.is_some()),
        (
            "kubernetesNetworkConfig",
            req.kubernetes_network_config.is_some(),
        ),
        ("storageConfig", req.storage_config.is_some()),
        ("remoteNetworkConfig", req.remote_network_config.is_some()),
        ("deletionProtection", req.deletion_protection.is_some()),
        (
            "controlPlaneScalingConfig",
            req.control_plane_scaling_config.is_some(),
        ),
    ];
    let kinds = unsupported.iter().filter(|(_, on)| *on).count()
        + usize::from(req.access_config.is_some())
        + usize::from(req.logging.is_some());
    with_cluster(shared, cluster, |c| {
        if kinds > 1 {
            return Err(ApiError::invalid_parameter(
                "Only one type of update can be allowed.",
            ));
        }
        if let Some((name, _)) = unsupported.iter().find(|(_, on)| *on) {
            return Err(ApiError::invalid_parameter(format!(
                "eks-sim does not simulate {name} updates; only accessConfig (and logging, as a no-op) are supported."
            )));
        }
        if let Some(logging) = &req.logging {
            // Control-plane logging is fixed in the simulator (authenticator on); accept the
            // request as EKS would and report it done.
            return Ok(update_json(
                "LoggingUpdate",
                "ClusterLogging",
                &logging.to_string(),
            ));
        }
        let Some(mode) = req.access_config.and_then(|a| a.authentication_mode) else {
            return Err(ApiError::invalid_parameter("No changes needed"));
        };
        let parsed = AuthMode::parse(&mode).ok_or_else(|| {
            ApiError::invalid_parameter(format!(
                "Unsupported authentication mode: {mode}. Valid values are [API, API_AND_CONFIG_MAP, CONFIG_MAP]"
            ))
        })?;
        c.set_mode(parsed)?;
        Ok(update_json(
            "AccessConfigUpdate",
            "AuthenticationMode",
            parsed.as_str(),
        ))
    })
}

// ---- access entries -------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateAccessEntryReq {
    principal_arn: Option<String>,
    kubernetes_groups: Option<Vec<String>>,
    username: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    client_request_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdateAccessEntryReq {
    kubernetes_groups: Option<Vec<String>>,
    username: Option<String>,
    #[allow(dead_code)]
    client_request_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AssociateAccessPolicyReq {
    policy_arn: Option<String>,
    access_scope: Option<AccessScopeReq>,
}

#[derive(Debug, Deserialize)]
struct AccessScopeReq {
    #[serde(rename = "type")]
    kind: Option<String>,
    namespaces: Option<Vec<String>>,
}

/// When the entry exists: the idempotent-retry answer (same token, same parameters), else 409.
fn existing_entry(c: &Cluster, req: &CreateAccessEntryReq, principal: &str) -> Option<ApiResult> {
    let e = c.access_entries.get(principal)?;
    let same_token =
        req.client_request_token.is_some() && e.client_request_token == req.client_request_token;
    let same_params = e.kind == req.kind.clone().unwrap_or_else(|| "STANDARD".into())
        && e.kubernetes_groups == req.kubernetes_groups.clone().unwrap_or_default()
        && req.username.as_ref().is_none_or(|u| *u == e.username)
        && e.tags == req.tags.clone().unwrap_or_default();
    Some(if same_token && same_params {
        Ok(json!({ "accessEntry": entry_json(&c.name, e) }))
    } else {
        Err(StateError::InUse(
            "The specified access entry resource is already in use on this cluster.".into(),
        )
        .into())
    })
}

async fn create_access_entry(
    shared: &Shared,
    cluster: &str,
    req: CreateAccessEntryReq,
) -> ApiResult {
    let principal = req
        .principal_arn
        .clone()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| missing("principalArn"))?;
    // First pass under the lock: cluster, mode, existing entry.
    let pre = with_cluster(shared, cluster, |c| {
        if !c.mode.uses_api() {
            return Err(mode_error());
        }
        Ok(existing_entry(c, &req, &principal))
    })?;
    if let Some(r) = pre {
        return r;
    }
    // Bind to the IAM entity's unique ID, as EKS does (no lock held across the call).
    let unique_id = match &shared.config.iam_endpoint {
        Some(endpoint) => resolve_unique_id(shared, endpoint, &principal).await?,
        None => None,
    };
    with_cluster(shared, cluster, |c| {
        let created = c.create_access_entry(
            &principal,
            req.kubernetes_groups.clone().unwrap_or_default(),
            req.username.clone(),
            req.kind.clone(),
            req.tags.clone().unwrap_or_default(),
            unique_id,
        );
        match created {
            Ok(mut e) => {
                if let Some(stored) = c.access_entries.get_mut(&principal) {
                    stored.client_request_token = req.client_request_token.clone();
                }
                e.client_request_token = req.client_request_token.clone();
                Ok(json!({ "accessEntry": entry_json(cluster, &e) }))
            }
            // A concurrent create won the race: same answer as the first pass.
            Err(StateError::InUse(m)) => existing_entry(c, &req, &principal)
                .unwrap_or_else(|| Err(StateError::InUse(m).into())),
            Err(e) => Err(e.into()),
        }
    })
}

/// UpdateAccessEntry: replaces `kubernetesGroups` and/or `username` of a STANDARD entry.
fn update_access_entry(
    c: &mut Cluster,
    principal: &str,
    req: UpdateAccessEntryReq,
) -> Result<AccessEntry, ApiError> {
    c.access_entry(principal)?;
    let Some(e) = c.access_entries.get_mut(principal) else {
        return Err(ApiError::server("access entry vanished"));
    };
    if e.kind != "STANDARD" && (req.kubernetes_groups.is_some() || req.username.is_some()) {
        return Err(ApiError::invalid_parameter(format!(
            "kubernetesGroups and username cannot be specified for access entries of type {}",
            e.kind
        )));
    }
    if let Some(g) = req
        .kubernetes_groups
        .iter()
        .flatten()
        .find(|g| g.starts_with("system:"))
    {
        return Err(ApiError::invalid_parameter(format!(
            "The kubernetes group name {g} is invalid, it cannot start with system:"
        )));
    }
    if req.username.as_deref() == Some("") {
        return Err(ApiError::invalid_parameter("username cannot be empty"));
    }
    if let Some(groups) = req.kubernetes_groups {
        e.kubernetes_groups = groups;
    }
    if let Some(u) = req.username {
        e.username = u;
    }
    e.modified_at = state::now_epoch();
    let out = e.clone();
    c.counters.eks_writes += 1;
    Ok(out)
}

// ---- IAM ------------------------------------------------------------------------------------

/// Characters left alone in a form-encoded value.
const FORM: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn xml_text<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let start = xml.find(&open)? + open.len();
    let len = xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..start + len].trim())
}

/// GetRole / GetUser by name: the entity's unique ID. A principal IAM does not know is
/// InvalidParameterException, as EKS answers; ARNs that are not roles or users are left to the
/// state's validation.
async fn resolve_unique_id(
    shared: &Shared,
    endpoint: &str,
    principal_arn: &str,
) -> Result<Option<String>, ApiError> {
    let parts: Vec<&str> = principal_arn.splitn(6, ':').collect();
    let Some(resource) = parts
        .get(5)
        .filter(|_| parts.len() == 6 && parts[2] == "iam")
    else {
        return Ok(None);
    };
    let (action, name_param, id_tag) = if resource.starts_with("role/") {
        ("GetRole", "RoleName", "RoleId")
    } else if resource.starts_with("user/") {
        ("GetUser", "UserName", "UserId")
    } else {
        return Ok(None);
    };
    let name = resource.rsplit('/').next().unwrap_or(resource);
    let body = format!(
        "Action={action}&{name_param}={}&Version=2010-05-08",
        utf8_percent_encode(name, FORM)
    )
    .into_bytes();
    let host = crate::client::host_of(endpoint)
        .unwrap_or("localhost")
        .to_string();
    let headers = vec![
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
        ("host".to_string(), host),
    ];
    let creds = crate::sigv4::Creds {
        access_key: "AKIAEKSSIMULATOR0001".into(),
        secret_key: "eks-sim".into(),
        session_token: None,
    };
    let unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut all = headers.clone();
    all.extend(crate::sigv4::sign(
        "POST",
        "/",
        "",
        &headers,
        &body,
        "us-east-1",
        "iam",
        &creds,
        unix,
    ));
    let url = format!("{}/", endpoint.trim_end_matches('/'));
    let reply = shared
        .http
        .send("POST", &url, &all, body)
        .await
        .map_err(|e| ApiError::server(format!("eks-sim could not reach IAM at {endpoint}: {e}")))?;
    let text = String::from_utf8_lossy(&reply.body);
    let invalid = || {
        ApiError::invalid_parameter(format!(
            "The specified principalArn is invalid: invalid principal {principal_arn}"
        ))
    };
    if reply.status == 404 || xml_text(&text, "Code") == Some("NoSuchEntity") {
        return Err(invalid());
    }
    if reply.status != 200 {
        return Err(ApiError::server(format!(
            "eks-sim: IAM {action} answered HTTP {}: {}",
            reply.status,
            text.chars().take(300).collect::<String>()
        )));
    }
    // The name matched; the path must too (role/team/dev is not role/dev).
    if let Some(arn) = xml_text(&text, "Arn") {
        if arn.splitn(6, ':').nth(5) != Some(*resource) {
            return Err(invalid());
        }
    }
    Ok(xml_text(&text, id_tag).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_decode_labels() {
        let r = route(
            "DELETE",
            "/clusters/prod/access-entries/arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fteam%2Fdev/access-policies/arn%3Aaws%3Aeks%3A%3Aaws%3Acluster-access-policy%2FAmazonEKSViewPolicy",
        )
        .unwrap();
        assert_eq!(r.op, Op::DisassociateAccessPolicy);
        assert_eq!(r.cluster.as_deref(), Some("prod"));
        assert_eq!(r.principal, "arn:aws:iam::123456789012:role/team/dev");
        assert_eq!(
            r.policy,
            "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy"
        );
        assert!(route("GET", "/clusters//access-entries").is_none());
        assert!(route("PUT", "/clusters/x").is_none());
        assert_eq!(route("GET", "/clusters").unwrap().op, Op::ListClusters);
    }

    #[test]
    fn pages_by_key() {
        let items: Vec<(String, Value)> = ["c", "a", "b"]
            .iter()
            .map(|s| (s.to_string(), json!(s)))
            .collect();
        let mut q = BTreeMap::from([("maxResults".to_string(), "2".to_string())]);
        let (p1, t) = paginate(items.clone(), &q).unwrap();
        assert_eq!(p1, vec![json!("a"), json!("b")]);
        q.insert("nextToken".into(), t.unwrap());
        let (p2, t2) = paginate(items.clone(), &q).unwrap();
        assert_eq!((p2, t2), (vec![json!("c")], None));
        q.insert("maxResults".into(), "0".into());
        assert!(paginate(items, &q).is_err());
    }

    #[test]
    fn uuids_look_like_uuids() {
        let u = uuid_like("x");
        assert_eq!(u.len(), 36);
        assert_eq!(u.matches('-').count(), 4);
        assert_eq!(&u[14..15], "4");
    }
}
