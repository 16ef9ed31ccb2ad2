//! Authentication as EKS does it: the token is checked ([`crate::token`]), replayed to STS
//! ([`crate::sts`]), and the caller mapped to a Kubernetes user through the cluster creator
//! (CONFIG_MAP mode), access entries (API modes) and `kube-system/aws-auth` (CONFIG_MAP modes),
//! with every decision written as an authenticator log line. Then a minimal authorizer:
//! `system:masters` and the EKS access policies.
//!
//! Mapper order and errors follow the authenticator's `doMapping`: the first mapper that maps
//! wins; a mapper's error other than "not mapped" is kept and the next mapper is tried; an
//! allowed account (`mapAccounts`) maps to the canonical ARN with no groups.
//!
//! Sim choices, where EKS's configuration is not public:
//! - reserved username prefixes: access entries (mapper `DynamicFile`, STANDARD entries only)
//!   `[aws: iam: amazon: system: eks:]`, as in the authenticator's sample configuration; aws-auth
//!   (mapper `EKSConfigMap`) `[aws: iam: amazon: eks:]` (`system:` stays allowed there because
//!   node mappings are `system:node:{{EC2PrivateDNSName}}`);
//! - `{{EC2PrivateDNSName}}` renders to `<instance-id>.<region>.compute.internal` when the session
//!   name is an instance ID (there is no EC2 API here);
//! - no token cache: every request is authenticated and logged.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Mutex, OnceLock};

use serde_json::{Map, Value};

use crate::authlog::format_line;
use crate::config::AuthMode;
use crate::state::{now_rfc3339, policy_name, Association};
use crate::sts::{self, Identity, StsError};
use crate::token::{self, VerifierConfig};
use crate::Shared;

/// The message when no mapper knows the identity (EKS's build; upstream says `identity is not mapped`).
pub const NOT_MAPPED: &str = "ARN is not mapped";
/// Reserved username prefixes for access entries.
pub const ACCESS_ENTRY_RESERVED: &[&str] = &["aws:", "iam:", "amazon:", "system:", "eks:"];
/// Reserved username prefixes for aws-auth.
pub const AWS_AUTH_RESERVED: &[&str] = &["aws:", "iam:", "amazon:", "eks:"];

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub username: String,
    pub groups: Vec<String>,
    /// Access policies from the caller's access entry (API modes).
    pub policies: Vec<Association>,
    /// The canonical ARN.
    pub arn: String,
    pub uid: String,
}

/// One `mapRoles` item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoleMapping {
    pub rolearn: String,
    pub username: String,
    pub groups: Vec<String>,
    pub userid: String,
    /// The `sso` matcher is present (alpha feature gate, off: never matches).
    pub sso: bool,
}

/// One `mapUsers` item.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UserMapping {
    pub userarn: String,
    pub username: String,
    pub groups: Vec<String>,
    pub userid: String,
}

