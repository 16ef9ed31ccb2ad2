//! The Kubernetes API subset over HTTPS, authenticated like EKS.
//!
//! Every request needs a bearer token (401 `Unauthorized` otherwise, as kubectl expects), which
//! [`crate::authn`] checks, replays to STS and maps; then [`crate::authn::authorize`] decides, the
//! fault rules apply, and the request is served:
//!
//! - `GET /version`, `/healthz`, `/livez`, `/readyz`; discovery `GET /api`, `/api/v1`, `/apis`,
//!   `/apis/authorization.k8s.io[/v1]` (always plain JSON: clients asking for aggregated
//!   discovery or protobuf fall back to it); `/openapi/v2` and `/openapi/v3` are 404;
//! - ConfigMaps under `/api/v1/namespaces/{ns}/configmaps[/{name}]` (GET, LIST, POST, PUT,
//!   PATCH as merge, strategic merge, JSON patch and server-side apply, DELETE), and
//!   `GET /api/v1/configmaps` across namespaces; `?dryRun=All` computes without storing;
//!   `?fieldManager=` is recorded in `managedFields`;
//! - `POST /apis/authorization.k8s.io/v1/selfsubjectaccessreviews`.
//!
//! Errors are `Status` objects with Kubernetes' codes and reasons.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{json, Map, Value};

use crate::authn::{self, Attributes, User};
use crate::faults::Fault;
use crate::state::{now_rfc3339, Cluster, StateError};
use crate::{read_body, Dropped, HttpResponse, Shared};

/// The exact body kube-apiserver sends for a failed authentication.
pub const UNAUTHORIZED_BODY: &str = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;

fn respond(status: u16, body: impl Into<Bytes>, extra: &[(&str, &str)]) -> HttpResponse {
    let mut b = http::Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache, private");
    for (k, v) in extra {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into())).unwrap_or_default()
}

fn json_reply(status: u16, v: &Value) -> HttpResponse {
    respond(status, v.to_string(), &[])
}

/// A `Status` failure, fields in kube-apiserver's order.
pub fn status_body(code: u16, reason: &str, message: &str, details: Option<&Value>) -> String {
    let msg = serde_json::to_string(message).unwrap_or_else(|_| "\"\"".into());
    let details = details
        .map(|d| format!(",\"details\":{d}"))
        .unwrap_or_default();
    format!(
        "{{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"metadata\":{{}},\"status\":\"Failure\",\"message\":{msg},\"reason\":\"{reason}\"{details},\"code\":{code}}}"
    )
}

fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> HttpResponse {
    respond(
        code,
        status_body(code, reason, message, details.as_ref()),
        &[],
    )
}

fn unauthorized() -> HttpResponse {
    respond(401, UNAUTHORIZED_BODY, &[])
}

fn not_found_path() -> HttpResponse {
    status(
        404,
        "NotFound",
        "the server could not find the requested resource",
        Some(json!({})),
    )
}

fn method_not_allowed(method: &str) -> HttpResponse {
    status(
        405,
        "MethodNotAllowed",
        &format!("the server does not allow this method on the requested resource ({method})"),
        Some(json!({})),
    )
}

fn cm_details(name: &str) -> Value {
    json!({"name": name, "kind": "configmaps"})
}

fn state_error(e: StateError, name: &str) -> HttpResponse {
    match e {
        StateError::NotFound(m) => status(404, "NotFound", &m, Some(cm_details(name))),
        StateError::AlreadyExists(m) => status(409, "AlreadyExists", &m, Some(cm_details(name))),
        StateError::Conflict(m) => status(409, "Conflict", &m, Some(cm_details(name))),
        StateError::BadRequest(m) if m.contains(" is invalid: ") => {
            status(422, "Invalid", &m, Some(cm_details(name)))
        }
        StateError::BadRequest(m)
        | StateError::InvalidParameter(m)
        | StateError::InvalidRequest(m)
        | StateError::InUse(m) => status(400, "BadRequest", &m, None),
    }
}

fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| {
                percent_encoding::percent_decode_str(&s.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned()
            };
            (dec(k), dec(v))
        })
        .collect()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// What a request is, once routed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Version,
    Health,
    ApiVersions,
    CoreResources,
    Groups,
    AuthzGroup,
    AuthzResources,
    OpenApi,
    Ssar,
    CmCollection { ns: Option<String> },
    CmItem { ns: String, name: String },
}

