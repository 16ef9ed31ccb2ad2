//! The simulator's state: clusters, their access entries and ConfigMaps, counters and faults.
//! Operations here are plain functions on data with EKS's and Kubernetes' semantics; the HTTP
//! layers (`eks_api`, `k8s_api`) only translate requests and errors.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Map, Value};

use crate::config::{AuthMode, ClusterConfig, SimConfig};
use crate::faults::Faults;

/// The access policies EKS offers (a subset is enough; unknown ARNs are rejected as EKS does).
pub const ACCESS_POLICIES: &[&str] = &[
    "AmazonEKSAdminPolicy",
    "AmazonEKSAdminViewPolicy",
    "AmazonEKSClusterAdminPolicy",
    "AmazonEKSEditPolicy",
    "AmazonEKSViewPolicy",
];

/// `arn:aws:eks::aws:cluster-access-policy/<name>`, partition-aware.
pub fn policy_name(arn: &str) -> Option<&'static str> {
    let (prefix, name) = arn.rsplit_once('/')?;
    let partition = prefix.strip_prefix("arn:")?.split(':').next()?;
    if prefix != format!("arn:{partition}:eks::aws:cluster-access-policy") {
        return None;
    }
    ACCESS_POLICIES.iter().copied().find(|p| *p == name)
}

/// Seconds since the epoch as f64, the way the AWS JSON protocols send timestamps.
pub fn now_epoch() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// RFC 3339 UTC with seconds, as Kubernetes writes timestamps.
pub fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d, h, mi, s) = crate::civil::from_unix(secs);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
}

/// An access policy association.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Association {
    pub policy_arn: String,
    /// `cluster` or `namespace`.
    pub scope_type: String,
    pub namespaces: Vec<String>,
    pub associated_at: f64,
    pub modified_at: f64,
}

/// An EKS access entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessEntry {
    pub principal_arn: String,
    pub kubernetes_groups: Vec<String>,
    pub username: String,
    /// STANDARD, EC2_LINUX, EC2_WINDOWS, FARGATE_LINUX, EC2, HYBRID_LINUX, HYPERPOD_LINUX.
    pub kind: String,
    pub tags: BTreeMap<String, String>,
    pub access_entry_arn: String,
    pub created_at: f64,
    pub modified_at: f64,
    /// The IAM unique ID the entry was bound to at creation, when known.
    pub unique_id: Option<String>,
    pub policies: Vec<Association>,
    /// The `clientRequestToken` of the CreateAccessEntry call that made the entry, so a retry
    /// with the same token and parameters succeeds instead of answering 409.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_request_token: Option<String>,
}

/// Counters tests assert on ("dry-run never writes").
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Successful ConfigMap creates, replaces, patches and deletes.
    pub configmap_writes: u64,
    /// Successful access-entry and association changes, and mode changes.
    pub eks_writes: u64,
    pub eks_requests: u64,
    pub k8s_requests: u64,
    pub authn_granted: u64,
    pub authn_denied: u64,
}

/// One simulated cluster.
#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    pub arn: String,
    pub region: String,
    pub account: String,
    pub mode: AuthMode,
    pub creator_arn: String,
    pub bootstrap_admin: bool,
    pub version: String,
    pub created_at: f64,
    /// `https://127.0.0.1:<port>`, set when the listener is bound.
    pub endpoint: String,
    pub access_entries: BTreeMap<String, AccessEntry>,
    /// (namespace, name) -> full ConfigMap object.
    pub configmaps: BTreeMap<(String, String), Value>,
    pub resource_version: u64,
    pub counters: Counters,
    next_uid: u64,
}

/// Errors with their EKS (`x-amzn-errortype`) or Kubernetes (`Status.reason`) meaning.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InUse(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// Kubernetes 409 Conflict (stale resourceVersion, or an apply conflict).
    #[error("{0}")]
    Conflict(String),
    /// Kubernetes 409 AlreadyExists.
    #[error("{0}")]
    AlreadyExists(String),
    /// Kubernetes 400/422 for a body that is not a valid object or patch.
    #[error("{0}")]
    BadRequest(String),
}