/// aws-auth as the authenticator holds it after `ParseMap`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AwsAuth {
    pub roles: Vec<RoleMapping>,
    pub users: Vec<UserMapping>,
    pub accounts: Vec<String>,
    /// The errors `ParseMap` reports (`Errors parsing configmap: [...]`).
    pub errors: Vec<String>,
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Decodes one item into named string / string-list fields like Go's `encoding/json`: keys match
/// case-insensitively, the last matching key wins, a value of the wrong type leaves the field
/// empty and records the first such error.
fn decode_item(
    item: &Value,
    ty: &str,
    fields: &mut [(&str, FieldSlot<'_>)],
    first_err: &mut Option<String>,
) {
    let Value::Object(map) = item else {
        if !item.is_null() {
            first_err.get_or_insert_with(|| {
                format!(
                    "json: cannot unmarshal {} into Go value of type config.{ty}",
                    json_kind(item)
                )
            });
        }
        return;
    };
    for (k, v) in map {
        let Some((name, slot)) = fields.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(k)) else {
            continue;
        };
        let type_err = |want: &str, got: &Value| {
            format!(
                "json: cannot unmarshal {} into Go struct field {ty}.{name} of type {want}",
                json_kind(got)
            )
        };
        match slot {
            FieldSlot::Str(s) => match v {
                Value::String(x) => **s = x.clone(),
                Value::Null => {}
                other => {
                    first_err.get_or_insert_with(|| type_err("string", other));
                }
            },
            FieldSlot::List(l) => match v {
                Value::Array(a) => {
                    let mut out = Vec::new();
                    for x in a {
                        match x {
                            Value::String(s) => out.push(s.clone()),
                            Value::Null => out.push(String::new()),
                            other => {
                                first_err.get_or_insert_with(|| type_err("string", other));
                                out.push(String::new());
                            }
                        }
                    }
                    **l = out;
                }
                Value::Null => **l = Vec::new(),
                other => {
                    first_err.get_or_insert_with(|| type_err("[]string", other));
                }
            },
            FieldSlot::Present(p) => **p = !v.is_null(),
        }
    }
}

enum FieldSlot<'a> {
    Str(&'a mut String),
    List(&'a mut Vec<String>),
    Present(&'a mut bool),
}

/// YAML text to a JSON value (`utilyaml.ToJSON`); the error text is Go-like.
fn yaml_to_json(text: &str) -> Result<Value, String> {
    serde_norway::from_str::<Value>(text)
        .map_err(|e| format!("error converting YAML to JSON: yaml: {e}"))
}

fn is_skippable(data: &str) -> bool {
    let t = data.trim();
    t.is_empty() || t == "``" || t == "\"\"" || t == "''"
}

/// Decodes one mapping list (`mapUsers`/`mapRoles`) as `ParseMap` does: a YAML error or a
/// non-list drops the whole key; the first decode error is reported once; items failing
/// `validate` are dropped with its message.
fn decode_list<T>(
    text: Option<&str>,
    go_type: &str,
    decode: impl Fn(&Value, &mut Option<String>) -> T,
    validate: impl Fn(&T, &Value) -> Result<(), String>,
    kept: &mut Vec<T>,
    errors: &mut Vec<String>,
) {
    let Some(text) = text.filter(|t| !is_skippable(t)) else {
        return;
    };
    match yaml_to_json(text) {
        Err(e) => errors.push(e),
        Ok(Value::Array(items)) => {
            let mut first_err = None;
            let decoded: Vec<T> = items
                .iter()
                .map(|item| decode(item, &mut first_err))
                .collect();
            errors.extend(first_err);
            for (m, item) in decoded.into_iter().zip(&items) {
                match validate(&m, item) {
                    Ok(()) => kept.push(m),
                    Err(e) => errors.push(e),
                }
            }
        }
        Ok(Value::Null) => {}
        Ok(other) => errors.push(format!(
            "json: cannot unmarshal {} into Go value of type []config.{go_type}",
            json_kind(&other)
        )),
    }
}

/// Parses aws-auth's `data` like the authenticator's `ParseMap`.
pub fn parse_aws_auth(data: &Map<String, Value>) -> AwsAuth {
    let mut out = AwsAuth::default();
    decode_list(
        data.get("mapUsers").and_then(Value::as_str),
        "UserMapping",
        |item, first_err| {
            let mut m = UserMapping::default();
            decode_item(
                item,
                "UserMapping",
                &mut [
                    ("userarn", FieldSlot::Str(&mut m.userarn)),
                    ("username", FieldSlot::Str(&mut m.username)),
                    ("groups", FieldSlot::List(&mut m.groups)),
                    ("userid", FieldSlot::Str(&mut m.userid)),
                ],
                first_err,
            );
            m
        },
        |m, _| {
            if m.userarn.is_empty() {
                Err("value for userarn must be supplied".into())
            } else {
                Ok(())
            }
        },
        &mut out.users,
        &mut out.errors,
    );
    decode_list(
        data.get("mapRoles").and_then(Value::as_str),
        "RoleMapping",
        |item, first_err| {
            let mut m = RoleMapping::default();
            decode_item(
                item,
                "RoleMapping",
                &mut [
                    ("rolearn", FieldSlot::Str(&mut m.rolearn)),
                    ("sso", FieldSlot::Present(&mut m.sso)),
                    ("username", FieldSlot::Str(&mut m.username)),
                    ("groups", FieldSlot::List(&mut m.groups)),
                    ("userid", FieldSlot::Str(&mut m.userid)),
                ],
                first_err,
            );
            m
        },
        validate_role,
        &mut out.roles,
        &mut out.errors,
    );
    if let Some(text) = data.get("mapAccounts").and_then(Value::as_str) {
        if !is_skippable(text) {
            match serde_norway::from_str::<Value>(text) {
                Err(e) => out.errors.push(format!("yaml: {e}")),
                Ok(Value::Array(items)) => {
                    for v in items {
                        match v {
                            Value::String(s) => out.accounts.push(s),
                            // yaml.v2 keeps a scalar's text; an unquoted 12-digit ID that starts
                            // with 0 lost its zeros as a YAML 1.2 integer: put them back.
                            Value::Number(n) => out.accounts.push(format!("{n:0>12}")),
                            Value::Bool(b) => out.accounts.push(b.to_string()),
                            Value::Null => out.accounts.push(String::new()),
                            other => out.errors.push(format!(
                                "yaml: unmarshal errors:\n  cannot unmarshal !!{} into string",
                                if other.is_object() { "map" } else { "seq" }
                            )),
                        }
                    }
                }
                Ok(Value::Null) => {}
                Ok(_) => out
                    .errors
                    .push("yaml: unmarshal errors:\n  cannot unmarshal !!map into []string".into()),
            }
        }
    }
    out
}

fn validate_role(m: &RoleMapping, item: &Value) -> Result<(), String> {
    if m.rolearn.is_empty() && !m.sso {
        return Err("one of rolearn or SSO must be supplied".into());
    }
    if !m.rolearn.is_empty() && m.sso {
        return Err("only one of rolearn or SSO can be supplied".into());
    }
    if m.sso {
        let sso = item
            .as_object()
            .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case("sso")))
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null);
        let field = |name: &str| {
            sso.as_object()
                .and_then(|o| o.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)))
                .and_then(|(_, v)| v.as_str())
                .unwrap_or("")
                .to_string()
        };
        let account = field("accountID");
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "AccountID '{account}' is not a valid AWS Account ID"
            ));
        }
        let ps = field("permissionSetName");
        if ps.is_empty()
            || ps.len() > 32
            || !ps
                .chars()
                .all(|c| c.is_alphanumeric() || c == '_' || "+=,.@-".contains(c))
        {
            return Err(format!(
                "PermissionSetName '{ps}' is not a valid AWS SSO PermissionSet Name"
            ));
        }
        let partition = field("partition");
        if !partition.is_empty() && !sts::PARTITIONS.contains(&partition.as_str()) {
            return Err(format!(
                "partition '{partition}' is not a valid AWS partition"
            ));
        }
    }
    Ok(())
}