fn route(method: &str, path: &str) -> Option<Route> {
    let path = path.trim_end_matches('/');
    let r = match path {
        "/version" => Route::Version,
        "/healthz" | "/livez" | "/readyz" => Route::Health,
        "/api" => Route::ApiVersions,
        "/api/v1" => Route::CoreResources,
        "/apis" => Route::Groups,
        "/apis/authorization.k8s.io" => Route::AuthzGroup,
        "/apis/authorization.k8s.io/v1" => Route::AuthzResources,
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews" => Route::Ssar,
        "/api/v1/configmaps" => Route::CmCollection { ns: None },
        p if p.starts_with("/openapi/") || p == "/openapi" => Route::OpenApi,
        p => {
            let rest = p.strip_prefix("/api/v1/namespaces/")?;
            let parts: Vec<&str> = rest.split('/').collect();
            match parts.as_slice() {
                [ns, "configmaps"] if !ns.is_empty() => Route::CmCollection {
                    ns: Some((*ns).to_string()),
                },
                [ns, "configmaps", name] if !ns.is_empty() && !name.is_empty() => Route::CmItem {
                    ns: (*ns).to_string(),
                    name: percent_encoding::percent_decode_str(name)
                        .decode_utf8_lossy()
                        .into_owned(),
                },
                _ => return None,
            }
        }
    };
    let _ = method;
    Some(r)
}

/// The authorization attributes of a routed request (`None`: the method is not allowed).
fn attributes(
    route: &Route,
    method: &str,
    path: &str,
    q: &[(String, String)],
) -> Option<Attributes> {
    let non_resource = |verb: &str| Attributes {
        verb: verb.into(),
        group: String::new(),
        resource: String::new(),
        namespace: None,
        name: None,
        path: Some(path.to_string()),
    };
    let cm = |verb: &str, ns: Option<&String>, name: Option<&String>| Attributes {
        verb: verb.into(),
        group: String::new(),
        resource: "configmaps".into(),
        namespace: ns.cloned(),
        name: name.cloned(),
        path: None,
    };
    Some(match (route, method) {
        (
            Route::Version
            | Route::Health
            | Route::ApiVersions
            | Route::CoreResources
            | Route::Groups
            | Route::AuthzGroup
            | Route::AuthzResources
            | Route::OpenApi,
            "GET" | "HEAD",
        ) => non_resource("get"),
        (Route::Ssar, "POST") => Attributes {
            verb: "create".into(),
            group: "authorization.k8s.io".into(),
            resource: "selfsubjectaccessreviews".into(),
            namespace: None,
            name: None,
            path: None,
        },
        (Route::CmCollection { ns }, "GET") => {
            let watch = param(q, "watch").is_some_and(|w| w == "true" || w == "1");
            cm(if watch { "watch" } else { "list" }, ns.as_ref(), None)
        }
        (Route::CmCollection { ns: Some(ns) }, "POST") => cm("create", Some(ns), None),
        (Route::CmItem { ns, name }, "GET") => cm("get", Some(ns), Some(name)),
        (Route::CmItem { ns, name }, "PUT") => cm("update", Some(ns), Some(name)),
        (Route::CmItem { ns, name }, "PATCH") => cm("patch", Some(ns), Some(name)),
        (Route::CmItem { ns, name }, "DELETE") => cm("delete", Some(ns), Some(name)),
        _ => return None,
    })
}