impl Cluster {
    /// Builds a cluster from its configuration.
    pub fn new(cfg: &ClusterConfig, sim: &SimConfig) -> Cluster {
        let now = now_epoch();
        let mut c = Cluster {
            name: cfg.name.clone(),
            arn: format!(
                "arn:aws:eks:{}:{}:cluster/{}",
                sim.region, sim.account, cfg.name
            ),
            region: sim.region.clone(),
            account: sim.account.clone(),
            mode: cfg.authentication_mode,
            creator_arn: cfg.creator_arn.clone(),
            bootstrap_admin: cfg.bootstrap_cluster_creator_admin_permissions,
            version: cfg.kubernetes_version.clone(),
            created_at: now,
            endpoint: String::new(),
            access_entries: BTreeMap::new(),
            configmaps: BTreeMap::new(),
            resource_version: 1000,
            counters: Counters::default(),
            next_uid: 1,
        };
        if let Some(data) = &cfg.aws_auth {
            let data: Map<String, Value> = data
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect();
            let obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "aws-auth", "namespace": "kube-system"}, "data": data});
            let _ = c.cm_create("kube-system", obj, None);
        }
        if c.mode.uses_api() && c.bootstrap_admin {
            c.bootstrap_creator_entry();
        }
        for e in &cfg.access_entries {
            let entry = c.new_entry(
                &e.principal_arn,
                e.kubernetes_groups.clone(),
                e.username.clone(),
                &e.kind,
                BTreeMap::new(),
                e.unique_id.clone(),
            );
            c.access_entries.insert(e.principal_arn.clone(), entry);
            for p in &e.policies {
                let scope = if p.namespaces.is_empty() {
                    "cluster"
                } else {
                    "namespace"
                };
                let _ = c.associate(&e.principal_arn, &p.policy_arn, scope, p.namespaces.clone());
            }
        }
        c.counters = Counters::default();
        c
    }

    fn bootstrap_creator_entry(&mut self) {
        if self.access_entries.contains_key(&self.creator_arn) {
            return;
        }
        let creator = self.creator_arn.clone();
        let entry = self.new_entry(
            &creator,
            Vec::new(),
            None,
            "STANDARD",
            BTreeMap::new(),
            None,
        );
        self.access_entries.insert(creator.clone(), entry);
        let partition = creator.split(':').nth(1).unwrap_or("aws").to_string();
        let _ = self.associate(
            &creator,
            &format!("arn:{partition}:eks::aws:cluster-access-policy/AmazonEKSClusterAdminPolicy"),
            "cluster",
            Vec::new(),
        );
    }

    fn new_entry(
        &mut self,
        principal_arn: &str,
        groups: Vec<String>,
        username: Option<String>,
        kind: &str,
        tags: BTreeMap<String, String>,
        unique_id: Option<String>,
    ) -> AccessEntry {
        let now = now_epoch();
        self.next_uid += 1;
        let (kind_path, name) = principal_arn
            .split_once(":role/")
            .map(|(_, n)| ("role", n))
            .or_else(|| principal_arn.split_once(":user/").map(|(_, n)| ("user", n)))
            .unwrap_or(("principal", principal_arn));
        let account = principal_arn.split(':').nth(4).unwrap_or("").to_string();
        let short = name.rsplit('/').next().unwrap_or(name);
        let default_username = match kind_path {
            "role" => format!("arn:aws:sts::{account}:assumed-role/{short}/{{{{SessionName}}}}"),
            _ => principal_arn.to_string(),
        };
        AccessEntry {
            principal_arn: principal_arn.to_string(),
            kubernetes_groups: groups,
            username: username.unwrap_or(default_username),
            kind: kind.to_string(),
            tags,
            access_entry_arn: format!(
                "arn:aws:eks:{}:{}:access-entry/{}/{kind_path}/{account}/{short}/{:08x}",
                self.region, self.account, self.name, self.next_uid
            ),
            created_at: now,
            modified_at: now,
            unique_id,
            policies: Vec::new(),
            client_request_token: None,
        }
    }

    // ---- EKS access entries -------------------------------------------------------------

    /// CreateAccessEntry. `unique_id` is the IAM entity's ID when the caller resolved it.
    ///
    /// # Errors
    /// InUse when the entry exists; InvalidParameter for a bad ARN or type; InvalidRequest in
    /// CONFIG_MAP mode.
    #[allow(clippy::too_many_arguments)]
    pub fn create_access_entry(
        &mut self,
        principal_arn: &str,
        groups: Vec<String>,
        username: Option<String>,
        kind: Option<String>,
        tags: BTreeMap<String, String>,
        unique_id: Option<String>,
    ) -> Result<AccessEntry, StateError> {
        if !self.mode.uses_api() {
            return Err(StateError::InvalidRequest(
                "The cluster's authentication mode must be set to one of [API, API_AND_CONFIG_MAP] to perform this operation.".into(),
            ));
        }
        if !is_iam_principal(principal_arn) {
            return Err(StateError::InvalidParameter(format!(
                "The specified principalArn is invalid: invalid principal {principal_arn}"
            )));
        }
        let kind = kind.unwrap_or_else(|| "STANDARD".into());
        const KINDS: &[&str] = &[
            "STANDARD",
            "EC2_LINUX",
            "EC2_WINDOWS",
            "FARGATE_LINUX",
            "EC2",
            "HYBRID_LINUX",
            "HYPERPOD_LINUX",
        ];
        if !KINDS.contains(&kind.as_str()) {
            return Err(StateError::InvalidParameter(format!(
                "The type {kind} is not a valid access entry type"
            )));
        }
        if kind != "STANDARD" && (!groups.is_empty() || username.is_some()) {
            return Err(StateError::InvalidParameter(format!(
                "kubernetesGroups and username cannot be specified for access entries of type {kind}"
            )));
        }
        if let Some(g) = groups.iter().find(|g| g.starts_with("system:")) {
            return Err(StateError::InvalidParameter(format!(
                "The kubernetes group name {g} is invalid, it cannot start with system:"
            )));
        }
        if self.access_entries.contains_key(principal_arn) {
            return Err(StateError::InUse(
                "The specified access entry resource is already in use on this cluster.".into(),
            ));
        }
        let entry = self.new_entry(principal_arn, groups, username, &kind, tags, unique_id);
        self.access_entries
            .insert(principal_arn.to_string(), entry.clone());
        self.counters.eks_writes += 1;
        Ok(entry)
    }

    /// DescribeAccessEntry.
    ///
    /// # Errors
    /// NotFound when there is no such entry.
    pub fn access_entry(&self, principal_arn: &str) -> Result<&AccessEntry, StateError> {
        self.access_entries
            .get(principal_arn)
            .ok_or_else(|| entry_not_found(principal_arn))
    }

    /// DeleteAccessEntry.
    ///
    /// # Errors
    /// NotFound when there is no such entry.
    pub fn delete_access_entry(&mut self, principal_arn: &str) -> Result<(), StateError> {
        self.access_entries
            .remove(principal_arn)
            .ok_or_else(|| entry_not_found(principal_arn))?;
        self.counters.eks_writes += 1;
        Ok(())
    }

    /// AssociateAccessPolicy: replaces the scope of an existing association of the same policy.
    ///
    /// # Errors
    /// NotFound for an unknown entry; InvalidParameter for an unknown policy, a bad scope, or a
    /// non-STANDARD entry.
    pub fn associate(
        &mut self,
        principal_arn: &str,
        policy_arn: &str,
        scope_type: &str,
        namespaces: Vec<String>,
    ) -> Result<Association, StateError> {
        if policy_name(policy_arn).is_none() {
            return Err(StateError::InvalidParameter(format!(
                "The policy {policy_arn} is not a valid access policy"
            )));
        }
        match (scope_type, namespaces.is_empty()) {
            ("cluster", true) | ("namespace", false) => {}
            ("cluster", false) => {
                return Err(StateError::InvalidParameter(
                    "namespaces can only be specified for an access scope of type namespace".into(),
                ))
            }
            ("namespace", true) => return Err(StateError::InvalidParameter(
                "At least one namespace must be specified for an access scope of type namespace"
                    .into(),
            )),
            _ => {
                return Err(StateError::InvalidParameter(format!(
                    "The access scope type {scope_type} is invalid"
                )))
            }
        }
        let entry = self
            .access_entries
            .get_mut(principal_arn)
            .ok_or_else(|| entry_not_found(principal_arn))?;
        if entry.kind != "STANDARD" {
            return Err(StateError::InvalidParameter(format!(
                "Access policies can only be associated with access entries of type STANDARD, not {}",
                entry.kind
            )));
        }
        let now = now_epoch();
        let assoc = match entry
            .policies
            .iter_mut()
            .find(|p| p.policy_arn == policy_arn)
        {
            Some(existing) => {
                existing.scope_type = scope_type.into();
                existing.namespaces = namespaces;
                existing.modified_at = now;
                existing.clone()
            }
            None => {
                let a = Association {
                    policy_arn: policy_arn.into(),
                    scope_type: scope_type.into(),
                    namespaces,
                    associated_at: now,
                    modified_at: now,
                };
                entry.policies.push(a.clone());
                a
            }
        };
        entry.modified_at = now;
        self.counters.eks_writes += 1;
        Ok(assoc)
    }

    /// DisassociateAccessPolicy.
    ///
    /// # Errors
    /// NotFound for an unknown entry or association.
    pub fn disassociate(
        &mut self,
        principal_arn: &str,
        policy_arn: &str,
    ) -> Result<(), StateError> {
        let entry = self
            .access_entries
            .get_mut(principal_arn)
            .ok_or_else(|| entry_not_found(principal_arn))?;
        let before = entry.policies.len();
        entry.policies.retain(|p| p.policy_arn != policy_arn);
        if entry.policies.len() == before {
            return Err(StateError::NotFound(format!(
                "The specified policy {policy_arn} is not associated with principal {principal_arn}"
            )));
        }
        self.counters.eks_writes += 1;
        Ok(())
    }

    /// UpdateClusterConfig's accessConfig: modes only move towards API.
    ///
    /// # Errors
    /// InvalidParameter for a change EKS refuses.
    pub fn set_mode(&mut self, mode: AuthMode) -> Result<(), StateError> {
        if mode == self.mode {
            return Err(StateError::InvalidParameter(format!(
                "Unsupported authentication mode update from {} to {}",
                self.mode.as_str(),
                mode.as_str()
            )));
        }
        if mode < self.mode {
            return Err(StateError::InvalidParameter(format!(
                "Unsupported authentication mode update from {} to {}",
                self.mode.as_str(),
                mode.as_str()
            )));
        }
        let was_config_map = self.mode == AuthMode::ConfigMap;
        self.mode = mode;
        // Leaving CONFIG_MAP keeps the creator's implicit admin as an access entry.
        if was_config_map && self.bootstrap_admin {
            self.bootstrap_creator_entry();
        }
        self.counters.eks_writes += 1;
        Ok(())
    }

    // ---- Kubernetes ConfigMaps ----------------------------------------------------------

    fn bump(&mut self) -> String {
        self.resource_version += 1;
        self.resource_version.to_string()
    }

    /// GET a ConfigMap.
    ///
    /// # Errors
    /// NotFound.
    pub fn cm_get(&self, ns: &str, name: &str) -> Result<&Value, StateError> {
        self.configmaps
            .get(&(ns.to_string(), name.to_string()))
            .ok_or_else(|| cm_not_found(name))
    }

    /// LIST ConfigMaps in a namespace.
    pub fn cm_list(&self, ns: &str) -> Value {
        let items: Vec<Value> = self
            .configmaps
            .iter()
            .filter(|((n, _), _)| n == ns)
            .map(|(_, v)| v.clone())
            .collect();
        json!({"apiVersion": "v1", "kind": "ConfigMapList",
            "metadata": {"resourceVersion": self.resource_version.to_string()}, "items": items})
    }

    /// POST (create).
    ///
    /// # Errors
    /// AlreadyExists; BadRequest for a body that is not a ConfigMap.
    pub fn cm_create(
        &mut self,
        ns: &str,
        mut obj: Value,
        manager: Option<&str>,
    ) -> Result<Value, StateError> {
        validate_cm(&obj)?;
        let name = obj["metadata"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .ok_or_else(|| StateError::BadRequest("ConfigMap \"\" is invalid: metadata.name: Required value: name or generateName is required".into()))?
            .to_string();
        let key = (ns.to_string(), name.clone());
        if self.configmaps.contains_key(&key) {
            return Err(StateError::AlreadyExists(format!(
                "configmaps \"{name}\" already exists"
            )));
        }
        self.next_uid += 1;
        let uid = format!("00000000-0000-4000-8000-{:012x}", self.next_uid);
        let rv = self.bump();
        let fields = obj_fields(&obj);
        let meta = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| StateError::BadRequest("metadata must be an object".into()))?;
        meta.insert("namespace".into(), ns.into());
        meta.insert("uid".into(), uid.into());
        meta.insert("resourceVersion".into(), rv.into());
        meta.insert("creationTimestamp".into(), now_rfc3339().into());
        if let Some(m) = manager {
            meta.insert(
                "managedFields".into(),
                json!([managed_entry(m, "Update", &fields)]),
            );
        }
        obj["apiVersion"] = "v1".into();
        obj["kind"] = "ConfigMap".into();
        self.configmaps.insert(key, obj.clone());
        self.counters.configmap_writes += 1;
        Ok(obj)
    }

    /// PUT (replace) with optimistic concurrency on `metadata.resourceVersion`.
    ///
    /// # Errors
    /// NotFound; Conflict for a stale resourceVersion; BadRequest for a bad body.
    pub fn cm_replace(
        &mut self,
        ns: &str,
        name: &str,
        mut obj: Value,
    ) -> Result<Value, StateError> {
        validate_cm(&obj)?;
        let key = (ns.to_string(), name.to_string());
        let current = self
            .configmaps
            .get(&key)
            .ok_or_else(|| cm_not_found(name))?;
        if obj["metadata"]["name"].as_str().is_some_and(|n| n != name) {
            return Err(StateError::BadRequest(format!(
                "the name of the object ({}) does not match the name on the URL ({name})",
                obj["metadata"]["name"].as_str().unwrap_or("")
            )));
        }
        let current_rv = current["metadata"]["resourceVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        if let Some(rv) = obj["metadata"]["resourceVersion"].as_str() {
            if !rv.is_empty() && rv != current_rv {
                return Err(conflict(name));
            }
        }
        let keep = current["metadata"].clone();
        let rv = self.bump();
        let meta = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| StateError::BadRequest("metadata must be an object".into()))?;
        for k in ["uid", "creationTimestamp", "namespace", "name"] {
            if let Some(v) = keep.get(k) {
                meta.insert(k.into(), v.clone());
            }
        }
        meta.insert("resourceVersion".into(), rv.into());
        if !meta.contains_key("managedFields") {
            if let Some(mf) = keep.get("managedFields") {
                meta.insert("managedFields".into(), mf.clone());
            }
        }
        obj["apiVersion"] = "v1".into();
        obj["kind"] = "ConfigMap".into();
        self.configmaps.insert(key, obj.clone());
        self.counters.configmap_writes += 1;
        Ok(obj)
    }

    /// PATCH with a JSON merge patch (RFC 7386). Strategic merge patches of ConfigMaps behave
    /// the same way. A `metadata.resourceVersion` in the patch is a precondition.
    ///
    /// # Errors
    /// NotFound; Conflict for a stale resourceVersion precondition; BadRequest.
    pub fn cm_merge_patch(
        &mut self,
        ns: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value, StateError> {
        if !patch.is_object() {
            return Err(StateError::BadRequest(
                "the patch must be a JSON object".into(),
            ));
        }
        let key = (ns.to_string(), name.to_string());
        let current = self
            .configmaps
            .get(&key)
            .ok_or_else(|| cm_not_found(name))?;
        if let Some(rv) = patch["metadata"]["resourceVersion"].as_str() {
            if current["metadata"]["resourceVersion"].as_str() != Some(rv) {
                return Err(conflict(name));
            }
        }
        let mut next = current.clone();
        merge_patch(&mut next, patch);
        next["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"].clone();
        self.cm_store_patched(ns, name, next)
    }

    /// PATCH with a JSON patch (RFC 6902: add, remove, replace, test, copy, move).
    ///
    /// # Errors
    /// NotFound; BadRequest for an invalid patch; Conflict when a `test` fails on resourceVersion.
    pub fn cm_json_patch(
        &mut self,
        ns: &str,
        name: &str,
        patch: &Value,
    ) -> Result<Value, StateError> {
        let key = (ns.to_string(), name.to_string());
        let current = self
            .configmaps
            .get(&key)
            .ok_or_else(|| cm_not_found(name))?;
        let mut next = current.clone();
        json_patch(&mut next, patch)?;
        self.cm_store_patched(ns, name, next)
    }

    fn cm_store_patched(
        &mut self,
        ns: &str,
        name: &str,
        mut next: Value,
    ) -> Result<Value, StateError> {
        validate_cm(&next)?;
        let key = (ns.to_string(), name.to_string());
        let current = self
            .configmaps
            .get(&key)
            .ok_or_else(|| cm_not_found(name))?;
        for k in ["uid", "creationTimestamp", "namespace", "name"] {
            next["metadata"][k] = current["metadata"][k].clone();
        }
        let rv = self.bump();
        next["metadata"]["resourceVersion"] = rv.into();
        self.configmaps.insert(key, next.clone());
        self.counters.configmap_writes += 1;
        Ok(next)
    }

    /// Server-side apply (`application/apply-patch+yaml`): creates or merges, tracking which
    /// field manager owns each `data` key, label and annotation. Another manager's field with a
    /// different value is a conflict unless `force`.
    ///
    /// # Errors
    /// Conflict listing the contested fields; BadRequest.
    pub fn cm_apply(
        &mut self,
        ns: &str,
        name: &str,
        applied: &Value,
        manager: &str,
        force: bool,
    ) -> Result<(Value, bool), StateError> {
        validate_cm(applied)?;
        if applied["metadata"]["name"].as_str() != Some(name) {
            return Err(StateError::BadRequest(format!(
                "metadata.name must be {name} in an apply patch"
            )));
        }
        let key = (ns.to_string(), name.to_string());
        let fields = obj_fields(applied);
        let Some(current) = self.configmaps.get(&key).cloned() else {
            let mut obj = applied.clone();
            obj["metadata"]["name"] = name.into();
            let created = self.cm_create(ns, obj, None)?;
            let mut created = created;
            created["metadata"]["managedFields"] =
                json!([managed_entry(manager, "Apply", &fields)]);
            self.configmaps.insert(key, created.clone());
            return Ok((created, true));
        };
        let mut managed: Vec<Value> = current["metadata"]["managedFields"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        // Conflicts: a field owned by another manager whose value the apply changes.
        let mut conflicts = Vec::new();
        for f in &fields {
            let new = field_value(applied, f);
            let old = field_value(&current, f);
            if new == old {
                continue;
            }
            for m in &managed {
                let owner = m["manager"].as_str().unwrap_or("");
                if owner != manager
                    && m["fieldsV1"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == f))
                {
                    conflicts.push(format!(
                        "conflict with \"{owner}\": .{}",
                        f.replace('/', ".")
                    ));
                }
            }
        }
        if !conflicts.is_empty() && !force {
            return Err(StateError::Conflict(format!(
                "Apply failed with {} conflict{}: {}",
                conflicts.len(),
                if conflicts.len() == 1 { "" } else { "s" },
                conflicts.join("; ")
            )));
        }
        let mut next = current.clone();
        // Fields this manager applied before but no longer applies are removed.
        let previous: Vec<String> = managed
            .iter()
            .filter(|m| m["manager"] == manager && m["operation"] == "Apply")
            .flat_map(|m| m["fieldsV1"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect();
        for f in previous.iter().filter(|f| !fields.contains(f)) {
            let owned_by_other = managed.iter().any(|m| {
                m["manager"] != manager
                    && m["fieldsV1"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|x| x == f))
            });
            if !owned_by_other {
                remove_field(&mut next, f);
            }
        }
        for f in &fields {
            set_field(
                &mut next,
                f,
                field_value(applied, f).cloned().unwrap_or(Value::Null),
            );
        }
        // Ownership moves to this manager.
        for m in managed.iter_mut() {
            if m["manager"] != manager {
                if let Some(a) = m["fieldsV1"].as_array_mut() {
                    a.retain(|x| !x.as_str().is_some_and(|s| fields.iter().any(|f| f == s)));
                }
            }
        }
        managed.retain(|m| m["manager"] != manager || m["operation"] != "Apply");
        managed.retain(|m| m["fieldsV1"].as_array().is_none_or(|a| !a.is_empty()));
        managed.push(managed_entry(manager, "Apply", &fields));
        next["metadata"]["managedFields"] = Value::Array(managed);
        let stored = self.cm_store_patched(ns, name, next)?;
        Ok((stored, false))
    }

    /// DELETE.
    ///
    /// # Errors
    /// NotFound.
    pub fn cm_delete(&mut self, ns: &str, name: &str) -> Result<Value, StateError> {
        let obj = self
            .configmaps
            .remove(&(ns.to_string(), name.to_string()))
            .ok_or_else(|| cm_not_found(name))?;
        self.bump();
        self.counters.configmap_writes += 1;
        Ok(obj)
    }
}

fn is_iam_principal(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && parts[2] == "iam"
        && parts[4].len() == 12
        && parts[4].bytes().all(|b| b.is_ascii_digit())
        && (parts[5].starts_with("role/") || parts[5].starts_with("user/"))
}

fn entry_not_found(arn: &str) -> StateError {
    StateError::NotFound(format!(
        "The specified principalArn could not be found. You can view your available access entries with 'list-access-entries'. principalArn: {arn}"
    ))
}

fn cm_not_found(name: &str) -> StateError {
    StateError::NotFound(format!("configmaps \"{name}\" not found"))
}

fn conflict(name: &str) -> StateError {
    StateError::Conflict(format!(
        "Operation cannot be fulfilled on configmaps \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
    ))
}

fn validate_cm(obj: &Value) -> Result<(), StateError> {
    let o = obj
        .as_object()
        .ok_or_else(|| StateError::BadRequest("the body must be a ConfigMap object".into()))?;
    if let Some(k) = o.get("kind").and_then(Value::as_str) {
        if k != "ConfigMap" {
            return Err(StateError::BadRequest(format!("kind {k} is not ConfigMap")));
        }
    }
    if !o.get("metadata").is_some_and(Value::is_object) {
        return Err(StateError::BadRequest("metadata must be an object".into()));
    }
    if let Some(data) = o.get("data") {
        match data {
            Value::Null => {}
            Value::Object(m) => {
                if let Some((k, _)) = m.iter().find(|(_, v)| !v.is_string()) {
                    return Err(StateError::BadRequest(format!(
                        "ConfigMap in version \"v1\" cannot be handled as a ConfigMap: json: cannot unmarshal into Go struct field ConfigMap.data of type string (key {k})"
                    )));
                }
            }
            _ => {
                return Err(StateError::BadRequest(
                    "data must be a map of strings".into(),
                ))
            }
        }
    }
    Ok(())
}

/// RFC 7386.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn unescape_pointer(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

fn split_pointer(path: &str) -> Result<(String, String), StateError> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| StateError::BadRequest(format!("invalid JSON pointer {path:?}")))?;
    Ok((parent.to_string(), unescape_pointer(last)))
}