/// `Errors parsing configmap: [a b]` as logrus prints `%+v` of `[]error`.
pub fn errors_list(errors: &[String]) -> String {
    format!("[{}]", errors.join(" "))
}

/// A mapping found by a mapper, before templates are rendered.
struct Mapping {
    mapper: &'static str,
    username: String,
    groups: Vec<String>,
    policies: Vec<Association>,
    reserved: &'static [&'static str],
}

fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|rest| {
        (rest.len() == 8 || rest.len() == 17)
            && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    })
}

/// `renderTemplate`.
fn render(template: &str, id: &Identity, region: &str) -> Result<String, String> {
    let mut t = template.to_string();
    if t.contains("{{EC2PrivateDNSName}}") {
        if !is_instance_id(&id.session_name) {
            return Err("SessionName did not contain an instance id".into());
        }
        t = t.replace(
            "{{EC2PrivateDNSName}}",
            &format!("{}.{region}.compute.internal", id.session_name),
        );
    }
    t = t.replace("{{AccountID}}", &id.account_id);
    t = t.replace("{{SessionName}}", &id.session_name.replace('@', "-"));
    t = t.replace("{{SessionNameRaw}}", &id.session_name);
    t = t.replace("{{AccessKeyID}}", &id.access_key_id);
    Ok(t)
}

/// What the mappers need from the cluster, copied out of the state lock.
struct Snapshot {
    mode: AuthMode,
    region: String,
    creator_arn: String,
    entries: Vec<crate::state::AccessEntry>,
    aws_auth: Option<(String, Map<String, Value>)>,
}