fn bearer(headers: &http::HeaderMap) -> Option<String> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// The field manager for a write: `?fieldManager=`, else the User-Agent's program name, as
/// kube-apiserver defaults it.
fn field_manager(q: &[(String, String)], headers: &http::HeaderMap) -> String {
    if let Some(m) = param(q, "fieldManager").filter(|m| !m.is_empty()) {
        return m.to_string();
    }
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|ua| {
            ua.split('/')
                .next()
                .unwrap_or(ua)
                .chars()
                .take(128)
                .collect()
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Serves one Kubernetes API request for `cluster`.
pub async fn handle(
    shared: Arc<Shared>,
    cluster: String,
    peer: SocketAddr,
    req: http::Request<Incoming>,
) -> Result<HttpResponse, Dropped> {
    {
        let mut st = shared.state();
        match st.clusters.get_mut(&cluster) {
            Some(c) => c.counters.k8s_requests += 1,
            None => return Ok(not_found_path()),
        }
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(body).await {
        Ok(b) => b,
        Err(e) => return Ok(status(413, "RequestEntityTooLarge", &e, None)),
    };
    let method = parts.method.as_str().to_string();
    let path = parts.uri.path().to_string();
    let q = query_pairs(parts.uri.query().unwrap_or(""));

    let Some(token) = bearer(&parts.headers) else {
        return Ok(unauthorized());
    };
    let Some(user) = authn::authenticate(&shared, &cluster, peer, &token).await else {
        return Ok(unauthorized());
    };

    let Some(route) = route(&method, &path) else {
        return Ok(not_found_path());
    };
    let Some(attrs) = attributes(&route, &method, &path, &q) else {
        return Ok(method_not_allowed(&method));
    };
    if authn::authorize(&user, &attrs).is_err() {
        let details = match (&attrs.name, attrs.resource.is_empty()) {
            (_, true) => json!({}),
            (Some(n), false) => json!({"name": n, "kind": attrs.resource}),
            (None, false) => json!({"kind": attrs.resource}),
        };
        return Ok(status(
            403,
            "Forbidden",
            &authn::forbidden_message(&user, &attrs),
            Some(details),
        ));
    }

    let is_cm_write = matches!(route, Route::CmCollection { .. } | Route::CmItem { .. })
        && matches!(method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE");
    let fault = shared
        .state()
        .faults
        .take(Some(&cluster), None, is_cm_write);
    match fault {
        None => {}
        Some(Fault::Conflict) => {
            let name = attrs.name.clone().unwrap_or_default();
            return Ok(status(
                409,
                "Conflict",
                &format!("Operation cannot be fulfilled on configmaps \"{name}\": the object has been modified; please apply your changes to the latest version and try again"),
                Some(cm_details(&name)),
            ));
        }
        Some(Fault::Status { status: code }) => {
            let (reason, message) = match code {
                429 => ("TooManyRequests", "Too many requests, please try again later."),
                500 => ("InternalError", "Internal error occurred: injected fault"),
                503 => ("ServiceUnavailable", "the server is currently unable to handle the request"),
                504 => ("Timeout", "the server was unable to return a response in the time allotted, but may still be processing the request"),
                404 => ("NotFound", "the server could not find the requested resource"),
                409 => ("Conflict", "the server reported a conflict"),
                403 => ("Forbidden", "forbidden"),
                401 => return Ok(unauthorized()),
                _ => ("InternalError", "injected fault"),
            };
            return Ok(status(code, reason, message, Some(json!({}))));
        }
        Some(Fault::Throttle) => {
            return Ok(respond(
                429,
                status_body(
                    429,
                    "TooManyRequests",
                    "Too many requests, please try again later.",
                    Some(&json!({"retryAfterSeconds": 1})),
                ),
                &[("retry-after", "1")],
            ));
        }
        Some(Fault::Latency { millis }) => tokio::time::sleep(Duration::from_millis(millis)).await,
        Some(Fault::Drop) => return Err(Dropped),
    }

    let content_type = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let manager = field_manager(&q, &parts.headers);
    let ctx = Ctx {
        shared: &shared,
        cluster: &cluster,
        user: &user,
        q: &q,
        body: &body,
        content_type: &content_type,
        manager: &manager,
    };
    Ok(match route {
        Route::Version => version(&ctx),
        Route::Health => http::Response::builder()
            .status(200)
            .header("content-type", "text/plain; charset=utf-8")
            .body(Full::new(Bytes::from_static(b"ok")))
            .unwrap_or_default(),
        Route::ApiVersions => json_reply(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": endpoint_host(&ctx)}]}),
        ),
        Route::CoreResources => json_reply(200, &core_resources()),
        Route::Groups => json_reply(200, &groups()),
        Route::AuthzGroup => json_reply(200, &authz_group()),
        Route::AuthzResources => json_reply(200, &authz_resources()),
        Route::OpenApi => not_found_path(),
        Route::Ssar => ssar(&ctx),
        Route::CmCollection { ns } => match method.as_str() {
            "GET" => list(&ctx, ns.as_deref(), &attrs),
            _ => create(&ctx, ns.as_deref().unwrap_or("default")),
        },
        Route::CmItem { ns, name } => match method.as_str() {
            "GET" => get(&ctx, &ns, &name),
            "PUT" => replace(&ctx, &ns, &name),
            "PATCH" => patch(&ctx, &ns, &name),
            _ => delete(&ctx, &ns, &name),
        },
    })
}

struct Ctx<'a> {
    shared: &'a Shared,
    cluster: &'a str,
    user: &'a User,
    q: &'a [(String, String)],
    body: &'a [u8],
    content_type: &'a str,
    manager: &'a str,
}

impl Ctx<'_> {
    fn dry_run(&self) -> bool {
        self.q.iter().any(|(k, v)| k == "dryRun" && v == "All")
    }

    /// Runs `f` on the cluster, or on a copy of it for `?dryRun=All`.
    fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> Option<R> {
        let mut st = self.shared.state();
        let c = st.clusters.get_mut(self.cluster)?;
        if self.dry_run() {
            let mut copy = c.clone();
            Some(f(&mut copy))
        } else {
            Some(f(c))
        }
    }
}

fn endpoint_host(ctx: &Ctx<'_>) -> String {
    let st = ctx.shared.state();
    st.clusters
        .get(ctx.cluster)
        .map(|c| c.endpoint.trim_start_matches("https://").to_string())
        .unwrap_or_default()
}

fn version(ctx: &Ctx<'_>) -> HttpResponse {
    let v = {
        let st = ctx.shared.state();
        st.clusters
            .get(ctx.cluster)
            .map(|c| c.version.clone())
            .unwrap_or_default()
    };
    let (major, minor) = v.split_once('.').unwrap_or((&v, "0"));
    json_reply(
        200,
        &json!({"major": major, "minor": format!("{minor}+"), "emulationMajor": major, "emulationMinor": minor,
            "minCompatibilityMajor": major, "minCompatibilityMinor": minor,
            "gitVersion": format!("v{major}.{minor}.0-eks-sim"), "gitCommit": "0000000000000000000000000000000000000000",
            "gitTreeState": "clean", "buildDate": "2024-01-01T00:00:00Z", "goVersion": "go1.22.5",
            "compiler": "gc", "platform": "linux/amd64"}),
    )
}

fn core_resources() -> Value {
    json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
        {"name": "configmaps", "singularName": "configmap", "namespaced": true, "kind": "ConfigMap",
         "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
         "shortNames": ["cm"], "storageVersionHash": "qFsyl6wFWjQ="},
        {"name": "namespaces", "singularName": "namespace", "namespaced": false, "kind": "Namespace",
         "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"],
         "shortNames": ["ns"], "storageVersionHash": "Q3oi5N2YM8M="}
    ]})
}

