//! EKS access entries: create (path-qualified principal, type STANDARD, idempotency token from the
//! finding), associate the approved access policy, and verify by reading back. Convergent: an
//! entry that already exists, or a run that stopped after creating it, is completed by the next.

use serde::Serialize;

/// An access policy association as EKS reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Association {
    pub policy_arn: String,
    /// `cluster` or `namespace`.
    pub scope: String,
    pub namespaces: Vec<String>,
}

/// An access entry as EKS reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Entry {
    pub principal_arn: String,
    pub kind: String,
    pub username: Option<String>,
    pub groups: Vec<String>,
    pub policies: Vec<Association>,
}

/// What the approval policy grants for one principal on one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The IAM ARN with its path (access entries need it).
    pub principal_arn: String,
    pub policy_arn: String,
    pub scope: String,
    pub namespaces: Vec<String>,
    /// Idempotency token for CreateAccessEntry, derived from the finding.
    pub client_request_token: String,
    pub tags: Vec<(String, String)>,
}

/// EKS errors the remediation branches on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EksError {
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("already exists: {0}")]
    InUse(String),
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("throttled: {0}")]
    Throttled(String),
    #[error("{0}")]
    Other(String),
}

/// The EKS calls the remediation needs (an AWS SDK implementation, and fakes in tests).
pub trait EksAccess {
    fn describe_entry(
        &self,
        cluster: &str,
        principal_arn: &str,
    ) -> impl std::future::Future<Output = Result<Option<Entry>, EksError>> + Send;
    fn create_entry(
        &self,
        cluster: &str,
        grant: &Grant,
    ) -> impl std::future::Future<Output = Result<(), EksError>> + Send;
    fn associate(
        &self,
        cluster: &str,
        grant: &Grant,
    ) -> impl std::future::Future<Output = Result<(), EksError>> + Send;
}

/// What an apply did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub created_entry: bool,
    pub associated_policy: bool,
    /// The entry as read back after the change.
    pub after: Entry,
    pub before: Option<Entry>,
}

/// Why an apply failed; nothing is left half-done that the next run cannot finish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Eks(#[from] EksError),
    #[error(
        "access entry for {0} has type {1}: policies can only be associated with STANDARD entries"
    )]
    NotStandard(String, String),
    #[error("verification failed: {0}")]
    Verify(String),
}

fn has_grant(e: &Entry, g: &Grant) -> bool {
    e.policies.iter().any(|p| {
        p.policy_arn == g.policy_arn
            && p.scope == g.scope
            && (g.scope == "cluster" || g.namespaces.iter().all(|n| p.namespaces.contains(n)))
    })
}

/// Creates the entry if needed, associates the policy if needed, and verifies by reading back.
///
/// # Errors
/// [`ApplyError`] when EKS refuses, the entry is not STANDARD, or the read-back does not show
/// the grant.
pub async fn apply<E: EksAccess>(eks: &E, cluster: &str, g: &Grant) -> Result<Outcome, ApplyError> {
    let before = eks.describe_entry(cluster, &g.principal_arn).await?;
    let mut created = false;
    match &before {
        None => match eks.create_entry(cluster, g).await {
            Ok(()) => created = true,
            // Someone (or an earlier run) created it meanwhile: complete it.
            Err(EksError::InUse(_)) => {}
            Err(e) => return Err(e.into()),
        },
        Some(e) if e.kind != "STANDARD" => {
            return Err(ApplyError::NotStandard(
                e.principal_arn.clone(),
                e.kind.clone(),
            ))
        }
        Some(_) => {}
    }
    let current = match (&before, created) {
        (Some(e), false) => Some(e.clone()),
        _ => eks.describe_entry(cluster, &g.principal_arn).await?,
    };
    let mut associated = false;
    if !current.as_ref().is_some_and(|e| has_grant(e, g)) {
        eks.associate(cluster, g).await?;
        associated = true;
    }
    let after = eks
        .describe_entry(cluster, &g.principal_arn)
        .await?
        .ok_or_else(|| {
            ApplyError::Verify(format!(
                "no access entry for {} after creating it",
                g.principal_arn
            ))
        })?;
    if !has_grant(&after, g) {
        return Err(ApplyError::Verify(format!(
            "{} is not associated with {} ({} scope) after associating it",
            g.principal_arn, g.policy_arn, g.scope
        )));
    }
    Ok(Outcome {
        created_entry: created,
        associated_policy: associated,
        after,
        before,
    })
}