fn snapshot(shared: &Shared, cluster: &str) -> Option<Snapshot> {
    let st = shared.state();
    let c = st.clusters.get(cluster)?;
    let aws_auth = c.cm_get("kube-system", "aws-auth").ok().map(|cm| {
        let key = format!(
            "{}/{}",
            cm["metadata"]["uid"].as_str().unwrap_or(""),
            cm["metadata"]["resourceVersion"].as_str().unwrap_or("")
        );
        (key, cm["data"].as_object().cloned().unwrap_or_default())
    });
    Some(Snapshot {
        mode: c.mode,
        region: c.region.clone(),
        creator_arn: c.creator_arn.clone(),
        entries: c.access_entries.values().cloned().collect(),
        aws_auth,
    })
}

/// aws-auth versions whose parse errors were already logged (the authenticator logs them once
/// per watch event, not per request): (simulator, cluster, uid/resourceVersion).
fn logged_versions() -> &'static Mutex<HashSet<(usize, String, String)>> {
    static LOGGED: OnceLock<Mutex<HashSet<(usize, String, String)>>> = OnceLock::new();
    LOGGED.get_or_init(|| Mutex::new(HashSet::new()))
}

/// Parses aws-auth and logs its errors once per version, as the authenticator's watch does.
async fn load_aws_auth(shared: &Shared, cluster: &str, snap: &Snapshot) -> AwsAuth {
    let Some((version, data)) = &snap.aws_auth else {
        return AwsAuth::default();
    };
    let parsed = parse_aws_auth(data);
    if !parsed.errors.is_empty() {
        let key = (
            shared as *const Shared as usize,
            cluster.to_string(),
            version.clone(),
        );
        let first = logged_versions()
            .lock()
            .map(|mut s| s.insert(key))
            .unwrap_or(false);
        if first {
            let list = errors_list(&parsed.errors);
            let now = now_rfc3339();
            shared
                .log_auth(
                    cluster,
                    format_line(
                        &now,
                        "warning",
                        &format!("Errors parsing configmap: {list}"),
                        &[],
                    ),
                )
                .await;
            shared
                .log_auth(
                    cluster,
                    format_line(
                        &now,
                        "error",
                        &format!(
                            "There was an error parsing the config maps.  Only saving data that was good, error parsing config map: {list}"
                        ),
                        &[],
                    ),
                )
                .await;
        }
    }
    parsed
}

fn map_creator(snap: &Snapshot, id: &Identity) -> Option<Mapping> {
    let creator = match sts::canonicalize(&snap.creator_arn) {
        Ok((_, c)) => sts::strip_path(&c),
        Err(_) => snap.creator_arn.clone(),
    };
    creator
        .eq_ignore_ascii_case(&id.canonical_arn)
        .then(|| Mapping {
            mapper: "MountedFile",
            username: "kubernetes-admin".into(),
            groups: vec!["system:masters".into()],
            policies: Vec::new(),
            reserved: &[],
        })
}

/// The access-entry mapper (`DynamicFile`).
fn map_access_entry(snap: &Snapshot, id: &Identity) -> Result<Option<Mapping>, String> {
    let Some(entry) = snap
        .entries
        .iter()
        .find(|e| sts::strip_path(&e.principal_arn).eq_ignore_ascii_case(&id.canonical_arn))
    else {
        return Ok(None);
    };
    if let Some(uid) = entry.unique_id.as_deref().filter(|u| !u.is_empty()) {
        let entity = id.user_id.split(':').next().unwrap_or("");
        if uid != entity {
            return Err("ARN does not match User ID".into());
        }
    }
    Ok(Some(Mapping {
        mapper: "DynamicFile",
        username: entry.username.clone(),
        groups: entry.kubernetes_groups.clone(),
        policies: entry.policies.clone(),
        reserved: if entry.kind == "STANDARD" {
            ACCESS_ENTRY_RESERVED
        } else {
            &[]
        },
    }))
}

