//! Changes to clusters: EKS access entries and aws-auth. Each is idempotent, verified by reading
//! back, and audited (`crate::audit`). [`Remediator`] is the seam the handler applies through.

pub mod access_entry;
pub mod aws_auth;

use std::collections::BTreeMap;

use serde_json::json;

use crate::aws_auth::{analyze_list, find_mapping, EditError, ListKind, NewMapping};
use crate::diagnosis::Finding;
use crate::facts::{Facts, OfflineFacts};
use crate::facts_aws::AwsFacts;
use crate::plan::Change;

/// What applying a change did.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// The change was already in place: nothing written.
    pub unchanged: bool,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

/// Applies planned changes.
pub trait Remediator {
    /// Applies one change for a finding; `ticket_id` goes into tags/annotations.
    fn apply(
        &self,
        finding: &Finding,
        facts: &Facts,
        change: &Change,
        ticket_id: &str,
    ) -> impl std::future::Future<Output = Result<Applied, String>> + Send;
}

impl Remediator for OfflineFacts {
    async fn apply(
        &self,
        _f: &Finding,
        _x: &Facts,
        _c: &Change,
        _t: &str,
    ) -> Result<Applied, String> {
        Err("offline: no AWS access, so no change is made".into())
    }
}

fn kind_of(list: &str) -> ListKind {
    if list == "mapUsers" {
        ListKind::Users
    } else {
        ListKind::Roles
    }
}

/// The pure edit for a change: `Ok(None)` when already in place.
pub fn aws_auth_edit(
    change: &Change,
    data: &BTreeMap<String, String>,
) -> Result<Option<aws_auth::Change>, String> {
    let (kind, result) = match change {
        Change::AwsAuthMapping {
            list,
            arn,
            username,
            groups,
        } => {
            let kind = kind_of(list);
            let text = data.get(kind.data_key()).map(String::as_str).unwrap_or("");
            let m = NewMapping {
                arn: arn.clone(),
                username: username.clone(),
                groups: groups.clone(),
            };
            (kind, crate::aws_auth::add(kind, text, &m))
        }
        Change::FixMappingPath {
            list,
            old_arn,
            new_arn,
        } => {
            let kind = kind_of(list);
            let text = data.get(kind.data_key()).map(String::as_str).unwrap_or("");
            // Already fixed by someone else: nothing to do.
            if analyze_list(kind, text).entries.iter().any(|e| {
                e.arn
                    .as_deref()
                    .is_some_and(|a| a.eq_ignore_ascii_case(new_arn))
            }) {
                return Ok(None);
            }
            (
                kind,
                crate::aws_auth::replace_arn(kind, text, old_arn, new_arn),
            )
        }
        Change::AccessEntry { .. } => return Err("not an aws-auth change".into()),
    };
    match result {
        Ok(edit) => Ok(Some(aws_auth::Change {
            key: kind.data_key().to_string(),
            text: edit.text,
        })),
        Err(EditError::AlreadyPresent { .. }) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Verifies read-back data: the principal is now mapped.
pub fn aws_auth_verify(change: &Change, data: &BTreeMap<String, String>) -> Result<(), String> {
    let (list, arn) = match change {
        Change::AwsAuthMapping { list, arn, .. } => (list, arn),
        Change::FixMappingPath { list, new_arn, .. } => (list, new_arn),
        Change::AccessEntry { .. } => return Err("not an aws-auth change".into()),
    };
    let kind = kind_of(list);
    let analysis = analyze_list(
        kind,
        data.get(kind.data_key()).map(String::as_str).unwrap_or(""),
    );
    if find_mapping(&analysis, arn).is_mapped() {
        Ok(())
    } else {
        Err(format!("{arn} is not mapped by the aws-auth read back"))
    }
}

impl Remediator for AwsFacts {
    async fn apply(
        &self,
        f: &Finding,
        _facts: &Facts,
        change: &Change,
        ticket_id: &str,
    ) -> Result<Applied, String> {
        let cluster = f.cluster.as_deref().ok_or("no cluster")?;
        match change {
            Change::AccessEntry {
                principal_arn,
                policy_arn,
                scope,
                namespaces,
                client_request_token,
            } => {
                let grant = access_entry::Grant {
                    principal_arn: principal_arn.clone(),
                    policy_arn: policy_arn.clone(),
                    scope: scope.clone(),
                    namespaces: namespaces.clone(),
                    client_request_token: client_request_token.clone(),
                    tags: vec![
                        ("managed-by".into(), "eks-auth-remediator".into()),
                        ("eks-auth-remediator/ticket".into(), ticket_id.to_string()),
                    ],
                };
                let out = access_entry::apply(&self.eks, cluster, &grant)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Applied {
                    unchanged: !out.created_entry && !out.associated_policy,
                    before: out.before.map(|b| json!(b)),
                    after: Some(json!(out.after)),
                })
            }
            Change::AwsAuthMapping { .. } | Change::FixMappingPath { .. } => {
                let info = self.cluster(cluster).await;
                let client = self.kube(cluster, &info).await?;
                let annotation = json!({"tool": "eks-auth-remediator", "time": crate::audit::now(),
                    "ticket": ticket_id, "change": change})
                .to_string();
                let out = aws_auth::apply(
                    &client,
                    &annotation,
                    |d| aws_auth_edit(change, d),
                    |d| aws_auth_verify(change, d),
                )
                .await
                .map_err(|e| e.to_string())?;
                self.invalidate(cluster).await;
                Ok(Applied {
                    unchanged: out.unchanged,
                    before: out.before.map(|b| json!({out.key.clone(): b})),
                    after: (!out.unchanged).then(|| json!({out.key.clone(): out.after, "resourceVersion": out.resource_version, "attempts": out.attempts})),
                })
            }
        }
    }
}