fn authz_version() -> Value {
    json!({"groupVersion": "authorization.k8s.io/v1", "version": "v1"})
}

fn authz_group() -> Value {
    json!({"kind": "APIGroup", "apiVersion": "v1", "name": "authorization.k8s.io",
        "versions": [authz_version()], "preferredVersion": authz_version()})
}

fn groups() -> Value {
    let mut g = authz_group();
    if let Some(o) = g.as_object_mut() {
        o.remove("kind");
        o.remove("apiVersion");
    }
    json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [g]})
}

fn authz_resources() -> Value {
    let r = |name: &str, kind: &str, namespaced: bool| json!({"name": name, "singularName": "", "namespaced": namespaced, "kind": kind, "verbs": ["create"]});
    json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": "authorization.k8s.io/v1", "resources": [
        r("localsubjectaccessreviews", "LocalSubjectAccessReview", true),
        r("selfsubjectaccessreviews", "SelfSubjectAccessReview", false),
        r("selfsubjectrulesreviews", "SelfSubjectRulesReview", false),
        r("subjectaccessreviews", "SubjectAccessReview", false),
    ]})
}

fn parse_json_body(body: &[u8]) -> Result<Value, Box<HttpResponse>> {
    serde_json::from_slice::<Value>(body).map_err(|e| {
        Box::new(status(
            400,
            "BadRequest",
            &format!("couldn't get version/kind; json parse error: {e}"),
            None,
        ))
    })
}