/// The aws-auth mapper (`EKSConfigMap`): roles, then users; the last duplicate wins.
fn map_aws_auth(auth: &AwsAuth, id: &Identity) -> Option<Mapping> {
    let arn = &id.canonical_arn;
    let found = auth
        .roles
        .iter()
        .rev()
        .find(|r| !r.rolearn.is_empty() && r.rolearn.eq_ignore_ascii_case(arn))
        .map(|r| (r.username.clone(), r.groups.clone()))
        .or_else(|| {
            auth.users
                .iter()
                .rev()
                .find(|u| u.userarn.eq_ignore_ascii_case(arn))
                .map(|u| (u.username.clone(), u.groups.clone()))
        })?;
    Some(Mapping {
        mapper: "EKSConfigMap",
        username: found.0,
        groups: found.1,
        policies: Vec::new(),
        reserved: AWS_AUTH_RESERVED,
    })
}

/// `doMapping`: username, groups and access policies, or the `error=` text.
async fn do_mapping(
    shared: &Shared,
    cluster: &str,
    snap: &Snapshot,
    id: &Identity,
) -> Result<User, String> {
    let mut errs: Vec<String> = Vec::new();
    let finish = |m: Mapping| -> Result<User, String> {
        let username = render(&m.username, id, &snap.region).map_err(|e| {
            format!(
                "mapper {} renderTemplates error: error rendering username template {}: {e}",
                m.mapper,
                token::go_quote(&m.username)
            )
        })?;
        let mut groups = Vec::new();
        for g in &m.groups {
            groups.push(render(g, id, &snap.region).map_err(|e| {
                format!(
                    "mapper {} renderTemplates error: error rendering group template {}: {e}",
                    m.mapper,
                    token::go_quote(g)
                )
            })?);
        }
        if m.reserved.iter().any(|p| username.starts_with(p)) {
            return Err(format!(
                "invalid username '{username}' for mapper {}: username must not begin with with the following prefixes: [{}]",
                m.mapper,
                m.reserved.join(" ")
            ));
        }
        Ok(User {
            username,
            groups,
            policies: m.policies,
            arn: id.canonical_arn.clone(),
            uid: format!("aws-iam-authenticator:{}:{}", id.account_id, id.user_id),
        })
    };
    if snap.mode == AuthMode::ConfigMap {
        if let Some(m) = map_creator(snap, id) {
            return finish(m);
        }
    }
    if snap.mode.uses_api() {
        match map_access_entry(snap, id) {
            Ok(Some(m)) => return finish(m),
            Ok(None) => {}
            Err(e) => errs.push(format!("mapper DynamicFile Map error: {e}")),
        }
    }
    if snap.mode.uses_config_map() {
        let auth = load_aws_auth(shared, cluster, snap).await;
        if let Some(m) = map_aws_auth(&auth, id) {
            return finish(m);
        }
        if auth.accounts.contains(&id.account_id) {
            return Ok(User {
                username: id.canonical_arn.clone(),
                groups: Vec::new(),
                policies: Vec::new(),
                arn: id.canonical_arn.clone(),
                uid: format!("aws-iam-authenticator:{}:{}", id.account_id, id.user_id),
            });
        }
    }
    if !errs.is_empty() {
        return Err(if errs.len() == 1 {
            errs.remove(0)
        } else {
            format!("[{}]", errs.join(", "))
        });
    }
    Err(NOT_MAPPED.into())
}

fn base_fields(peer: SocketAddr) -> Vec<(&'static str, String)> {
    vec![
        ("client", peer.to_string()),
        ("method", "POST".to_string()),
        ("path", "/authenticate".to_string()),
    ]
}

async fn deny(shared: &Shared, cluster: &str, peer: SocketAddr, arn: Option<&str>, error: &str) {
    let mut fields = base_fields(peer);
    if let Some(a) = arn {
        fields.push(("arn", a.to_string()));
    }
    fields.push(("error", error.to_string()));
    if let Some(c) = shared.state().clusters.get_mut(cluster) {
        c.counters.authn_denied += 1;
    }
    shared
        .log_auth(
            cluster,
            format_line(&now_rfc3339(), "warning", "access denied", &fields),
        )
        .await;
}

