//! Applying an aws-auth edit to a live cluster: read kube-system/aws-auth, compute the minimal
//! edit (pure, `crate::aws_auth`), write it with the object's `resourceVersion`, re-read and
//! re-apply on 409 Conflict (bounded, with jitter), verify by reading back, and annotate the
//! ConfigMap with the tool, time and ticket id.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;

/// The annotation recording the last change this tool made.
pub const ANNOTATION: &str = "eks-auth-remediator/last-change";
/// Attempts on 409 Conflict before giving up.
pub const MAX_ATTEMPTS: u32 = 6;

/// Where and as whom to connect.
pub struct Target {
    pub endpoint: String,
    pub ca_pem: String,
    pub token: SecretString,
}

/// Why the write did not happen (each becomes a ticket).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AwsAuthError {
    #[error(
        "kube-system/aws-auth does not exist; creating it is left to a human (CONFIG_MAP mode)"
    )]
    Missing,
    #[error("refused to edit aws-auth: {0}")]
    Refused(String),
    #[error("not allowed to update kube-system/aws-auth: {0}")]
    Forbidden(String),
    #[error("still conflicting after {0} attempts")]
    Conflicts(u32),
    #[error("verification failed: {0}")]
    Verify(String),
    #[error("kubernetes API: {0}")]
    Api(String),
}

/// The change an edit function wants: which data key gets which new text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub key: String,
    pub text: String,
}

/// What was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub key: String,
    pub before: Option<String>,
    pub after: String,
    pub resource_version: String,
    pub attempts: u32,
    /// True when the mapping was already present: nothing written.
    pub unchanged: bool,
}

/// Builds a kube client for the cluster endpoint, CA and bearer token.
///
/// # Errors
/// [`AwsAuthError::Api`] when the configuration is unusable.
pub async fn client(t: &Target) -> Result<kube::Client, AwsAuthError> {
    use base64::Engine;
    let ca = base64::engine::general_purpose::STANDARD.encode(t.ca_pem.as_bytes());
    // The token only lives in this in-memory document; it is never logged.
    let yaml = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\nusers:\n- name: u\n  user:\n    token: {}\n",
        t.endpoint,
        t.token.expose_secret()
    );
    let kc =
        kube::config::Kubeconfig::from_yaml(&yaml).map_err(|e| AwsAuthError::Api(e.to_string()))?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
        .await
        .map_err(|e| AwsAuthError::Api(e.to_string()))?;
    kube::Client::try_from(cfg).map_err(|e| AwsAuthError::Api(e.to_string()))
}

/// Reads aws-auth's data (None when the ConfigMap does not exist).
///
/// # Errors
/// [`AwsAuthError::Forbidden`] or [`AwsAuthError::Api`].
pub async fn read(
    client: &kube::Client,
) -> Result<Option<(BTreeMap<String, String>, String)>, AwsAuthError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    match api.get_opt("aws-auth").await.map_err(kube_err)? {
        None => Ok(None),
        Some(cm) => Ok(Some((
            cm.data.unwrap_or_default(),
            cm.metadata.resource_version.unwrap_or_default(),
        ))),
    }
}

fn kube_err(e: kube::Error) -> AwsAuthError {
    match e {
        kube::Error::Api(s) if s.code == 403 => AwsAuthError::Forbidden(s.message),
        other => AwsAuthError::Api(other.to_string()),
    }
}

fn jitter(attempt: u32) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let base = 50u64 << attempt.min(5);
    Duration::from_millis(base + u64::from(nanos % 50))
}

/// Applies `edit` to the live ConfigMap with optimistic concurrency. `edit` sees the current data
/// and returns the change, `Ok(None)` when the mapping is already there, or a refusal.
/// `verify` checks the read-back data.
///
/// # Errors
/// [`AwsAuthError`]; nothing is written on a refusal.
pub async fn apply(
    client: &kube::Client,
    annotation: &str,
    edit: impl Fn(&BTreeMap<String, String>) -> Result<Option<Change>, String>,
    verify: impl Fn(&BTreeMap<String, String>) -> Result<(), String>,
) -> Result<Applied, AwsAuthError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "kube-system");
    for attempt in 1..=MAX_ATTEMPTS {
        let Some(mut cm) = api.get_opt("aws-auth").await.map_err(kube_err)? else {
            return Err(AwsAuthError::Missing);
        };
        let data = cm.data.clone().unwrap_or_default();
        let change = match edit(&data).map_err(AwsAuthError::Refused)? {
            None => {
                return Ok(Applied {
                    key: String::new(),
                    before: None,
                    after: String::new(),
                    resource_version: cm.metadata.resource_version.unwrap_or_default(),
                    attempts: attempt,
                    unchanged: true,
                })
            }
            Some(c) => c,
        };
        let before = data.get(&change.key).cloned();
        cm.data
            .get_or_insert_with(BTreeMap::new)
            .insert(change.key.clone(), change.text.clone());
        cm.metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(ANNOTATION.to_string(), annotation.to_string());
        // managedFields must not be sent back on a replace.
        cm.metadata.managed_fields = None;
        match api
            .replace(
                "aws-auth",
                &PostParams {
                    field_manager: Some("eks-auth-remediator".into()),
                    ..PostParams::default()
                },
                &cm,
            )
            .await
        {
            Ok(written) => {
                let back = api.get("aws-auth").await.map_err(kube_err)?;
                let back_data = back.data.unwrap_or_default();
                verify(&back_data).map_err(AwsAuthError::Verify)?;
                return Ok(Applied {
                    key: change.key,
                    before,
                    after: change.text,
                    resource_version: written.metadata.resource_version.unwrap_or_default(),
                    attempts: attempt,
                    unchanged: false,
                });
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                tracing::info!(
                    attempt,
                    "aws-auth changed underneath us (409 Conflict): re-reading"
                );
                tokio::time::sleep(jitter(attempt)).await;
            }
            Err(e) => return Err(kube_err(e)),
        }
    }
    Err(AwsAuthError::Conflicts(MAX_ATTEMPTS))
}

/// Whether the identity behind the client may update kube-system ConfigMaps
/// (SelfSubjectAccessReview).
///
/// # Errors
/// [`AwsAuthError::Api`] when the review itself fails (401 included).
pub async fn may_update(client: &kube::Client) -> Result<(bool, String), AwsAuthError> {
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some("kube-system".into()),
                verb: Some("update".into()),
                resource: Some("configmaps".into()),
                name: Some("aws-auth".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let out = api
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| AwsAuthError::Api(e.to_string()))?;
    let status = out.status.unwrap_or_default();
    Ok((status.allowed, status.reason.unwrap_or_default()))
}