/// RFC 6902.
fn json_patch(doc: &mut Value, patch: &Value) -> Result<(), StateError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| StateError::BadRequest("a JSON patch must be an array".into()))?;
    for op in ops {
        let kind = op["op"].as_str().unwrap_or("");
        let path = op["path"]
            .as_str()
            .ok_or_else(|| StateError::BadRequest("JSON patch operation without path".into()))?;
        match kind {
            "add" | "replace" => {
                let value = op
                    .get("value")
                    .cloned()
                    .ok_or_else(|| StateError::BadRequest(format!("{kind} without value")))?;
                let (parent, last) = split_pointer(path)?;
                let target = doc.pointer_mut(&parent).ok_or_else(|| {
                    StateError::BadRequest(format!("doc is missing path: {path}"))
                })?;
                match target {
                    Value::Object(m) => {
                        if kind == "replace" && !m.contains_key(&last) {
                            return Err(StateError::BadRequest(format!(
                                "doc is missing key: {path}"
                            )));
                        }
                        m.insert(last, value);
                    }
                    Value::Array(a) => {
                        let idx = if last == "-" {
                            a.len()
                        } else {
                            last.parse()
                                .map_err(|_| StateError::BadRequest(format!("bad index {last}")))?
                        };
                        if kind == "add" && idx <= a.len() {
                            a.insert(idx, value);
                        } else if kind == "replace" && idx < a.len() {
                            a[idx] = value;
                        } else {
                            return Err(StateError::BadRequest(format!(
                                "index out of range: {path}"
                            )));
                        }
                    }
                    _ => return Err(StateError::BadRequest(format!("cannot {kind} at {path}"))),
                }
            }
            "remove" => {
                let (parent, last) = split_pointer(path)?;
                let target = doc.pointer_mut(&parent).ok_or_else(|| {
                    StateError::BadRequest(format!("doc is missing path: {path}"))
                })?;
                let removed = match target {
                    Value::Object(m) => m.remove(&last).is_some(),
                    Value::Array(a) => match last.parse::<usize>() {
                        Ok(i) if i < a.len() => {
                            a.remove(i);
                            true
                        }
                        _ => false,
                    },
                    _ => false,
                };
                if !removed {
                    return Err(StateError::BadRequest(format!(
                        "unable to remove nonexistent key: {path}"
                    )));
                }
            }
            "test" => {
                if doc.pointer(path) != op.get("value") {
                    if path == "/metadata/resourceVersion" {
                        return Err(StateError::Conflict("the server rejected our request due to an error in our request: testing value /metadata/resourceVersion failed".into()));
                    }
                    return Err(StateError::BadRequest(format!(
                        "testing value {path} failed"
                    )));
                }
            }
            "copy" | "move" => {
                let from = op["from"]
                    .as_str()
                    .ok_or_else(|| StateError::BadRequest(format!("{kind} without from")))?;
                let value = doc.pointer(from).cloned().ok_or_else(|| {
                    StateError::BadRequest(format!("doc is missing from path: {from}"))
                })?;
                if kind == "move" {
                    json_patch(doc, &json!([{"op": "remove", "path": from}]))?;
                }
                json_patch(doc, &json!([{"op": "add", "path": path, "value": value}]))?;
            }
            other => {
                return Err(StateError::BadRequest(format!(
                    "unexpected JSON patch operation {other:?}"
                )))
            }
        }
    }
    Ok(())
}