fn ssar(ctx: &Ctx<'_>) -> HttpResponse {
    let mut review = match parse_json_body(ctx.body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let spec = review["spec"].clone();
    let attrs = if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        let s = |k: &str| ra[k].as_str().unwrap_or("").to_string();
        let ns = s("namespace");
        let name = s("name");
        Attributes {
            verb: s("verb"),
            group: s("group"),
            resource: s("resource"),
            namespace: (!ns.is_empty()).then_some(ns),
            name: (!name.is_empty()).then_some(name),
            path: None,
        }
    } else if let Some(nra) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        Attributes {
            verb: nra["verb"].as_str().unwrap_or("").to_string(),
            group: String::new(),
            resource: String::new(),
            namespace: None,
            name: None,
            path: Some(nra["path"].as_str().unwrap_or("").to_string()),
        }
    } else {
        return status(
            422,
            "Invalid",
            "SelfSubjectAccessReview.authorization.k8s.io \"\" is invalid: spec.resourceAttributes: Invalid value: \"null\": exactly one of nonResourceAttributes or resourceAttributes must be specified",
            Some(json!({"group": "authorization.k8s.io", "kind": "SelfSubjectAccessReview"})),
        );
    };
    let status_obj = match authn::authorize(ctx.user, &attrs) {
        Ok(reason) => json!({"allowed": true, "reason": reason}),
        Err(_) => json!({"allowed": false}),
    };
    review["apiVersion"] = "authorization.k8s.io/v1".into();
    review["kind"] = "SelfSubjectAccessReview".into();
    if !review["metadata"].is_object() {
        review["metadata"] = json!({});
    }
    review["metadata"]["creationTimestamp"] = Value::Null;
    review["status"] = status_obj;
    json_reply(201, &review)
}

fn get(ctx: &Ctx<'_>, ns: &str, name: &str) -> HttpResponse {
    let r = {
        let st = ctx.shared.state();
        st.clusters
            .get(ctx.cluster)
            .map(|c| c.cm_get(ns, name).cloned())
    };
    match r {
        Some(Ok(obj)) => json_reply(200, &obj),
        Some(Err(e)) => state_error(e, name),
        None => not_found_path(),
    }
}

/// `k=v`, `k==v`, `k!=v`, `k`, `!k`, comma-separated.
fn selector_matches(selector: &str, labels: &Value) -> bool {
    selector
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .all(|term| {
            let get = |k: &str| labels.get(k.trim()).and_then(Value::as_str);
            if let Some((k, v)) = term.split_once("!=") {
                get(k) != Some(v.trim())
            } else if let Some((k, v)) = term.split_once("==").or_else(|| term.split_once('=')) {
                get(k) == Some(v.trim())
            } else if let Some(k) = term.strip_prefix('!') {
                get(k).is_none()
            } else {
                get(term).is_some()
            }
        })
}

fn list(ctx: &Ctx<'_>, ns: Option<&str>, attrs: &Attributes) -> HttpResponse {
    if attrs.verb == "watch" {
        return status(
            405,
            "MethodNotAllowed",
            "watch is not supported by eks-sim",
            Some(json!({})),
        );
    }
    let mut out = {
        let st = ctx.shared.state();
        let Some(c) = st.clusters.get(ctx.cluster) else {
            return not_found_path();
        };
        match ns {
            Some(ns) => c.cm_list(ns),
            None => {
                let items: Vec<Value> = c.configmaps.values().cloned().collect();
                json!({"apiVersion": "v1", "kind": "ConfigMapList",
                    "metadata": {"resourceVersion": c.resource_version.to_string()}, "items": items})
            }
        }
    };
    let label_sel = param(ctx.q, "labelSelector").unwrap_or("").to_string();
    let field_sel = param(ctx.q, "fieldSelector").unwrap_or("").to_string();
    if let Some(items) = out["items"].as_array_mut() {
        items.retain(|item| {
            selector_matches(&label_sel, &item["metadata"]["labels"])
                && selector_matches(
                    &field_sel,
                    &json!({"metadata.name": item["metadata"]["name"], "metadata.namespace": item["metadata"]["namespace"]}),
                )
        });
    }
    json_reply(200, &out)
}

/// The fields managedFields tracks here: `data/<k>`, `binaryData/<k>`, `labels/<k>`, `annotations/<k>`.
fn tracked_fields(obj: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (section, v) in [
        ("data", &obj["data"]),
        ("binaryData", &obj["binaryData"]),
        ("labels", &obj["metadata"]["labels"]),
        ("annotations", &obj["metadata"]["annotations"]),
    ] {
        if let Some(m) = v.as_object() {
            out.extend(m.iter().map(|(k, v)| (format!("{section}/{k}"), v.clone())));
        }
    }
    out
}