/// Authenticates a bearer token for `cluster` (the `POST /authenticate` the API server makes),
/// logging the decision. `None` means 401.
pub async fn authenticate(
    shared: &Shared,
    cluster: &str,
    peer: SocketAddr,
    bearer: &str,
) -> Option<User> {
    let (region, extra) = {
        let st = shared.state();
        let c = st.clusters.get(cluster)?;
        (c.region.clone(), shared.config.sts.extra_hosts.clone())
    };
    let partition = token::partition_of_region(&region);
    let cfg = VerifierConfig {
        partition,
        region: &region,
        extra_hosts: &extra,
    };
    let verified = match token::verify(bearer, &cfg, token::now_nanos()) {
        Ok(v) => v,
        Err(e) => {
            deny(shared, cluster, peer, None, &e.to_string()).await;
            return None;
        }
    };
    let identity = match sts::get_caller_identity(shared, cluster, &verified).await {
        Ok(id) => id,
        Err(e @ (StsError::Failed(_) | StsError::Throttled(_))) => {
            deny(shared, cluster, peer, None, &e.to_string()).await;
            return None;
        }
    };
    let mut fields = base_fields(peer);
    fields.extend([
        ("accesskeyid", identity.access_key_id.clone()),
        ("accountid", identity.account_id.clone()),
        ("arn", identity.arn.clone()),
        ("session", identity.session_name.clone()),
        ("stsendpoint", identity.sts_endpoint.clone()),
        ("userid", identity.user_id.clone()),
    ]);
    shared
        .log_auth(
            cluster,
            format_line(&now_rfc3339(), "info", "STS response", &fields),
        )
        .await;
    let snap = snapshot(shared, cluster)?;
    match do_mapping(shared, cluster, &snap, &identity).await {
        Ok(user) => {
            let mut fields = base_fields(peer);
            fields.extend([
                ("arn", identity.canonical_arn.clone()),
                ("groups", format!("[{}]", user.groups.join(" "))),
                ("stsendpoint", identity.sts_endpoint.clone()),
                ("uid", user.uid.clone()),
                ("username", user.username.clone()),
            ]);
            if let Some(c) = shared.state().clusters.get_mut(cluster) {
                c.counters.authn_granted += 1;
            }
            shared
                .log_auth(
                    cluster,
                    format_line(&now_rfc3339(), "info", "access granted", &fields),
                )
                .await;
            Some(user)
        }
        Err(e) => {
            deny(shared, cluster, peer, Some(&identity.canonical_arn), &e).await;
            None
        }
    }
}

// ---- authorization ----------------------------------------------------------------------

/// What a request wants to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// API group (`""` for core).
    pub group: String,
    /// `configmaps`; empty for a non-resource URL.
    pub resource: String,
    /// None for cluster-scoped requests.
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// For non-resource requests (`/version`, `/api`).
    pub path: Option<String>,
}

const READ_VERBS: &[&str] = &["get", "list", "watch"];

fn scope_covers(a: &Association, namespace: Option<&str>) -> bool {
    if a.scope_type == "cluster" {
        return true;
    }
    let Some(ns) = namespace else {
        return false;
    };
    a.namespaces.iter().any(|p| match p.strip_suffix('*') {
        Some(prefix) => ns.starts_with(prefix),
        None => p == ns,
    })
}

/// Decides a request: `Ok(reason)` when allowed, `Err(reason)` when not (RBAC's phrasing).
///
/// # Errors
/// The denial reason (empty when nothing applies).
pub fn authorize(user: &User, attrs: &Attributes) -> Result<String, String> {
    if user.groups.iter().any(|g| g == "system:masters") {
        return Ok(
            "RBAC: allowed by ClusterRoleBinding \"cluster-admin\" of ClusterRole \"cluster-admin\" to Group \"system:masters\""
                .into(),
        );
    }
    if attrs.resource.is_empty() {
        // system:discovery / system:public-info-viewer for every authenticated user.
        if READ_VERBS.contains(&attrs.verb.as_str()) {
            return Ok("RBAC: allowed by ClusterRoleBinding \"system:discovery\" of ClusterRole \"system:discovery\" to Group \"system:authenticated\"".into());
        }
        return Err(String::new());
    }
    if attrs.group == "authorization.k8s.io"
        && (attrs.resource == "selfsubjectaccessreviews"
            || attrs.resource == "selfsubjectrulesreviews")
        && attrs.verb == "create"
    {
        return Ok("RBAC: allowed by ClusterRoleBinding \"system:basic-user\" of ClusterRole \"system:basic-user\" to Group \"system:authenticated\"".into());
    }
    let read = READ_VERBS.contains(&attrs.verb.as_str());
    for a in &user.policies {
        let Some(name) = policy_name(&a.policy_arn) else {
            continue;
        };
        if !scope_covers(a, attrs.namespace.as_deref()) {
            continue;
        }
        let allowed = match name {
            "AmazonEKSClusterAdminPolicy" => true,
            "AmazonEKSAdminPolicy" | "AmazonEKSEditPolicy" => attrs.namespace.is_some() || read,
            "AmazonEKSViewPolicy" | "AmazonEKSAdminViewPolicy" => read,
            _ => false,
        };
        if allowed {
            return Ok(format!("EKS Access Policy: allowed by ClusterRoleBinding \"{}\" of ClusterRole \"{}\" to User \"{}\"", a.policy_arn, name, user.username));
        }
    }
    Err(String::new())
}