/// The fields server-side apply tracks: `data/<key>`, `labels/<key>`, `annotations/<key>`.
fn obj_fields(obj: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for (section, v) in [
        ("data", &obj["data"]),
        ("binaryData", &obj["binaryData"]),
        ("labels", &obj["metadata"]["labels"]),
        ("annotations", &obj["metadata"]["annotations"]),
    ] {
        if let Some(m) = v.as_object() {
            out.extend(m.keys().map(|k| format!("{section}/{k}")));
        }
    }
    out
}

fn field_ptr(f: &str) -> (Vec<&str>, &str) {
    let (section, key) = f.split_once('/').unwrap_or((f, ""));
    match section {
        "labels" | "annotations" => (vec!["metadata", section], key),
        _ => (vec![section], key),
    }
}

fn field_value<'a>(obj: &'a Value, f: &str) -> Option<&'a Value> {
    let (path, key) = field_ptr(f);
    let mut cur = obj;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.get(key)
}

fn set_field(obj: &mut Value, f: &str, v: Value) {
    let (path, key) = field_ptr(f);
    let mut cur = obj;
    for p in path {
        if !cur.get(p).is_some_and(Value::is_object) {
            cur[p] = Value::Object(Map::new());
        }
        cur = &mut cur[p];
    }
    cur[key] = v;
}