/// The AWS SDK implementation.
pub struct SdkEks {
    pub client: aws_sdk_eks::Client,
}

fn map_err<E, R>(e: aws_sdk_eks::error::SdkError<E, R>) -> EksError
where
    E: aws_sdk_eks::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    use aws_sdk_eks::error::ProvideErrorMetadata;
    let code = e.code().unwrap_or("").to_string();
    let message = e
        .message()
        .map(str::to_string)
        .unwrap_or_else(|| crate::handler::format_chain(&e));
    match code.as_str() {
        "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation" => {
            EksError::AccessDenied(message)
        }
        "ResourceNotFoundException" => EksError::NotFound(message),
        "ResourceInUseException" => EksError::InUse(message),
        "InvalidParameterException" | "InvalidRequestException" => EksError::Invalid(message),
        "ThrottlingException" | "TooManyRequestsException" => EksError::Throttled(message),
        _ => EksError::Other(if code.is_empty() {
            message
        } else {
            format!("{code}: {message}")
        }),
    }
}

impl EksAccess for SdkEks {
    async fn describe_entry(
        &self,
        cluster: &str,
        principal_arn: &str,
    ) -> Result<Option<Entry>, EksError> {
        let out = match self
            .client
            .describe_access_entry()
            .cluster_name(cluster)
            .principal_arn(principal_arn)
            .send()
            .await
        {
            Ok(o) => o,
            Err(e) => {
                return match map_err(e) {
                    EksError::NotFound(_) => Ok(None),
                    other => Err(other),
                }
            }
        };
        let Some(entry) = out.access_entry else {
            return Ok(None);
        };
        let mut policies = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let page = self
                .client
                .list_associated_access_policies()
                .cluster_name(cluster)
                .principal_arn(principal_arn)
                .set_next_token(next.clone())
                .send()
                .await
                .map_err(map_err)?;
            for p in page.associated_access_policies.unwrap_or_default() {
                let scope = p.access_scope;
                policies.push(Association {
                    policy_arn: p.policy_arn.unwrap_or_default(),
                    scope: scope
                        .as_ref()
                        .and_then(|s| s.r#type.as_ref())
                        .map(|t| t.as_str().to_string())
                        .unwrap_or_default(),
                    namespaces: scope.and_then(|s| s.namespaces).unwrap_or_default(),
                });
            }
            next = page.next_token;
            if next.is_none() {
                break;
            }
        }
        Ok(Some(Entry {
            principal_arn: entry
                .principal_arn
                .unwrap_or_else(|| principal_arn.to_string()),
            kind: entry.r#type.unwrap_or_else(|| "STANDARD".into()),
            username: entry.username,
            groups: entry.kubernetes_groups.unwrap_or_default(),
            policies,
        }))
    }

    async fn create_entry(&self, cluster: &str, g: &Grant) -> Result<(), EksError> {
        let mut req = self
            .client
            .create_access_entry()
            .cluster_name(cluster)
            .principal_arn(&g.principal_arn)
            .r#type("STANDARD")
            .client_request_token(&g.client_request_token);
        for (k, v) in &g.tags {
            req = req.tags(k, v);
        }
        req.send().await.map(|_| ()).map_err(map_err)
    }