/// Records an `Update` by `manager` in managedFields: the fields it changed become its own.
fn record_update(c: &mut Cluster, ns: &str, name: &str, manager: &str, before: Option<&Value>) {
    let Some(obj) = c.configmaps.get_mut(&(ns.to_string(), name.to_string())) else {
        return;
    };
    let old: Vec<(String, Value)> = before.map(tracked_fields).unwrap_or_default();
    let changed: Vec<String> = tracked_fields(obj)
        .into_iter()
        .filter(|(f, v)| !old.iter().any(|(of, ov)| of == f && ov == v))
        .map(|(f, _)| f)
        .collect();
    if changed.is_empty() {
        return;
    }
    let mut managed: Vec<Value> = obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for m in managed.iter_mut() {
        if m["manager"] != manager {
            if let Some(a) = m["fieldsV1"].as_array_mut() {
                a.retain(|x| !x.as_str().is_some_and(|s| changed.iter().any(|f| f == s)));
            }
        }
    }
    managed.retain(|m| m["fieldsV1"].as_array().is_none_or(|a| !a.is_empty()));
    match managed
        .iter_mut()
        .find(|m| m["manager"] == manager && m["operation"] == "Update")
    {
        Some(m) => {
            let mut fields: Vec<Value> = m["fieldsV1"].as_array().cloned().unwrap_or_default();
            for f in &changed {
                if !fields.iter().any(|x| x == f) {
                    fields.push(Value::String(f.clone()));
                }
            }
            m["fieldsV1"] = Value::Array(fields);
            m["time"] = now_rfc3339().into();
        }
        None => managed.push(
            json!({"manager": manager, "operation": "Update", "apiVersion": "v1",
            "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": changed}),
        ),
    }
    obj["metadata"]["managedFields"] = Value::Array(managed);
}

fn check_namespace(obj: &Value, ns: &str) -> Result<(), Box<HttpResponse>> {
    match obj["metadata"]["namespace"].as_str() {
        Some(n) if !n.is_empty() && n != ns => Err(Box::new(status(
            400,
            "BadRequest",
            "the namespace of the provided object does not match the namespace sent on the request",
            None,
        ))),
        _ => Ok(()),
    }
}