fn remove_field(obj: &mut Value, f: &str) {
    let (path, key) = field_ptr(f);
    let mut cur = obj;
    for p in path {
        match cur.get_mut(p) {
            Some(next) => cur = next,
            None => return,
        }
    }
    if let Some(m) = cur.as_object_mut() {
        m.remove(key);
    }
}

/// A managedFields entry; `fieldsV1` is simplified to the list of owned field paths.
fn managed_entry(manager: &str, operation: &str, fields: &[String]) -> Value {
    json!({"manager": manager, "operation": operation, "apiVersion": "v1",
        "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": fields})
}

/// All clusters plus the fault rules.
#[derive(Debug, Default)]
pub struct State {
    pub clusters: BTreeMap<String, Cluster>,
    pub faults: Faults,
    /// Every authenticator line written, in order (also sent to the file / CloudWatch Logs).
    pub authlog: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(mode: AuthMode) -> Cluster {
        let mut cfg = ClusterConfig::new("c", "arn:aws:iam::123456789012:user/creator");
        cfg.authentication_mode = mode;
        cfg.aws_auth = Some([("mapRoles".to_string(), "- rolearn: x\n".to_string())].into());
        Cluster::new(&cfg, &SimConfig::with_clusters(vec![]))
    }

    #[test]
    fn configmap_resource_versions_and_conflicts() {
        let mut c = cluster(AuthMode::ConfigMap);
        let cm = c.cm_get("kube-system", "aws-auth").unwrap().clone();
        let rv = cm["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .to_string();
        let mut edited = cm.clone();
        edited["data"]["mapUsers"] = "[]".into();
        let stored = c
            .cm_replace("kube-system", "aws-auth", edited.clone())
            .unwrap();
        assert_ne!(stored["metadata"]["resourceVersion"].as_str().unwrap(), rv);
        // The same (now stale) resourceVersion again: 409.
        assert!(matches!(
            c.cm_replace("kube-system", "aws-auth", edited),
            Err(StateError::Conflict(_))
        ));
        assert_eq!(c.counters.configmap_writes, 1);
        let patched = c
            .cm_merge_patch(
                "kube-system",
                "aws-auth",
                &json!({"data": {"mapUsers": null, "x": "y"}}),
            )
            .unwrap();
        assert_eq!(
            patched["data"],
            json!({"mapRoles": "- rolearn: x\n", "x": "y"})
        );
        let jp = c
            .cm_json_patch(
                "kube-system",
                "aws-auth",
                &json!([{"op": "replace", "path": "/data/x", "value": "z"}]),
            )
            .unwrap();
        assert_eq!(jp["data"]["x"], "z");
        assert!(matches!(
            c.cm_get("kube-system", "nope"),
            Err(StateError::NotFound(_))
        ));
    }

    #[test]
    fn server_side_apply_conflicts_between_managers() {
        let mut c = cluster(AuthMode::ConfigMap);
        let obj = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "1"}});
        let (_, created) = c.cm_apply("default", "a", &obj, "alice", false).unwrap();
        assert!(created);
        let other = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "2"}});
        let err = c
            .cm_apply("default", "a", &other, "bob", false)
            .unwrap_err();
        assert!(
            matches!(err, StateError::Conflict(ref m) if m.contains("alice")),
            "{err:?}"
        );
        let (forced, _) = c.cm_apply("default", "a", &other, "bob", true).unwrap();
        assert_eq!(forced["data"]["k"], "2");
        // alice no longer owns data/k; her next apply without it leaves it alone.
        let empty = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"other": "x"}});
        let (after, _) = c.cm_apply("default", "a", &empty, "alice", false).unwrap();
        assert_eq!(after["data"], json!({"k": "2", "other": "x"}));
    }

    #[test]
    fn access_entries_follow_eks_rules() {
        let mut cm = cluster(AuthMode::ConfigMap);
        assert!(matches!(
            cm.create_access_entry(
                "arn:aws:iam::123456789012:role/x",
                vec![],
                None,
                None,
                BTreeMap::new(),
                None
            ),
            Err(StateError::InvalidRequest(_))
        ));
        cm.set_mode(AuthMode::ApiAndConfigMap).unwrap();
        assert!(
            cm.access_entries
                .contains_key("arn:aws:iam::123456789012:user/creator"),
            "creator keeps admin"
        );
        assert!(cm.set_mode(AuthMode::ConfigMap).is_err(), "one way");
        let role = "arn:aws:iam::123456789012:role/team/dev";
        cm.create_access_entry(role, vec![], None, None, BTreeMap::new(), None)
            .unwrap();
        assert!(matches!(
            cm.create_access_entry(role, vec![], None, None, BTreeMap::new(), None),
            Err(StateError::InUse(_))
        ));
        assert!(matches!(
            cm.associate(
                role,
                "arn:aws:eks::aws:cluster-access-policy/Nope",
                "cluster",
                vec![]
            ),
            Err(StateError::InvalidParameter(_))
        ));
        cm.associate(
            role,
            "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
            "namespace",
            vec!["dev".into()],
        )
        .unwrap();
        assert_eq!(cm.access_entry(role).unwrap().policies.len(), 1);
        let node = "arn:aws:iam::123456789012:role/node";
        cm.create_access_entry(
            node,
            vec![],
            None,
            Some("EC2_LINUX".into()),
            BTreeMap::new(),
            None,
        )
        .unwrap();
        assert!(matches!(
            cm.associate(
                node,
                "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
                "cluster",
                vec![]
            ),
            Err(StateError::InvalidParameter(_))
        ));
        cm.disassociate(
            role,
            "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy",
        )
        .unwrap();
        cm.delete_access_entry(role).unwrap();
        assert!(matches!(
            cm.access_entry(role),
            Err(StateError::NotFound(_))
        ));
    }
}