    async fn associate(&self, cluster: &str, g: &Grant) -> Result<(), EksError> {
        use aws_sdk_eks::types::{AccessScope, AccessScopeType};
        let scope = AccessScope::builder()
            .r#type(AccessScopeType::from(g.scope.as_str()))
            .set_namespaces((!g.namespaces.is_empty()).then(|| g.namespaces.clone()))
            .build();
        self.client
            .associate_access_policy()
            .cluster_name(cluster)
            .principal_arn(&g.principal_arn)
            .policy_arn(&g.policy_arn)
            .access_scope(scope)
            .send()
            .await
            .map(|_| ())
            .map_err(map_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// An in-memory EKS with a failure switch, to test convergence.
    #[derive(Default)]
    struct Fake {
        entries: Mutex<Vec<Entry>>,
        fail_associate: Mutex<u32>,
        calls: Mutex<Vec<&'static str>>,
    }

    impl EksAccess for Fake {
        async fn describe_entry(&self, _c: &str, p: &str) -> Result<Option<Entry>, EksError> {
            self.calls.lock().unwrap().push("describe");
            Ok(self
                .entries
                .lock()
                .unwrap()
                .iter()
                .find(|e| e.principal_arn == p)
                .cloned())
        }
        async fn create_entry(&self, _c: &str, g: &Grant) -> Result<(), EksError> {
            self.calls.lock().unwrap().push("create");
            let mut es = self.entries.lock().unwrap();
            if es.iter().any(|e| e.principal_arn == g.principal_arn) {
                return Err(EksError::InUse("exists".into()));
            }
            es.push(Entry {
                principal_arn: g.principal_arn.clone(),
                kind: "STANDARD".into(),
                username: None,
                groups: vec![],
                policies: vec![],
            });
            Ok(())
        }
        async fn associate(&self, _c: &str, g: &Grant) -> Result<(), EksError> {
            self.calls.lock().unwrap().push("associate");
            let mut n = self.fail_associate.lock().unwrap();
            if *n > 0 {
                *n -= 1;
                return Err(EksError::Other("injected".into()));
            }
            let mut es = self.entries.lock().unwrap();
            let e = es
                .iter_mut()
                .find(|e| e.principal_arn == g.principal_arn)
                .ok_or(EksError::NotFound("x".into()))?;
            e.policies.retain(|p| p.policy_arn != g.policy_arn);
            e.policies.push(Association {
                policy_arn: g.policy_arn.clone(),
                scope: g.scope.clone(),
                namespaces: g.namespaces.clone(),
            });
            Ok(())
        }
    }

    fn grant() -> Grant {
        Grant {
            principal_arn: "arn:aws:iam::111122223333:role/team/dev".into(),
            policy_arn: "arn:aws:eks::aws:cluster-access-policy/AmazonEKSViewPolicy".into(),
            scope: "cluster".into(),
            namespaces: vec![],
            client_request_token: "t".into(),
            tags: vec![],
        }
    }

    #[tokio::test]
    async fn converges_after_a_half_done_run() {
        let eks = Fake::default();
        *eks.fail_associate.lock().unwrap() = 1;
        let err = apply(&eks, "c", &grant()).await.unwrap_err();
        assert_eq!(err, ApplyError::Eks(EksError::Other("injected".into())));
        // The entry exists without its policy; the next run completes it without re-creating.
        let out = apply(&eks, "c", &grant()).await.unwrap();
        assert!(!out.created_entry && out.associated_policy);
        // And a third run changes nothing.
        let again = apply(&eks, "c", &grant()).await.unwrap();
        assert!(!again.created_entry && !again.associated_policy);
        assert_eq!(
            eks.calls
                .lock()
                .unwrap()
                .iter()
                .filter(|c| **c == "create")
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn refuses_non_standard_entries() {
        let eks = Fake::default();
        eks.entries.lock().unwrap().push(Entry {
            principal_arn: grant().principal_arn,
            kind: "EC2_LINUX".into(),
            username: None,
            groups: vec![],
            policies: vec![],
        });
        assert!(matches!(
            apply(&eks, "c", &grant()).await,
            Err(ApplyError::NotStandard(..))
        ));
    }
}