fn create(ctx: &Ctx<'_>, ns: &str) -> HttpResponse {
    let obj = match parse_json_body(ctx.body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if let Err(r) = check_namespace(&obj, ns) {
        return *r;
    }
    let name = obj["metadata"]["name"].as_str().unwrap_or("").to_string();
    match ctx.with_cluster(|c| c.cm_create(ns, obj, Some(ctx.manager))) {
        Some(Ok(stored)) => json_reply(201, &stored),
        Some(Err(e)) => state_error(e, &name),
        None => not_found_path(),
    }
}

fn replace(ctx: &Ctx<'_>, ns: &str, name: &str) -> HttpResponse {
    let obj = match parse_json_body(ctx.body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    if let Err(r) = check_namespace(&obj, ns) {
        return *r;
    }
    let r = ctx.with_cluster(|c| {
        let before = c.cm_get(ns, name).ok().cloned();
        c.cm_replace(ns, name, obj)?;
        record_update(c, ns, name, ctx.manager, before.as_ref());
        c.cm_get(ns, name).cloned()
    });
    match r {
        Some(Ok(stored)) => json_reply(200, &stored),
        Some(Err(e)) => state_error(e, name),
        None => not_found_path(),
    }
}

fn patch(ctx: &Ctx<'_>, ns: &str, name: &str) -> HttpResponse {
    enum Kind {
        Merge,
        Json,
        Apply,
    }
    let kind = match ctx.content_type {
        "application/merge-patch+json" | "application/strategic-merge-patch+json" => Kind::Merge,
        "application/json-patch+json" => Kind::Json,
        "application/apply-patch+yaml" | "application/apply-patch+cbor" => Kind::Apply,
        other => {
            return status(
                415,
                "UnsupportedMediaType",
                &format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {other:?})"),
                None,
            )
        }
    };
    let patch_doc = match kind {
        Kind::Apply => {
            let text = String::from_utf8_lossy(ctx.body);
            match serde_norway::from_str::<Value>(&text) {
                Ok(v) => v,
                Err(e) => {
                    return status(
                        400,
                        "BadRequest",
                        &format!("error decoding YAML: {e}"),
                        None,
                    )
                }
            }
        }
        _ => match parse_json_body(ctx.body) {
            Ok(v) => v,
            Err(r) => return *r,
        },
    };
    let r = match kind {
        Kind::Apply => {
            let Some(manager) = param(ctx.q, "fieldManager").filter(|m| !m.is_empty()) else {
                return status(
                    422,
                    "Invalid",
                    "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    Some(json!({"group": "meta.k8s.io", "kind": "PatchOptions"})),
                );
            };
            if let Err(r) = check_namespace(&patch_doc, ns) {
                return *r;
            }
            let force = param(ctx.q, "force").is_some_and(|f| f == "true");
            ctx.with_cluster(|c| {
                c.cm_apply(ns, name, &patch_doc, manager, force)
                    .map(|(v, created)| (v, if created { 201 } else { 200 }))
            })
        }
        Kind::Merge => ctx.with_cluster(|c| {
            let before = c.cm_get(ns, name).ok().cloned();
            c.cm_merge_patch(ns, name, &patch_doc)?;
            record_update(c, ns, name, ctx.manager, before.as_ref());
            c.cm_get(ns, name).cloned().map(|v| (v, 200))
        }),
        Kind::Json => ctx.with_cluster(|c| {
            let before = c.cm_get(ns, name).ok().cloned();
            c.cm_json_patch(ns, name, &patch_doc)?;
            record_update(c, ns, name, ctx.manager, before.as_ref());
            c.cm_get(ns, name).cloned().map(|v| (v, 200))
        }),
    };
    match r {
        Some(Ok((stored, code))) => json_reply(code, &stored),
        Some(Err(e)) => state_error(e, name),
        None => not_found_path(),
    }
}

fn delete(ctx: &Ctx<'_>, ns: &str, name: &str) -> HttpResponse {
    let opts: Map<String, Value> = if ctx.body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match parse_json_body(ctx.body) {
            Ok(Value::Object(m)) => m,
            Ok(_) => Map::new(),
            Err(r) => return *r,
        }
    };
    let pre = opts.get("preconditions").cloned().unwrap_or(Value::Null);
    let r = ctx.with_cluster(|c| {
        let current = c.cm_get(ns, name)?.clone();
        if let Some(rv) = pre["resourceVersion"].as_str() {
            let have = current["metadata"]["resourceVersion"].as_str().unwrap_or("");
            if rv != have {
                return Err(StateError::Conflict(format!(
                    "Operation cannot be fulfilled on configmaps \"{name}\": the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({have}). The object might have been modified"
                )));
            }
        }
        if let Some(uid) = pre["uid"].as_str() {
            let have = current["metadata"]["uid"].as_str().unwrap_or("");
            if uid != have {
                return Err(StateError::Conflict(format!(
                    "Operation cannot be fulfilled on configmaps \"{name}\": the UID in the precondition ({uid}) does not match the UID in record ({have}). The object might have been modified"
                )));
            }
        }
        c.cm_delete(ns, name)
    });
    match r {
        Some(Ok(obj)) => json_reply(200, &obj),
        Some(Err(e)) => state_error(e, name),
        None => not_found_path(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_and_statuses() {
        assert_eq!(route("GET", "/version"), Some(Route::Version));
        assert_eq!(
            route("GET", "/api/v1/namespaces/kube-system/configmaps/aws-auth"),
            Some(Route::CmItem {
                ns: "kube-system".into(),
                name: "aws-auth".into()
            })
        );
        assert_eq!(route("GET", "/api/v1/namespaces/x/pods"), None);
        assert_eq!(route("GET", "/openapi/v3"), Some(Route::OpenApi));
        let r = Route::CmItem {
            ns: "a".into(),
            name: "b".into(),
        };
        assert_eq!(attributes(&r, "POST", "/", &[]), None);
        assert_eq!(attributes(&r, "PATCH", "/", &[]).unwrap().verb, "patch");
        assert_eq!(
            status_body(
                404,
                "NotFound",
                "configmaps \"x\" not found",
                Some(&cm_details("x"))
            ),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"x\" not found","reason":"NotFound","details":{"kind":"configmaps","name":"x"},"code":404}"#
        );
        assert!(selector_matches("a=b,!c", &json!({"a": "b"})));
        assert!(!selector_matches("a!=b", &json!({"a": "b"})));
        assert_eq!(
            query_pairs("fieldManager=x%2Fy&force=true"),
            vec![
                ("fieldManager".into(), "x/y".into()),
                ("force".into(), "true".into())
            ]
        );
    }
}