/// The 403 message: `configmaps "aws-auth" is forbidden: User "u" cannot update resource
/// "configmaps" in API group "" in the namespace "kube-system"`.
pub fn forbidden_message(user: &User, attrs: &Attributes) -> String {
    if attrs.resource.is_empty() {
        return format!(
            "forbidden: User \"{}\" cannot {} path \"{}\"",
            user.username,
            attrs.verb,
            attrs.path.as_deref().unwrap_or("/")
        );
    }
    let what = match &attrs.name {
        Some(n) => format!("{} \"{n}\"", qualified(attrs)),
        None => qualified(attrs),
    };
    let scope = match &attrs.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".to_string(),
    };
    format!(
        "{what} is forbidden: User \"{}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        user.username, attrs.verb, attrs.resource, attrs.group
    )
}

fn qualified(attrs: &Attributes) -> String {
    if attrs.group.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}.{}", attrs.resource, attrs.group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> Map<String, Value> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(v.to_string())))
            .collect()
    }

    fn identity(arn: &str, user_id: &str) -> Identity {
        sts::identity_from_response(
            "123456789012",
            arn,
            user_id,
            "AKIAX",
            "sts.us-west-2.amazonaws.com",
        )
        .unwrap()
    }

    #[test]
    fn parses_aws_auth_like_the_authenticator() {
        let a = parse_aws_auth(&data(&[
            (
                "mapRoles",
                "- rolearn: arn:aws:iam::123456789012:role/a\n  username: a\n  groups: [g1]\n- roleARN: arn:aws:iam::123456789012:role/B\n  UserName: b\n  extra: kept\n- username: nobody\n- rolearn: arn:aws:iam::123456789012:role/c\n  groups: system:masters\n",
            ),
            ("mapUsers", "- userarn: arn:aws:iam::123456789012:user/u\n  username: u\n- username: x\n"),
            ("mapAccounts", "- \"111122223333\"\n- 012345678901\n"),
        ]));
        assert_eq!(a.roles.len(), 3);
        assert_eq!(a.roles[1].rolearn, "arn:aws:iam::123456789012:role/B");
        assert_eq!(a.roles[1].username, "b");
        assert_eq!(
            a.roles[2].groups,
            Vec::<String>::new(),
            "a wrongly typed field stays empty"
        );
        assert_eq!(a.users.len(), 1);
        assert_eq!(
            a.accounts,
            vec!["111122223333".to_string(), "012345678901".to_string()]
        );
        assert_eq!(
            errors_list(&a.errors),
            "[value for userarn must be supplied json: cannot unmarshal string into Go struct field RoleMapping.groups of type []string one of rolearn or SSO must be supplied]"
        );
        // A YAML error drops the whole key, the other keys stay.
        let b = parse_aws_auth(&data(&[
            ("mapRoles", "- rolearn: a\n username: b\n  - x: [\n"),
            ("mapUsers", "- userarn: arn:aws:iam::123456789012:user/u\n"),
        ]));
        assert!(b.roles.is_empty());
        assert_eq!(b.users.len(), 1);
        assert!(
            b.errors[0].starts_with("error converting YAML to JSON: yaml: "),
            "{:?}",
            b.errors
        );
        // Not a list.
        let c = parse_aws_auth(&data(&[("mapRoles", "rolearn: x\n"), ("mapUsers", "''")]));
        assert_eq!(
            c.errors,
            vec![
                "json: cannot unmarshal object into Go value of type []config.RoleMapping"
                    .to_string()
            ]
        );
    }

    #[test]
    fn maps_roles_users_and_templates() {
        let auth = parse_aws_auth(&data(&[(
            "mapRoles",
            "- rolearn: arn:aws:iam::123456789012:role/dev\n  username: first\n- rolearn: arn:aws:iam::123456789012:role/DEV\n  username: dev:{{SessionName}}:{{AccountID}}\n  groups: [\"g-{{SessionNameRaw}}\"]\n- rolearn: arn:aws:iam::123456789012:role/team/pathed\n  username: p\n",
        )]));
        let id = identity(
            "arn:aws:sts::123456789012:assumed-role/dev/alice@example.com",
            "AROAX:alice@example.com",
        );
        let m = map_aws_auth(&auth, &id).unwrap();
        assert_eq!(
            m.username, "dev:{{SessionName}}:{{AccountID}}",
            "last duplicate wins, case-insensitively"
        );
        assert_eq!(
            render(&m.username, &id, "us-west-2").unwrap(),
            "dev:alice-example.com:123456789012"
        );
        assert_eq!(
            render(&m.groups[0], &id, "us-west-2").unwrap(),
            "g-alice@example.com"
        );
        let pathed = identity("arn:aws:sts::123456789012:assumed-role/pathed/s", "AROAY:s");
        assert!(
            map_aws_auth(&auth, &pathed).is_none(),
            "a rolearn with a path never matches"
        );
        assert_eq!(
            render("system:node:{{EC2PrivateDNSName}}", &pathed, "us-west-2").unwrap_err(),
            "SessionName did not contain an instance id"
        );
        let node = identity(
            "arn:aws:sts::123456789012:assumed-role/node/i-0123456789abcdef0",
            "AROAN:i-0123456789abcdef0",
        );
        assert_eq!(
            render("system:node:{{EC2PrivateDNSName}}", &node, "us-west-2").unwrap(),
            "system:node:i-0123456789abcdef0.us-west-2.compute.internal"
        );
    }

    #[test]
    fn authorizes_by_group_and_policy() {
        let mut user = User {
            username: "u".into(),
            groups: vec![],
            policies: vec![],
            arn: "arn:aws:iam::123456789012:user/u".into(),
            uid: String::new(),
        };
        let attrs = |verb: &str, ns: Option<&str>| Attributes {
            verb: verb.into(),
            group: String::new(),
            resource: "configmaps".into(),
            namespace: ns.map(str::to_string),
            name: Some("aws-auth".into()),
            path: None,
        };
        assert!(authorize(&user, &attrs("get", Some("kube-system"))).is_err());
        assert_eq!(
            forbidden_message(&user, &attrs("update", Some("kube-system"))),
            r#"configmaps "aws-auth" is forbidden: User "u" cannot update resource "configmaps" in API group "" in the namespace "kube-system""#
        );
        let assoc = |p: &str, ns: &[&str]| Association {
            policy_arn: format!("arn:aws:eks::aws:cluster-access-policy/{p}"),
            scope_type: if ns.is_empty() {
                "cluster".into()
            } else {
                "namespace".into()
            },
            namespaces: ns.iter().map(|s| s.to_string()).collect(),
            associated_at: 0.0,
            modified_at: 0.0,
        };
        user.policies = vec![assoc("AmazonEKSViewPolicy", &[])];
        assert!(authorize(&user, &attrs("get", Some("kube-system"))).is_ok());
        assert!(authorize(&user, &attrs("update", Some("kube-system"))).is_err());
        user.policies = vec![assoc("AmazonEKSEditPolicy", &["dev-*"])];
        assert!(authorize(&user, &attrs("patch", Some("dev-a"))).is_ok());
        assert!(authorize(&user, &attrs("patch", Some("kube-system"))).is_err());
        user.policies = vec![assoc("AmazonEKSClusterAdminPolicy", &[])];
        assert!(authorize(&user, &attrs("delete", None)).is_ok());
        user.policies.clear();
        user.groups = vec!["system:masters".into()];
        assert!(authorize(&user, &attrs("delete", Some("kube-system"))).is_ok());
    }
}
